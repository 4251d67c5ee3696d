"""Recurrence: how typical a segment is of the other videos of its kind, without labels.

  scores = recurrence.recurrence_scores([v.features for v in val], [v.group for v in val])
  scores = recurrence.recurrence_scores(
      [v.features for v in val], [v.group for v in val],
      reference_features=[v.features for v in train],
      reference_groups=[v.group for v in train])

The idea (the label-free anchor of Islam, Paul and
Rochan, WACV'25): videos of one kind (a YouTube Highlights domain, a TVSum
category) share their highlights, a dog catching a frisbee, a surfer riding
a wave, while their other segments (talking, setting up, the crowd) differ
from video to video. So a segment that looks like segments of many *other*
videos of its group is more likely a highlight. No label is read anywhere.

Scores, per query segment x (one of `METHODS`), with cos the cosine similarity
of the normalised features (`NORMALIZATIONS`):
- "knn": mean cos(x, y) over the k most similar reference segments y of the
  group (a kNN density); fewer than k reference segments: mean over all.
- "centroid": mean cos(x, y) over all reference segments y of the group,
  which is x_unit . mean(y_unit) (typicality w.r.t. the group's average).
- "video_max": mean over the group's other reference videos of the best
  match max_y cos(x, y) in that video (in how many videos x has a twin).

Which segments a score sees (the reference set):
- transductive (`reference_features=None`): the query videos themselves, the
  segments of the other query videos of the same group; with
  `exclude_same_video=False` also the segment's own video (itself included,
  so mostly for tests and ablation: neighbouring segments of one video are
  near duplicates and would dominate the kNN).
- inductive (`reference_features` given): those videos' segments of the same
  group, e.g. the train split's; the query videos are never part of it (the
  caller keeps the two sets disjoint; `exclude_same_video` has no effect).
A group with no reference segment for some query video is an error. With a
single group name for all videos, every video is compared with all others.

Normalisation: "l2" divides each segment by its L2 norm (plain cosine);
"centered_l2" first subtracts the mean of all reference segments, pooled
over groups (a corpus mean, label-free). I3D features are non-negative
(post-ReLU averages), so uncentred cosines all sit in a narrow high band set
by the shared mean direction; centring makes them measure what differs.
All-zero rows get a zero unit vector (cosine 0 to everything).

The defaults (knn, k=20, "l2") are the variant whose clip order within the
YouTube Highlights *train* videos agrees best with their labels, mean over
the three feature sets (59-61% of decisive within-video pairs against 55%
for the feature norm; centring drops it to 52-57%); no val label chose
them. experiments/recurrence_baseline.py has every variant on both
benchmarks.

The scores are for ranking segments within a video: the benchmark metrics
(YouTube Highlights AP, TVSum top-5 AP) are computed per video, so any
per-video monotone rescaling (z-scoring, min-max) leaves them unchanged and
none is applied. Across videos (e.g. as a training signal between videos)
the raw scale does matter and the caller must decide.

Cost: a [chunk, M_g] similarity block per chunk of queries, M_g the group's
reference segments, computed in float32 with numpy (never the full [N, M]).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

METHODS = ("knn", "centroid", "video_max")


NORMALIZATIONS = ("l2", "centered_l2")


def _flatten(
    features: Sequence[np.ndarray], groups: Sequence[str], what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """[N, D] float32 rows, [N] video index, [N] group name of a list of videos."""
  if len(features) != len(groups):
    raise ValueError(f"{what}: {len(features)} feature arrays but {len(groups)} groups")
  if not features:
    raise ValueError(f"{what}: no videos")
  dims = {np.shape(f)[1] if np.ndim(f) == 2 else None for f in features}
  if len(dims) != 1 or None in dims:
    raise ValueError(
        f"{what}: every video needs [T, D] features with one D, got "
        f"shapes {sorted({np.shape(f) for f in features})[:5]}"
    )
  lengths = [len(f) for f in features]
  rows = np.concatenate([np.asarray(f, np.float32) for f in features])
  video = np.repeat(np.arange(len(features)), lengths)
  group = np.repeat(np.asarray([str(g) for g in groups], dtype=object), lengths)
  return rows, video, group


def _unit(rows: np.ndarray, center: np.ndarray | None) -> np.ndarray:
  """Rows minus `center` (if any), divided by their L2 norm (zero rows stay 0)."""
  rows = rows - center if center is not None else rows
  norms = np.linalg.norm(rows, axis=1, keepdims=True)
  return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def _knn(sims: np.ndarray, k: int) -> np.ndarray:
  """[C] mean of each row's k largest finite entries (all finite ones if fewer)."""
  valid = np.isfinite(sims).sum(axis=1)
  kk = min(k, sims.shape[1])
  top = np.partition(sims, sims.shape[1] - kk, axis=1)[:, -kk:]
  top = np.where(np.isfinite(top), top, 0.0)
  return top.sum(axis=1) / np.minimum(kk, valid)


def _video_max(sims: np.ndarray, ref_video: np.ndarray) -> np.ndarray:
  """[C] mean over reference videos of the best finite match in each."""
  starts = np.flatnonzero(np.r_[True, ref_video[1:] != ref_video[:-1]])
  best = np.maximum.reduceat(sims, starts, axis=1)  # [C, videos]
  best = np.where(np.isfinite(best), best, np.nan)
  return np.nanmean(best, axis=1)


