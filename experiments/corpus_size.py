r"""Less-is-More's corpus-size study: mAP against the size of the weakly labelled corpus.

  python -m experiments.corpus_size --output_dir=/tmp/hl_jax_ablation/corpus_size \
      --data_dir=/tmp/hl_jax_ablation/tfds

Ours-A joint (configs/joint.py, train.weighting softmax: the paper's objective)
and Ranking-D (ranking_d), METHODS, seeds 0..N-1, on growing corpora:

1. real: configs/joint.py:corpus=youtube_highlights (the YouTube Highlights
   train videos, duration-bucketed, unlabelled) at corpus.train_fraction in
   REAL_FRACTIONS: nested, stratified shares (hl_jax.data.corpora.NestedFraction:
   per domain x duration bucket the first videos in sha1 order, so each smaller
   corpus is inside the larger). REAL_STEPS steps of the config's 128 groups x
   8 pairs at every size; evaluated once at the end on YouTube Highlights val
   and TVSum val.
2. synthetic: one synthetic corpus of SYNTHETIC_VIDEOS training videos (a custom
   DurationCorpusConfig, SYNTHETIC_CORPUS, built into --data_dir by a child
   process; its labelled val split is the evaluation at every size), at
   SYNTHETIC_SIZES videos through the same nested shares. SYNTHETIC_STEPS steps
   of 256 x 8 pairs at every size, and LONG_STEPS at the two largest, so that
   data and compute can be told apart.

Memory stays bounded whatever the corpus size: the trainer keeps
input.table_segments rows resident (131072 x 128 float32 = 64 MiB here) and
reads a new window of videos from Grain every input.refill_every_steps steps
(REFILL_EVERY at every size; a corpus that fits in one window is never
re-read). The peak RSS of each run (sampled from /proc/self/status while it
trains) is in the table.

Every run is `run_loop.train_and_evaluate` in <output_dir>/runs/<name>; a
finished run is reused, an interrupted one resumes, a run dir of other
settings (CHECKED_KEYS) is refused. Invocations may run side by side on one
--output_dir (one per core): each skips the runs another holds. No setting or
checkpoint is chosen on an
evaluation split: the numbers are the last evaluation. Writes
<output_dir>/corpus_size.{md,json,png}; --report_only trains nothing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import multiprocessing
import os
import sys
import threading
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from benchmarks import harness
from configs import joint
from experiments import study_runs
from hl_jax.core import files
from hl_jax.core import run_loop
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import corpora

STAGES = ("real", "synthetic")
METHODS = {"joint": "softmax", "ranking_d": "ranking_d"}  # run name -> train.weighting
LABELS = {"joint": "Ours-A joint (f+h)", "ranking_d": "Ranking-D"}
REAL_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
# Compute (2 shared CPU cores): 300 steps of 128 x 8 pairs at every share, half the
# config's 600 (the same budget at every size).
REAL_STEPS = 300
SYNTHETIC_VIDEOS = 100_000
SYNTHETIC_CORPUS = f"synthetic_n{SYNTHETIC_VIDEOS}"
SYNTHETIC_SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
# Compute: 300 steps of 2,048 pairs at every size (the default synthetic run has
# 2,000); twice that at the two largest sizes.
SYNTHETIC_STEPS = 300
LONG_STEPS = 600
# A new window every 30 steps: a 300-step run reads 10 windows (of ~12k videos,
# ~8k of them short or long), so the largest corpus is streamed about once.
REFILL_EVERY = 30
BENCHMARK_TITLES = {
    "youtube_highlights": "YouTube Highlights val mAP",
    "tvsum": "TVSum val top-5 mAP",
    "corpus": "synthetic val mAP",
}
CHECKED_KEYS = (
    "seed",
    "corpus.builder_config",
    "corpus.train_fraction",
    "train.weighting",
    "train.num_steps",
    "train.num_groups",
    "input.refill_every_steps",
    "input.table_segments",
)
# Published anchors, Xiong et al., "Less is More", CVPR 2019: LIM-S over domains /
# categories (duration only, ~10M Instagram videos, other features).
ANCHORS = {"youtube_highlights": 56.4, "tvsum": 56.3}

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Run:
  corpus: str  # "real" | "synthetic"
  method: str  # METHODS
  fraction: float  # corpus.train_fraction
  steps: int
  seed: int

  @property
  def name(self) -> str:
    return f"{self.corpus}_{self.method}_f{self.fraction:g}_{self.steps}steps_seed{self.seed}"


def plan(stages: Sequence[str], seeds: int) -> list[Run]:
  """Every run of the stages, smallest corpus first within a stage; the longer
  synthetic budget last."""
  runs = []
  if "real" in stages:
    runs += [
        Run("real", m, f, REAL_STEPS, k)
        for f in REAL_FRACTIONS
        for m in METHODS
        for k in range(seeds)
    ]
  if "synthetic" in stages:
    sizes = [(n, SYNTHETIC_STEPS) for n in SYNTHETIC_SIZES]
    sizes += [(n, LONG_STEPS) for n in SYNTHETIC_SIZES[-2:]]
    runs += [
        Run("synthetic", m, n / SYNTHETIC_VIDEOS, steps, k)
        for n, steps in sizes
        for m in METHODS
        for k in range(seeds)
    ]
  return runs


def run_config(run: Run, data_dir: str) -> ml_collections.ConfigDict:
  """configs/joint.py for the run (see the module docstring)."""
  if run.corpus == "real":
    config = joint.get_config("corpus=youtube_highlights")
  else:
    config = joint.get_config()
    config.corpus.builder_config = SYNTHETIC_CORPUS
    config.input.refill_every_steps = REFILL_EVERY
    config.checkpoint.every_steps = min(run.steps, 500)
  config.data_dir = data_dir
  config.train.weighting = METHODS[run.method]
  config.corpus.train_fraction = run.fraction
  config.train.num_steps = run.steps
  config.seed = config.input.shuffle_seed = run.seed
  config.eval.every_steps = 0  # Once, at the end: nothing is selected on evaluations.
  return config


def synthetic_corpus_config() -> Any:
  """The custom DurationCorpusConfig of the synthetic stage (the default model, 128-d)."""
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top
  from tfds_builders.duration_corpus import synthetic  # pylint: disable=g-import-not-at-top

  return dcb.DurationCorpusConfig(
      name=SYNTHETIC_CORPUS,
      synthetic=synthetic.SyntheticParams(num_train=SYNTHETIC_VIDEOS),
      description=f"The synthetic model with {SYNTHETIC_VIDEOS} training videos (corpus size).",
  )


def _build(data_dir: str) -> None:
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top

  dcb.get_builder(synthetic_corpus_config(), data_dir=data_dir)


def build_synthetic(data_dir: str) -> None:
  """Builds SYNTHETIC_CORPUS into data_dir (once) in a child process, so that the
  generator's arrays (GBs at 100k videos) do not count in the runs' peak RSS."""
  if os.path.isdir(os.path.join(data_dir, "duration_corpus", SYNTHETIC_CORPUS)):
    return
  print(f"building duration_corpus/{SYNTHETIC_CORPUS} into {data_dir}", flush=True)
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
    pool.submit(_build, data_dir).result()


def corpus_sizes(runs: Sequence[Run], data_dir: str) -> dict[str, int]:
  """{run name: its training videos} from the corpora's strata (no training)."""
  out, strata = {}, {}
  for run in runs:
    if run.corpus not in strata:
      config = run_config(run, data_dir)
      config.corpus.train_fraction = 1.0
      strata[run.corpus], _ = corpora.sha1_strata(corpora.load_corpus(config).train_source)
    out[run.name] = sum(
        len(m) if run.fraction >= 1 else max(1, int(run.fraction * len(m) + 0.5))
        for m in strata[run.corpus].values()
    )
  return out


