"""Evaluation: one labelled-video type, one `evaluate` per protocol, one baseline.

  result = evaluation.evaluate("tvsum", videos, {v.video_id: scores, ...})
  chance = evaluation.random_baseline("tvsum", videos, seeds=20)

Protocols (the AP itself is in hl_jax/metrics.py, as the UMT / lighthouse code):
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

The trainer evaluates through `Evaluator`s, one per labelled split
(`make_evaluators`), each scoring its videos with f in one batched pass:
`results[e.name] = e.run(score_fn)`. With `corpus.holdout_fraction` > 0 the
last one is `heldout.HeldoutEvaluator` ("heldout": label-free metrics of
held-out training videos, no random baseline; see hl_jax/heldout.py).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax import datasets
from hl_jax import heldout
from hl_jax import metrics

Video = datasets.Video
ScoreFn = Callable[[np.ndarray], np.ndarray]
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
    raise ValueError(f"no scores for {len(missing)} of the split's {len(expected)} videos, "
                     f"e.g. {missing[:5]}")
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


def evaluate(protocol: str, videos: Sequence[Video], scores: Mapping[str, Any], *,
             split: str = "") -> dict[str, Any]:
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
  datasets.check_choice("protocol", protocol, PROTOCOLS)
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


def random_baseline(protocol: str, videos: Sequence[Video], seeds: int, *,
                    split: str = "") -> dict[str, Any]:
  """`evaluate` of `random_scores`, averaged over seeds 0..seeds-1.

  Returns:
    The keys of `evaluate` (every metric averaged over seeds) plus "seeds" and
    "mAP_std" (standard deviation of the headline mAP over seeds).
  """
  if seeds < 1:
    raise ValueError(f"seeds must be >= 1, got {seeds}")
  runs = [evaluate(protocol, videos, random_scores(videos, seed), split=split)
          for seed in range(seeds)]
  result = dict(runs[0])
  for key in ("mAP", "hit1", "video_mAP", "video_hit1"):
    result[key] = float(np.mean([r[key] for r in runs]))
  for key in ("per_group", "per_group_hit1", "per_video", "per_video_hit1"):
    result[key] = {k: float(np.mean([r[key][k] for r in runs])) for k in runs[0][key]}
  result["seeds"] = seeds
  result["mAP_std"] = float(np.std([r["mAP"] for r in runs]))
  return result


# ----------------------------------------------------------------------------
# Scoring with f.


def make_score_fn(scorer: Any, params_f: Any, *, chunk: int) -> ScoreFn:
  """A host function mapping [S, D] features to [S] float32 scores with f.

  Scoring is per segment, so every segment is scored exactly once in
  fixed-size chunks by one compiled function (the last chunk is padded and
  the padding dropped).
  """
  apply = jax.jit(lambda p, x: scorer.apply({"params": p}, x, train=False))

  def score(features: np.ndarray) -> np.ndarray:
    num = len(features)
    padded = -(-max(num, 1) // chunk) * chunk
    x = np.zeros((padded, features.shape[1]), np.float32)
    x[:num] = features
    outs = [apply(params_f, x[i:i + chunk]) for i in range(0, padded, chunk)]
    return np.asarray(jnp.concatenate(outs))[:num]

  return score


def score_videos(score_fn: ScoreFn, features: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Per-video [T_i] scores for a list of [T_i, D] feature arrays, in one pass."""
  if not features:
    return []
  flat = score_fn(np.concatenate(features).astype(np.float32))
  return np.split(flat, np.cumsum([len(f) for f in features])[:-1])


# ----------------------------------------------------------------------------
# What the trainer runs.


@dataclasses.dataclass
class Evaluator:
  """One labelled split, evaluated with a protocol; random scores beside it.

  Attributes:
    name: the key of its results ("corpus" or the benchmark's name).
    protocol: one of PROTOCOLS.
    split: the split's name.
    title: a heading for tables.
    videos: the split's videos.
    random_seeds: seeds of the random baseline (computed once, then reused).
  """
  name: str
  protocol: str
  split: str
  title: str
  videos: list[Video]
  random_seeds: int
  _random: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

  def run(self, score_fn: ScoreFn) -> dict[str, Any]:
    """{"split", "title", "model": `evaluate` of f, "random": `random_baseline`}."""
    scores = score_videos(score_fn, [v.features for v in self.videos])
    model = evaluate(self.protocol, self.videos,
                     {v.video_id: s for v, s in zip(self.videos, scores)}, split=self.split)
    if self._random is None:
      self._random = random_baseline(self.protocol, self.videos, self.random_seeds,
                                     split=self.split)
    return {"split": self.split, "title": self.title, "model": model,
            "random": self._random}


