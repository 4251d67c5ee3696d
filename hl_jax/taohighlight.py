"""TaoHighlight (Taobao 2021): supervised multimodal highlight detection.

Modelled: per-clip visual features -> BiGRU; text tokens -> QFGA (a cosine
token graph, GCN, query-focused aggregation); a co-attention where the video
attends to the text; graph fine-tuning (a GCN over the top-k scored clips);
heads for per-clip saliency and start/end logits; the losses L_reg (L1 on
start/end) and L_ag (alignment of the top-k candidates with the true segment);
decoding a fixed-length segment from the start logits; training targets for
TVSum / YouTube Highlights and IoU metrics.

Choices where the article is silent (all configurable where they are numbers):
  * BiGRU: H/2 units per direction, concatenated to H; masks must be a prefix
    (valid clips first), because the reversed GRU starts at seq_lengths - 1.
  * Graphs: adjacency = softmax over valid nodes of cosine / temperature (0.1
    by default: cosines in [-1, 1] give a near-uniform softmax otherwise). The
    GCN layers are residual, x + relu(A x W), so a node keeps its identity.
  * QFGA: two GCN layers; the query is the projected masked-mean visual
    feature; the query-focused summary sum_l alpha_l x_l is added to every
    token, and all tokens go to the co-attention.
  * Graph fine-tuning: the GCN output is added to the features of the top-k
    clips and every clip is re-scored by the same Dense scorer, so clips
    outside the top-k keep the plain score. Start/end logits and saliency
    come from the refined features.
  * end_logits point at the segment's last clip; its expected position + 1 is
    the half-open end. L_ag uses e exactly as written: theta_d multiplies
    +distance, so pass theta_d < 0 for the distance to be a penalty (default
    -1). The IoU and distance terms have no gradient (top-k indices are
    discrete); only the cosine term trains the features. Segment features
    are the mean features of their clips.
  * L_reg is divided by the video's length by default (reg_scale "video"):
    in clips, on videos of ~100-400 clips, it is two orders of magnitude
    above the other terms and saliency is barely trained.
  * Saliency loss: sigmoid binary cross-entropy on targets in [0, 1], mean
    over the valid clips (a pointwise loss that mAP's ranking can use).
  * A second per-clip stream (audio, [B, T, Da]) may replace text as the
    co-attention's keys/values (context="audio").
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hl_jax import losses

NEG = -1e9  # Logit of a masked clip: -inf-safe in softmax, BCE and top_k.
CONTEXTS = ("text", "audio")
REG_SCALES = ("video", "clips")  # total_loss's units of L_reg.


def _cosine(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """Cosine similarity of [..., N, H] and [..., M, H] -> [..., N, M]."""
  # rsqrt of a clamped square: the norm's gradient is NaN at masked (zero) rows.
  x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), 1e-12))
  y = y * jax.lax.rsqrt(jnp.maximum(jnp.sum(y * y, -1, keepdims=True), 1e-12))
  return jnp.einsum("...nh,...mh->...nm", x, y)


class GCN(nn.Module):
  """Residual graph convolutions x <- x + relu(A x W) on a cosine graph.

  Attributes:
    layers: number of graph convolutions.
    temperature: the adjacency is softmax(cos / temperature) over valid nodes.
  """
  layers: int = 2
  temperature: float = 0.1

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """[B, N, H] nodes with [B, N] mask -> [B, N, H] (masked nodes zero)."""
    keep = jnp.broadcast_to(mask[:, None, :], mask.shape + mask.shape[-1:])
    adj = losses.masked_softmax(_cosine(x, x) / self.temperature, keep)
    for _ in range(self.layers):
      x = x + nn.relu(adj @ nn.Dense(x.shape[-1])(x))
    return x * mask[..., None]


class VisualStream(nn.Module):
  """Bidirectional GRU over clip features, [B, T, Dv] -> [B, T, H]."""
  hidden: int

  @nn.compact
  def __call__(self, visual: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    if self.hidden % 2:
      raise ValueError(f"hidden={self.hidden} must be even (H/2 per direction)")
    visual = jnp.where(mask[..., None], visual, 0.0)
    lengths = jnp.sum(mask, axis=-1).astype(jnp.int32)
    gru = nn.Bidirectional(nn.RNN(nn.GRUCell(self.hidden // 2, name="forward")),
                           nn.RNN(nn.GRUCell(self.hidden // 2, name="backward")))
    return gru(visual, seq_lengths=lengths) * mask[..., None]


class QFGA(nn.Module):
  """Query-focused graph aggregation of text tokens.

  Attributes:
    hidden: H.
    temperature: the token graph's softmax temperature.
  """
  hidden: int
  temperature: float = 0.1

  @nn.compact
  def __call__(self, text: jnp.ndarray, mask: jnp.ndarray,
               query: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Tokens [B, L, Dt], mask [B, L], query [B, H].

    Returns:
      tokens [B, L, H] (each plus the query-focused summary; masked zero) and
      alpha [B, L], the query's attention over valid tokens (sums to 1).
    """
    x = nn.Dense(self.hidden)(jnp.where(mask[..., None], text, 0.0))
    x = GCN(2, self.temperature)(x, mask)
    logits = jnp.einsum("blh,bh->bl", x, nn.Dense(self.hidden)(query))
    alpha = losses.masked_softmax(logits / np.sqrt(self.hidden), mask)
    summary = jnp.einsum("bl,blh->bh", alpha, x)
    return (x + summary[:, None, :]) * mask[..., None], alpha


