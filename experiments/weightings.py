r"""The pair-weighting ablation: recipes x Ours-A / Ours-S x feature sets x seeds.

The whole ablation of RESULTS.md ("Pair weights that cannot collapse ..."), as
one resumable command (about 2 h of the 2-core CPU machine from nothing: 102
training runs of 200-600 steps):

  python -m experiments.weightings --all --output_dir=/tmp/hl_jax_ablation/weightings \
      --data_dir=/tmp/hl_jax_ablation/tfds

It runs the stages of `ALL` in order, each of which is also a command of its own
(same --output_dir; 'best' is the collapse-proof recipe with the best held-out
pair accuracy of the first stage's runs, which it prints last):

  python -m experiments.weightings --output_dir=/tmp/hl_jax_ablation/weightings \
      --corpus=youtube_highlights --seeds=3 --data_dir=/tmp/hl_jax_ablation/tfds \
      --models=A --report=variants --methods=joint,joint_detached,joint_tempered,\
joint_capped,joint_self_paced,ranking_d,ranking_em
  python -m experiments.weightings --output_dir=/tmp/hl_jax_ablation/weightings \
      --corpus=youtube_highlights --seeds=3 --data_dir=/tmp/hl_jax_ablation/tfds \
      --models=A --report=shortcut \
      --methods=joint,joint_capped,ranking_d,joint_capped_domain,joint_capped_wd,ranking_d_domain
  python -m experiments.weightings --output_dir=/tmp/hl_jax_ablation/weightings \
      --corpus=youtube_highlights --seeds=3 --data_dir=/tmp/hl_jax_ablation/tfds \
      --models=S --methods=ranking_d,joint,best --report=ours_s
  python -m experiments.weightings --output_dir=/tmp/hl_jax_ablation/weightings \
      --corpus=youtube_highlights --seeds=3 --data_dir=/tmp/hl_jax_ablation/tfds \
      --models=A --methods=ranking_d,joint,best \
      --feature_sets=i3d_rgb,i3d_rgb_flow,i3d_rgb_flow_audio --report=features
  python -m experiments.pair_weights --ablation_dir=/tmp/hl_jax_ablation/weightings

The first two train the recipes (weightings_report.RECIPES) x 3 seeds as Ours-A
on i3d_rgb (30 runs, shared between them); the third Ours-S (6 domains) for the
paper's joint, the best and Ranking-D (54 short runs); the fourth the same three
as Ours-A on the other feature sets (18 runs; the i3d_rgb ones are reused); the
last measures which pairs the trained models weight (experiments/pair_weights.py).

Each run is `run_loop.train_and_evaluate` in <output_dir>/runs/<method>_<A|S-domain>
[_<features>]_seed<k>/; a run whose results.json is complete is reused, an
interrupted one resumes from its checkpoints, and a run dir of another recipe
or setting (CHECKED_KEYS) is refused. Ours-A trains on all domains and is
evaluated on every benchmark of the corpus; Ours-S trains one model per domain
on that domain's videos and is evaluated on that domain only (TVSum has no
such domain). Every run holds out --holdout_fraction of its training videos
and is evaluated every --eval_every steps and at the end; the report has the
last evaluation and the one selected by held-out pair accuracy (label-free:
nothing is selected on an evaluation split). Writes <report>.md (mean ± std
over seeds), <report>.json and <report>.png, with two label-free baselines
scored by the same evaluators: uniform random scores and each clip's feature
L2 norm (per feature set). On the YTH corpus the report adds the label noise of
its training pairs, measured with the YTH train-split labels that training
never sees. --corpus=tiny (configs/tiny.py) is the seconds-long setting the
tests use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from benchmarks import harness
from configs import joint
from configs import tiny
from experiments import pair_weights
from experiments import weightings_data
from experiments import weightings_report
from hl_jax.core import files
from hl_jax.core import run_loop
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import corpora

# corpus -> (base config, Ours-S steps, Ours-S groups per step; 0 keeps the base's).
# A YTH domain has ~40 training videos (dog: 13 short, 13 long) and its pairs
# are learnt within ~100 steps (train/pair_accuracy), hence fewer, smaller steps.
CORPORA = {
    "youtube_highlights": (lambda: joint.get_config("corpus=youtube_highlights"), 200, 64),
    "synthetic": (joint.get_config, 500, 64),
    "tiny": (tiny.get_config, 10, 0),
}
# --feature_sets (youtube_highlights only) -> (duration_corpus config, run name suffix).
FEATURE_SETS = {
    "i3d_rgb": ("youtube_highlights", ""),
    "i3d_rgb_flow": ("youtube_highlights_rgb_flow", "rgbflow"),
    "i3d_rgb_flow_audio": ("youtube_highlights_rgb_flow_audio", "rgbflowaudio"),
}
# Keys a reused run must have been trained with (absent in older runs: the default).
# Runs made when Ranking-D and Ranking-EM were a config.variant read as those
# weightings (hl_jax.core.config_checks.upgrade).
CHECKED_KEYS = {
    "train.weighting": "softmax",
    "input.pair_within": "",
    "train.weight_decay": None,
    "corpus.holdout_fraction": 0.0,
    "eval.every_steps": None,
    "corpus.builder_config": None,
    "corpus.domain": "",
    "corpus.tag": "",
    "train.pair_groups": "random",
}
BEST = "best"  # --methods alias: the best collapse-proof method by held-out accuracy.


@dataclasses.dataclass(frozen=True)
class Stage:
  """One report of the whole ablation (--all): its runs' models, recipes, feature sets."""

  report: str
  models: tuple[str, ...]
  methods: tuple[str, ...]
  feature_sets: tuple[str, ...] = ("i3d_rgb",)