def make_evaluators(config: ml_collections.ConfigDict,
                    corpus: datasets.Corpus) -> list[Any]:
  """The evaluators the trainer runs, in this order.

  The corpus's labelled split (if any), each of `config.eval.benchmarks`, then
  the held-out training videos (if any: `heldout.HeldoutEvaluator`).
  Ours-S (config.corpus.domain set) and a tag model (config.corpus.tag) are
  evaluated on their own domain only.

  Raises:
    ValueError: an unknown benchmark name, or a benchmark's features do not
      have the corpus's dimension.
  """
  names = config.eval.benchmarks
  if isinstance(names, str) or any(name not in datasets.BENCHMARKS for name in names):
    raise ValueError(f"eval.benchmarks={names!r} must be a tuple of names from "
                     f"{datasets.BENCHMARKS}, e.g. ('tvsum',)")
  seeds, evaluators = config.eval.random_seeds, []
  if corpus.eval_videos:
    evaluators.append(Evaluator(
        "corpus", "corpus", config.corpus.eval_split,
        f"{config.corpus.builder_config} corpus, split {config.corpus.eval_split}",
        corpus.eval_videos, seeds))
  split = config.eval.benchmark_split
  for name in names:
    videos = datasets.load_benchmark(
        name, split, manual_dir=os.path.join(config.eval.data_root, name),
        data_dir=config.corpus.data_dir or None, feature_set=config.eval.feature_set)
    own = config.corpus.domain or config.corpus.get("tag", "")
    if own:
      videos = [v for v in videos if v.group == own]
      if not videos:
        logging.info("%s has no %r videos; not evaluated", name, own)
        continue
    dim = videos[0].features.shape[1] if videos else corpus.feature_dim
    if dim != corpus.feature_dim:
      raise ValueError(
          f"eval.feature_set={config.eval.feature_set!r} gives {dim}-d {name} "
          f"features but the corpus {config.corpus.builder_config!r} is "
          f"{corpus.feature_dim}-d")
    evaluators.append(Evaluator(name, name, split,
                                f"{name}, split {split} ({DEFINITIONS[name]})",
                                videos, seeds))
  if corpus.heldout:
    evaluators.append(heldout.HeldoutEvaluator(
        corpus.heldout, config.train.margin,
        f"{corpus.name}: {len(corpus.heldout)} held-out training videos "
        f"(corpus.holdout_fraction={config.corpus.holdout_fraction}, no labels)"))
  return evaluators


def scalars(results: Mapping[str, Any]) -> dict[str, float]:
  """The scalars of one evaluation, for the metric writers.

  eval/<name>_{mAP,hit1,random_mAP} of each labelled evaluator's results, and
  eval/<name>_{pair_accuracy,hinge,between_share} of the held-out one's.
  """
  out = {}
  for name, result in results.items():
    if isinstance(result, Mapping) and "model" in result:
      out[f"eval/{name}_mAP"] = result["model"]["mAP"]
      out[f"eval/{name}_hit1"] = result["model"]["hit1"]
      out[f"eval/{name}_random_mAP"] = result["random"]["mAP"]
    elif isinstance(result, Mapping) and "heldout" in result:
      for key in ("pair_accuracy", "hinge", "between_share"):
        out[f"eval/{name}_{key}"] = result["heldout"][key]
  return out


def summary(result: Mapping[str, Any]) -> str:
  """One log line's worth of an evaluator's results."""
  if "heldout" in result:
    held = result["heldout"]
    return (f"pair accuracy {100 * held['pair_accuracy']:.2f} (random 50.00) hinge "
            f"{held['hinge']:.4f} between-video share {held['between_share']:.3f}")
  return (f"{result['split']} mAP {100 * result['model']['mAP']:.2f} "
          f"(random {100 * result['random']['mAP']:.2f})")
