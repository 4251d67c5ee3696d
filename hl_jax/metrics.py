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


def trapezoid_ap(scores: np.ndarray, labels: np.ndarray,
                 top_k: int | None = None) -> float:
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
    raise ValueError(
        f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes")
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


def mean_by_group(values: dict[str, float],
                  groups: dict[str, str]) -> dict[str, float]:
  """Means of per-video `values` grouped by `groups[video_id]`, sorted by group."""
  buckets: dict[str, list[float]] = {}
  for vid, value in values.items():
    buckets.setdefault(groups[vid], []).append(value)
  return {g: float(np.mean(v)) for g, v in sorted(buckets.items())}