# --all: the reports RESULTS.md copies, in order (then experiments/pair_weights.py),
# on --corpus=youtube_highlights with 3 seeds unless --corpus / --seeds say otherwise.
ALL = (
    Stage(
        "variants",
        ("A",),
        (
            "joint",
            "joint_detached",
            "joint_tempered",
            "joint_capped",
            "joint_self_paced",
            "ranking_d",
            "ranking_em",
        ),
    ),
    Stage(
        "shortcut",
        ("A",),
        (
            "joint",
            "joint_capped",
            "ranking_d",
            "joint_capped_domain",
            "joint_capped_wd",
            "ranking_d_domain",
        ),
    ),
    Stage("ours_s", ("S",), ("ranking_d", "joint", BEST)),
    Stage(
        "features",
        ("A",),
        ("ranking_d", "joint", BEST),
        ("i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio"),
    ),
)
# Flags that choose a stage's runs: --all sets them per stage.
STAGE_FLAGS = ("models", "methods", "feature_sets", "report")

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module (tests,
  # other experiments) cannot clash with flags of the same name (--data_dir).
  flags.DEFINE_string("output_dir", None, "Where runs and reports go.")
  flags.DEFINE_enum("corpus", "youtube_highlights", list(CORPORA), "Training corpus.")
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per method and model.")
  flags.DEFINE_integer("steps", 0, "Ours-A steps (0: the config's).")
  flags.DEFINE_integer("steps_s", 0, "Ours-S steps (0: the corpus default).")
  flags.DEFINE_integer("groups_s", -1, "Ours-S groups per step (-1: the default).")
  flags.DEFINE_string("data_dir", "", "TFDS data_dir shared by all runs.")
  flags.DEFINE_list(
      "methods",
      list(weightings_report.METHODS),
      "Recipes to train (weightings_report.RECIPES); 'best': the "
      "collapse-proof one with the best held-out pair accuracy "
      "among the finished Ours-A i3d_rgb runs of --output_dir.",
  )
  flags.DEFINE_list("models", ["A", "S"], "A: Ours-A, S: Ours-S.")
  flags.DEFINE_list("domains", [], "Ours-S domains (default: all).")
  flags.DEFINE_list(
      "feature_sets", ["i3d_rgb"], f"youtube_highlights feature sets, of {list(FEATURE_SETS)}."
  )
  flags.DEFINE_float(
      "holdout_fraction",
      0.15,
      "corpus.holdout_fraction of every run: training videos held "
      "out for label-free selection (0: none).",
  )
  flags.DEFINE_integer(
      "eval_every",
      -1,
      "eval.every_steps of every run (-1: Ours-A the config's "
      "checkpoint.every_steps, Ours-S steps_s // 4; 0: at the end).",
  )
  flags.DEFINE_string(
      "report", "ablation", "Report name: writes <output_dir>/<report>.{md,json,png}."
  )
  flags.DEFINE_list(
      "config_overrides",
      [],
      "section.key=value changes to every run's config, e.g. "
      "model.dropout_masks=flax (the masks of RESULTS.md's ablation).",
  )
  flags.DEFINE_bool("compilation_cache", True, "Persist compiled steps in <output_dir>/jax_cache.")
  flags.DEFINE_bool(
      "all",
      False,
      "The whole ablation: every stage of ALL (each sets --models, --methods, "
      "--feature_sets and --report), then experiments/pair_weights.py.",
  )
  flags.DEFINE_integer(
      "pair_weight_groups", 2048, "--all: random groups of pairs per run of pair_weights."
  )


@dataclasses.dataclass(frozen=True)
class Run:
  method: str  # A recipe of weightings_report.RECIPES.
  domain: str  # "" for Ours-A.
  seed: int
  feature_set: str = weightings_report.DEFAULT_FEATURES

  @property
  def name(self) -> str:
    model = f"S-{self.domain}" if self.domain else "A"
    suffix = FEATURE_SETS.get(self.feature_set, ("", self.feature_set))[1]
    return f"{self.method}_{model}{f'_{suffix}' if suffix else ''}_seed{self.seed}"


def feature_base(base: ml_collections.ConfigDict, feature_set: str) -> ml_collections.ConfigDict:
  """`base` on the youtube_highlights corpus of `feature_set` (as set_corpus sets it)."""
  if feature_set == weightings_report.DEFAULT_FEATURES:
    return base
  if feature_set not in FEATURE_SETS or base.corpus.builder_config != "youtube_highlights":
    raise ValueError(
        f"feature set {feature_set!r}: one of {list(FEATURE_SETS)}, on the "
        f"youtube_highlights corpus (not {base.corpus.builder_config!r})"
    )
  config = base.copy_and_resolve_references()
  config.corpus.builder_config = FEATURE_SETS[feature_set][0]
  config.eval.feature_set = feature_set
  return config


def set_key(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """Sets a recipe's "section.key" to `value` (a `Scale`: the base's value times it)."""
  *path, name = key.split(".")
  node = config
  for part in path:
    node = node[part]
  if name not in node:
    raise KeyError(f"recipe key {key!r} is not in the config")
  node[name] = value.factor * node[name] if isinstance(value, weightings_report.Scale) else value


def run_config(
    base: ml_collections.ConfigDict,
    run: Run,
    steps: int,
    steps_s: int,
    groups_s: int,
    *,
    holdout_fraction: float = 0.15,
    eval_every: int = -1,
) -> ml_collections.ConfigDict:
  """`base` with the run's recipe, seed, hold-out and evaluation period, and
  Ours-S's domain, steps and groups (eval_every < 0: see --eval_every).

  With other steps than the base's, train.weight_schedule_steps keeps its
  share of the run (YTH: 300 of 600 steps, so 100 of an Ours-S run's 200).
  """
  config = base.copy_and_resolve_references()
  _, keys = weightings_report.RECIPES[run.method]
  for key, value in keys.items():
    set_key(config, key, value)
  config.seed = config.input.shuffle_seed = run.seed
  config.corpus.holdout_fraction = holdout_fraction
  config.eval.every_steps = config.checkpoint.every_steps if eval_every < 0 else eval_every
  config.train.num_steps = steps or config.train.num_steps
  if run.domain:
    config.corpus.domain = run.domain
    config.train.num_steps = steps_s
    config.train.num_groups = groups_s or config.train.num_groups
    config.eval.every_steps = max(steps_s // 4, 1) if eval_every < 0 else eval_every
  config.train.weight_schedule_steps = round(
      base.train.weight_schedule_steps * config.train.num_steps / base.train.num_steps
  )
  return config


def check_reusable(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Raises if `workdir` holds a run (finished or not) of another recipe or setting."""
  if not os.path.exists(os.path.join(workdir, workdir_lib.CONFIG_NAME)):
    return
  saved, _ = workdir_lib.load_config(workdir)  # In today's key names.
  for key, default in CHECKED_KEYS.items():
    old, new = (_get(c, key, default) for c in (saved, config))
    if old != new and not (
        isinstance(old, float)
        and isinstance(new, (int, float))
        and np.isclose(old, new, rtol=1e-9, atol=0.0)
    ):
      raise ValueError(
          f"{workdir} holds a run with {key}={old!r}, not {new!r} (changed "
          "recipe, --holdout_fraction or --eval_every?); use another "
          "--output_dir, or the flags it was run with"
      )


def _get(config: ml_collections.ConfigDict, key: str, default: Any) -> Any:
  node = config
  for part in key.split("."):
    if part not in node:
      return default
    node = node[part]
  return node


def _evaluation(results: dict) -> dict:
  """One evaluation's per-benchmark and per-group mAP and held-out metrics."""
  held = results.get("heldout", {})
  held = held.get("heldout", held.get("model", {}))  # {} in runs without held-out videos.
  return {
      "step": results["step"],
      "eval": {
          name: {
              "mAP": results[name]["model"]["mAP"],
              "per_group": results[name]["model"]["per_group"],
          }
          for name in ("corpus", "youtube_highlights", "tvsum")
          if name in results
      },
      "heldout": {k: held[k] for k in ("pair_accuracy", "hinge", "between_share") if k in held},
  }


def run_summary(results: dict, workdir: str) -> dict:
  """The last and the selected evaluations (see weightings_report), and the last
  logged train metrics."""
  selected = results.get("selected")
  out = {
      "step": results["step"],
      "last": _evaluation(results),
      "selected": _evaluation(selected or results),
      "selected_by": selected["selected_by"] if selected else "last evaluation",
  }
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if '"train/loss"' in line]
  out["train"] = (
      {k: rows[-1].get(f"train/{k}") for k in weightings_report.DIAGNOSTICS} if rows else {}
  )
  return out


def finished_results(workdir: str, config: ml_collections.ConfigDict) -> dict | None:
  """The results.json of a finished run of `config` in workdir, else None.

  Raises:
    ValueError: workdir holds a run of other steps or CHECKED_KEYS.
  """
  results, steps = None, config.train.num_steps
  with contextlib.suppress(OSError, ValueError):  # Absent or cut short: (re)run.
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  if results is not None and results["step"] != steps:
    raise ValueError(
        f"{workdir} holds a run of {results['step']} steps, not {steps}; "
        "use another --output_dir"
    )
  check_reusable(workdir, config)
  return results


def train_runs(
    runs: Sequence[Run], configs: dict[str, ml_collections.ConfigDict], output_dir: str
) -> dict[str, dict]:
  """Trains (or reuses) every run in order, printing progress and an ETA."""
  summaries, trained_s, trained_pairs = {}, 0.0, 0

  def pairs(run: Run) -> int:  # The ETA's unit of work.
    return configs[run.name].train.num_steps * configs[run.name].train.num_groups

  for run in runs:  # Refuse a changed setting before training anything.
    finished_results(os.path.join(output_dir, "runs", run.name), configs[run.name])
  for k, run in enumerate(runs):
    config, workdir = configs[run.name], os.path.join(output_dir, "runs", run.name)
    steps, results = config.train.num_steps, finished_results(workdir, config)
    reused = results is not None
    print(
        f"[{k + 1}/{len(runs)}] {run.name}: "
        f"{'reused' if reused else f'training {steps} steps'}",
        flush=True,
    )
    if not reused:
      start = time.time()
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, "stdout.txt"), "a") as log, contextlib.redirect_stdout(log):
        results = run_loop.train_and_evaluate(config, workdir)
      trained_s, trained_pairs = trained_s + time.time() - start, trained_pairs + pairs(run)
      left = sum(pairs(r) for r in runs[k + 1 :])
      print(
          f"    {time.time() - start:.0f} s; ETA {left * trained_s / trained_pairs / 60:.1f}"
          " min (less for reused runs)",
          flush=True,
      )
    summaries[run.name] = dict(
        run_summary(results, workdir), reused=reused, **dataclasses.asdict(run)
    )
    wall_s = wall_seconds(results, workdir)
    if wall_s is not None:
      summaries[run.name]["wall_s"] = wall_s
  return summaries


def wall_seconds(results: dict, workdir: str) -> float | None:
  """The training seconds of the process that finished the run, None if unknown.

  results.json has them ("wall_s"); runs made before it had them have
  <workdir>/wall.json, which this driver wrote then.
  """
  if "wall_s" in results:
    return results["wall_s"]
  with contextlib.suppress(OSError, ValueError, KeyError):
    with open(os.path.join(workdir, "wall.json")) as f:
      return json.load(f)["wall_s"]
  return None


def best_method(output_dir: str, seeds: int) -> str:
  """The collapse-proof recipe whose finished Ours-A i3d_rgb runs (seeds
  0..seeds-1) in output_dir have the best mean held-out pair accuracy of their
  selected evaluations (`weightings_report.heldout_ranking`): label-free."""
  summaries = {}
  for method in filter(weightings_report.collapse_proof, weightings_report.RECIPES):
    for seed in range(seeds):
      run = Run(method, "", seed)
      workdir = os.path.join(output_dir, "runs", run.name)
      with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(workdir, "results.json")) as f:
          summaries[run.name] = dict(run_summary(json.load(f), workdir), **dataclasses.asdict(run))
  ranking = weightings_report.heldout_ranking(summaries)
  if not ranking:
    raise ValueError(
        f"--methods={BEST}: {output_dir}/runs has no finished Ours-A "
        "i3d_rgb run of a collapse-proof method with held-out results; "
        "train them first (the first command of experiments/weightings.py)"
    )
  return ranking[0]["method"]


