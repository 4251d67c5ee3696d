r"""Which training pairs do the weighting ablation's models trust? Measured with train labels.

  python -m experiments.pair_weights --ablation_dir=/tmp/hl_jax_ablation/weightings

For every run of an experiments/weightings.py output on the youtube_highlights corpus
it restores f (and h, or the EM prior) from the final checkpoint, draws random
groups of n (short clip, long clip) pairs from the run's own training pool (all
domains for Ours-A, its domain for Ours-S) as the train step draws them, and
labels each pair with the YTH train-split labels, which training never reads:
right (short clip a highlight, long clip not), wrong (the reverse) or a tie.
It reports, under each run's pair weights (its train.weighting's at the run's
last step, `weightings.get(name).weigh`: uniform 1/n, the EM posteriors,
softmax(h), capped_simplex, ...), normalised to sum 1 per group: the
share of groups that carry any weight (weighted_groups; the collapse-proof
weightings give none to a group of satisfied pairs), and over those groups the
weight that goes to right and to wrong pairs, the weight on pairs f already
ranks with the margin (zero hinge loss: no gradient), the mean largest weight
and effective number of pairs (1 / sum w^2) per group; f's ordering accuracy on
right and on wrong pairs, the rank correlation of f with the clips' feature L2
norm over the pool, and the between-video share of f's variance over the
pool's clips (how much of f is a per-video offset). Runs are labelled by their
recipe (experiments/weightings_report.RECIPES) and feature set; a run's pool
leaves out its held-out videos, and its pairs stay within a domain when it
trained so (input.pair_within). Nothing here touches an evaluation split.
Writes pair_weights.{json,md} into --ablation_dir.
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

from configs import joint
from experiments import weightings_data
from experiments import weightings_report
from hl_jax.core import checkpointing
from hl_jax.core import files
from hl_jax.core import workdir as workdir_lib
from hl_jax.eval import heldout
from hl_jax.less_is_more import losses
from hl_jax.less_is_more import models
from hl_jax.less_is_more import weightings

FLAGS = flags.FLAGS
COLUMNS = (
    "weighted_groups",
    "right",
    "wrong",
    "satisfied",
    "max_weight",
    "effective_pairs",
    "f_acc_right",
    "f_acc_wrong",
    "f_norm_rank_corr",
    "between_share",
)


def _define_flags() -> None:
  # Only as a program: importing this module must not clash with other flags.
  flags.DEFINE_string("ablation_dir", None, "An experiments/weightings.py --output_dir.")
  flags.DEFINE_integer("groups", 2048, "Random groups of pairs per run.")


def _draw_pairs(
    pools: dict[str, tuple],
    pool: str,
    shape: tuple[int, int],
    within_domain: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
  """[groups, n] short and long clip indices, as the train step pairs them."""
  (_, ys, *short_videos), (_, yl, *long_videos) = pools[pool]
  i, j = rng.integers(0, len(ys), shape), rng.integers(0, len(yl), shape)
  if within_domain and pool == "all":  # Each short clip meets its own domain's long clips.
    if not short_videos:
      raise ValueError("pairs within a domain need pools with video indices")
    domain_of = {
        v: d for d, (s, l) in pools.items() if d != "all" for v in np.concatenate([s[2], l[2]])
    }
    short_domain = np.array([domain_of[v] for v in short_videos[0]])[i]
    long_domain = np.array([domain_of[v] for v in long_videos[0]])
    for domain in np.unique(short_domain):
      mine, candidates = short_domain == domain, np.flatnonzero(long_domain == domain)
      j[mine] = candidates[rng.integers(0, len(candidates), mine.sum())]
  return i, j


def _weights(
    config: Any,
    state: dict,
    weigher: Any,
    x: tuple[np.ndarray, np.ndarray],
    ij: tuple[np.ndarray, np.ndarray],
    f_pair: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
  """[groups, n] the run's pair weights at its last step, normalised to sum 1 per
  group (0 in a group whose weights are all 0)."""
  (x_short, x_long), (i, j), (f_short, f_long) = x, ij, f_pair  # Pool clips, [groups, n].
  weighting = weightings.get(config.train.get("weighting", "softmax"))
  config = _with_weighting_keys(config, weighting)
  logits = None
  if weighting.uses_h:
    h = jax.jit(lambda a, b: weigher.apply({"params": state["params"]["h"]}, a, b))
    logits = jnp.asarray(
        np.concatenate(
            [
                np.asarray(h(x_short[i[k : k + 256]], x_long[j[k : k + 256]]))
                for k in range(0, len(i), 256)
            ]
        )
    )
  pair_loss = losses.pair_loss(
      config.train.pair_loss, jnp.asarray(f_short), jnp.asarray(f_long), config.train.margin
  )
  pairs = weightings.Pairs(
      pair_loss=pair_loss,
      score_gap=jnp.asarray(f_short - f_long),
      logits=logits,
      step=jnp.int32(int(state["step"])),
      em_prior=jnp.float32(state["em_prior"] if "em_prior" in state else config.em.prior_init),
  )
  weights = np.asarray(weighting.weigh(pairs, config)[0], np.float64)
  total = weights.sum(-1, keepdims=True)
  return np.where(total > 0, weights / np.maximum(total, 1e-30), 0.0)


def _with_weighting_keys(config: Any, weighting: weightings.Weighting) -> Any:
  """`config` with every key the weighting reads: a run made before a key existed
  gets configs/joint.py's default, the value such runs had."""
  config = config.copy_and_resolve_references()
  defaults = joint.get_config()
  for key in weighting.keys:
    section, name = key.split(".")
    if section not in config:
      config[section] = defaults[section].copy_and_resolve_references()
    elif name not in config[section]:
      config[section][name] = defaults[section][name]
  return config


