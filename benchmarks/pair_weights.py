r"""Which training pairs do the ablation's models trust? Measured with train labels.

  python -m benchmarks.pair_weights --ablation_dir=/tmp/hl_jax_ablation/yth

For every run of a benchmarks/ablate.py output on the youtube_highlights corpus
it restores f (and h, or the EM prior) from the final checkpoint, draws random
groups of n (short clip, long clip) pairs from the run's own training pool (all
domains for Ours-A, its domain for Ours-S) as the train step draws them, and
labels each pair with the YTH train-split labels, which training never reads:
right (short clip a highlight, long clip not), wrong (the reverse) or a tie.
It reports, under each method's pair weights (uniform 1/n, the EM posteriors,
softmax(h)), the weight that goes to right and to wrong pairs, the weight on
pairs f already ranks with the margin (zero hinge loss: no gradient), the mean
largest weight per group, f's ordering accuracy on right and on wrong pairs, and
the rank correlation of f with the clips' feature L2 norm over the pool.
Nothing here touches an evaluation split. Writes pair_weights.{json,md} into
--ablation_dir.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import ablate
from benchmarks import ablation_report
from hl_jax import checkpointing
from hl_jax import models
from hl_jax import train

FLAGS = flags.FLAGS
COLUMNS = ("right", "wrong", "satisfied", "max_weight", "f_acc_right", "f_acc_wrong",
           "f_norm_rank_corr")


def _define_flags() -> None:
  # Only as a program: importing this module must not clash with other flags.
  flags.DEFINE_string("ablation_dir", None, "An ablate.py --output_dir.")
  flags.DEFINE_integer("groups", 2048, "Random groups of pairs per run.")


def pair_weight_stats(workdir: str, pools: dict[str, tuple], groups: int,
                      seed: int = 0) -> dict[str, float]:
  """Weights of right / wrong / satisfied pairs under one run's final model."""
  config, state = checkpointing.restore_workdir(workdir)
  (xs, ys), (xl, yl) = pools[config.corpus.domain or "all"]
  n, margin = config.train.group_size, config.train.margin
  rng = np.random.default_rng(seed)
  i, j = rng.integers(0, len(ys), (groups, n)), rng.integers(0, len(yl), (groups, n))
  scorer, weigher = models.build(config)
  f = jax.jit(lambda x: scorer.apply({"params": state["params"]["f"]}, x))
  f_short, f_long = np.asarray(f(xs)), np.asarray(f(xl))
  gap = f_short[i] - f_long[j]  # [groups, n]
  if config.variant == "joint":
    h = jax.jit(lambda a, b: jax.nn.softmax(weigher.apply(
        {"params": state["params"]["h"]}, a, b), axis=-1))
    weights = np.concatenate([np.asarray(h(xs[i[k:k + 256]], xl[j[k:k + 256]]))
                              for k in range(0, groups, 256)])
  elif config.variant == "ranking_em":
    post = np.asarray(train.em_posterior(jnp.asarray(gap), state["em_prior"]))
    weights = post / post.sum(-1, keepdims=True)
  else:
    weights = np.full(gap.shape, 1.0 / n)
  right, wrong = ys[i] & ~yl[j], ~ys[i] & yl[j]

  def weighted(mask: np.ndarray) -> float:
    return float(np.mean(np.sum(weights * mask, -1)))

  return {"right": weighted(right), "wrong": weighted(wrong),
          "satisfied": weighted(gap >= margin),
          "max_weight": float(np.mean(weights.max(-1))),
          "f_acc_right": float(np.mean(gap[right] > 0)),
          "f_acc_wrong": float(np.mean(gap[wrong] > 0)),
          "f_norm_rank_corr": rank_correlation(
              np.concatenate([f_short, f_long]),
              np.linalg.norm(np.concatenate([xs, xl]), axis=1))}


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman's rho of two [N] arrays (no ties expected in float scores)."""
  return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def analyse(ablation_dir: str, groups: int) -> dict[str, Any]:
  """Per run stats, and their means per method and model."""
  workdirs = sorted(glob.glob(os.path.join(ablation_dir, "runs", "*", "results.json")))
  if not workdirs:
    raise FileNotFoundError(f"no finished run in {ablation_dir}/runs")
  base = checkpointing.load_config(os.path.dirname(workdirs[0]))
  base.corpus.domain = ""
  pools = ablate.labelled_pools(base)
  if pools is None:
    raise ValueError(f"corpus {base.corpus.builder_config!r} has no train-split labels")
  runs = {}
  for path in workdirs:
    workdir = os.path.dirname(path)
    config = checkpointing.load_config(workdir)
    runs[os.path.basename(workdir)] = dict(
        pair_weight_stats(workdir, pools, groups), method=config.variant,
        model="S" if config.corpus.domain else "A")
  rows = []
  for model in ("A", "S"):
    for method in ablation_report.METHODS:
      mine = [r for r in runs.values() if r["method"] == method and r["model"] == model]
      if mine:
        rows.append(dict({k: float(np.mean([r[k] for r in mine])) for k in COLUMNS},
                         method=method, model=model, runs=len(mine)))
  return {"groups": groups, "uniform": ablation_report.pair_noise(pools), "runs": runs,
          "rows": rows}


def markdown(result: dict[str, Any]) -> str:
  lines = ["| method | model | runs | " + " | ".join(COLUMNS) + " |",
           "|---|---|---:|" + "---:|" * len(COLUMNS)]
  lines += [f"| {ablation_report.METHODS[r['method']]} | Ours-{r['model']} | {r['runs']} | "
            + " | ".join(f"{r[k]:.3f}" for k in COLUMNS) + " |" for r in result["rows"]]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
  del argv
  if not FLAGS.ablation_dir:
    raise app.UsageError("--ablation_dir is required")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  result = analyse(FLAGS.ablation_dir, FLAGS.groups)
  for ext, text in (("json", json.dumps(result, indent=1)), ("md", markdown(result))):
    with open(os.path.join(FLAGS.ablation_dir, f"pair_weights.{ext}"), "w") as f:
      f.write(text)
  print(markdown(result))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
