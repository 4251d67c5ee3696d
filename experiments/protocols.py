r"""Supervised highlight detection under two protocols: ours, and the one published numbers use.

  python -m experiments.protocols --output_dir=/tmp/hl_jax_ablation/protocols \
      --data_dir=/tmp/hl_jax_ablation/tfds

Models (MODELS): TaoHighlight (configs/taohighlight.py; L_ag weight from the
CV inside the train split of RESULTS.md's TaoHighlight section, TAO_W_AG) and
two plain saliency scorers with the same inputs, targets and evaluation
(configs/saliency_baseline.py: a per-clip MLP and a small transformer encoder
over the clip sequence, on the I3D rgb+flow + PANN audio features). All are
trained with UMT's recipe where it is a number: Adam (optax.adamw, decoupled)
lr 1e-3, weight decay 1e-4; YouTube Highlights batch 4, TVSum batch 1
(PUBLISHED); saliency BCE on match > 0 (YTH) and on (sum of the 20 annotator
scores - 20) / 80 (TVSum; hl_jax/taohighlight/targets.py).

Stages (--stage, in order), per model and benchmark:
1. cv: the training length, chosen without the val split. One model for all
   groups on fold 0 of CV_FOLDS of the train split (stratified by group,
   seed 0), evaluated on the other fold every `cv_eval_epochs` epochs, trained
   in doubling chunks (resumed) until the fold mAP stops improving
   (`plateau`: no evaluation beats the earliest one within PLATEAU_TOL of the
   best for as long again) or the published epochs are reached; the length
   is the plateau's epoch or the published one, whichever is cheaper
   (cv_length.json says which).
2. all: protocol (a), ours: one model for all groups, that length, the last
   checkpoint, evaluated once on val; seeds 0..N-1.
3. group: one model per category / domain for that many epochs of its own
   videos, evaluated on its val videos every ~1/GROUP_EVALS of the run.
   Protocol (b), published: per group the best of those evaluations
   (`select_published`): SELECTION ON THE TEST SPLIT (val is the test split).
   Its last evaluation (`select_last`) is also reported: per-group training
   without selection.
4. long: the published recipe's own length for the (model, benchmark) pairs
   of --long (default: the MLP on TVSum, 500 epochs), one model per group
   evaluated on val after every epoch as UMT does; reported as protocol (b) at
   the published length, beside (b) at the CV length. It shows what hundreds
   of selections on a 1-video test split add.

Runs: <output_dir>/runs/<name>, `run_loop.train_and_evaluate`; a finished run
is reused, an interrupted one resumes, a run dir of other settings is refused
(CHECKED_KEYS). Writes <output_dir>/protocols.{md,json}; --report_only trains
nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
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

from benchmarks import harness
from configs import saliency_baseline
from configs import taohighlight as tao_config
from experiments import study_runs
from hl_jax.core import files
from hl_jax.core import run_loop
from hl_jax.data import benchmarks
from hl_jax.taohighlight import inputs

STAGES = ("cv", "all", "group", "long")
MODELS = ("mlp", "taohighlight", "transformer")  # Training order: cheapest first.
BENCHMARKS = ("tvsum", "youtube_highlights")
SHORT = {"tvsum": "tvsum", "youtube_highlights": "yth"}
LABELS = {
    "mlp": "per-clip MLP (baseline)",
    "transformer": "transformer encoder (baseline)",
    "taohighlight": "TaoHighlight",
}
FEATURES = {
    "mlp": "I3D rgb+flow + PANN audio",
    "transformer": "I3D rgb+flow + PANN audio",
    "taohighlight": "I3D rgb+flow; title (TVSum) / PANN audio (YTH) as context",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A benchmark's training recipe.

  Attributes:
    epochs: the published length (UMT).
    batch_size: the published batch (UMT).
    cv_first_epochs: the CV run's first chunk; later chunks double it.
    cv_eval_epochs: the CV run's evaluation period.
  """

  epochs: int
  batch_size: int
  cv_first_epochs: int
  cv_eval_epochs: int


