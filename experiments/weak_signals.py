r"""Weak signals x feature streams x pair weighting, on real data.

One resumable command (RESULTS.md, "Richer weak signals"):

  for k in 0 1; do python -m experiments.weak_signals --worker=$k/2 \
      --output_dir=/tmp/hl_jax_ablation/weak_signals \
      --data_dir=/tmp/hl_jax_ablation/tfds & done
  wait; python -m experiments.weak_signals --report_only \
      --output_dir=/tmp/hl_jax_ablation/weak_signals --data_dir=/tmp/hl_jax_ablation/tfds

Signals (rows, grouped as RESULTS.md groups them):
- no labels:
  - duration: the paper's signal, Ours-A on the YTH train videos (per-domain
    duration thirds), evaluated on YTH val and TVSum val (transfer);
  - recurrence: the label-free recurrence score of `hl_jax.signals.recurrence` (kNN,
    k=20, cosine, each video against the OTHER training videos of its
    domain / category) as a per-segment signal: each training video's most
    recurrent third of segments is preferred over its least recurrent third
    (`recurrence_corpus.build` + duration_corpus `manifest_segment_signal`). Built
    from the YTH train videos (Ours-A, evaluated on YTH val and TVSum val)
    and from the 40 TVSum train videos (evaluated on TVSum val). It sees
    training videos only: inductive, no val video's features or labels;
- video-level tags:
  - tag: one model per domain (YTH) / category (TVSum): a segment of a
    training video of that kind is preferred over a segment of a training
    video of another kind (`corpus.tag`); evaluated on that kind's val videos;
  - tag_duration: the same, short tagged vs long untagged videos only
    (MINI-Net's pairs), YTH only (TVSum's thirds keep 1 video a side).
Streams (`STREAMS`): rgb (I3D rgb), concat (I3D rgb+flow and PANN audio,
one scorer), late (one scorer for rgb+flow, one for audio, scores summed:
`model.streams`) and audio (PANN audio alone). Weightings (recipes of
experiments/weightings_report.py): joint_detached (the weighting ablation's
choice by held-out pair accuracy), ranking_d (uniform), joint (the paper's
softmax), and `_bags` (multiple-instance groups). Which
signal x stream x weighting rows run, and what was pruned: `PLAN`. Every run
holds out 15% of its training videos, and the reported evaluation is the one
with the best held-out pair accuracy (of the run's own weak signal:
label-free); 3 seeds. Label-free baselines on the same evaluators: random,
the feature norm, and the recurrence score itself. Runs go to
<output_dir>/runs/<name> (a finished one is reused, an interrupted one
resumes); the report to <output_dir>/weak_signals.{md,json}.
"""

from __future__ import annotations

import dataclasses
import datetime
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

from configs import joint
from experiments import weightings
from experiments import weightings_data
from experiments import weightings_report
from hl_jax.core import files
from hl_jax.data import benchmarks
from hl_jax.data import corpora
from hl_jax.eval import evaluators
from hl_jax.eval import protocols
from hl_jax.signals import recurrence
from hl_jax.signals import recurrence_corpus

# stream: (feature set, model.streams)
STREAMS = {
    "rgb": ("i3d_rgb", ()),
    "concat": ("i3d_rgb_flow_audio", ()),
    "late": ("i3d_rgb_flow_audio", ((0, 2048), (2048, 4096))),
    "audio": ("i3d_rgb_flow_audio", ((2048, 4096),)),
}
NO_LABELS, TAGS = "no labels", "video-level tags"
# signal: (group of rows, corpora it is trained on)
SIGNALS = {
    "duration": (NO_LABELS, ("yth",)),
    "recurrence": (NO_LABELS, ("yth", "tvsum")),
    "tag": (TAGS, ("yth", "tvsum")),
    "tag_duration": (TAGS, ("yth",)),
}
BENCHMARK = {"yth": "youtube_highlights", "tvsum": "tvsum"}
MAIN_METHOD, RGB_METHODS = "joint_detached", ("ranking_d", "joint")
# A recipe with this suffix draws each group's preferred segments from one
# video (train.pair_groups="video"): multiple-instance bags for tag models.
BAGS = "_bags"
BAG_METHODS = ("joint" + BAGS, MAIN_METHOD + BAGS)
# Anchors, cited by paper in RESULTS.md: (name, supervision, YTH val, TVSum val).
ANCHORS = [
    ("feature norm (RESULTS.md, label-free baselines)", NO_LABELS, 61.2, 59.3),
    ("AVT zero-shot", NO_LABELS, 60.5, 61.6),
    ("audio-visual recurrence (WACV'25)", NO_LABELS, 68.3, 60.3),
    ("MINI-Net (best checkpoint on test)", TAGS, 64.4, 73.2),
    ("TCG", TAGS, 63.0, 76.8),
]
GOALS = {NO_LABELS: (69.0, 62.0), TAGS: (66.0, 77.0)}

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Run:
  signal: str
  corpus: str  # "yth" | "tvsum": the training videos.
  stream: str
  method: str
  group: str  # The tag (domain / category) of a tag model; "" otherwise.
  seed: int

  @property
  def name(self) -> str:
    group = f"_{self.group}" if self.group else ""
    return f"{self.signal}_{self.corpus}_{self.stream}_{self.method}{group}_seed{self.seed}"