def _check_overrides(overridden: Sequence[str], methods: Sequence[str]) -> None:
  """Refuses --config_overrides of keys that the flags or a recipe set anyway."""
  owners = {"corpus.holdout_fraction": "--holdout_fraction", "eval.every_steps": "--eval_every"}
  for method in methods:
    for key, value in weightings_report.RECIPES[method][1].items():
      if not isinstance(value, weightings_report.Scale):  # A Scale scales the override.
        owners.setdefault(key, f"recipe {method}")
  clashes = {key: owners[key] for key in overridden if key in owners}
  if clashes:
    raise ValueError(
        f"--config_overrides of {sorted(clashes)} would be replaced by "
        f"{sorted(set(clashes.values()))}; drop them"
    )


def run_ablation(
    base: ml_collections.ConfigDict,
    output_dir: str,
    *,
    seeds: int,
    methods: Sequence[str] = tuple(weightings_report.METHODS),
    models: Sequence[str] = ("A", "S"),
    domains: Sequence[str] = (),
    steps: int = 0,
    steps_s: int = 200,
    groups_s: int = 0,
    feature_sets: Sequence[str] = (weightings_report.DEFAULT_FEATURES,),
    holdout_fraction: float = 0.15,
    eval_every: int = -1,
    overridden: Sequence[str] = (),
    report_name: str = "ablation",
    command: str = "",
) -> dict:
  """Trains or reuses every run; writes <report_name>.{md,json,png} into output_dir.

  Runs: every feature set x model (Ours-A, then each Ours-S domain) x method x
  seed. `overridden`: the keys of --config_overrides (already applied to base).

  Returns:
    The report written to <report_name>.json.
  """
  start = time.time()
  methods = list(dict.fromkeys(best_method(output_dir, seeds) if m == BEST else m for m in methods))
  unknown = (
      (set(methods) - set(weightings_report.RECIPES))
      | (set(models) - {"A", "S"})
      | (set(feature_sets) - set(FEATURE_SETS))
  )
  if unknown or seeds < 1 or not feature_sets:
    raise ValueError(
        f"unknown methods, models or feature sets {sorted(unknown)} (methods: "
        f"{list(weightings_report.RECIPES)}), or seeds={seeds} < 1, or no "
        "feature set"
    )
  _check_overrides(overridden, methods)
  bases = {fs: feature_base(base, fs) for fs in feature_sets}
  if "S" in models and not domains:
    source = corpora.load_corpus(base).train_source
    domains = sorted({files.as_text(source[i]["domain"]) for i in range(len(source))})
  domains = list(domains) if "S" in models else []
  runs = [
      Run(m, d, k, fs)
      for fs in feature_sets
      for d in ([""] if "A" in models else []) + domains
      for m in methods
      for k in range(seeds)
  ]
  configs = {
      r.name: run_config(
          bases[r.feature_set],
          r,
          steps,
          steps_s,
          groups_s,
          holdout_fraction=holdout_fraction,
          eval_every=eval_every,
      )
      for r in runs
  }
  summaries = train_runs(runs, configs, output_dir)
  baselines = {fs: weightings_data.label_free_baselines(bases[fs], seeds) for fs in feature_sets}
  reused = sum(s["reused"] for s in summaries.values())
  a_run = next((configs[r.name] for r in runs if not r.domain), None)
  s_run = next((configs[r.name] for r in runs if r.domain), None)
  tables = {
      which: weightings_report.make_tables(
          summaries, baselines, methods, seeds, which, feature_sets
      )
      for which in weightings_report.SELECTIONS
  }
  report = {
      "command": command,
      "machine": _machine(),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "settings": {
          "corpus": base.corpus.builder_config,
          "seeds": seeds,
          "methods": methods,
          "feature_sets": list(feature_sets),
          "domains": domains,
          "group_size": base.train.group_size,
          "holdout_fraction": holdout_fraction,
          "steps_a": a_run.train.num_steps if a_run else 0,
          "groups_a": a_run.train.num_groups if a_run else 0,
          "eval_every_a": a_run.eval.every_steps if a_run else 0,
          "steps_s": s_run.train.num_steps if s_run else 0,
          "groups_s": s_run.train.num_groups if s_run else 0,
          "eval_every_s": s_run.eval.every_steps if s_run else 0,
          "num_trained": len(runs) - reused,
          "num_reused": reused,
      },
      "runs": summaries,
      "baselines": baselines,
      "tables": tables["last"],
      "tables_selected": tables["selected"],
      "feature_table": weightings_report.feature_table(tables),
      "heldout_ranking": weightings_report.heldout_ranking(summaries),
      "diagnostics": weightings_report.diagnostics(summaries, methods, feature_sets),
      "pair_noise": weightings_report.pair_noise(
          weightings_data.labelled_pools(bases[feature_sets[0]])
      ),
  }
  report["total_wall_s"] = time.time() - start
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, report_name)
  files.write_json(path + ".json", report)
  files.write_text(path + ".md", weightings_report.markdown(report))
  with files.atomic_output(path + ".png") as partial:
    weightings_report.plot(report["tables"], str(partial))
  return report


