"""What the pair-weighting ablation compares its runs with, measured without training.

Label-free baselines scored by the runs' own evaluators (random scores, each
clip's feature L2 norm), also those of experiments/weak_signals.py, and the YTH
train-split labels of the training pools, which no run reads (for the
pair-noise table of experiments/weightings.py and for
experiments/pair_weights.py).
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from hl_jax.core import files
from hl_jax.data import benchmarks
from hl_jax.data import corpora
from hl_jax.eval import evaluators
from hl_jax.eval import protocols


def label_free_baselines(base: ml_collections.ConfigDict, seeds: int) -> dict[str, dict]:
  """Per evaluator of the runs: random scores per seed (`protocols.random_scores`)
  and the full result for scores = per-clip feature L2 norms."""
  out = {}
  for e in evaluators.make_evaluators(base, corpora.load_corpus(base)):
    if not isinstance(e, evaluators.Evaluator):  # The held-out one: no labels.
      continue
    randoms = []
    for seed in range(seeds):
      result = protocols.evaluate(
          e.protocol, e.videos, protocols.random_scores(e.videos, seed), split=e.split
      )
      randoms.append({"mAP": result["mAP"], "per_group": result["per_group"]})
    norms = {v.video_id: np.linalg.norm(v.features.astype(np.float64), axis=1) for v in e.videos}
    out[e.name] = {
        "random": randoms,
        "l2_norm": protocols.evaluate(e.protocol, e.videos, norms, split=e.split),
    }
  return out


def labelled_pools(
    base: ml_collections.ConfigDict, *, with_videos: bool = False
) -> dict[str, tuple] | None:
  """The training table's short and long clips with their YTH train-split labels.

  Clips are subsampled as the table subsamples them. Labels are match > 0 from
  the YTH train split, which training never reads (and which is not the
  evaluation split). With corpus.holdout_fraction, the held-out videos are
  left out (training never pairs them). None for corpora without such labels.

  Returns:
    {pool: ((short features [S, D], short labels [S] bool), (long ..., ...))},
    pool "all" (what Ours-A pairs) first, then each domain (Ours-S). With
    `with_videos`, each side also has [S] int the clip's video (its index in
    the training source, the same in every pool).
  """
  if not base.corpus.builder_config.startswith("youtube_highlights"):
    return None
  labels = {
      v.video_id: v.labels > 0
      for v in benchmarks.load_benchmark(
          "youtube_highlights",
          "train",
          data_dir=base.data_dir or None,
          manual_dir=os.path.join(base.data_root, "youtube_highlights"),
          feature_set=base.eval.feature_set,
      )
  }
  source, cap, pools = corpora.load_corpus(base).train_source, base.input.max_segments_per_video, {}
  for i in range(len(source)):
    example = source[i]
    bucket, x = int(example["bucket"]), np.asarray(example["features"], np.float32)
    y = labels[files.as_text(example["video_id"])]
    if bucket < 2:  # 0 short, 1 long, 2 rest (not paired).
      rows = np.linspace(0, len(y) - 1, cap).round().astype(int) if len(y) > cap else slice(None)
      for pool in ("all", files.as_text(example["domain"])):
        pools.setdefault(pool, ([[], [], []], [[], [], []]))[bucket][0].append(x[rows])
        pools[pool][bucket][1].append(y[rows])
        pools[pool][bucket][2].append(np.full(len(y[rows]), i))
  return {
      pool: tuple(
          tuple(np.concatenate(a) for a in side[: 3 if with_videos else 2]) for side in pools[pool]
      )
      for pool in sorted(pools, key=lambda p: (p != "all", p))
  }