def groups_of(corpus: str) -> list[str]:
  """The domains (YTH) or categories (TVSum) of the standard split file."""
  root = os.path.join(joint.DATA_ROOT, BENCHMARK[corpus])
  name = "umt_youtube_splits.json" if corpus == "yth" else "umt_tvsum_splits.json"
  with open(os.path.join(root, "splits", name)) as f:
    return sorted(json.load(f))


# The grid, pruned to about two hours of the 2-core machine, in the order it
# runs (most informative first): (signal, training corpus, streams, methods).
# At 4096-d (late, audio) a run costs ~6x an rgb run, two thirds of it h on
# the 8192-d pair (which uniform weights do not have), so the fused and audio
# streams are compared with uniform weights (ranking_d), against rgb's
# ranking_d row; the YTH late joint_detached row was run first and kept.
# Pruned: concat (the weighting ablation: below rgb on duration); softmax and bags with rgb
# tags only (TVSum: joint_bags only); tag_duration and the Ours-A signals with
# rgb (joint_detached) and late (ranking_d) only; TVSum recurrence: rgb only.
PLAN = [
    ("tag", "yth", ("rgb",), (MAIN_METHOD,) + RGB_METHODS + BAG_METHODS),
    ("tag", "yth", ("late",), (MAIN_METHOD,)),
    ("tag", "tvsum", ("rgb",), (MAIN_METHOD, "ranking_d", "joint" + BAGS)),
    ("duration", "yth", ("rgb",), (MAIN_METHOD,)),
    ("recurrence", "yth", ("rgb",), (MAIN_METHOD,)),
    ("recurrence", "tvsum", ("rgb",), (MAIN_METHOD,)),
    ("tag", "yth", ("late", "audio"), ("ranking_d",)),
    ("tag_duration", "yth", ("rgb",), (MAIN_METHOD,)),
    ("duration", "yth", ("late",), ("ranking_d",)),
    ("recurrence", "yth", ("late",), ("ranking_d",)),
    ("tag", "tvsum", ("late",), ("ranking_d",)),
    ("tag_duration", "yth", ("late",), ("ranking_d",)),
    ("tag", "tvsum", ("audio",), ("ranking_d",)),
]


def plan(seeds: int, signals: Sequence[str]) -> list[Run]:
  """Every run of PLAN's rows of `signals`, in PLAN's order."""
  runs = []
  for signal, corpus, streams, methods in PLAN:
    if signal not in signals:
      continue
    groups = groups_of(corpus) if signal.startswith("tag") else [""]
    runs += [
        Run(signal, corpus, stream, m, g, k)
        for stream in streams
        for m in methods
        for g in groups
        for k in range(seeds)
    ]
  return runs


def _corpus_name(corpus: str, feature_set: str) -> str:
  prefix = "youtube_highlights" if corpus == "yth" else "tvsum"
  return prefix + ("_rgb_flow_audio" if feature_set == "i3d_rgb_flow_audio" else "")


def base_config(run: Run, data_dir: str, output_dir: str) -> ml_collections.ConfigDict:
  """The run's config before its recipe and seed (see the module docstring)."""
  feature_set, streams = STREAMS[run.stream]
  config = joint.get_config(f"corpus={_corpus_name(run.corpus, feature_set)}")
  config.data_dir = data_dir
  config.model.streams = streams
  # Every training video fits (YTH: 234 x <= 64 segments); the default 131072
  # rows would allocate 2 GB per window at 4096-d. Same draws, less memory.
  config.input.table_segments = 16384
  if run.signal == "recurrence":
    config.corpus.builder_config = build_recurrence_corpus(
        run.corpus, feature_set, data_dir, output_dir
    )
  if run.signal.startswith("tag"):
    config.corpus.tag, config.corpus.tag_pairs = run.group, run.signal
  if run.corpus == "yth" and not run.group:  # Ours-A on YTH: half the weighting ablation's.
    config.train.num_steps, config.train.weight_schedule_steps = 300, 150
    config.eval.every_steps = config.checkpoint.every_steps = 100
  elif run.corpus == "yth":  # A tag model: as the weighting ablation's Ours-S.
    config.train.num_steps, config.train.num_groups = 200, 64
    config.train.weight_schedule_steps = 100
    config.eval.every_steps = config.checkpoint.every_steps = 50
  return config