def _machine() -> str:
  load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
  return (
      f"{platform.node()}, {os.cpu_count()} CPUs ({jax.devices()[0].platform}), "
      f"load average {load} at the end"
  )


def run_all(
    base: ml_collections.ConfigDict,
    output_dir: str,
    *,
    command: str,
    pair_weight_groups: int = 2048,
    **settings: Any,
) -> list[dict]:
  """The whole ablation: every stage of `ALL` in order, then pair_weights.

  Stages with other feature sets than i3d_rgb need the youtube_highlights corpus
  and pair_weights its train-split labels; on other corpora they are skipped,
  saying so.

  Args:
    base: the corpus's base config (overrides applied).
    output_dir: every stage's --output_dir.
    command: the command line without the stage flags; each report records it
      with its stage's --models, --methods, --feature_sets and --report.
    pair_weight_groups: random groups of pairs per run of pair_weights.
    **settings: the other keyword arguments of `run_ablation` (seeds, steps, ...).

  Returns:
    The stages' reports, in order.
  """
  yth = base.corpus.builder_config == "youtube_highlights"
  reports = []
  for stage in ALL:
    if not yth and set(stage.feature_sets) != {weightings_report.DEFAULT_FEATURES}:
      print(
          f"stage {stage.report}: skipped (its feature sets need the youtube_highlights "
          f"corpus, not {base.corpus.builder_config!r})",
          flush=True,
      )
      continue
    stage_flags = (
        f"--models={','.join(stage.models)} --methods={','.join(stage.methods)} "
        f"--feature_sets={','.join(stage.feature_sets)} --report={stage.report}"
    )
    print(f"stage {stage.report}: {stage_flags}", flush=True)
    report = run_ablation(
        base,
        output_dir,
        methods=stage.methods,
        models=stage.models,
        feature_sets=stage.feature_sets,
        report_name=stage.report,
        command=f"{command} {stage_flags}",
        **settings,
    )
    print(weightings_report.markdown(report))
    print(weightings_report.ranking_line(report["heldout_ranking"]), flush=True)
    reports.append(report)
  if yth:
    print(pair_weights.write_report(output_dir, pair_weight_groups))
  else:
    print(
        f"pair_weights: skipped (corpus {base.corpus.builder_config!r} has no "
        "train-split labels)"
    )
  return reports


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required")
  if FLAGS.all and any(FLAGS[name].present for name in STAGE_FLAGS):
    raise app.UsageError(
        f"--all sets {', '.join('--' + n for n in STAGE_FLAGS)} per stage; " "drop them"
    )
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if FLAGS.compilation_cache:  # Every run of a method compiles the same step.
    jax.config.update(
        "jax_compilation_cache_dir", os.path.join(os.path.abspath(FLAGS.output_dir), "jax_cache")
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  make_base, steps_s, groups_s = CORPORA[FLAGS.corpus]
  base = make_base()
  base.data_dir = FLAGS.data_dir or base.data_dir
  harness.apply_overrides(base, FLAGS.config_overrides)
  settings = dict(
      seeds=FLAGS.seeds,
      domains=FLAGS.domains,
      steps=FLAGS.steps,
      steps_s=FLAGS.steps_s or steps_s,
      groups_s=groups_s if FLAGS.groups_s < 0 else FLAGS.groups_s,
      holdout_fraction=FLAGS.holdout_fraction,
      eval_every=FLAGS.eval_every,
      overridden=[o.partition("=")[0].strip() for o in FLAGS.config_overrides],
  )
  args = [a for a in sys.argv[1:] if a.split("=")[0] not in ("--all", "--noall")]
  command = " ".join(["python -m experiments.weightings", *args])
  if FLAGS.all:
    run_all(
        base,
        FLAGS.output_dir,
        command=command,
        pair_weight_groups=FLAGS.pair_weight_groups,
        **settings,
    )
    return
  report = run_ablation(
      base,
      FLAGS.output_dir,
      methods=FLAGS.methods,
      models=FLAGS.models,
      feature_sets=FLAGS.feature_sets,
      report_name=FLAGS.report,
      command=command,
      **settings,
  )
  print(weightings_report.markdown(report))
  print(weightings_report.ranking_line(report["heldout_ranking"]))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