def recurrence_scores(
    videos_features: Sequence[np.ndarray],
    groups: Sequence[str],
    *,
    reference_features: Sequence[np.ndarray] | None = None,
    reference_groups: Sequence[str] | None = None,
    method: str = "knn",
    k: int = 20,
    normalize: str = "l2",
    exclude_same_video: bool = True,
    chunk_size: int = 1024,
) -> list[np.ndarray]:
  """Per-segment recurrence of each video's segments in other videos of its group.

  Args:
    videos_features: per query video, [T_i, D] features.
    groups: per query video, its group (domain, category); one name for all
      videos compares every video with every other.
    reference_features: per reference video, [T_j, D] features (inductive);
      None: the query videos are their own reference set (transductive).
    reference_groups: per reference video, its group; required with
      `reference_features`.
    method: one of METHODS (see the module docstring).
    k: neighbours of "knn" (>= 1).
    normalize: one of NORMALIZATIONS; "centered_l2" subtracts the mean of all
      reference segments (pooled over groups) before the L2 normalisation.
    exclude_same_video: transductive only: leave each segment's own video out
      of its reference set.
    chunk_size: query segments per similarity block (memory, not results).

  Returns:
    Per query video, [T_i] float32 scores, higher = more recurrent.

  Raises:
    ValueError: mismatched lengths, inconsistent feature shapes, an unknown
      method or normalisation, k or chunk_size < 1, or a query video whose
      group has no reference segment (naming the group).
  """
  if method not in METHODS or normalize not in NORMALIZATIONS:
    raise ValueError(
        f"method {method!r} / normalize {normalize!r}: expected one of "
        f"{list(METHODS)} / {list(NORMALIZATIONS)}"
    )
  if k < 1 or chunk_size < 1:
    raise ValueError(f"k={k} and chunk_size={chunk_size} must be >= 1")
  queries, q_video, q_group = _flatten(videos_features, groups, "queries")
  transductive = reference_features is None
  if transductive:
    if reference_groups is not None:
      raise ValueError("reference_groups given without reference_features")
    refs, r_video, r_group = queries, q_video, q_group
  else:
    if reference_groups is None:
      raise ValueError("reference_features given without reference_groups")
    refs, r_video, r_group = _flatten(reference_features, reference_groups, "reference")
    if refs.shape[1] != queries.shape[1]:
      raise ValueError(f"queries are {queries.shape[1]}-d, reference {refs.shape[1]}-d")
  center = (
      refs.astype(np.float64).mean(axis=0).astype(np.float32)
      if normalize == "centered_l2"
      else None
  )
  q_unit = _unit(queries, center)
  r_unit = q_unit if transductive else _unit(refs, center)
  exclude = transductive and exclude_same_video
  out = np.empty(len(queries), np.float32)
  for group in sorted(set(q_group)):
    q_rows, r_rows = np.flatnonzero(q_group == group), np.flatnonzero(r_group == group)
    _check_reference(group, q_video[q_rows], r_video[r_rows], exclude)
    out[q_rows] = _group_scores(
        q_unit[q_rows],
        q_video[q_rows],
        r_unit[r_rows],
        r_video[r_rows],
        method=method,
        k=k,
        exclude=exclude,
        chunk_size=chunk_size,
    )
  return np.split(out, np.cumsum([len(f) for f in videos_features])[:-1])


def _check_reference(group: str, q_video: np.ndarray, r_video: np.ndarray, exclude: bool) -> None:
  """Raises unless every query video of `group` has a reference segment."""
  if exclude:  # A segment of another video.
    lonely = [v for v in np.unique(q_video) if not np.any(r_video != v)]
  else:
    lonely = [] if len(r_video) else list(np.unique(q_video))
  if lonely:
    raise ValueError(
        f"group {group!r}: no reference segments for {len(lonely)} "
        f"query video(s) (reference set: "
        f"{'the other query videos' if exclude else 'the given videos'} "
        "of the group)"
    )


def _group_scores(
    q_unit: np.ndarray,
    q_video: np.ndarray,
    ref: np.ndarray,
    r_video: np.ndarray,
    *,
    method: str,
    k: int,
    exclude: bool,
    chunk_size: int,
) -> np.ndarray:
  """[N_g] scores of one group's query rows against its reference rows [M_g, D]."""
  if method == "centroid":
    return _centroid(q_unit, q_video, ref, r_video, exclude)
  out = np.empty(len(q_unit), np.float32)
  for start in range(0, len(q_unit), chunk_size):
    rows = slice(start, start + chunk_size)
    sims = q_unit[rows] @ ref.T  # [C, M_g]
    if exclude:
      sims[q_video[rows][:, None] == r_video[None, :]] = -np.inf
    out[rows] = _knn(sims, k) if method == "knn" else _video_max(sims, r_video)
  return out


def _centroid(
    q_unit: np.ndarray, q_video: np.ndarray, ref: np.ndarray, ref_video: np.ndarray, exclude: bool
) -> np.ndarray:
  """[N_g] mean cosine of each query row to the group's reference rows."""
  total, count = ref.astype(np.float64).sum(axis=0), len(ref)
  out = np.empty(len(q_unit), np.float64)
  for video in np.unique(q_video):
    rows = q_video == video
    mean = total / count
    if exclude:
      own = ref_video == video
      mean = (total - ref[own].astype(np.float64).sum(axis=0)) / (count - own.sum())
    out[rows] = q_unit[rows].astype(np.float64) @ mean
  return out.astype(np.float32)