def run_config(run: Run, data_dir: str, output_dir: str) -> ml_collections.ConfigDict:
  config = base_config(run, data_dir, output_dir)
  recipe = run.method.removesuffix(BAGS)
  _, keys = weightings_report.RECIPES[recipe]
  config.train.pair_groups = "video" if run.method.endswith(BAGS) else "random"
  for key, value in keys.items():
    weightings.set_key(config, key, value)
  config.seed = config.input.shuffle_seed = run.seed
  config.corpus.holdout_fraction = 0.15
  return config


def build_recurrence_corpus(corpus: str, feature_set: str, data_dir: str, output_dir: str) -> str:
  """The recurrence-signal corpus of a benchmark's TRAIN videos; its config name.

  Writes the train videos' features and a manifest under
  <output_dir>/recurrence_<corpus>_<feature_set>/, runs the recurrence build
  step on it (no label is read), and builds the duration_corpus config
  `manifest_segment_signal` of that width into data_dir under its own name.
  """
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top

  name = f"recurrence_{corpus}_{feature_set}"
  root = os.path.join(output_dir, name)
  videos = benchmarks.load_benchmark(
      BENCHMARK[corpus],
      "train",
      data_dir=data_dir,
      manual_dir=os.path.join(joint.DATA_ROOT, BENCHMARK[corpus]),
      feature_set=feature_set,
  )
  if not os.path.exists(os.path.join(root, "recurrence_corpus", "manifest.csv")):
    os.makedirs(os.path.join(root, "features"), exist_ok=True)
    rows = ["video_id,duration_s,domain,feature_path"]
    for v in videos:  # Features only: the labels stay in the benchmark.
      np.save(os.path.join(root, "features", f"{v.video_id}.npy"), v.features)
      rows.append(f"{v.video_id},{float(len(v.features))},{v.group}," f"features/{v.video_id}.npy")
    with open(os.path.join(root, "manifest.csv"), "w") as f:
      f.write("\n".join(rows) + "\n")
    recurrence_corpus.build(root)
  dim = videos[0].features.shape[1]
  config = dcb.DurationCorpusConfig(
      name=name,
      source="manifest",
      feature_dim=dim,
      segment_signal="segment_signal",
      signal_direction="higher_is_better",
      bucketing="video_quantile",
      description=f"{corpus} train videos split by their recurrence score",
  )
  dcb.get_builder(config, data_dir=data_dir, manual_dir=os.path.join(root, "recurrence_corpus"))
  return name


def recurrence_baseline(config: ml_collections.ConfigDict) -> dict[str, dict]:
  """The recurrence score alone (inductive: train videos as reference) per evaluator."""
  out = {}
  for e in evaluators.make_evaluators(config, corpora.load_corpus(config)):
    if not isinstance(e, evaluators.Evaluator) or e.name not in BENCHMARK.values():
      continue
    train = benchmarks.load_benchmark(
        e.name,
        "train",
        data_dir=config.data_dir,
        manual_dir=os.path.join(joint.DATA_ROOT, e.name),
        feature_set=config.eval.feature_set,
    )
    scores = recurrence.recurrence_scores(
        [v.features for v in e.videos],
        [v.group for v in e.videos],
        reference_features=[v.features for v in train],
        reference_groups=[v.group for v in train],
    )
    out[e.name] = protocols.evaluate(
        e.protocol, e.videos, {v.video_id: s for v, s in zip(e.videos, scores)}, split=e.split
    )
  return out


def baselines(data_dir: str, seeds: int, streams: Sequence[str]) -> dict[str, dict]:
  """Per feature set: random, feature norm and recurrence score, on YTH and TVSum val."""
  out = {}
  for feature_set in dict.fromkeys(STREAMS[s][0] for s in streams):
    config = joint.get_config(f"corpus={_corpus_name('yth', feature_set)}")
    config.data_dir = data_dir
    free = weightings_data.label_free_baselines(config, seeds)
    rec = recurrence_baseline(config)
    out[feature_set] = {
        bench: {
            "random": [r["mAP"] for r in free[bench]["random"]],
            "l2_norm": free[bench]["l2_norm"]["mAP"],
            "recurrence": rec[bench]["mAP"],
            "per_group": {
                "l2_norm": free[bench]["l2_norm"]["per_group"],
                "recurrence": rec[bench]["per_group"],
            },
        }
        for bench in BENCHMARK.values()
    }
  return out


