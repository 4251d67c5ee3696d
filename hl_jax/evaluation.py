"""Scoring whole videos with f, and evaluation on a labelled corpus split.

Scoring is per segment, so all segments of all videos are flattened into one
[S, D] array and scored in fixed-size chunks by one compiled function: every
segment is scored exactly once (the last chunk is padded and the padding
dropped), at the step's speed rather than per video in Python.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hl_jax import metrics

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class LabelledVideo:
  """A video of a labelled corpus split."""
  video_id: str
  group: str             # domain
  features: np.ndarray   # [T, D]
  labels: np.ndarray     # [T] 0/1


def make_score_fn(scorer: Any, params_f: Any, *, chunk: int) -> ScoreFn:
  """A host function mapping [S, D] features to [S] float32 scores with f."""
  apply = jax.jit(lambda p, x: scorer.apply({"params": p}, x, train=False))

  def score(features: np.ndarray) -> np.ndarray:
    num = len(features)
    padded = -(-max(num, 1) // chunk) * chunk
    x = np.zeros((padded, features.shape[1]), np.float32)
    x[:num] = features
    outs = [apply(params_f, x[i:i + chunk]) for i in range(0, padded, chunk)]
    return np.asarray(jnp.concatenate(outs))[:num]

  return score


def score_videos(score_fn: ScoreFn,
                 features: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Per-video [T_i] scores for a list of [T_i, D] feature arrays."""
  if not features:
    return []
  flat = score_fn(np.concatenate(features).astype(np.float32))
  return np.split(flat, np.cumsum([len(f) for f in features])[:-1])


def load_labelled_split(data_source: Any) -> list[LabelledVideo]:
  """All videos of a labelled duration_corpus split, in source order."""
  videos = []
  for i in range(len(data_source)):
    ex = data_source[i]
    vid = ex["video_id"]
    videos.append(LabelledVideo(
        video_id=vid.decode() if isinstance(vid, bytes) else str(vid),
        group=ex["domain"].decode() if isinstance(ex["domain"], bytes)
        else str(ex["domain"]),
        features=np.asarray(ex["features"], np.float32),
        labels=np.asarray(ex["labels"])))
  return videos


def evaluate_labelled(videos: Sequence[LabelledVideo],
                      scores: Sequence[np.ndarray]) -> dict[str, Any]:
  """Trapezoid mAP per video, per domain and overall (mean of domains).

  Returns:
    {"mAP", "per_group": {domain: mAP}, "per_video": {id: AP}, "hit1"}.
  """
  per_video = {v.video_id: metrics.trapezoid_ap(s, v.labels)
               for v, s in zip(videos, scores)}
  groups = {v.video_id: v.group for v in videos}
  per_group = metrics.mean_by_group(per_video, groups)
  hit1 = np.mean([metrics.hit_at_1(s, v.labels) for v, s in zip(videos, scores)])
  return {"mAP": float(np.mean(list(per_group.values()))),
          "per_group": per_group, "per_video": per_video, "hit1": float(hit1)}


def random_baseline(videos: Sequence[LabelledVideo],
                    seeds: int) -> dict[str, Any]:
  """`evaluate_labelled` of uniform random scores, averaged over seeds."""
  runs = []
  for seed in range(seeds):
    rng = np.random.default_rng(seed)
    runs.append(evaluate_labelled(
        videos, [rng.random(len(v.labels)) for v in videos]))
  return {"mAP": float(np.mean([r["mAP"] for r in runs])),
          "mAP_std": float(np.std([r["mAP"] for r in runs])),
          "per_group": {g: float(np.mean([r["per_group"][g] for r in runs]))
                        for g in runs[0]["per_group"]},
          "hit1": float(np.mean([r["hit1"] for r in runs])), "seeds": seeds}


def markdown_table(title: str, model: dict[str, Any],
                   random: dict[str, Any]) -> str:
  """A per-group table of model vs random mAP, in percent."""
  lines = [f"### {title}", "", "| group | model mAP | random mAP |",
           "|---|---:|---:|"]
  for group, value in model["per_group"].items():
    lines.append(f"| {group} | {100 * value:.2f} | "
                 f"{100 * random['per_group'].get(group, float('nan')):.2f} |")
  lines.append(f"| **average** | **{100 * model['mAP']:.2f}** | "
               f"**{100 * random['mAP']:.2f}** |")
  return "\n".join(lines) + "\n"
