r"""Supervised TaoHighlight (hl_jax/taohighlight): CV, ablation, weak to strong, per group.

  python -m experiments.supervised --output_dir=/tmp/hl_jax_ablation/supervised \
      --data_dir=/tmp/hl_jax_ablation/tfds [--weak_workdir_tvsum=W --weak_workdir_yth=W]

Every run is configs/taohighlight.py trained by `run_loop.train_and_evaluate`.

1. cv: GRID (learning rate x w_ag, L_ag's weight) by k-fold CV INSIDE the train split
   (k = MAX_FOLDS = 2; seed 0), never on val; the best mean
   fold mAP (first in GRID order on a tie) -> cv_choice.json, used by the later stages.
2. ablation: full / no_text (YTH: no audio context stream) / no_graph / no_ag, seeds
   0..N-1: val mAP, IoU, beside the published supervised anchors (cited by paper in RESULTS.md).
3. weak_to_strong: val mAP against num_labelled (NUM_LABELLED), from labels alone and with
   a Less-is-More scorer fed as a channel (skipped without --weak_workdir_<tvsum|yth>).
4. per_group: the full model trained on each category / domain alone (PER_GROUP_STEPS).
Stages 1-3 train one model on all groups. Runs: <output_dir>/runs/<name>; a finished one
is reused, an interrupted one resumes, one of other CHECKED_KEYS is refused. --worker=k/n
trains runs k, k+n, ... of each stage; --report_only trains nothing. Writes
<output_dir>/taohighlight.{md,json} and weak_to_strong.png.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from configs import taohighlight as tao_config
from experiments import study_runs
from hl_jax.core import config_checks
from hl_jax.core import files
from hl_jax.core import run_loop
from hl_jax.core import workdir as workdir_lib

STAGES = ("cv", "ablation", "weak_to_strong", "per_group")
# per_group: one model per category / domain. 100 steps of 8 videos pass over each
# group's train videos at least as often as 300 steps over all of them do.
PER_GROUP_STEPS = 100
SHORT = {"tvsum": "tvsum", "youtube_highlights": "yth"}  # --weak_workdir_<short>
GRID = ((3e-4, 0.1), (3e-4, 1.0), (1e-3, 0.1), (1e-3, 1.0))  # (learning_rate, w_ag)
MAX_FOLDS = 2  # Compute: 2 CPU cores; every fold is a whole training run.
VARIANTS = ("full", "no_text", "no_graph", "no_ag")
# 0: all. TVSum: 2 = half of every category's 4; YTH: 10 = 15-48% of a domain's 21-68.
NUM_LABELLED = {"tvsum": (1, 2, 0), "youtube_highlights": (10, 0)}
SPLIT_FILES = {"tvsum": "umt_tvsum_splits.json", "youtube_highlights": "umt_youtube_splits.json"}
# (method, supervision, YTH val mAP, TVSum val top-5 mAP), as the papers report them.
ANCHORS = (
    ("UMT (CVPR'22)", "full highlight labels, audio+visual", 74.9, 83.1),
    ("Joint-VA (ICCV'21)", "full highlight labels, audio+visual", 71.8, 76.3),
    ("SL-module (ICCV'21)", "source-category highlight labels", 69.3, 73.3),
)
CHECKED_KEYS = (
    "benchmark",
    "seed",
    "group",
    "feature_set",
    "num_labelled",
    "cv_folds",
    "cv_fold",
    "train.learning_rate",
    "train.num_steps",
    "train.batch_size",
    "loss.w_ag",
    "loss.w_reg",
    "loss.reg_scale",
    "model.use_text",
    "model.use_graph",
    "model.hidden",
    "weak.workdir",
)
IOU_KEYS = ("mean_iou", "share_iou_0.5", "share_iou_0.7")
# results.json keys a run's summary leaves out: the full evaluation, the history of
# evaluations, the config, and the seconds of the process that finished the run
# (not part of the results: a resumed run's are its last part's).
SUMMARY_LEAVES_OUT = ("evaluation", "history", "config", "wall_s")
LABELS = {
    "full": "TaoHighlight (full)",
    "no_text": "w/o text",
    "no_graph": "w/o graph fine-tuning",
    "no_ag": "w/o L_ag",
    "no_text_yth": "w/o second stream " "(audio context)",
}

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Run:
  stage: str
  benchmark: str
  variant: str  # VARIANTS; "labels" | "weak" in weak_to_strong.
  learning_rate: float
  w_ag: float
  seed: int = 0
  folds: int = 0  # cv: config.cv_folds, cv_fold.
  fold: int = 0
  num_labelled: int = 0  # weak_to_strong; 0: all.
  group: str = ""  # per_group; "": all groups.

  @property
  def name(self) -> str:
    stage, variant, what = self.stage, self.variant, ""
    if stage == "per_group":
      variant = f"{variant}_{self.group}"
    elif stage == "cv":
      what = f"_fold{self.fold}of{self.folds}"
    elif variant == "labels" and not self.num_labelled:  # The same run as ablation's full.
      stage, variant = "ablation", "full"
    elif stage == "weak_to_strong":
      what = f"_n{self.num_labelled or 'all'}"
    return (
        f"{stage}_{self.benchmark}_{variant}_lr{self.learning_rate:g}"
        f"_ag{self.w_ag:g}{what}_seed{self.seed}"
    )


def _split(benchmark: str, data_root: str) -> dict[str, dict]:
  with open(os.path.join(data_root, benchmark, "splits", SPLIT_FILES[benchmark])) as f:
    return json.load(f)


def num_folds(benchmark: str, data_root: str) -> int:
  """MAX_FOLDS, or the fewest train videos of a group of the split file (at least 2)."""
  sizes = [len(v["train"]) for v in _split(benchmark, data_root).values()]
  return max(2, min(MAX_FOLDS, *sizes))


def per_group_runs(
    benchmarks: Sequence[str], seeds: int, choice: dict[str, dict], data_root: str
) -> list[Run]:
  """The full model trained and evaluated on each group of the split file alone."""
  return [
      Run("per_group", b, "full", choice[b]["learning_rate"], choice[b]["w_ag"], k, group=g)
      for b in benchmarks
      if b in choice
      for g in sorted(_split(b, data_root))
      for k in range(seeds)
  ]


def cv_runs(benchmarks: Sequence[str], folds: dict[str, int]) -> list[Run]:
  return [
      Run("cv", b, "full", lr, w, 0, folds[b], k)
      for b in benchmarks
      for lr, w in GRID
      for k in range(folds[b])
  ]


def ablation_runs(
    benchmarks: Sequence[str],
    seeds: int,
    choice: dict[str, dict],
    variants: Sequence[str] = VARIANTS,
) -> list[Run]:
  """Every variant x seed of the benchmarks that have a CV choice."""
  return [
      Run("ablation", b, v, choice[b]["learning_rate"], choice[b]["w_ag"], seed=k)
      for b in benchmarks
      if b in choice
      for v in variants
      for k in range(seeds)
  ]


def weak_to_strong_runs(
    benchmarks: Sequence[str], seeds: int, choice: dict[str, dict], weak: Sequence[str]
) -> list[Run]:
  """NUM_LABELLED x seeds, from labels alone and, for benchmarks in `weak`, weak start."""
  return [
      Run("weak_to_strong", b, v, choice[b]["learning_rate"], choice[b]["w_ag"], k, num_labelled=n)
      for b in benchmarks
      if b in choice
      for v in (("labels", "weak") if b in weak else ("labels",))
      for n in NUM_LABELLED[b]
      for k in range(seeds)
  ]


def run_config(
    run: Run, data_dir: str, weak: dict[str, str] | None = None, words: str = ""
) -> ml_collections.ConfigDict:
  """configs/taohighlight.py for the run (`words`: more config words, e.g. "tiny")."""
  variant = [run.variant] if run.variant in VARIANTS[1:] else []
  config = tao_config.get_config(
      ",".join([f"benchmark={run.benchmark}", *variant] + [w for w in words.split(",") if w])
  )
  config.data_dir, config.seed, config.num_labelled = data_dir, run.seed, run.num_labelled
  config.cv_folds, config.cv_fold, config.group = run.folds, run.fold, run.group
  if run.stage == "per_group":
    config.train.num_steps = PER_GROUP_STEPS
    config.eval.every_steps = config.checkpoint.every_steps = PER_GROUP_STEPS // 2
  config.train.learning_rate = run.learning_rate
  config.loss.w_ag = 0.0 if run.variant == "no_ag" else run.w_ag
  if run.variant == "weak":
    config.weak.workdir = (weak or {})[run.benchmark]
  return config


def finished_results(workdir: str, config: ml_collections.ConfigDict) -> dict | None:
  """The workdir's results.json, None if unfinished; raises if it holds other settings.

  The run's config (results.json's, else config.json) is read in today's key
  names, so runs made before a key was renamed compare as they should.
  """
  results = study_runs.read_json(os.path.join(workdir, workdir_lib.RESULTS_NAME))
  saved = (results or {}).get("config") or study_runs.read_json(
      os.path.join(workdir, workdir_lib.CONFIG_NAME)
  )
  saved = saved and config_checks.upgrade(saved)
  for key in CHECKED_KEYS if saved else ():
    old, new = (
        functools.reduce(lambda c, k: c.get(k) if c else None, key.split("."), x)
        for x in (saved, config)
    )
    if old != new and not (
        isinstance(old, (int, float))
        and isinstance(new, (int, float))
        and np.isclose(old, new, rtol=1e-9, atol=0.0)
    ):
      raise ValueError(
          f"{workdir} holds a run with {key}={old!r}, not {new!r}; use "
          "another --output_dir, or the flags it was run with"
      )
  return results


def train_runs(
    runs: Sequence[Run],
    configs: dict[str, ml_collections.ConfigDict],
    output_dir: str,
    train: bool = True,
) -> dict[str, dict]:
  """Trains (if train) or reuses every run in order, printing progress and an ETA; returns
  {name: results.json less SUMMARY_LEAVES_OUT} of the finished runs."""
  workdir = lambda run: os.path.join(output_dir, "runs", run.name)
  done = {r.name: finished_results(workdir(r), configs[r.name]) for r in runs}  # Refuse
  summaries, spent, steps_done = {}, 0.0, 0  # a changed setting before training.
  for k, run in enumerate(runs):
    config, results = configs[run.name], done[run.name]
    if train:
      print(
          f"[{k + 1}/{len(runs)}] {run.name}: "
          + ("reused" if results else f"training {config.train.num_steps} steps"),
          flush=True,
      )
    elif results is None:
      continue
    if results is None:
      start = time.time()
      run_loop.train_and_evaluate(config, workdir(run))
      # As a later invocation reads it back (JSON types).
      results = study_runs.read_json(os.path.join(workdir(run), workdir_lib.RESULTS_NAME))
      spent, steps_done = spent + time.time() - start, steps_done + config.train.num_steps
      left = sum(configs[r.name].train.num_steps for r in runs[k + 1 :])
      print(
          f"    mAP {100 * results['mAP']:.1f} in {time.time() - start:.0f} s; ETA "
          f"{left * spent / steps_done / 60:.1f} min (less if reused)",
          flush=True,
      )
    summaries[run.name] = {
        key: value for key, value in results.items() if key not in SUMMARY_LEAVES_OUT
    }
  return summaries


def _stats(values: Sequence[float]) -> dict[str, Any]:
  """mean and (population) std; {} without values."""
  return (
      {
          "mean": float(np.mean(values)),
          "std": float(np.std(values)),
          "values": [float(v) for v in values],
      }
      if values
      else {}
  )


def choose(benchmark: str, runs: Sequence[Run], summaries: dict[str, dict]) -> dict:
  """{"grid": mean fold mAP per GRID point, "chosen": the best point, None until every
  fold of every point has finished (a tie goes to the first in GRID order)}."""
  grid = []
  for lr, w in GRID:
    members = [r.name for r in runs if (r.benchmark, r.learning_rate, r.w_ag) == (benchmark, lr, w)]
    values = [summaries[name]["mAP"] for name in members if name in summaries]
    grid.append(
        {
            "learning_rate": lr,
            "w_ag": w,
            "folds": len(values),
            "planned": len(members),
            "mAP": _stats(values),
        }
    )
  best = (
      max(grid, key=lambda p: p["mAP"]["mean"])
      if all(p["planned"] and p["folds"] == p["planned"] for p in grid)
      else None
  )
  return {"grid": grid, "chosen": best and {k: best[k] for k in ("learning_rate", "w_ag")}}


def update_choice(
    benchmarks: Sequence[str], runs: Sequence[Run], configs: dict, output_dir: str
) -> tuple[dict[str, dict], dict[str, dict]]:
  """(CV tables, cv_choice.json): benchmarks whose folds all finished are written to it."""
  summaries = train_runs(runs, configs, output_dir, train=False)
  tables = {b: choose(b, runs, summaries) for b in benchmarks}
  path = os.path.join(output_dir, "cv_choice.json")
  choice = study_runs.read_json(path) or {}
  choice.update({b: t["chosen"] for b, t in tables.items() if t["chosen"]})
  _write(path, json.dumps(choice, indent=1))
  return tables, choice


def rows(runs: Sequence[Run], summaries: dict[str, dict]) -> list[dict[str, Any]]:
  """One row per (benchmark, variant, num_labelled): val mAP mean ± std over the finished
  seeds, the means of IoU_KEYS and random_mAP, and finished / planned runs."""
  keyed: dict[tuple, list[Run]] = {}
  for run in runs:
    keyed.setdefault((run.benchmark, run.variant, run.num_labelled), []).append(run)
  out = []
  for (benchmark, variant, n), members in keyed.items():
    done = [summaries[r.name] for r in members if r.name in summaries]
    out.append(
        {
            "benchmark": benchmark,
            "variant": variant,
            "num_labelled": n,
            "finished": len(done),
            "planned": len(members),
            "mAP": _stats([s["mAP"] for s in done]),
        }
    )
    if done:
      out[-1].update({k: float(np.mean([s["iou"][k] for s in done])) for k in IOU_KEYS})
      out[-1]["random_mAP"] = float(np.mean([s["random_mAP"] for s in done]))
  return out


def per_group_rows(
    runs: Sequence[Run], ablation: Sequence[Run], summaries: dict[str, dict]
) -> list[dict[str, Any]]:
  """Per (benchmark, group): the group's own model's val mAP over seeds, beside the
  all-groups full model's mAP on that group (its per_group result, over seeds)."""
  out = []
  for benchmark, group in dict.fromkeys((r.benchmark, r.group) for r in runs):
    own = [
        summaries[r.name]["mAP"]
        for r in runs
        if (r.benchmark, r.group) == (benchmark, group) and r.name in summaries
    ]
    every = [
        summaries[r.name]["per_group"][group]
        for r in ablation
        if (r.benchmark, r.variant) == (benchmark, "full") and r.name in summaries
    ]
    out.append(
        {
            "benchmark": benchmark,
            "group": group,
            "finished": len(own),
            "planned": sum((r.benchmark, r.group) == (benchmark, group) for r in runs),
            "mAP": _stats(own),
            "all_groups_model": _stats(every),
        }
    )
  return out