def seed_scores(
    summaries: dict[str, dict], runs: Sequence[Run], bench: str, selection: str = "selected"
) -> tuple[list[float], dict[str, list[float]]]:
  """Per seed, a row's benchmark mAP and per-group mAPs.

  A tag row has one model per group, each evaluated on its group's val
  videos: a seed's mAP is the mean over groups of those (as the benchmark
  averages over groups). An Ours-A row's models are evaluated on all groups.
  """
  per_seed: dict[int, dict[str, float]] = {}
  for run in runs:
    evaluated = summaries[run.name][selection]["eval"].get(bench)
    if evaluated is None:
      continue
    groups = per_seed.setdefault(run.seed, {})
    for group, value in evaluated["per_group"].items():
      if not run.group or group == run.group:
        groups[group] = value
  seeds = sorted(per_seed)
  all_groups = sorted({g for s in seeds for g in per_seed[s]})
  complete = [s for s in seeds if len(per_seed[s]) == len(all_groups)]
  return (
      [float(np.mean(list(per_seed[s].values()))) for s in complete],
      {g: [per_seed[s][g] for s in complete] for g in all_groups},
  )


def rows(summaries: dict[str, dict], runs: Sequence[Run]) -> list[dict[str, Any]]:
  """One table row per (signal, training corpus, stream, method)."""
  keyed: dict[tuple, list[Run]] = {}
  planned: dict[tuple, int] = {}
  for run in runs:
    key = (run.signal, run.corpus, run.stream, run.method)
    planned[key] = planned.get(key, 0) + 1
    if run.name in summaries:
      keyed.setdefault(key, []).append(run)
  out = []
  for (signal, corpus, stream, method), members in keyed.items():
    row = {
        "signal": signal,
        "corpus": corpus,
        "stream": stream,
        "method": method,
        "group": SIGNALS[signal][0],
        "num_runs": len(members),
        "num_planned": planned[signal, corpus, stream, method],
    }
    for bench in BENCHMARK.values():
      for selection in ("selected", "last"):
        values, per_group = seed_scores(summaries, members, bench, selection)
        if values:
          key = bench if selection == "selected" else f"{bench}_last"
          row[key] = {
              "mean": float(np.mean(values)),
              "std": float(np.std(values)),
              "seeds": values,
              "per_group": {g: float(np.mean(v)) for g, v in per_group.items()},
          }
    held = [summaries[r.name]["selected"].get("heldout", {}) for r in members]
    for key in ("pair_accuracy", "between_share"):
      values = [h[key] for h in held if key in h]
      row[f"heldout_{key}"] = float(np.mean(values)) if values else None
    out.append(row)
  return out


def finished(
    runs: Sequence[Run], configs: dict[str, ml_collections.ConfigDict], output_dir: str
) -> dict[str, dict]:
  """The summaries of the runs that have finished (others are left out)."""
  out = {}
  for run in runs:
    workdir = os.path.join(output_dir, "runs", run.name)
    results = weightings.finished_results(workdir, configs[run.name])
    if results is not None:
      out[run.name] = dict(weightings.run_summary(results, workdir), **dataclasses.asdict(run))
  return out


def _pct(value: float | None) -> str:
  return "–" if value is None else f"{100 * value:.0f}%"


def _cell(entry: dict | None) -> str:
  if not entry:
    return "–"
  return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f}"