# UMT (TencentARC/UMT configs): YouTube Highlights 100 epochs of batch 4, TVSum
# 500 epochs of batch 1; Adam lr 1e-3, weight decay 1e-4.
PUBLISHED = {
    "tvsum": Recipe(epochs=500, batch_size=1, cv_first_epochs=20, cv_eval_epochs=5),
    "youtube_highlights": Recipe(epochs=100, batch_size=4, cv_first_epochs=8, cv_eval_epochs=2),
}
LEARNING_RATE, WEIGHT_DECAY = 1e-3, 1e-4
# TaoHighlight's L_ag weight, chosen by 2-fold CV inside the train split
# (`python -m experiments.supervised --stage=cv`, RESULTS.md "TaoHighlight with labels").
TAO_W_AG = {"tvsum": 0.1, "youtube_highlights": 1.0}
CV_FOLDS = 2
PLATEAU_TOL = 0.005  # mAP: "stopped improving" = by at most half a point.
GROUP_EVALS = 40  # Evaluations per per-group run (the published protocol: every epoch).
# Stage long's (model, benchmark) pairs. Compute (2 shared CPU cores): the MLP on
# TVSum only (30 runs of 2,000 steps and 500 evaluations); the MLP on YouTube
# Highlights at 100 epochs (18 runs) and the other models are left out.
LONG = ("mlp/tvsum",)
CHECKED_KEYS = (
    "benchmark",
    "seed",
    "group",
    "cv_folds",
    "cv_fold",
    "model.kind",
    "loss.w_ag",
    "loss.w_reg",
    "train.learning_rate",
    "train.weight_decay",
    "train.batch_size",
    "train.pad_per_batch",
    "eval.every_steps",
)
# (method, features, protocol, YTH val mAP, TVSum top-5 mAP; None: not reported).
ANCHORS = (
    ("UMT (CVPR'22)", "I3D + PANN audio", "per group, best val epoch", 74.9, 83.1),
    (
        "UniVTG (ICCV'23), no pretraining",
        "CLIP + SlowFast",
        "per group, best val epoch",
        75.2,
        81.0,
    ),
    ("UniVTG (ICCV'23), pretrained", "CLIP + SlowFast", "per group, best val epoch", 78.6, 84.6),
    ("R2-Tuning (ECCV'24)", "CLIP", "per group, best val epoch", 76.8, 86.3),
    ("QD-DETR (CVPR'23)", "I3D", "per group, best val epoch", None, 85.0),
    ("CG-DETR", "I3D", "per group, best val epoch", None, 86.8),
    ("Joint-VA (ICCV'21)", "audio + visual", "per group", 71.8, 76.3),
    ("MINI-Net (ECCV'20)", "video tags (weak)", "per group, best test checkpoint", 64.4, 73.2),
    ("LIM (CVPR'19, LIM-S)", "duration (weak)", "per group", 56.4, 56.3),
)

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Run:
  stage: str  # STAGES
  model: str  # MODELS
  benchmark: str
  epochs: int = 0  # all, group, long; the cv run grows in chunks.
  seed: int = 0
  group: str = ""

  @property
  def name(self) -> str:
    where = f"{self.model}_{SHORT[self.benchmark]}"
    if self.stage == "cv":
      return f"cv_{where}_fold0of{CV_FOLDS}"
    return f"{self.stage}_{where}_{self.group or 'all'}_e{self.epochs}_seed{self.seed}"


def base_config(model: str, benchmark: str, data_dir: str) -> ml_collections.ConfigDict:
  """The model's config with the published recipe (module docstring)."""
  if model == "taohighlight":
    config = tao_config.get_config(f"benchmark={benchmark}")
    config.loss.w_ag = TAO_W_AG[benchmark]
  else:
    config = saliency_baseline.get_config(f"benchmark={benchmark},kind={model}")
  config.data_dir = data_dir
  config.train.batch_size = PUBLISHED[benchmark].batch_size
  config.train.learning_rate, config.train.weight_decay = LEARNING_RATE, WEIGHT_DECAY
  config.train.pad_per_batch = True  # Far less padding on CPU; the same models.
  return config