def _cell(row: dict, key: str = "mAP") -> str:
  stats, runs = row[key], f" ({row['finished']}/{row['planned']})"
  return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}{runs}" if stats else "missing"


def _table(title: str, *columns: str) -> list[str]:
  return ["", f"## {title}", "", f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]


def markdown(report: dict[str, Any]) -> str:
  """The report's tables; (k/n): k of the n planned runs finished."""
  settings = report["settings"]
  lines = [
      f"# Supervised TaoHighlight ({report['date']})",
      "",
      f"`{report['command']}`",
      "",
      f"{settings['num_finished']} of {settings['num_planned']} runs finished.",
      *[f"- {s}" for s in report["skipped"]],
  ]
  lines += _table(
      "Hyper-parameters: k-fold CV inside the train split (seed 0, never val)",
      "benchmark",
      "learning rate",
      "w_ag",
      "mean fold mAP (folds)",
      "",
  )
  for b, table in report["cv"].items():
    for p in table["grid"]:
      chosen = table["chosen"] == {k: p[k] for k in ("learning_rate", "w_ag")}
      lines.append(
          f"| {b} | {p['learning_rate']:g} | {p['w_ag']:g} | "
          f"{_cell(dict(p, finished=p['folds']))} | {'**chosen**' * chosen} |"
      )
  lines += _table(
      "Ablation (val; mAP mean ± std over seeds, IoU: means)",
      "benchmark",
      "model",
      "val mAP",
      "mean IoU",
      "IoU >= 0.5",
      "IoU >= 0.7",
  )
  for b in settings["benchmarks"]:
    lines += [
        f"| {b} | *{a[0]}: {a[1]} (published)* | "
        f"*{a[2 if b == 'youtube_highlights' else 3]:.1f}* | | | |"
        for a in ANCHORS
    ]
    ablation = [r for r in report["ablation"] if r["benchmark"] == b]
    for r in ablation:
      label = LABELS.get(f"{r['variant']}_{SHORT[b]}", LABELS[r["variant"]])
      iou = " | ".join(f"{r[k]:.3f}" if k in r else "–" for k in IOU_KEYS)
      lines.append(f"| {b} | {label} | {_cell(r)} | {iou} |")
    randoms = [r["random_mAP"] for r in ablation if "random_mAP" in r]
    if randoms:
      lines.append(f"| {b} | random scores | {100 * np.mean(randoms):.1f} | | | |")
  lines += _table(
      "Weak to strong (val mAP against labelled train videos per group)",
      "benchmark",
      "labelled per group",
      "labels only",
      "+ weak start (LIM f)",
  )
  found = {(r["benchmark"], r["variant"], r["num_labelled"]): r for r in report["weak_to_strong"]}
  for b, n in dict.fromkeys((b, n) for b, _, n in found):  # Rows: (benchmark, labelled).
    cells = [_cell(found[b, v, n]) if (b, v, n) in found else "skipped" for v in ("labels", "weak")]
    lines.append(f"| {b} | {n or 'all'} | {' | '.join(cells)} |")
  lines += _table(
      f"Per group: one model per category / domain ({PER_GROUP_STEPS} steps) "
      "against the all-groups model on that group (val mAP)",
      "benchmark",
      "group",
      "own model",
      "all-groups model (ablation's full)",
  )
  for r in report["per_group"]:
    every = r["all_groups_model"]
    lines.append(
        f"| {r['benchmark']} | {r['group']} | {_cell(r)} | "
        + (f"{100 * every['mean']:.1f} ± {100 * every['std']:.1f} |" if every else "missing |")
    )
  return "\n".join(lines) + "\n"


