"""Label-free evaluation on held-out training videos, for model selection.

  result = heldout.evaluate(videos, scores, margin=1.0)   # videos: Corpus.heldout
  spread = heldout.between_within([scores_of_video_1, scores_of_video_2, ...])

The videos are training-split videos that training never saw
(`corpus.holdout_fraction`, `datasets.TrainingPart`); only their duration
buckets are read, never a label. With f's score of every one of their
segments, per domain:
- "pair_accuracy": the share of all (short-video segment, long-video segment)
  pairs with f(short) > f(long), ties counted 1/2: the Mann-Whitney AUC of
  short against long, exact (sorting and counting, no sampling).
- "hinge": the mean over all those pairs of max(0, margin - f(short) +
  f(long)), margin = train.margin; exact in O(N log N) with sorted scores and
  cumulative sums.
- "between_share": between_var / (between_var + within_var), where
  between_var is the variance of the per-video mean scores weighted by their
  segment counts and within_var the mean squared deviation of a segment from
  its video's mean (their sum is the variance of all segment scores). How
  much of f is a per-video offset, which pairs of different videos reward.
Headline values are means over the domains that have both short and long
held-out segments (between_share: over all domains); "pooled" holds the same
numbers over all held-out segments at once.

No random baseline is computed: random scores have pair_accuracy 0.5 by
construction, and the tables say so instead of showing a column.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from hl_jax.data import corpora

SHORT, LONG = 0, 1  # The duration_corpus ClassLabel order.


DEFINITION = (
    "pairs of a short- and a long-video segment of held-out training videos: "
    "share with f(short) > f(long), ties 1/2 (AUC), mean over domains"
)


def pair_accuracy(short: np.ndarray, long: np.ndarray) -> float:
  """P(f(short) > f(long)) + P(tie) / 2 over all pairs: [N_s], [N_l] -> AUC."""
  short, long = _sorted_pair(short, long)
  below = np.searchsorted(long, short, side="left")
  at_or_below = np.searchsorted(long, short, side="right")
  return float((below.sum() + 0.5 * (at_or_below - below).sum()) / (len(short) * len(long)))


def mean_hinge(short: np.ndarray, long: np.ndarray, margin: float) -> float:
  """Mean of max(0, margin - f_s + f_l) over all pairs: [N_s], [N_l] -> float."""
  short, long = _sorted_pair(short, long)
  threshold = short - margin  # A pair costs f_l - threshold where f_l > threshold.
  first = np.searchsorted(long, threshold, side="right")
  suffix = np.concatenate([np.cumsum(long[::-1])[::-1], [0.0]])
  total = suffix[first].sum() - ((len(long) - first) * threshold).sum()
  return float(total / (len(short) * len(long)))


def _sorted_pair(short: np.ndarray, long: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  short = np.asarray(short, np.float64).ravel()
  long = np.sort(np.asarray(long, np.float64).ravel())
  if not len(short) or not len(long):
    raise ValueError(
        f"pair metrics need short and long scores, got {len(short)} " f"and {len(long)}"
    )
  return short, long


def between_within(scores_per_video: Sequence[np.ndarray]) -> dict[str, float]:
  """How much of the score variance is between videos (a per-video offset).

  Args:
    scores_per_video: one [T_i] score array per video (T_i >= 1).

  Returns:
    {"between_var", "within_var", "total_var" (= their sum, the population
    variance of all segment scores), "between_share" (between / total; 0.0
    when total is 0), "num_videos", "num_segments"}.
  """
  arrays = [np.asarray(s, np.float64).ravel() for s in scores_per_video]
  if not arrays or any(not len(a) for a in arrays):
    raise ValueError("between_within needs at least one video, each with a score")
  counts = np.array([len(a) for a in arrays], np.float64)
  means = np.array([a.mean() for a in arrays])
  grand = np.dot(counts, means) / counts.sum()
  between = float(np.dot(counts, (means - grand) ** 2) / counts.sum())
  within = float(sum(((a - m) ** 2).sum() for a, m in zip(arrays, means)) / counts.sum())
  total = between + within
  return {
      "between_var": between,
      "within_var": within,
      "total_var": total,
      "between_share": between / total if total > 0 else 0.0,
      "num_videos": len(arrays),
      "num_segments": int(counts.sum()),
  }


def _metrics(
    videos: Sequence[corpora.HeldoutVideo], scores: Sequence[np.ndarray], margin: float
) -> dict[str, Any]:
  """The metrics of one set of videos; pair metrics only if it has both buckets."""
  out: dict[str, Any] = between_within(scores)
  short = [s for v, s in zip(videos, scores) if v.bucket == SHORT]
  long = [s for v, s in zip(videos, scores) if v.bucket == LONG]
  out.update(num_short_videos=len(short), num_long_videos=len(long))
  if short and long:
    short, long = np.concatenate(short), np.concatenate(long)
    out.update(
        pair_accuracy=pair_accuracy(short, long),
        hinge=mean_hinge(short, long, margin),
        num_pairs=len(short) * len(long),
    )
  return out


def evaluate(
    videos: Sequence[corpora.HeldoutVideo], scores: Sequence[np.ndarray], *, margin: float
) -> dict[str, Any]:
  """The held-out metrics of f's scores (see the module docstring).

  Args:
    videos: the held-out videos.
    scores: one [T_i] score array per video, in the same order.
    margin: the hinge's margin (train.margin).

  Returns:
    {"definition", "margin", "pair_accuracy", "hinge", "between_share",
    "between_var", "within_var" (means over domains), "per_group" ({domain:
    that domain's metrics}), "pooled" (all videos at once), "num_videos",
    "num_segments"}. A domain's and the pooled metrics are `between_within`'s
    plus "num_short_videos", "num_long_videos" and, when it has both, its
    "pair_accuracy", "hinge" and "num_pairs".

  Raises:
    ValueError: a score array of the wrong length or non-finite, or no domain
      with both short and long videos.
  """
  if len(scores) != len(videos):
    raise ValueError(f"{len(scores)} score arrays for {len(videos)} held-out videos")
  for video, array in zip(videos, scores):
    if np.shape(array) != (len(video.features),) or not np.isfinite(array).all():
      raise ValueError(
          f"held-out video {video.video_id}: scores of shape "
          f"{np.shape(array)} (expected [{len(video.features)}]) or non-finite"
      )
  per_group = {}
  for domain in sorted({v.domain for v in videos}):
    members = [i for i, v in enumerate(videos) if v.domain == domain]
    per_group[domain] = _metrics([videos[i] for i in members], [scores[i] for i in members], margin)
  paired = [m for m in per_group.values() if "pair_accuracy" in m]
  if not paired:
    raise ValueError(
        f"no domain of the {len(videos)} held-out videos has both short " "and long videos"
    )
  result: dict[str, Any] = {"definition": DEFINITION, "margin": float(margin)}
  for key in ("pair_accuracy", "hinge"):
    result[key] = float(np.mean([m[key] for m in paired]))
  for key in ("between_share", "between_var", "within_var"):
    result[key] = float(np.mean([m[key] for m in per_group.values()]))
  pooled = _metrics(videos, scores, margin)
  result.update(
      per_group=per_group,
      pooled=pooled,
      num_videos=len(videos),
      num_segments=pooled["num_segments"],
  )
  return result


@dataclasses.dataclass
class HeldoutEvaluator:
  """The trainer's "heldout" evaluator: `evaluate` of f on held-out videos.

  Attributes:
    videos: the held-out videos (`Corpus.heldout`).
    margin: the hinge's margin (train.margin).
    title: a heading for tables.
    name: the key of its results.
    split: the split the videos come from.
  """

  videos: list[corpora.HeldoutVideo]
  margin: float
  title: str
  name: str = "heldout"
  split: str = "train"

  def run(self, score_fn: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """{"split", "title", "heldout": `evaluate`'s result}, scored in one pass."""
    features = [v.features for v in self.videos]
    flat = np.asarray(score_fn(np.concatenate(features).astype(np.float32)))
    scores = np.split(flat, np.cumsum([len(f) for f in features])[:-1])
    return {
        "split": self.split,
        "title": self.title,
        "heldout": evaluate(self.videos, scores, margin=self.margin),
    }


SELECTED_BY = "heldout pair_accuracy"


def select(history: Sequence[dict[str, Any]], name: str = "heldout") -> dict[str, Any] | None:
  """The evaluation with the highest held-out pair accuracy, earliest on ties.

  Only the held-out numbers are read; the entry is returned whole.

  Args:
    history: the run's evaluations ({"step", <evaluator name>: results}).
    name: the held-out evaluator's name.

  Returns:
    {"selected_by": SELECTED_BY, **that evaluation}, or None when no
    evaluation has held-out results.
  """
  scored = sorted((r for r in history if "heldout" in r.get(name, {})), key=lambda r: r["step"])
  if not scored:
    return None
  best = max(scored, key=lambda r: r[name]["heldout"]["pair_accuracy"])
  return {"selected_by": SELECTED_BY, **best}