class CoAttention(nn.Module):
  """The video attends to a context: LayerNorm(v + MHA(v, context)).

  Attributes:
    heads: attention heads.
    dropout: dropout rate on the attention weights and output.
  """
  heads: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, visual: jnp.ndarray, context: jnp.ndarray | None,
               context_mask: jnp.ndarray | None, train: bool = False) -> jnp.ndarray:
    """visual [B, T, H], context [B, S, H] with mask [B, S] -> [B, T, H].

    context None gives the visual features unchanged (the "w/o text" ablation).
    """
    if context is None:
      return visual
    attend = nn.MultiHeadDotProductAttention(
        self.heads, qkv_features=visual.shape[-1], dropout_rate=self.dropout,
        deterministic=not train)
    out = attend(visual, context, mask=context_mask[:, None, None, :])
    # A video with no valid key would average masked values: give it nothing.
    out = out * jnp.any(context_mask, axis=-1)[:, None, None]
    out = nn.Dropout(self.dropout, deterministic=not train)(out)
    return nn.LayerNorm()(visual + out)


class GraphFineTune(nn.Module):
  """Scores clips, refines the top-k on a clip graph, re-scores.

  Attributes:
    k: clips in the graph (min(k, T) are taken; masked picks are flagged).
    use_graph: False gives the plain scorer (the "w/o graph" ablation).
    temperature: the clip graph's softmax temperature.
  """
  k: int
  use_graph: bool = True
  temperature: float = 0.1

  @nn.compact
  def __call__(self, feats: jnp.ndarray, mask: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """feats [B, T, H], mask [B, T].

    Returns:
      logits [B, T] (masked clips NEG), features [B, T, H] (refined),
      top_idx [B, k'] int32 the top-k' clips by plain score (k' = min(k, T)),
      top_valid [B, k'] whether each pick is a valid clip.
    """
    scorer = nn.Dense(1, name="scorer")
    plain = jnp.where(mask, scorer(feats)[..., 0], -jnp.inf)
    _, top_idx = jax.lax.top_k(plain, min(self.k, feats.shape[1]))
    top_valid = jnp.take_along_axis(mask, top_idx, axis=1)
    if self.use_graph:
      picked = jnp.take_along_axis(feats, top_idx[..., None], axis=1)
      delta = GCN(2, self.temperature)(picked, top_valid) - picked * top_valid[..., None]
      # Scatter back as a one-hot product: static shapes, picks are distinct.
      onehot = jax.nn.one_hot(top_idx, feats.shape[1]) * top_valid[..., None]
      feats = feats + jnp.einsum("bkt,bkh->bth", onehot, delta)
    logits = jnp.where(mask, scorer(feats)[..., 0], NEG)
    return {"logits": logits, "features": feats, "top_idx": top_idx,
            "top_valid": top_valid}


class TaoHighlight(nn.Module):
  """The full model.

  Attributes:
    hidden: H.
    heads: co-attention heads.
    k: clips in the fine-tuning graph (and L_ag candidates).
    use_text: False ignores text/audio (the "w/o text" ablation).
    use_graph: False skips graph fine-tuning.
    dropout: dropout rate.
    context: "text" (QFGA tokens) or "audio" (per-clip, [B, T, Da]) as keys.
    temperature: the graphs' softmax temperature.
  """
  hidden: int = 128
  heads: int = 4
  k: int = 8
  use_text: bool = True
  use_graph: bool = True
  dropout: float = 0.1
  context: str = "text"
  temperature: float = 0.1

  @nn.compact
  def __call__(self, visual: jnp.ndarray, visual_mask: jnp.ndarray,
               text: jnp.ndarray | None = None, text_mask: jnp.ndarray | None = None,
               train: bool = False, audio: jnp.ndarray | None = None
               ) -> dict[str, jnp.ndarray]:
    """visual [B, T, Dv], visual_mask [B, T] (bool, a prefix), text [B, L, Dt]
    with text_mask [B, L], or audio [B, T, Da].

    Returns:
      saliency, start_logits, end_logits [B, T] (masked clips NEG), and the
      graph stage's features [B, T, H], top_idx and top_valid [B, k'].
    """
    if self.context not in CONTEXTS:
      raise ValueError(f"context={self.context!r} is unknown; one of {CONTEXTS}")
    mask = visual_mask.astype(bool)
    v = VisualStream(self.hidden)(visual, mask)
    context, context_mask = None, None
    if self.use_text and self.context == "text" and text is not None:
      if text_mask is None:
        text_mask = jnp.ones(text.shape[:2], bool)
      count = jnp.maximum(jnp.sum(mask, -1, keepdims=True), 1)
      query = nn.Dense(self.hidden)(jnp.sum(v, axis=1) / count)
      context, _ = QFGA(self.hidden, self.temperature)(text, text_mask.astype(bool), query)
      context_mask = text_mask.astype(bool)
    elif self.use_text and self.context == "audio" and audio is not None:
      context = nn.Dense(self.hidden)(jnp.where(mask[..., None], audio, 0.0))
      context_mask = mask
    fused = CoAttention(self.heads, self.dropout)(v, context, context_mask, train)
    fused = nn.Dropout(self.dropout, deterministic=not train)(fused) * mask[..., None]
    graph = GraphFineTune(self.k, self.use_graph, self.temperature)(fused, mask)
    bounds = nn.Dense(2, name="boundaries")(graph["features"])
    bounds = jnp.where(mask[..., None], bounds, NEG)
    return {"saliency": graph["logits"], "start_logits": bounds[..., 0],
            "end_logits": bounds[..., 1], "features": graph["features"],
            "top_idx": graph["top_idx"], "top_valid": graph["top_valid"]}


# ---------------------------------------------------------------- losses


def expected_boundaries(start_logits: jnp.ndarray, end_logits: jnp.ndarray,
                        mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Softmax-expected (start, end) [B] in clip units, end half-open (E[t] + 1)."""
  t = jnp.arange(start_logits.shape[-1], dtype=jnp.float32)
  p_start = losses.masked_softmax(start_logits, mask)
  p_end = losses.masked_softmax(end_logits, mask)
  return p_start @ t, p_end @ t + 1.0


def l_reg(pred_start: jnp.ndarray, pred_end: jnp.ndarray, gt_start: jnp.ndarray,
          gt_end: jnp.ndarray) -> jnp.ndarray:
  """|pred_start - gt_start| + |pred_end - gt_end|, all [B] -> [B]."""
  return jnp.abs(pred_start - gt_start) + jnp.abs(pred_end - gt_end)


def segment_alignment(pred_segments: jnp.ndarray, gt: jnp.ndarray,
                      pred_feats: jnp.ndarray, gt_feat: jnp.ndarray,
                      theta_r: float, theta_d: float, theta_s: float) -> jnp.ndarray:
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
  cos = _cosine(pred_feats, gt_feat[:, None, :])[..., 0]
  return theta_r * inter / union + theta_d * dist + theta_s * cos


def l_ag(alignment: jnp.ndarray, valid: jnp.ndarray | None = None) -> jnp.ndarray:
  """-sum_k e over the [B, K] candidates (only the valid ones) -> [B]."""
  if valid is not None:
    alignment = jnp.where(valid, alignment, 0.0)
  return -jnp.sum(alignment, axis=-1)


def saliency_loss(saliency: jnp.ndarray, target: jnp.ndarray,
                  mask: jnp.ndarray) -> jnp.ndarray:
  """Sigmoid BCE of [B, T] logits on [B, T] targets in [0, 1], mean over valid clips -> [B]."""
  bce = optax.sigmoid_binary_cross_entropy(saliency, target)
  bce = jnp.where(mask, bce, 0.0)
  return jnp.sum(bce, -1) / jnp.maximum(jnp.sum(mask, -1), 1)


def candidate_segments(top_idx: jnp.ndarray, mask: jnp.ndarray,
                       length: int) -> jnp.ndarray:
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


def total_loss(out: dict[str, jnp.ndarray], mask: jnp.ndarray, gt: jnp.ndarray,
               saliency_target: jnp.ndarray, length: int,
               thetas: Sequence[float] = (1.0, -1.0, 1.0), w_ag: float = 1.0,
               w_sal: float = 1.0, w_reg: float = 1.0, reg_scale: str = "video"
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
  e = segment_alignment(cands.astype(jnp.float32), gt,
                        segment_features(feats, cands),
                        segment_features(feats, gt[:, None].astype(jnp.int32))[:, 0],
                        *thetas)
  ag = l_ag(e, out["top_valid"])
  sal = saliency_loss(out["saliency"], saliency_target, mask)
  return {"reg": reg, "ag": ag, "saliency": sal,
          "total": w_reg * reg + w_ag * ag + w_sal * sal}


# ------------------------------------------------- decoding and targets


def decode_segment(start_logits: np.ndarray, mask: np.ndarray,
                   length: int) -> tuple[int, int]:
  """[start, end) of `length` clips from the argmax start over valid clips [T].

  The video ends after its last valid clip; a start that would run past it
  is shifted back (to 0 at most), and the end is clipped to the video end.
  """
  mask = np.asarray(mask, bool)
  if not mask.any():
    raise ValueError("decode_segment: the mask has no valid clip")
  logits = np.where(mask, np.asarray(start_logits, np.float64), -np.inf)
  video_end = int(np.flatnonzero(mask)[-1]) + 1
  start = max(min(int(np.argmax(logits)), video_end - length), 0)
  return start, min(start + length, video_end)


def decode_segments(start_logits: jnp.ndarray, mask: jnp.ndarray,
                    length: int) -> jnp.ndarray:
  """Batched `decode_segment`: [B, T] -> [B, 2] int32 (jit-able)."""
  mask = mask.astype(bool)
  t = jnp.arange(mask.shape[-1])
  video_end = jnp.max(jnp.where(mask, t + 1, 0), axis=-1)
  best = jnp.argmax(jnp.where(mask, start_logits, -jnp.inf), axis=-1)
  start = jnp.maximum(jnp.minimum(best, video_end - length), 0)
  return jnp.stack([start, jnp.minimum(start + length, video_end)], -1).astype(jnp.int32)


def target_segment_tvsum(scores: np.ndarray, length: int) -> tuple[int, int]:
  """The window of `length` clips with the largest total score; ties earliest.

  scores: [T] mean annotator score per clip, or [A, T] (averaged over A).
  """
  scores = np.asarray(scores, np.float64)
  if scores.ndim == 2:
    scores = scores.mean(axis=0)
  num = scores.shape[0]
  if length >= num:
    return 0, num
  sums = np.convolve(scores, np.ones(length), mode="valid")  # [T - length + 1]
  start = int(np.argmax(sums))  # np.argmax takes the first maximum.
  return start, start + length


def target_segment_yth(labels: np.ndarray) -> tuple[int, int]:
  """The longest run of positive clips of [T] labels in {-1, 0, 1}; ties earliest.

  With no positive clip: [argmax, argmax + 1).
  """
  labels = np.asarray(labels)
  best, run_start = (0, 0), None
  for t, positive in enumerate(list(labels > 0) + [False]):
    if positive and run_start is None:
      run_start = t
    elif not positive and run_start is not None:
      if t - run_start > best[1] - best[0]:
        best = (run_start, t)
      run_start = None
  if best[1] == 0:
    start = int(np.argmax(labels))
    return start, start + 1
  return best


def targets(labels: np.ndarray, benchmark: str, length: int
            ) -> tuple[np.ndarray, tuple[int, int]]:
  """(saliency [T] float32 in [0, 1], segment) of one video's benchmark labels.

  tvsum: [T, 20] scores 1..5 give (mean - 1) / 4 and `target_segment_tvsum` of
  the mean; youtube_highlights: [T] match gives match > 0 and `target_segment_yth`.
  """
  if benchmark == "tvsum":
    mean = np.asarray(labels, np.float64).mean(axis=1)
    return ((mean - 1.0) / 4.0).astype(np.float32), target_segment_tvsum(mean, length)
  return (np.asarray(labels) > 0).astype(np.float32), target_segment_yth(labels)


def segment_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
  """IoU of half-open intervals [a0, a1), [b0, b1) (0 if the union is empty)."""
  inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
  union = (a[1] - a[0]) + (b[1] - b[0]) - inter
  return inter / union if union > 0 else 0.0


def iou_summary(pred: Sequence[tuple[int, int]],
                gt: Sequence[tuple[int, int]]) -> dict[str, float]:
  """mean_iou and the shares of videos with IoU >= 0.5 and >= 0.7."""
  if len(pred) != len(gt) or not pred:
    raise ValueError(f"iou_summary: {len(pred)} predictions for {len(gt)} "
                     "true segments (need the same, non-zero number)")
  ious = np.array([segment_iou(p, g) for p, g in zip(pred, gt)])
  return {"mean_iou": float(ious.mean()),
          "share_iou_0.5": float(np.mean(ious >= 0.5)),
          "share_iou_0.7": float(np.mean(ious >= 0.7))}
