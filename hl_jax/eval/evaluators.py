"""What a Less-is-More run evaluates: every labelled split, scored in one pass.

  evals = evaluators.make_evaluators(config, corpus)
  results = {e.name: e.run(score_fn) for e in evals}     # score_fn: [S, D] -> [S]

One `Evaluator` per labelled split (the corpus's own, then each of
`eval.benchmarks`), each scoring its videos with f in one batched pass and
reporting `protocols.evaluate` beside a random baseline. With
`corpus.holdout_fraction` > 0 the last one is `heldout.HeldoutEvaluator`
("heldout": label-free metrics of held-out training videos, no random
baseline; hl_jax/eval/heldout.py).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import ml_collections
import numpy as np

from hl_jax.data import benchmarks
from hl_jax.data import corpora
from hl_jax.eval import heldout
from hl_jax.eval import protocols

ScoreFn = Callable[[np.ndarray], np.ndarray]


def score_videos(score_fn: ScoreFn, features: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Per-video [T_i] scores for a list of [T_i, D] feature arrays, in one pass."""
  if not features:
    return []
  flat = score_fn(np.concatenate(features).astype(np.float32))
  return np.split(flat, np.cumsum([len(f) for f in features])[:-1])


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
  videos: list[protocols.Video]
  random_seeds: int
  _random: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

  def run(self, score_fn: ScoreFn) -> dict[str, Any]:
    """{"split", "title", "model": `evaluate` of f, "random": `random_baseline`}."""
    scores = score_videos(score_fn, [v.features for v in self.videos])
    model = protocols.evaluate(
        self.protocol,
        self.videos,
        {v.video_id: s for v, s in zip(self.videos, scores)},
        split=self.split,
    )
    if self._random is None:
      self._random = protocols.random_baseline(
          self.protocol, self.videos, self.random_seeds, split=self.split
      )
    return {"split": self.split, "title": self.title, "model": model, "random": self._random}


def make_evaluators(config: ml_collections.ConfigDict, corpus: corpora.Corpus) -> list[Any]:
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
  if isinstance(names, str) or any(name not in benchmarks.BENCHMARKS for name in names):
    raise ValueError(
        f"eval.benchmarks={names!r} must be a tuple of names from "
        f"{benchmarks.BENCHMARKS}, e.g. ('tvsum',)"
    )
  seeds, evaluators = config.eval.random_seeds, []
  if corpus.eval_videos:
    evaluators.append(
        Evaluator(
            "corpus",
            "corpus",
            config.corpus.eval_split,
            f"{config.corpus.builder_config} corpus, split {config.corpus.eval_split}",
            corpus.eval_videos,
            seeds,
        )
    )
  split = config.eval.benchmark_split
  for name in names:
    videos = benchmarks.load_benchmark(
        name,
        split,
        manual_dir=os.path.join(config.data_root, name),
        data_dir=config.data_dir or None,
        feature_set=config.eval.feature_set,
    )
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
          f"{corpus.feature_dim}-d"
      )
    evaluators.append(
        Evaluator(
            name,
            name,
            split,
            f"{name}, split {split} ({protocols.DEFINITIONS[name]})",
            videos,
            seeds,
        )
    )
  if corpus.heldout:
    evaluators.append(
        heldout.HeldoutEvaluator(
            corpus.heldout,
            config.train.margin,
            f"{corpus.name}: {len(corpus.heldout)} held-out training videos "
            f"(corpus.holdout_fraction={config.corpus.holdout_fraction}, no labels)",
        )
    )
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
    return (
        f"pair accuracy {100 * held['pair_accuracy']:.2f} (random 50.00) hinge "
        f"{held['hinge']:.4f} between-video share {held['between_share']:.3f}"
    )
  return (
      f"{result['split']} mAP {100 * result['model']['mAP']:.2f} "
      f"(random {100 * result['random']['mAP']:.2f})"
  )