def plot(weak_to_strong: Sequence[dict], path: str) -> str:
  """Writes the weak-to-strong curves (mean ± std over seeds) to `path`; says what it did."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    from matplotlib import figure  # pylint: disable=g-import-not-at-top
  except ImportError:
    return "matplotlib is not installed in the venv: no weak_to_strong plot"
  benchmarks = list(dict.fromkeys(r["benchmark"] for r in weak_to_strong if r["mAP"]))
  if not benchmarks:
    return "no finished weak_to_strong run: no plot"
  fig = figure.Figure(figsize=(5 * len(benchmarks), 3.5), layout="tight")
  axes = fig.subplots(1, len(benchmarks), squeeze=False)
  for ax, b in zip(axes[0], benchmarks):
    ns = NUM_LABELLED[b]
    for variant in ("labels", "weak"):
      points = [
          (ns.index(r["num_labelled"]), 100 * r["mAP"]["mean"], 100 * r["mAP"]["std"])
          for r in weak_to_strong
          if (r["benchmark"], r["variant"]) == (b, variant) and r["mAP"]
      ]
      if points:
        ax.errorbar(*zip(*points), marker="o", capsize=3, label=variant)
    ax.set_xticks(range(len(ns)), [str(n or "all") for n in ns])
    ax.set(title=b, xlabel="labelled train videos per group", ylabel="val mAP")
    ax.legend()
  fig.savefig(path, dpi=120)
  return f"wrote {path}"


def _write(path: str, text: str) -> None:
  """Atomic: a worker never reads another's half-written file."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  files.write_text(path, text)


