"""Highlight-detection metrics, computed as the reference evaluation code does.

The AP used throughout the highlight-detection literature (UMT, lighthouse) is a
trapezoid rule over the ranked list, not sklearn's step-wise AP:

  hits = ap = rec = 0, prc = 1
  for rank j = 1..K with label g_j:
    hits += g_j; r = hits / num_pos; p = hits / j
    ap += (r - rec) * (prc + p) / 2; rec, prc = r, p

`num_pos` counts the positives among the walked ranks (all ranks unless `top_k`
is given), and a list with no positives has AP 0.

Ties in predicted scores are broken by clip index (a stable sort on the
negated score): of two clips with equal scores, the earlier one ranks first.
"""

from __future__ import annotations

import numpy as np


def rank_by_score(scores: np.ndarray) -> np.ndarray:
  """Clip indices from best to worst; ties keep clip order.

  Args:
    scores: [T] predicted scores.

  Returns:
    [T] int indices, descending score, stable on ties.
  """
  scores = np.asarray(scores, dtype=np.float64)
  return np.argsort(-scores, kind="stable")


def trapezoid_ap(scores: np.ndarray, labels: np.ndarray, top_k: int | None = None) -> float:
  """Average precision of one ranked list with the trapezoid rule.

  Args:
    scores: [T] predicted scores (higher is more of a highlight).
    labels: [T] binary ground truth (anything > 0 is a positive).
    top_k: walk only the first `top_k` ranks; positives are counted within them.

  Returns:
    AP in [0, 1]; 0.0 when the walked ranks hold no positive.
  """
  scores = np.asarray(scores)
  labels = np.asarray(labels)
  if scores.shape != labels.shape or scores.ndim != 1:
    raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes")
  ranked = (labels[rank_by_score(scores)] > 0).astype(np.float64)
  if top_k is not None:
    ranked = ranked[:top_k]
  num_pos = ranked.sum()
  if num_pos == 0:
    return 0.0
  hits = np.cumsum(ranked)
  recall = np.concatenate([[0.0], hits / num_pos])
  precision = np.concatenate([[1.0], hits / np.arange(1, len(ranked) + 1)])
  return float(np.sum(np.diff(recall) * (precision[:-1] + precision[1:]) / 2))


def hit_at_1(scores: np.ndarray, labels: np.ndarray) -> float:
  """1.0 if the top-ranked clip is a positive, else 0.0 (ties by clip index)."""
  labels = np.asarray(labels)
  return float(labels[rank_by_score(scores)[0]] > 0)


def mean_by_group(values: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
  """Means of per-video `values` grouped by `groups[video_id]`, sorted by group."""
  buckets: dict[str, list[float]] = {}
  for vid, value in values.items():
    buckets.setdefault(groups[vid], []).append(value)
  return {g: float(np.mean(v)) for g, v in sorted(buckets.items())}


def lower_median(values: np.ndarray, axis: int = 0) -> np.ndarray:
  """Median as `torch.median` takes it: the lower middle value of an even count.

  Under a strict `>` threshold this labels exactly as `np.median` (the mean of
  the two middle values) does, since no value lies strictly between the two
  middle ones; the upper middle value would label differently.

  Args:
    values: array with the reduced axis of length n >= 1.
    axis: the axis to reduce.

  Returns:
    `values` without `axis`: the ((n - 1) // 2)-th smallest value along it.
  """
  values = np.sort(np.asarray(values), axis=axis)
  return np.take(values, (values.shape[axis] - 1) // 2, axis=axis)


def youtube_highlights_ap(scores: np.ndarray, match: np.ndarray) -> float:
  """AP of one YouTube Highlights video over all its clips, as UMT and lighthouse.

  Args:
    scores: [T] predicted scores.
    match: [T] labels in {-1, 0, 1}; positives are match > 0.

  Returns:
    Trapezoid AP in [0, 1]; 0.0 for a video without positives.
  """
  return trapezoid_ap(scores, np.asarray(match) > 0)


def youtube_highlights_hit1(scores: np.ndarray, match: np.ndarray) -> float:
  """1.0 if the top-scored clip (ties by clip index) has match > 0, else 0.0."""
  return hit_at_1(scores, np.asarray(match) > 0)


def tvsum_annotator_labels(annotator_scores: np.ndarray) -> np.ndarray:
  """Per-annotator binary labels: a shot is positive above that annotator's median.

  Args:
    annotator_scores: [T, A] scores (1..5) of A annotators.

  Returns:
    [T, A] bool, scores strictly greater than the column's `lower_median`.
  """
  annotator_scores = np.asarray(annotator_scores, np.float64)
  if annotator_scores.ndim != 2 or not len(annotator_scores):
    raise ValueError(f"annotator scores must be [T, A], got {annotator_scores.shape}")
  return annotator_scores > lower_median(annotator_scores, axis=0)[None, :]


def tvsum_top5_ap(scores: np.ndarray, annotator_scores: np.ndarray, top_k: int = 5) -> float:
  """Top-5 AP of one TVSum video, averaged over annotators, as UMT and lighthouse.

  Per annotator, positives are shots above that annotator's median (the lower
  middle value of an even count, as torch.median); only the top `top_k` ranks
  are walked and num_pos counts the positives among them, so one hit at rank 1
  alone gives AP 1.

  Args:
    scores: [T] predicted scores.
    annotator_scores: [T, A] annotator scores (A = 20 in TVSum).
    top_k: ranks walked per annotator.

  Returns:
    Mean over the A annotators of the top-k trapezoid AP, in [0, 1].
  """
  labels = tvsum_annotator_labels(annotator_scores)
  scores = np.asarray(scores)
  if scores.shape != labels.shape[:1]:
    raise ValueError(f"scores {scores.shape} must be [T] for annotator scores {labels.shape}")
  return float(np.mean([trapezoid_ap(scores, column, top_k) for column in labels.T]))


def tvsum_hit1(scores: np.ndarray, annotator_scores: np.ndarray) -> float:
  """1.0 if the top-scored shot has the video's highest mean annotator score.

  The reference code defines HIT@1 only for QVHighlights (top clip positive for
  any of 3 annotators); over TVSum's 20 annotators with median thresholds that
  rule would count 97% of all shots as hits, so here the top shot must instead
  be a shot of maximal mean score (several shots may tie for it; random scores
  hit ~1%). Ties in `scores` are broken by shot index.

  Args:
    scores: [T] predicted scores.
    annotator_scores: [T, A] annotator scores.

  Returns:
    1.0 or 0.0.
  """
  mean = np.asarray(annotator_scores, np.float64).mean(axis=1)
  if np.shape(scores) != mean.shape:
    raise ValueError(
        f"scores {np.shape(scores)} must be [T] for annotator scores "
        f"{np.shape(annotator_scores)}"
    )
  return float(mean[rank_by_score(scores)[0]] == mean.max())
