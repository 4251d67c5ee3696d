r"""Sanity baselines for the synthetic corpus, in plain numpy.

Measures, on the val split, the mAP (mean over videos of the trapezoid AP) of
random scores, of the oracle (projection on the true h_d; `oracle_shared`:
projection on the mean of the h_d, one direction for all domains) and of a
linear scorer trained by gradient descent on a pairwise hinge between random
short-video and long-video segments with uniform pair weights, once on all
videos and once with the junk videos dropped (the clean-pair upper bound).

  python -m experiments.synthetic_baseline --config=synthetic
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hl_jax.eval import metrics
from tfds_builders.duration_corpus import duration_corpus_dataset_builder
from tfds_builders.duration_corpus import synthetic


def val_map(split: synthetic.Split, scores: np.ndarray) -> float:
  """Mean over val videos of the trapezoid AP.

  Args:
    split: a labelled split.
    scores: [N] one score per segment of `split`.

  Returns:
    mAP in [0, 1].
  """
  r = split.row_splits
  return float(
      np.mean(
          [
              metrics.trapezoid_ap(scores[r[i] : r[i + 1]], split.highlight[r[i] : r[i + 1]])
              for i in range(len(split.video_ids))
          ]
      )
  )


def random_map(split: synthetic.Split, num_seeds: int = 20) -> float:
  """mAP of uniform random scores, averaged over `num_seeds` seeds."""
  return float(
      np.mean(
          [
              val_map(split, np.random.default_rng(s).random(len(split.highlight)))
              for s in range(num_seeds)
          ]
      )
  )


def oracle_scores(split: synthetic.Split, lat: synthetic.Latents) -> np.ndarray:
  """[N] projection of each segment on its domain's true highlight direction."""
  seg_domain = split.domain[split.segment_video]
  return np.einsum('nd,nd->n', split.features, lat.highlight[seg_domain])


def _sample_segments(
    rng: np.random.Generator, split: synthetic.Split, videos: np.ndarray, n: int
) -> np.ndarray:
  """[n] segment rows: a uniform video of `videos`, then a uniform segment."""
  v = videos[rng.integers(len(videos), size=n)]
  lengths = split.num_segments[v]
  return split.row_splits[v] + (rng.random(n) * lengths).astype(np.int64)


def train_pairwise_linear(
    split: synthetic.Split,
    *,
    drop_junk: bool = False,
    steps: int = 500,
    pairs_per_step: int = 1024,
    learning_rate: float = 0.02,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
  """Linear scorer w from a pairwise hinge, short-video over long-video segments.

  Loss per pair (i short, j long): max(0, 1 - w.x_i + w.x_j), uniform weights,
  mean over a fresh batch of pairs per step, plain gradient descent.

  Args:
    split: the (unlabelled) train split.
    drop_junk: leave the junk videos out (uses the hidden junk flag: an
      upper bound for what learned pair weights could achieve).
    steps: gradient steps.
    pairs_per_step: pairs per step.
    learning_rate: step size.
    weight_decay: L2 coefficient.
    seed: pair sampling seed.

  Returns:
    [D] weights.
  """
  rng = np.random.default_rng(seed)
  keep = ~split.junk_video if drop_junk else np.ones(len(split.video_ids), bool)
  short = np.flatnonzero(keep & (split.bucket == synthetic.SHORT))
  long_ = np.flatnonzero(keep & (split.bucket == synthetic.LONG))
  x = split.features
  w = np.zeros(x.shape[1])
  for _ in range(steps):
    diff = (
        x[_sample_segments(rng, split, short, pairs_per_step)]
        - x[_sample_segments(rng, split, long_, pairs_per_step)]
    )
    active = (1.0 - diff @ w) > 0
    grad = -(diff * active[:, None]).mean(0) + weight_decay * w
    w -= learning_rate * grad
  return w


def measure(config_name: str) -> dict[str, float]:
  """All baseline figures for a registered synthetic config."""
  config = duration_corpus_dataset_builder.Builder.builder_configs[config_name]
  start = time.perf_counter()
  lat, splits = synthetic.generate(
      config.synthetic, config.feature_dim, config.short_max_s, config.long_min_s
  )
  gen_s = time.perf_counter() - start
  train, val = splits['train'], splits['val']
  w_all = train_pairwise_linear(train)
  w_clean = train_pairwise_linear(train, drop_junk=True)
  return {
      'generate_s': gen_s,
      'random': random_map(val),
      'oracle': val_map(val, oracle_scores(val, lat)),
      'oracle_shared': val_map(val, val.features @ lat.highlight.mean(0)),
      'linear_all_pairs': val_map(val, val.features @ w_all),
      'linear_clean_pairs': val_map(val, val.features @ w_clean),
  }


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument('--config', default='synthetic')
  args = parser.parse_args()
  for key, value in measure(args.config).items():
    print(f'{key:20s} {value:.4f}')


if __name__ == '__main__':
  main()