class PeakRss:
  """The process's peak resident set size while the block runs (MiB), sampled."""

  def __init__(self, every_s: float = 0.2):
    self.peak_mib, self._every, self._stop = 0.0, every_s, threading.Event()

  def _sample(self) -> None:
    while True:
      with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
      self.peak_mib = max(self.peak_mib, rss / 1024)
      if self._stop.wait(self._every):
        return

  def __enter__(self) -> PeakRss:
    self._thread = threading.Thread(target=self._sample, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc: Any) -> None:
    self._stop.set()
    self._thread.join()


def summarize(results: dict, workdir: str, videos: int) -> dict:
  """One run's evaluations (mAP, per group) and costs."""
  rows = []
  with contextlib.suppress(OSError):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f if '"train/pairs_per_second"' in line]
  cost = study_runs.read_json(os.path.join(workdir, "cost.json")) or {}
  return {
      "eval": {
          name: {
              "mAP": results[name]["model"]["mAP"],
              "per_group": results[name]["model"]["per_group"],
          }
          for name in BENCHMARK_TITLES
          if name in results
      },
      "videos": videos,
      "wall_s": results.get("wall_s"),
      # Training steps only (metrics.jsonl's log intervals), then the whole run.
      "train_pairs_per_s": float(np.mean([r["train/pairs_per_second"] for r in rows]))
      if rows
      else None,
      "peak_rss_mib": cost.get("peak_rss_mib"),
  }