def markdown(report: dict[str, Any]) -> str:
  """The RESULTS.md tables (mean ± std over the seeds whose runs all finished)."""
  lines = [
      "| supervision | signal (trained on) | stream | weighting | YTH val mAP | "
      "TVSum val top-5 mAP | held-out pair acc. | between-video share | runs |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for group in (NO_LABELS, TAGS):
    for name, sup, yth, tvsum in ANCHORS:
      if sup == group:
        lines.append(f"| {group} | *{name}* | | | *{yth:.1f}* | *{tvsum:.1f}* | | | |")
    for feature_set, bases in report["baselines"].items():
      if group == NO_LABELS:
        for kind in ("l2_norm", "recurrence"):
          lines.append(
              f"| {group} | {kind.replace('l2_norm', 'feature norm')} score, "
              f"no training | {feature_set} | | "
              f"{100 * bases['youtube_highlights'][kind]:.1f} | "
              f"{100 * bases['tvsum'][kind]:.1f} | | | |"
          )
    for row in report["rows"]:
      if row["group"] == group:
        lines.append(
            f"| {group} | {row['signal']} ({row['corpus']}) | {row['stream']} | "
            f"{row['method']} | {_cell(row.get('youtube_highlights'))} | "
            f"{_cell(row.get('tvsum'))} | {_pct(row['heldout_pair_accuracy'])} | "
            f"{_pct(row['heldout_between_share'])} | {row['num_runs']}"
            + ("" if row["num_runs"] == row["num_planned"] else f" of {row['num_planned']}")
            + " |"
        )
    random = report["baselines"].get("i3d_rgb", {})
    if group == NO_LABELS and random:
      lines.append(
          f"| | random scores | | | "
          f"{100 * np.mean(random['youtube_highlights']['random']):.1f} | "
          f"{100 * np.mean(random['tvsum']['random']):.1f} | | | |"
      )
    lines.append(
        f"| | **goal** | | | **{GOALS[group][0]:.0f}** | " f"**{GOALS[group][1]:.0f}** | | | |"
    )
  for bench in BENCHMARK.values():
    groups = sorted({g for r in report["rows"] for g in r.get(bench, {}).get("per_group", {})})
    if not groups:
      continue
    lines += [
        "",
        f"Per {'domain' if bench == 'youtube_highlights' else 'category'}, "
        f"{bench} val (selected evaluation, mean over seeds):",
        "",
        "| signal (trained on) | stream | weighting | " + " | ".join(groups) + " |",
        "|---|---|---|" + "---|" * len(groups),
    ]
    for row in report["rows"]:
      if bench in row:
        pg = row[bench]["per_group"]
        lines.append(
            f"| {row['signal']} ({row['corpus']}) | {row['stream']} | "
            f"{row['method']} | "
            + " | ".join(f"{100 * pg[g]:.1f}" if g in pg else "–" for g in groups)
            + " |"
        )
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  start, out = time.time(), FLAGS.output_dir
  # Every run of a stream and method compiles the same step.
  jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(out), "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  runs = plan(FLAGS.seeds, FLAGS.signals)
  if FLAGS.max_runs:
    runs = runs[: FLAGS.max_runs]
  configs = {r.name: run_config(r, FLAGS.data_dir, out) for r in runs}
  index, count = (int(x) for x in FLAGS.worker.split("/"))
  mine = [r for k, r in enumerate(runs) if k % count == index]
  if not FLAGS.report_only:
    print(f"{len(mine)} of {len(runs)} runs into {out}/runs", flush=True)
    weightings.train_runs(mine, configs, out)
  if count > 1 and not FLAGS.report_only:
    return  # Worker k of n: the report is --report_only's, once all have finished.
  summaries = finished(runs, configs, out)
  print(f"report of {len(summaries)} finished runs of {len(runs)}", flush=True)
  report = {
      "command": " ".join(["python -m experiments.weak_signals"] + sys.argv[1:]),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "settings": {
          "seeds": FLAGS.seeds,
          "signals": list(FLAGS.signals),
          "plan": PLAN,
          "num_planned": len(runs),
          "num_finished": len(summaries),
          "main_method": MAIN_METHOD,
          "rgb_methods": list(RGB_METHODS),
          "holdout_fraction": 0.15,
          "selection": "best held-out pair accuracy of the run's signal",
      },
      "baselines": baselines(FLAGS.data_dir, FLAGS.seeds, ("rgb", "late")),
      "rows": rows(summaries, runs),
      "runs": summaries,
      "anchors": ANCHORS,
      "goals": GOALS,
  }
  report["total_wall_s"] = time.time() - start
  files.write_text(
      os.path.join(out, "weak_signals.json"), json.dumps(report, indent=1, default=float)
  )
  table = markdown(report)
  files.write_text(os.path.join(out, "weak_signals.md"), table)
  print(table)


if __name__ == "__main__":
  flags.DEFINE_string("output_dir", "/tmp/hl_jax_ablation/weak_signals", "Runs and report.")
  flags.DEFINE_string("data_dir", "/tmp/hl_jax_ablation/tfds", "TFDS data_dir of all runs.")
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per row.")
  flags.DEFINE_list("signals", list(SIGNALS), f"Of {list(SIGNALS)}.")
  flags.DEFINE_string(
      "worker",
      "0/1",
      "k/n: train runs k, k+n, ... of the plan (run n " "workers at once, then --report_only).",
  )
  flags.DEFINE_bool("report_only", False, "Train nothing; report the finished runs.")
  flags.DEFINE_integer("max_runs", 0, "Only the first N runs of the plan (0: all).")
  app.run(main)
