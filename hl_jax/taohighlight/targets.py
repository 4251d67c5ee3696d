"""TaoHighlight's targets, segment decoding and IoU.

`targets` derives a video's training targets from a benchmark's labels
(per-clip saliency in [0, 1] and the true segment); `decode_segments` turns
start logits into a fixed-length segment; `iou_summary` compares decoded and
true segments.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np


def decode_segment(start_logits: np.ndarray, mask: np.ndarray, length: int) -> tuple[int, int]:
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


def decode_segments(start_logits: jnp.ndarray, mask: jnp.ndarray, length: int) -> jnp.ndarray:
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


def targets(labels: np.ndarray, benchmark: str, length: int) -> tuple[np.ndarray, tuple[int, int]]:
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


def iou_summary(pred: Sequence[tuple[int, int]], gt: Sequence[tuple[int, int]]) -> dict[str, float]:
  """mean_iou and the shares of videos with IoU >= 0.5 and >= 0.7."""
  if len(pred) != len(gt) or not pred:
    raise ValueError(
        f"iou_summary: {len(pred)} predictions for {len(gt)} "
        "true segments (need the same, non-zero number)"
    )
  ious = np.array([segment_iou(p, g) for p, g in zip(pred, gt)])
  return {
      "mean_iou": float(ious.mean()),
      "share_iou_0.5": float(np.mean(ious >= 0.5)),
      "share_iou_0.7": float(np.mean(ious >= 0.7)),
  }
