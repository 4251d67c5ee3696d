"""The evaluation protocols: one `evaluate` per benchmark, as the reference code scores.

  result = protocols.evaluate("tvsum", videos, {v.video_id: scores, ...})
  chance = protocols.random_baseline("tvsum", videos, seeds=20)

Protocols (the AP itself is in hl_jax/eval/metrics.py, as the UMT / lighthouse code):
- corpus: a duration_corpus labelled split; per video, trapezoid AP over all
  segments with positives label > 0; HIT@1: the top segment is a positive.
- youtube_highlights: per video, trapezoid AP over all clips, positives
  match > 0; HIT@1: the top clip has match > 0. (The same numbers as "corpus"
  for 0/1 labels; a test holds them equal.)
- tvsum: per video, top-5 AP per annotator (positives above that annotator's
  median) averaged over the 20 annotators; HIT@1: the top shot has the
  video's highest mean annotator score.

Every metric key means one thing for every protocol:
- "mAP": the headline. Per-video AP averaged within each group (domain or
  category), then over groups. "per_group": those group means.
- "hit1": per-video HIT@1 averaged the same way (per group, then over groups);
  "per_group_hit1": the group means.
- "video_mAP", "video_hit1": plain means over videos; "per_video",
  "per_video_hit1": the per-video values.
All are fractions in [0, 1].
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from hl_jax.core import config_checks
from hl_jax.data import benchmarks
from hl_jax.eval import metrics

Video = benchmarks.Video


PROTOCOLS = ("corpus", "youtube_highlights", "tvsum")


DEFINITIONS = {
    "corpus": "trapezoid AP over all segments (positives: label > 0), mean over domains",
    "youtube_highlights": "trapezoid AP over all clips (positives: match > 0), "
    "mean over domains",
    "tvsum": "top-5 trapezoid AP per annotator (positives: score > lower median), "
    "mean over 20 annotators, then over categories",
}


# Per protocol: (per-video AP, per-video HIT@1), each (scores [T], labels) -> float.
_PER_VIDEO = {
    "corpus": (metrics.trapezoid_ap, metrics.hit_at_1),
    "youtube_highlights": (metrics.youtube_highlights_ap, metrics.youtube_highlights_hit1),
    "tvsum": (metrics.tvsum_top5_ap, metrics.tvsum_hit1),
}


def check_scores(videos: Sequence[Video], scores: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Validates one [T] score array per video; returns them as float64 arrays.

  Raises:
    ValueError: naming the video, for an unknown or missing video id, a wrong
      number of scores or a non-finite score.
  """
  expected = {v.video_id: v.num_clips for v in videos}
  unknown = sorted(set(scores) - set(expected))
  if unknown:
    raise ValueError(f"scores for {len(unknown)} video ids not in the split, e.g. {unknown[:5]}")
  missing = sorted(set(expected) - set(scores))
  if missing:
    raise ValueError(
        f"no scores for {len(missing)} of the split's {len(expected)} videos, "
        f"e.g. {missing[:5]}"
    )
  checked = {}
  for vid, num_clips in expected.items():
    array = np.asarray(scores[vid], np.float64)
    if array.shape != (num_clips,):
      raise ValueError(f"video {vid}: scores of shape {array.shape}, expected [{num_clips}]")
    if not np.isfinite(array).all():
      first = int(np.argmin(np.isfinite(array)))
      raise ValueError(f"video {vid}: non-finite score at clip {first}")
    checked[vid] = array
  return checked


def evaluate(
    protocol: str, videos: Sequence[Video], scores: Mapping[str, Any], *, split: str = ""
) -> dict[str, Any]:
  """The protocol's metrics of per-clip scores (keys: see the module docstring).

  Args:
    protocol: "corpus", "youtube_highlights" or "tvsum".
    videos: the split's videos.
    scores: {video_id: [T] scores}, higher = more of a highlight, one entry per
      video and no other.
    split: the split's name, recorded in the result.

  Returns:
    {"protocol", "definition", "split", "mAP", "per_group", "hit1",
    "per_group_hit1", "video_mAP", "video_hit1", "per_video",
    "per_video_hit1", "num_videos", "videos_per_group"}.
  """
  config_checks.check_choice("protocol", protocol, PROTOCOLS)
  if not videos:
    raise ValueError(f"no videos to evaluate for {protocol} {split}")
  scores = check_scores(videos, scores)
  ap_fn, hit_fn = _PER_VIDEO[protocol]
  per_video = {v.video_id: ap_fn(scores[v.video_id], v.labels) for v in videos}
  hits = {v.video_id: hit_fn(scores[v.video_id], v.labels) for v in videos}
  groups = {v.video_id: v.group for v in videos}
  per_group = metrics.mean_by_group(per_video, groups)
  per_group_hit1 = metrics.mean_by_group(hits, groups)
  return {
      "protocol": protocol,
      "definition": DEFINITIONS[protocol],
      "split": split,
      "mAP": float(np.mean(list(per_group.values()))),
      "per_group": per_group,
      "hit1": float(np.mean(list(per_group_hit1.values()))),
      "per_group_hit1": per_group_hit1,
      "video_mAP": float(np.mean(list(per_video.values()))),
      "video_hit1": float(np.mean(list(hits.values()))),
      "per_video": per_video,
      "per_video_hit1": hits,
      "num_videos": len(videos),
      "videos_per_group": {g: sum(1 for v in videos if v.group == g) for g in per_group},
  }


def random_scores(videos: Sequence[Video], seed: int) -> dict[str, np.ndarray]:
  """Uniform [0, 1) scores per clip, drawn video by video from `seed`."""
  rng = np.random.default_rng(seed)
  return {v.video_id: rng.random(v.num_clips) for v in videos}


def random_baseline(
    protocol: str, videos: Sequence[Video], seeds: int, *, split: str = ""
) -> dict[str, Any]:
  """`evaluate` of `random_scores`, averaged over seeds 0..seeds-1.

  Returns:
    The keys of `evaluate` (every metric averaged over seeds) plus "seeds" and
    "mAP_std" (standard deviation of the headline mAP over seeds).
  """
  if seeds < 1:
    raise ValueError(f"seeds must be >= 1, got {seeds}")
  runs = [
      evaluate(protocol, videos, random_scores(videos, seed), split=split) for seed in range(seeds)
  ]
  result = dict(runs[0])
  for key in ("mAP", "hit1", "video_mAP", "video_hit1"):
    result[key] = float(np.mean([r[key] for r in runs]))
  for key in ("per_group", "per_group_hit1", "per_video", "per_video_hit1"):
    result[key] = {k: float(np.mean([r[key][k] for r in runs])) for k in runs[0][key]}
  result["seeds"] = seeds
  result["mAP_std"] = float(np.std([r["mAP"] for r in runs]))
  return result