def pair_weight_stats(
    workdir: str, pools: dict[str, tuple], groups: int, seed: int = 0
) -> dict[str, float]:
  """Weights of right / wrong / satisfied pairs under one run's final model.

  Args:
    workdir: the run.
    pools: `weightings_data.labelled_pools`'s; the between-video share needs
      `with_videos=True` (nan without).
    groups: random groups of group_size pairs.
    seed: of the draw.
  """
  config, state = checkpointing.restore_workdir(workdir)
  pool = config.corpus.domain or "all"
  (xs, ys, *short_videos), (xl, yl, *long_videos) = pools[pool]
  i, j = _draw_pairs(
      pools,
      pool,
      (groups, config.train.group_size),
      config.input.get("pair_within", "") == "domain",
      np.random.default_rng(seed),
  )
  scorer, weigher = models.build(config)
  f = jax.jit(lambda x: scorer.apply({"params": state["params"]["f"]}, x))
  f_short, f_long = np.asarray(f(xs)), np.asarray(f(xl))
  gap = f_short[i] - f_long[j]  # [groups, n]
  weights = _weights(config, state, weigher, (xs, xl), (i, j), (f_short[i], f_long[j]))
  right, wrong = ys[i] & ~yl[j], ~ys[i] & yl[j]
  # Weight statistics are means over the groups that carry weight (a group whose
  # pairs are all satisfied has none under the collapse-proof weightings).
  carried = weights.sum(-1) > 0
  weights = weights[carried]

  def weighted(mask: np.ndarray) -> float:
    return float(np.mean(np.sum(weights * mask[carried], -1))) if carried.any() else np.nan

  scores = np.concatenate([f_short, f_long])
  share = float("nan")
  if short_videos:
    videos = np.concatenate([short_videos[0], long_videos[0]])
    share = heldout.between_within([scores[videos == v] for v in np.unique(videos)])[
        "between_share"
    ]
  return {
      "right": weighted(right),
      "wrong": weighted(wrong),
      "satisfied": weighted(gap >= config.train.margin),
      "weighted_groups": float(np.mean(carried)),
      "max_weight": float(np.mean(weights.max(-1))) if carried.any() else np.nan,
      "effective_pairs": (
          float(np.mean(1.0 / np.sum(weights**2, -1))) if carried.any() else np.nan
      ),
      "f_acc_right": float(np.mean(gap[right] > 0)),
      "f_acc_wrong": float(np.mean(gap[wrong] > 0)),
      "f_norm_rank_corr": rank_correlation(
          scores, np.linalg.norm(np.concatenate([xs, xl]), axis=1)
      ),
      "between_share": share,
  }


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman's rho of two [N] arrays (no ties expected in float scores)."""
  return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def analyse(ablation_dir: str, groups: int) -> dict[str, Any]:
  """Per run stats, and their means per feature set, model and method (recipe)."""
  workdirs = sorted(glob.glob(os.path.join(ablation_dir, "runs", "*", "results.json")))
  if not workdirs:
    raise FileNotFoundError(f"no finished run in {ablation_dir}/runs")
  pools, runs = {}, {}
  for path in workdirs:
    workdir = os.path.dirname(path)
    config, _ = workdir_lib.load_config(workdir)  # In today's key names.
    # One training pool per corpus and hold-out (the runs' own, all domains).
    key = (config.corpus.builder_config, config.corpus.get("holdout_fraction", 0.0))
    if key not in pools:
      base = config.copy_and_resolve_references()
      base.corpus.domain = ""
      pools[key] = weightings_data.labelled_pools(base, with_videos=True)
      if pools[key] is None:
        raise ValueError(f"corpus {key[0]!r} has no train-split labels")
    name = os.path.basename(workdir)
    runs[name] = dict(
        pair_weight_stats(workdir, pools[key], groups),
        method=weightings_report.recipe_of(name) or config.train.weighting,
        model="S" if config.corpus.domain else "A",
        feature_set=config.eval.feature_set,
    )
  rows = []
  for fs in sorted(
      {r["feature_set"] for r in runs.values()},
      key=lambda f: (f != weightings_report.DEFAULT_FEATURES, f),
  ):
    for model in ("A", "S"):
      for method in weightings_report.METHODS:
        mine = [
            r
            for r in runs.values()
            if (r["method"], r["model"], r["feature_set"]) == (method, model, fs)
        ]
        if mine:
          # Means over the runs where a value is defined (nan: no such pair or group).
          means = {k: [r[k] for r in mine if not np.isnan(r[k])] for k in COLUMNS}
          rows.append(
              dict(
                  {k: float(np.mean(v)) if v else np.nan for k, v in means.items()},
                  method=method,
                  model=model,
                  feature_set=fs,
                  runs=len(mine),
              )
          )
  return {
      "groups": groups,
      "uniform": weightings_report.pair_noise(next(iter(pools.values()))),
      "runs": runs,
      "rows": rows,
  }


def markdown(result: dict[str, Any]) -> str:
  lines = [
      "| method | model | runs | " + " | ".join(COLUMNS) + " |",
      "|---|---|---:|" + "---:|" * len(COLUMNS),
  ]
  lines += [
      f"| {weightings_report.label(r['method'], r['feature_set'])} | Ours-{r['model']} | "
      f"{r['runs']} | " + " | ".join(f"{r[k]:.3f}" for k in COLUMNS) + " |"
      for r in result["rows"]
  ]
  return "\n".join(lines) + "\n"


def write_report(ablation_dir: str, groups: int) -> str:
  """`analyse`s the runs of ablation_dir; writes pair_weights.{json,md} there.

  Returns:
    The markdown table.
  """
  result = analyse(ablation_dir, groups)
  table = markdown(result)
  files.write_text(os.path.join(ablation_dir, "pair_weights.json"), json.dumps(result, indent=1))
  files.write_text(os.path.join(ablation_dir, "pair_weights.md"), table)
  return table


def main(argv: Sequence[str]) -> None:
  del argv
  if not FLAGS.ablation_dir:
    raise app.UsageError("--ablation_dir is required")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  print(write_report(FLAGS.ablation_dir, FLAGS.groups))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