def run_stages(
    benchmarks: Sequence[str],
    stages: Sequence[str],
    seeds: int,
    data_dir: str,
    output_dir: str,
    weak: dict[str, str],
    worker: tuple[int, int] = (0, 1),
    train_now: bool = True,
) -> tuple[dict[str, list[Run]], dict, list[str]]:
  """Trains worker k/n's runs k, k+n, ... of each stage in STAGES order; returns (the
  planned runs per stage, their configs by name, why rows were skipped)."""
  skipped = [
      f"weak_to_strong {b}: no --weak_workdir_{SHORT[b]}, so no weak-start rows"
      for b in benchmarks
      if b not in weak and "weak_to_strong" in stages
  ]
  print("\n".join(skipped), flush=True)
  root = tao_config.get_config().data_root
  cv = cv_runs(benchmarks, {b: num_folds(b, root) for b in benchmarks})
  configs = {r.name: run_config(r, data_dir) for r in cv}
  planned, taken = {}, set()
  for stage in (s for s in STAGES if s in stages):
    runs = cv
    if stage != "cv":
      choice = update_choice(benchmarks, cv, configs, output_dir)[1]
      while train_now and worker[1] > 1 and "cv" in stages and set(benchmarks) - set(choice):
        print("waiting for the other workers' CV runs", flush=True)  # They train them.
        time.sleep(60)
        choice = update_choice(benchmarks, cv, configs, output_dir)[1]
      skipped += [
          f"{stage} {b}: no CV choice yet (run --stage=cv first)"
          for b in benchmarks
          if b not in choice
      ]
      runs = (
          ablation_runs(benchmarks, seeds, choice)
          if stage == "ablation"
          else per_group_runs(benchmarks, seeds, choice, root)
          if stage == "per_group"
          else weak_to_strong_runs(benchmarks, seeds, choice, list(weak))
      )
    configs.update({r.name: run_config(r, data_dir, weak) for r in runs})
    planned[stage] = runs
    fresh = [r for r in runs if r.name not in taken]  # A shared run is the first stage's.
    taken |= {r.name for r in runs}
    if train_now:
      mine = fresh[worker[0] :: worker[1]]
      print(f"{stage}: {len(mine)} of {len(fresh)} runs into {output_dir}/runs", flush=True)
      train_runs(mine, configs, output_dir)
  return planned, configs, skipped