def train_runs(runs: Sequence[Run], data_dir: str, output_dir: str, train: bool) -> dict:
  """Trains (if train) or reuses every run in order; {name: summary} of the finished."""
  configs = {r.name: run_config(r, data_dir) for r in runs}
  workdir = lambda r: os.path.join(output_dir, "runs", r.name)
  for r in runs:  # Refuse changed settings before training anything.
    study_runs.finished(workdir(r), configs[r.name], CHECKED_KEYS, {"corpus.train_fraction": 1.0})
  sizes = corpus_sizes(runs, data_dir)
  summaries = {}
  for k, run in enumerate(runs):
    config, results = configs[run.name], study_runs.finished(
        workdir(run), configs[run.name], CHECKED_KEYS, {"corpus.train_fraction": 1.0}
    )
    if results is None and train:
      print(f"[{k + 1}/{len(runs)}] {run.name}: training {run.steps} steps", flush=True)
      os.makedirs(workdir(run), exist_ok=True)
      try:
        with PeakRss() as rss:
          with open(os.path.join(workdir(run), "stdout.txt"), "a") as log:
            with contextlib.redirect_stdout(log):
              run_loop.train_and_evaluate(config, workdir(run))
      except workdir_lib.WorkdirLockedError:  # Another invocation trains it: take the next.
        print("    skipped: another process holds its workdir", flush=True)
        continue
      files.write_json(os.path.join(workdir(run), "cost.json"), {"peak_rss_mib": rss.peak_mib})
      results = study_runs.finished(
          workdir(run), config, CHECKED_KEYS, {"corpus.train_fraction": 1.0}
      )
      print(f"    {results['wall_s']:.0f} s, peak RSS {rss.peak_mib:.0f} MiB", flush=True)
    if results is not None:
      summaries[run.name] = dict(
          summarize(results, workdir(run), sizes[run.name]), **dataclasses.asdict(run)
      )
  return summaries


def table(runs: Sequence[Run], summaries: dict) -> list[dict]:
  """One row per (corpus, method, fraction, steps): mAP per benchmark over seeds, costs."""
  keyed: dict[tuple, list[Run]] = {}
  for run in runs:
    keyed.setdefault((run.corpus, run.method, run.fraction, run.steps), []).append(run)
  rows = []
  for (corpus, method, fraction, steps), members in keyed.items():
    done = [summaries[r.name] for r in members if r.name in summaries]
    row = {
        "corpus": corpus,
        "method": method,
        "fraction": fraction,
        "steps": steps,
        "finished": len(done),
        "planned": len(members),
    }
    if done:
      row["videos"] = done[0]["videos"]
      row["mAP"] = {
          b: study_runs.seed_stats([s["eval"][b]["mAP"] for s in done]) for b in done[0]["eval"]
      }
      for key in ("wall_s", "train_pairs_per_s", "peak_rss_mib"):
        values = [s[key] for s in done if s.get(key) is not None]
        row[key] = (
            float(np.max(values) if key == "peak_rss_mib" else np.mean(values)) if values else None
        )
    rows.append(row)
  return rows


