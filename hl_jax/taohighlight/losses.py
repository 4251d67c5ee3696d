"""TaoHighlight's losses: L_reg (start/end), L_ag (alignment of the top-k candidates), saliency.

Shapes: [B, T] per-clip logits with a prefix mask [B, T]; segments are
half-open [start, end) clip ranges. The choices where the article is silent
are listed in hl_jax/taohighlight/network.py's docstring.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import optax

from hl_jax.core import ops

REG_SCALES = ("video", "clips")  # total_loss's units of L_reg.


def expected_boundaries(
    start_logits: jnp.ndarray, end_logits: jnp.ndarray, mask: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Softmax-expected (start, end) [B] in clip units, end half-open (E[t] + 1)."""
  t = jnp.arange(start_logits.shape[-1], dtype=jnp.float32)
  p_start = ops.masked_softmax(start_logits, mask)
  p_end = ops.masked_softmax(end_logits, mask)
  return p_start @ t, p_end @ t + 1.0


def l_reg(
    pred_start: jnp.ndarray, pred_end: jnp.ndarray, gt_start: jnp.ndarray, gt_end: jnp.ndarray
) -> jnp.ndarray:
  """|pred_start - gt_start| + |pred_end - gt_end|, all [B] -> [B]."""
  return jnp.abs(pred_start - gt_start) + jnp.abs(pred_end - gt_end)


def segment_alignment(
    pred_segments: jnp.ndarray,
    gt: jnp.ndarray,
    pred_feats: jnp.ndarray,
    gt_feat: jnp.ndarray,
    theta_r: float,
    theta_d: float,
    theta_s: float,
) -> jnp.ndarray:
  """e = theta_r IoU + theta_d |c_pred - c_gt| / U + theta_s cos.

  Args:
    pred_segments: [B, K, 2] half-open [start, end).
    gt: [B, 2] half-open.
    pred_feats: [B, K, H] candidate segment features.
    gt_feat: [B, H] the true segment's feature.

  Returns:
    [B, K] e (U = |a| + |b| - |a n b|, the union's length).
  """
  s, e = pred_segments[..., 0], pred_segments[..., 1]
  gs, ge = gt[:, None, 0], gt[:, None, 1]
  inter = jnp.maximum(jnp.minimum(e, ge) - jnp.maximum(s, gs), 0.0)
  union = jnp.maximum((e - s) + (ge - gs) - inter, 1e-6)
  dist = jnp.abs((s + e) / 2 - (gs + ge) / 2) / union
  cos = ops.cosine(pred_feats, gt_feat[:, None, :])[..., 0]
  return theta_r * inter / union + theta_d * dist + theta_s * cos


def l_ag(alignment: jnp.ndarray, valid: jnp.ndarray | None = None) -> jnp.ndarray:
  """-sum_k e over the [B, K] candidates (only the valid ones) -> [B]."""
  if valid is not None:
    alignment = jnp.where(valid, alignment, 0.0)
  return -jnp.sum(alignment, axis=-1)


def saliency_loss(saliency: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Sigmoid BCE of [B, T] logits on [B, T] targets in [0, 1], mean over valid clips -> [B]."""
  bce = optax.sigmoid_binary_cross_entropy(saliency, target)
  bce = jnp.where(mask, bce, 0.0)
  return jnp.sum(bce, -1) / jnp.maximum(jnp.sum(mask, -1), 1)


def candidate_segments(top_idx: jnp.ndarray, mask: jnp.ndarray, length: int) -> jnp.ndarray:
  """Fixed-length segments [B, K, 2] starting at the picks, shifted into the video."""
  n = jnp.sum(mask, -1, keepdims=True).astype(top_idx.dtype)
  start = jnp.maximum(jnp.minimum(top_idx, n - length), 0)
  return jnp.stack([start, jnp.minimum(start + length, n)], -1)


def segment_features(features: jnp.ndarray, segments: jnp.ndarray) -> jnp.ndarray:
  """Mean of [B, T, H] features over each [B, K, 2] segment -> [B, K, H]."""
  t = jnp.arange(features.shape[1])
  inside = (t >= segments[..., :1]) & (t < segments[..., 1:])  # [B, K, T]
  inside = inside.astype(features.dtype)
  total = jnp.einsum("bkt,bth->bkh", inside, features)
  return total / jnp.maximum(jnp.sum(inside, -1, keepdims=True), 1.0)


def total_loss(
    out: dict[str, jnp.ndarray],
    mask: jnp.ndarray,
    gt: jnp.ndarray,
    saliency_target: jnp.ndarray,
    length: int,
    thetas: Sequence[float] = (1.0, -1.0, 1.0),
    w_ag: float = 1.0,
    w_sal: float = 1.0,
    w_reg: float = 1.0,
    reg_scale: str = "video",
) -> dict[str, jnp.ndarray]:
  """The per-video [B] parts and their weighted "total", from the model's output.

  gt is [B, 2] half-open; thetas are (theta_r, theta_d, theta_s). reg_scale
  "clips" is L_reg in clips, as written; "video" divides it by the video's
  length in clips (start and end as fractions of the video, L_reg in [0, 2]),
  so long videos do not drown the saliency and alignment terms.
  """
  if reg_scale not in REG_SCALES:
    raise ValueError(f"reg_scale={reg_scale!r} is unknown; one of {REG_SCALES}")
  start, end = expected_boundaries(out["start_logits"], out["end_logits"], mask)
  gt = gt.astype(jnp.float32)
  reg = l_reg(start, end, gt[:, 0], gt[:, 1])
  if reg_scale == "video":
    reg = reg / jnp.maximum(jnp.sum(mask, -1), 1).astype(jnp.float32)
  cands = candidate_segments(out["top_idx"], mask, length)
  feats = out["features"]
  e = segment_alignment(
      cands.astype(jnp.float32),
      gt,
      segment_features(feats, cands),
      segment_features(feats, gt[:, None].astype(jnp.int32))[:, 0],
      *thetas,
  )
  ag = l_ag(e, out["top_valid"])
  sal = saliency_loss(out["saliency"], saliency_target, mask)
  return {"reg": reg, "ag": ag, "saliency": sal, "total": w_reg * reg + w_ag * ag + w_sal * sal}