def make_report(
    planned: dict[str, list[Run]],
    configs: dict,
    skipped: list[str],
    output_dir: str,
    settings: dict,
) -> dict[str, Any]:
  """Reports the finished runs; writes taohighlight.{md,json} and weak_to_strong.png."""
  everything = list({r.name: r for runs in planned.values() for r in runs}.values())
  summaries = train_runs(everything, configs, output_dir, train=False)
  report = {
      "command": " ".join(["python -m experiments.supervised"] + sys.argv[1:]),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "settings": dict(
          settings,
          grid=GRID,
          variants=VARIANTS,
          num_labelled=NUM_LABELLED,
          num_planned=len(everything),
          num_finished=len(summaries),
          cv_choice=study_runs.read_json(os.path.join(output_dir, "cv_choice.json")),
      ),
      "cv": (
          update_choice(settings["benchmarks"], planned["cv"], configs, output_dir)[0]
          if "cv" in planned
          else {}
      ),
      "ablation": rows(planned.get("ablation", []), summaries),
      "weak_to_strong": rows(planned.get("weak_to_strong", []), summaries),
      "per_group": per_group_rows(
          planned.get("per_group", []), planned.get("ablation", []), summaries
      ),
      "skipped": skipped,
      "anchors": ANCHORS,
      "runs": summaries,
      "missing": [r.name for r in everything if r.name not in summaries],
  }
  report["plot"] = plot(report["weak_to_strong"], os.path.join(output_dir, "weak_to_strong.png"))
  _write(os.path.join(output_dir, "taohighlight.json"), json.dumps(report, indent=1))
  _write(os.path.join(output_dir, "taohighlight.md"), markdown(report))
  return report


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  out, worker = FLAGS.output_dir, tuple(int(x) for x in FLAGS.worker.split("/"))
  weak = {b: w for b, s in SHORT.items() if (w := FLAGS[f"weak_workdir_{s}"].value)}
  bad = (
      (set(FLAGS.benchmarks) - set(SHORT))
      | (set(FLAGS.stage) - set(STAGES))
      | {w for w in weak.values() if not os.path.isdir(w)}
  )
  if bad or len(worker) != 2 or not 0 <= worker[0] < worker[1]:
    raise app.UsageError(
        f"unknown benchmarks or stages, missing weak workdirs {sorted(bad)}, "
        f"or --worker={FLAGS.worker} is not k/n with 0 <= k < n"
    )
  jax.config.update("jax_compilation_cache_dir", os.path.abspath(os.path.join(out, "jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  planned, configs, skipped = run_stages(
      FLAGS.benchmarks,
      FLAGS.stage,
      FLAGS.seeds,
      FLAGS.data_dir,
      out,
      weak,
      worker,
      train_now=not FLAGS.report_only,
  )
  report = make_report(
      planned,
      configs,
      skipped,
      out,
      {
          "benchmarks": FLAGS.benchmarks,
          "stages": FLAGS.stage,
          "seeds": FLAGS.seeds,
          "weak_workdirs": weak,
          "num_steps": tao_config.get_config().train.num_steps,
      },
  )
  print(markdown(report) + report["plot"])


if __name__ == "__main__":
  flags.DEFINE_string("output_dir", "/tmp/hl_jax_ablation/supervised", "Runs and report.")
  flags.DEFINE_string("data_dir", "/tmp/hl_jax_ablation/tfds", "TFDS data_dir of all runs.")
  flags.DEFINE_list("benchmarks", list(SHORT), f"Of {list(SHORT)}.")
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 of the ablation and weak_to_strong runs.")
  flags.DEFINE_list("stage", list(STAGES), f"Of {list(STAGES)}; run in that order.")
  flags.DEFINE_string("weak_workdir_tvsum", "", "Less-is-More workdir fed on TVSum.")
  flags.DEFINE_string("weak_workdir_yth", "", "Less-is-More workdir fed on YTH.")
  flags.DEFINE_string("worker", "0/1", "k/n: train runs k, k+n, ... of each stage's list.")
  flags.DEFINE_bool("report_only", False, "Train nothing; report the finished runs.")
  app.run(main)