def _cell(stats: dict | None) -> str:
  if not stats:
    return "-"
  return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def markdown(report: dict) -> str:
  """The report's tables, one per corpus."""
  lines = [
      f"# Corpus size ({report['date']})",
      "",
      f"`{report['command']}`",
      "",
      f"{report['machine']}. {report['num_finished']} of {report['num_planned']} runs finished; "
      f"their wall times sum to {report['total_wall_s'] / 60:.1f} min.",
  ]
  for corpus in STAGES:
    rows = [r for r in report["rows"] if r["corpus"] == corpus]
    if not rows:
      continue
    benches = list(dict.fromkeys(b for r in rows for b in r.get("mAP", {})))
    lines += [
        "",
        f"## {corpus} corpus (mAP %, mean ± std over seeds; last evaluation)",
        "",
        "| method | share | training videos | steps | "
        + " | ".join(BENCHMARK_TITLES[b] for b in benches)
        + " | seeds | wall s / run | train pairs/s | peak RSS MiB |",
        "|---|---:|---:|---:|" + "---:|" * (len(benches) + 4),
    ]
    for r in rows:
      cells = [_cell(r.get("mAP", {}).get(b)) for b in benches]
      cost = [
          f"{r[k]:.0f}" if r.get(k) is not None else "-"
          for k in ("wall_s", "train_pairs_per_s", "peak_rss_mib")
      ]
      lines.append(
          f"| {LABELS[r['method']]} | {r['fraction']:g} | {r.get('videos', '-')} | {r['steps']} | "
          + " | ".join(cells)
          + f" | {r['finished']}/{r['planned']} | "
          + " | ".join(cost)
          + " |"
      )
  return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], path: str) -> None:
  """mAP against training videos (log axis), mean ± std over seeds, one panel per
  (corpus, benchmark); Ranking-D and joint, the longer budget dashed."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  panels = list(dict.fromkeys((r["corpus"], b) for r in rows if "mAP" in r for b in r["mAP"]))
  fig = figure.Figure(figsize=(4.6 * max(len(panels), 1), 3.8), dpi=110)
  backend_agg.FigureCanvasAgg(fig)
  for i, (corpus, bench) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    for j, method in enumerate(METHODS):
      for steps in sorted({r["steps"] for r in rows if r["corpus"] == corpus}):
        points = sorted(
            (r["videos"], 100 * r["mAP"][bench]["mean"], 100 * r["mAP"][bench]["std"])
            for r in rows
            if (r["corpus"], r["method"], r["steps"]) == (corpus, method, steps)
            and bench in r.get("mAP", {})
        )
        if points:
          x, y, err = zip(*points)
          longer = steps != min(r["steps"] for r in rows if r["corpus"] == corpus)
          ax.errorbar(
              x,
              y,
              yerr=err,
              marker="o",
              capsize=3,
              color=f"C{j}",
              linestyle="--" if longer else "-",
              label=f"{LABELS[method]}, {steps} steps",
          )
    if bench in ANCHORS and corpus == "real":
      ax.axhline(ANCHORS[bench], color="gray", linestyle=":", label="LIM-S (paper)")
    ax.set_xscale("log")
    sizes = sorted({r["videos"] for r in rows if r["corpus"] == corpus and "videos" in r})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], minor=False)
    ax.set_xticks([], minor=True)
    ax.set(title=f"{corpus}: {BENCHMARK_TITLES[bench]}", xlabel="training videos", ylabel="mAP (%)")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, format="png")


def make_report(runs: Sequence[Run], summaries: dict, output_dir: str) -> dict:
  """Writes corpus_size.{json,md,png}; returns the report."""
  report = {
      "command": " ".join(["python -m experiments.corpus_size"] + sys.argv[1:]),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "machine": harness.describe_machine(harness.machine()),
      "num_planned": len(runs),
      "num_finished": len(summaries),
      "total_wall_s": float(sum(s.get("wall_s") or 0.0 for s in summaries.values())),
      "settings": {
          "real_fractions": REAL_FRACTIONS,
          "synthetic_videos": SYNTHETIC_VIDEOS,
          "synthetic_sizes": SYNTHETIC_SIZES,
          "synthetic_steps": SYNTHETIC_STEPS,
          "long_steps": LONG_STEPS,
          "refill_every_steps": REFILL_EVERY,
      },
      "rows": table(runs, summaries),
      "runs": summaries,
      "missing": [r.name for r in runs if r.name not in summaries],
  }
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, "corpus_size")
  files.write_json(path + ".json", report)
  files.write_text(path + ".md", markdown(report))
  if summaries:
    with files.atomic_output(path + ".png") as partial:
      plot(report["rows"], str(partial))
  return report


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if set(FLAGS.stage) - set(STAGES) or FLAGS.seeds < 1:
    raise app.UsageError(f"--stage of {list(STAGES)}, --seeds >= 1")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  out = os.path.abspath(FLAGS.output_dir)
  jax.config.update("jax_compilation_cache_dir", os.path.join(out, "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  if "synthetic" in FLAGS.stage:
    build_synthetic(FLAGS.data_dir)
  runs = plan(FLAGS.stage, FLAGS.seeds)
  summaries = train_runs(runs, FLAGS.data_dir, out, train=not FLAGS.report_only)
  print(markdown(make_report(runs, summaries, out)))


if __name__ == "__main__":
  flags.DEFINE_string("output_dir", "/tmp/hl_jax_ablation/corpus_size", "Runs and report.")
  flags.DEFINE_string("data_dir", "/tmp/hl_jax_ablation/tfds", "TFDS data_dir of all runs.")
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 of every point.")
  flags.DEFINE_list("stage", list(STAGES), f"Of {list(STAGES)}; run in that order.")
  flags.DEFINE_bool("report_only", False, "Train nothing; report the finished runs.")
  app.run(main)