def steps(epochs: float, num_videos: int, batch_size: int) -> int:
  """Steps of `epochs` passes over `num_videos` in batches of `batch_size` (at least 1)."""
  return max(1, math.ceil(epochs * num_videos / batch_size))


def run_config(
    run: Run, data_dir: str, counts: dict[str, dict[str, int]], cv_epochs: int = 0
) -> ml_collections.ConfigDict:
  """The run's config. counts: {benchmark: {group: train videos, "": all, "cv": fold 0's
  train videos}}; cv_epochs: the cv run's current chunk."""
  config = base_config(run.model, run.benchmark, data_dir)
  batch, recipe = config.train.batch_size, PUBLISHED[run.benchmark]
  config.seed, config.group = run.seed, run.group
  if run.stage == "cv":
    config.cv_folds, config.cv_fold = CV_FOLDS, 0
    n = counts[run.benchmark]["cv"]
    config.train.num_steps = steps(cv_epochs, n, batch)
    config.eval.every_steps = steps(recipe.cv_eval_epochs, n, batch)
    config.checkpoint.every_steps = config.eval.every_steps * 4
  else:
    n = counts[run.benchmark][run.group]
    config.train.num_steps = steps(run.epochs, n, batch)
    # (a) is evaluated once, at the end; (b) every ~1/GROUP_EVALS of the run, or
    # every epoch at the published length.
    every = steps(1 if run.stage == "long" else max(1, run.epochs // GROUP_EVALS), n, batch)
    config.eval.every_steps = 0 if run.stage == "all" else every
    config.checkpoint.every_steps = (
        max(1, config.train.num_steps // 4) if run.stage == "all" else config.train.num_steps
    )
  config.train.log_every = max(1, min(100, config.train.num_steps // 4))
  return config


def train_counts(benchmark: str, data_dir: str) -> dict[str, int]:
  """{group: train videos, "": all of them, "cv": fold 0's training part}."""
  videos = benchmarks.load_benchmark(
      benchmark,
      "train",
      manual_dir=os.path.join(tao_config.get_config().data_root, benchmark),
      data_dir=data_dir or None,
      feature_set="i3d_rgb_flow_audio",
  )
  counts = {"": len(videos), "cv": len(inputs.cv_split(videos, CV_FOLDS, 0)[0])}
  for v in videos:
    counts[v.group] = counts.get(v.group, 0) + 1
  return counts


# ---------------------------------------------------------------- selection


def plateau(curve: Sequence[tuple[float, float]], tol: float = PLATEAU_TOL) -> tuple[float, bool]:
  """(epoch, stopped) of a CV curve [(epoch, fold mAP)] in epoch order.

  epoch: the earliest evaluation within `tol` of the best fold mAP; stopped:
  the curve went on for at least as long again without beating it by more.
  """
  if not curve:
    raise ValueError("plateau: no CV evaluation")
  best = max(m for _, m in curve)
  epoch = next(e for e, m in curve if m >= best - tol)
  return epoch, curve[-1][0] >= 2 * epoch


def cv_curve(
    results: dict[str, Any], num_videos: int, batch_size: int, last_step: int
) -> list[tuple[float, float]]:
  """[(epoch, mAP)] of a CV run's evaluations up to `last_step`; refuses any run that
  was not evaluated on a CV fold of the train split."""
  if not str(results.get("split", "")).startswith("train_cv"):
    raise ValueError(
        f"the training length is chosen on CV folds of the train split only, not on "
        f"split {results.get('split')!r}"
    )
  return [
      (e["step"] * batch_size / num_videos, e["mAP"])
      for e in results["history"]
      if e["step"] <= last_step
  ]


def select_last(results: dict[str, Any]) -> dict[str, Any]:
  """Protocol (a): the last evaluation (the last checkpoint); reads no other."""
  return results["history"][-1] if results.get("history") else results


def select_published(results: dict[str, Any]) -> dict[str, Any]:
  """Protocol (b): the evaluation with the best val mAP (first on ties): selection on
  the test split, as the published per-group numbers are made."""
  history = results.get("history") or [results]
  return max(history, key=lambda e: (e["mAP"], -e["step"]))


# ---------------------------------------------------------------- training


def train(
    workdir: str, config: ml_collections.ConfigDict, label: str, enabled: bool
) -> dict | None:
  """The run's results: reused, or trained now (if enabled), else None."""
  results = study_runs.finished(workdir, config, CHECKED_KEYS)
  if results is None and enabled:
    print(f"{label}: training {config.train.num_steps} steps", flush=True)
    start = time.time()
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "stdout.txt"), "a") as log, contextlib.redirect_stdout(log):
      run_loop.train_and_evaluate(config, workdir)
    results = study_runs.finished(workdir, config, CHECKED_KEYS)
    print(f"    mAP {100 * results['mAP']:.1f} in {time.time() - start:.0f} s", flush=True)
  return results


def choose_length(
    model: str,
    benchmark: str,
    data_dir: str,
    output_dir: str,
    counts: dict[str, dict[str, int]],
    enabled: bool,
) -> dict[str, Any] | None:
  """Stage cv for one model and benchmark: {"epochs", "rule", "curve", ...}, None if unfinished."""
  recipe, run = PUBLISHED[benchmark], Run("cv", model, benchmark)
  workdir = os.path.join(output_dir, "runs", run.name)
  epochs, wall = recipe.cv_first_epochs, 0.0
  while True:
    config = run_config(run, data_dir, counts, epochs)
    results = train(workdir, config, f"{run.name} to epoch {epochs}", enabled)
    if results is None:
      return None
    wall += results.get("wall_s") or 0.0
    # Up to this chunk's end: a rerun replays the same decisions.
    curve = cv_curve(results, counts[benchmark]["cv"], recipe.batch_size, config.train.num_steps)
    best, stopped = plateau(curve)
    if stopped or epochs >= recipe.epochs:
      break
    epochs = min(recipe.epochs, 2 * epochs)
  chosen = math.ceil(best - 1e-9) if stopped else recipe.epochs
  return {
      "epochs": min(chosen, recipe.epochs),
      "rule": "CV plateau" if stopped and chosen < recipe.epochs else "published length",
      "published_epochs": recipe.epochs,
      "cv_epochs_trained": epochs,
      "fold_mAP_at_choice": next(m for e, m in curve if e >= best - 1e-9),
      "best_fold_mAP": max(m for _, m in curve),
      "curve": curve,
      "wall_s_last_chunk": results.get("wall_s"),
  }


def plan(
    models: Sequence[str],
    benches: Sequence[str],
    seeds: int,
    lengths: dict,
    groups: dict,
    long: Sequence[str] = (),
) -> list[Run]:
  """The all and group runs of every (model, benchmark) whose length is chosen, and
  the long runs of the "model/benchmark" pairs in `long`."""
  runs = []
  for model in models:
    for b in benches:
      if (model, b) not in lengths:
        continue
      epochs = lengths[model, b]["epochs"]
      runs += [Run("all", model, b, epochs, k) for k in range(seeds)]
      runs += [Run("group", model, b, epochs, k, g) for g in groups[b] for k in range(seeds)]
      if f"{model}/{b}" in long:
        runs += [
            Run("long", model, b, PUBLISHED[b].epochs, k, g)
            for g in groups[b]
            for k in range(seeds)
        ]
  return runs


# ---------------------------------------------------------------- report


def protocol_rows(runs: Sequence[Run], results: dict[str, dict], seeds: int) -> list[dict]:
  """Per (model, benchmark): per seed and group the (a), per-group-last and (b) mAPs;
  their means over groups per seed; statistics over seeds.

  A seed counts for a per-group protocol only when all its groups finished.
  """
  rows = []
  for model, bench in dict.fromkeys((r.model, r.benchmark) for r in runs):
    mine = [r for r in runs if (r.model, r.benchmark) == (model, bench)]
    groups = sorted({r.group for r in mine if r.stage in ("group", "long")})
    per_seed = {"a": [], "group_last": [], "b": [], "b_long": []}
    per_group = {k: {g: [] for g in groups} for k in per_seed}
    for seed in range(seeds):
      a = next((r for r in mine if r.stage == "all" and r.seed == seed), None)
      if a is not None and a.name in results:
        last = select_last(results[a.name])
        per_seed["a"].append(last["mAP"])
        for g in groups:
          per_group["a"][g].append(last["per_group"][g])
      for stage, selections in (
          ("group", (("group_last", select_last), ("b", select_published))),
          ("long", (("b_long", select_published),)),
      ):
        group_runs = [r for r in mine if r.stage == stage and r.seed == seed]
        if group_runs and all(r.name in results for r in group_runs):
          for key, select in selections:
            values = {r.group: select(results[r.name])["mAP"] for r in group_runs}
            per_seed[key].append(float(np.mean(list(values.values()))))
            for g, v in values.items():
              per_group[key][g].append(v)
    row = {
        "model": model,
        "benchmark": bench,
        "groups": groups,
        **{k: study_runs.seed_stats(v) for k, v in per_seed.items()},
        "per_group": {
            k: {g: study_runs.seed_stats(v) for g, v in d.items()} for k, d in per_group.items()
        },
    }
    if row["b"]:
      row["b_best_seed"] = max(row["b"]["values"])
    if row["b_long"]:
      row["b_long_best_seed"] = max(row["b_long"]["values"])
      row["long_epochs"] = next(r.epochs for r in mine if r.stage == "long")
    if row["a"] and row["b"]:
      row["b_minus_a"] = row["b"]["mean"] - row["a"]["mean"]
      row["group_minus_a"] = row["group_last"]["mean"] - row["a"]["mean"]
      row["b_minus_group"] = row["b"]["mean"] - row["group_last"]["mean"]
    if row["a"] and row["b_long"]:
      row["b_long_minus_a"] = row["b_long"]["mean"] - row["a"]["mean"]
    rows.append(row)
  return rows


def _cell(stats: dict | None) -> str:
  if not stats:
    return "-"
  return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}" + (
      f" ({stats['n']})" if stats["n"] < 3 else ""
  )


def _pts(value: float | None) -> str:
  return "-" if value is None else f"{100 * value:+.1f}"


def markdown(report: dict[str, Any]) -> str:
  """The report's tables (mAP %)."""
  lines = [
      f"# Supervised models under two protocols ({report['date']})",
      "",
      f"`{report['command']}`",
      "",
      f"{report['machine']}. {report['num_finished']} of {report['num_planned']} runs finished "
      f"(beside the CV runs); their wall times sum to {report['total_wall_s'] / 60:.1f} min.",
      "",
      "## Training length: CV inside the train split (never val)",
      "",
      "| model | benchmark | published epochs | CV fold mAP curve up to epoch | best fold mAP | "
      "chosen epochs | rule |",
      "|---|---|---:|---:|---:|---:|---|",
  ]
  for (model, bench), c in report["lengths"].items():
    lines.append(
        f"| {LABELS[model]} | {bench} | {c['published_epochs']} | {c['cv_epochs_trained']} | "
        f"{100 * c['best_fold_mAP']:.1f} | {c['epochs']} | {c['rule']} |"
    )
  for bench in BENCHMARKS:
    rows = [r for r in report["rows"] if r["benchmark"] == bench]
    if not rows:
      continue
    col = 3 if bench == "youtube_highlights" else 4
    lines += [
        "",
        f"## {bench}: mAP (%) under protocol (a) ours and (b) published",
        "",
        "(a): one model for all groups, length by CV inside train, last checkpoint. "
        "Per group, last: one model per group, the same length, last checkpoint (no "
        "selection). (b): one model per group, the best of its val evaluations: "
        "**selection on the test split**. Mean ± std over seeds; best seed: the seed with "
        "the best (b) average.",
        "",
        "| model | features | protocol of the anchor | (a) ours | per group, last | "
        "(b) published | (b) best seed | (b) - (a) | of which per group | of which "
        "selection on val |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in ANCHORS:
      if a[col] is not None:
        lines.append(f"| *{a[0]}* | *{a[1]}* | *{a[2]}* | | | *{a[col]:.1f}* | | | | |")
    for r in rows:
      best = f"{100 * r['b_best_seed']:.1f}" if "b_best_seed" in r else "-"
      lines.append(
          f"| {LABELS[r['model']]} | {FEATURES[r['model']]} | | {_cell(r['a'])} | "
          f"{_cell(r['group_last'])} | {_cell(r['b'])} | {best} | "
          f"{_pts(r.get('b_minus_a'))} | {_pts(r.get('group_minus_a'))} | "
          f"{_pts(r.get('b_minus_group'))} |"
      )
      if r["b_long"]:
        lines.append(
            f"| {LABELS[r['model']]}, (b) at the published length ({r['long_epochs']} epochs, "
            f"evaluated every epoch) | {FEATURES[r['model']]} | | {_cell(r['a'])} | - | "
            f"{_cell(r['b_long'])} | {100 * r['b_long_best_seed']:.1f} | "
            f"{_pts(r.get('b_long_minus_a'))} | - | - |"
        )
    groups = rows[0]["groups"]
    lines += [
        "",
        f"### {bench} per group (mean ± std over seeds)",
        "",
        "| model | protocol | " + " | ".join(groups) + " | avg |",
        "|---|---|" + "---:|" * (len(groups) + 1),
    ]
    for r in rows:
      names = {"a": "(a) ours", "group_last": "per group, last", "b": "(b) published"}
      if r["b_long"]:
        names["b_long"] = f"(b) published, {r['long_epochs']} epochs"
      for key, name in names.items():
        cells = [_cell(r["per_group"][key].get(g)) for g in groups]
        lines.append(
            f"| {LABELS[r['model']]} | {name} | " + " | ".join(cells) + f" | {_cell(r[key])} |"
        )
  lines += [
      "",
      "## Cost (wall time of the runs, minutes)",
      "",
      "| model | benchmark | stage | runs | minutes |",
      "|---|---|---|---:|---:|",
  ]
  for c in report["cost"]:
    lines.append(
        f"| {LABELS[c['model']]} | {c['benchmark']} | {c['stage']} | {c['runs']} | "
        f"{c['wall_s'] / 60:.1f} |"
    )
  return "\n".join(lines) + "\n"


def cost(runs: Sequence[Run], results: dict[str, dict], lengths: dict) -> list[dict]:
  """Wall time per (model, benchmark, stage); the cv stage's last chunk only."""
  out = []
  for (model, bench), c in lengths.items():
    out.append(
        {
            "model": model,
            "benchmark": bench,
            "stage": "cv (last chunk)",
            "runs": 1,
            "wall_s": c.get("wall_s_last_chunk") or 0.0,
        }
    )
  for key in dict.fromkeys((r.model, r.benchmark, r.stage) for r in runs):
    done = [
        results[r.name]
        for r in runs
        if (r.model, r.benchmark, r.stage) == key and r.name in results
    ]
    out.append(
        {
            "model": key[0],
            "benchmark": key[1],
            "stage": key[2],
            "runs": len(done),
            "wall_s": float(sum(d.get("wall_s") or 0.0 for d in done)),
        }
    )
  return out


def run_all(
    models: Sequence[str],
    benches: Sequence[str],
    stages: Sequence[str],
    seeds: int,
    data_dir: str,
    output_dir: str,
    enabled: bool = True,
    long: Sequence[str] = LONG,
) -> dict[str, Any]:
  """Every stage, model by model (MODELS order); writes and returns the report."""
  counts = {b: train_counts(b, data_dir) for b in benches}
  groups = {b: sorted(k for k in counts[b] if k not in ("", "cv")) for b in benches}
  lengths_path = os.path.join(output_dir, "cv_length.json")
  saved = study_runs.read_json(lengths_path) or {}
  lengths, runs, results = {}, [], {}
  for model in models:
    for b in benches:
      key = f"{model}/{b}"
      if key not in saved and "cv" in stages:
        chosen = choose_length(model, b, data_dir, output_dir, counts, enabled)
        if chosen is not None:
          saved[key] = chosen
          os.makedirs(output_dir, exist_ok=True)
          files.write_json(lengths_path, saved)
      if key in saved:
        lengths[model, b] = saved[key]
      mine = plan([model], [b], seeds, lengths, groups, long)
      mine = [r for r in mine if r.stage in stages]
      for run in mine:
        config = run_config(run, data_dir, counts)
        workdir = os.path.join(output_dir, "runs", run.name)
        done = train(workdir, config, run.name, enabled)
        if done is not None:
          results[run.name] = done
      runs += mine
  report = {
      "command": " ".join(["python -m experiments.protocols"] + sys.argv[1:]),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "machine": harness.describe_machine(harness.machine()),
      "settings": {
          "published": {b: dataclasses.asdict(r) for b, r in PUBLISHED.items()},
          "learning_rate": LEARNING_RATE,
          "weight_decay": WEIGHT_DECAY,
          "tao_w_ag": TAO_W_AG,
          "plateau_tol": PLATEAU_TOL,
          "group_evals": GROUP_EVALS,
          "long": list(long),
          "seeds": seeds,
          "train_videos": counts,
      },
      "lengths": lengths,
      "rows": protocol_rows(runs, results, seeds),
      "cost": cost(runs, results, lengths),
      "num_planned": len(runs),
      "num_finished": len(results),
      "total_wall_s": float(sum(r.get("wall_s") or 0.0 for r in results.values())),
      "anchors": ANCHORS,
      "runs": {
          name: {k: v for k, v in r.items() if k not in ("evaluation", "config")}
          for name, r in results.items()
      },
      "missing": [r.name for r in runs if r.name not in results],
  }
  json_report = dict(report, lengths={f"{m}/{b}": c for (m, b), c in lengths.items()})
  os.makedirs(output_dir, exist_ok=True)
  files.write_json(os.path.join(output_dir, "protocols.json"), json_report)
  files.write_text(os.path.join(output_dir, "protocols.md"), markdown(report))
  return report


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  bad = (
      (set(FLAGS.models) - set(MODELS))
      | (set(FLAGS.benchmarks) - set(BENCHMARKS))
      | (set(FLAGS.stage) - set(STAGES))
      | (set(FLAGS.long) - {f"{m}/{b}" for m in MODELS for b in BENCHMARKS})
  )
  if bad or FLAGS.seeds < 1:
    raise app.UsageError(
        f"unknown models, benchmarks, stages or --long pairs {sorted(bad)}, or --seeds < 1"
    )
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  out = os.path.abspath(FLAGS.output_dir)
  jax.config.update("jax_compilation_cache_dir", os.path.join(out, "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  models = [m for m in MODELS if m in FLAGS.models]
  report = run_all(
      models,
      FLAGS.benchmarks,
      FLAGS.stage,
      FLAGS.seeds,
      FLAGS.data_dir,
      out,
      not FLAGS.report_only,
      FLAGS.long,
  )
  print(markdown(report))


if __name__ == "__main__":
  flags.DEFINE_string("output_dir", "/tmp/hl_jax_ablation/protocols", "Runs and report.")
  flags.DEFINE_string("data_dir", "/tmp/hl_jax_ablation/tfds", "TFDS data_dir of all runs.")
  flags.DEFINE_list("models", list(MODELS), f"Of {list(MODELS)}.")
  flags.DEFINE_list("benchmarks", list(BENCHMARKS), f"Of {list(BENCHMARKS)}.")
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 of the all and group runs.")
  flags.DEFINE_list("stage", list(STAGES), f"Of {list(STAGES)}; run in that order.")
  flags.DEFINE_bool("report_only", False, "Train nothing; report the finished runs.")
  flags.DEFINE_list("long", list(LONG), "model/benchmark pairs of stage long.")
  app.run(main)
