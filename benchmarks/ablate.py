r"""Ablation: Ranking-D, Ranking-EM and joint, as Ours-A and Ours-S, over seeds.

  python -m benchmarks.ablate --output_dir=/tmp/hl_jax_ablation/yth \
      --corpus=youtube_highlights --seeds=3 --data_dir=/tmp/hl_jax_tfds

Each run is `train.train_and_evaluate` in <output_dir>/runs/<method>_<A|S-domain>
_seed<k>/; a run whose results.json is complete is reused, an interrupted one
resumes from its checkpoints. Ours-A trains on all domains and is evaluated on
every benchmark of the corpus; Ours-S trains one model per domain on that
domain's videos and is evaluated on that domain only (TVSum has no such domain).
Writes ablation.md (mean ± std over seeds), ablation.json and ablation.png, with
two label-free baselines scored by the same evaluators: uniform random scores
and each clip's feature L2 norm. Evaluation happens once, after the last step
(eval.every_steps = 0): nothing is selected on the evaluation split. On the
YTH corpus the report adds the label noise of its training pairs, measured with
the YTH train-split labels that training never sees.
--corpus=tiny (configs/tiny.py) is the seconds-long setting the tests use.
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

from benchmarks import ablation_report
from benchmarks import harness
from configs import joint
from configs import tiny
from hl_jax import datasets
from hl_jax import evaluation
from hl_jax import train

# corpus -> (base config, Ours-S steps, Ours-S groups per step; 0 keeps the base's).
# A YTH domain has ~40 training videos (dog: 13 short, 13 long) and its pairs
# are learnt within ~100 steps (train/pair_accuracy), hence fewer, smaller steps.
CORPORA = {
    "youtube_highlights": (lambda: joint.get_config("corpus=youtube_highlights"), 200, 64),
    "synthetic": (joint.get_config, 500, 64),
    "tiny": (tiny.get_config, 10, 0),
}

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module (tests,
  # other benchmarks) cannot clash with flags of the same name (--data_dir).
  flags.DEFINE_string("output_dir", None, "Where runs and reports go.")
  flags.DEFINE_enum("corpus", "youtube_highlights", list(CORPORA), "Training corpus.")
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per method and model.")
  flags.DEFINE_integer("steps", 0, "Ours-A steps (0: the config's).")
  flags.DEFINE_integer("steps_s", 0, "Ours-S steps (0: the corpus default).")
  flags.DEFINE_integer("groups_s", -1, "Ours-S groups per step (-1: the default).")
  flags.DEFINE_string("data_dir", "", "TFDS data_dir shared by all runs.")
  flags.DEFINE_list("methods", list(ablation_report.METHODS), "Variants to train.")
  flags.DEFINE_list("models", ["A", "S"], "A: Ours-A, S: Ours-S.")
  flags.DEFINE_list("domains", [], "Ours-S domains (default: all).")
  flags.DEFINE_list("config_overrides", [],
                    "section.key=value changes to every run's config, e.g. "
                    "model.dropout_masks=flax (the masks of RESULTS.md's ablation).")
  flags.DEFINE_bool("compilation_cache", True,
                    "Persist compiled steps in <output_dir>/jax_cache.")


@dataclasses.dataclass(frozen=True)
class Run:
  method: str
  domain: str  # "" for Ours-A.
  seed: int

  @property
  def name(self) -> str:
    return f"{self.method}_{f'S-{self.domain}' if self.domain else 'A'}_seed{self.seed}"


def run_config(base: ml_collections.ConfigDict, run: Run, steps: int, steps_s: int,
               groups_s: int) -> ml_collections.ConfigDict:
  """`base` with the run's variant and seed, and Ours-S's domain, steps and groups."""
  config = base.copy_and_resolve_references()
  config.variant = run.method  # What configs/ranking_d.py and ranking_em.py set.
  config.seed = config.input.shuffle_seed = run.seed
  config.eval.every_steps = 0
  config.train.num_steps = steps or config.train.num_steps
  if run.domain:
    config.corpus.domain = run.domain
    config.train.num_steps = steps_s
    config.train.num_groups = groups_s or config.train.num_groups
  return config


def _text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _summary(results: dict, workdir: str) -> dict:
  """Per-benchmark mAP and per-group mAP, and the last logged train metrics."""
  out = {"step": results["step"], "eval": {
      name: {"mAP": results[name]["model"]["mAP"],
             "per_group": results[name]["model"]["per_group"]}
      for name in ("corpus", "youtube_highlights", "tvsum") if name in results}}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if '"train/loss"' in line]
  out["train"] = {k: rows[-1].get(f"train/{k}") for k in ablation_report.DIAGNOSTICS
                  } if rows else {}
  return out


def train_runs(runs: Sequence[Run], configs: dict[str, ml_collections.ConfigDict],
               output_dir: str) -> dict[str, dict]:
  """Trains (or reuses) every run in order, printing progress and an ETA."""
  summaries, trained_s, trained_pairs = {}, 0.0, 0

  def pairs(run: Run) -> int:  # The ETA's unit of work.
    return configs[run.name].train.num_steps * configs[run.name].train.num_groups

  for k, run in enumerate(runs):
    config, workdir = configs[run.name], os.path.join(output_dir, "runs", run.name)
    steps, results = config.train.num_steps, None
    with contextlib.suppress(OSError, ValueError):  # Absent or cut short: (re)run.
      with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    if results is not None and results["step"] != steps:
      raise ValueError(f"{workdir} holds a run of {results['step']} steps, not {steps}; "
                       "use another --output_dir")
    reused = results is not None
    print(f"[{k + 1}/{len(runs)}] {run.name}: "
          f"{'reused' if reused else f'training {steps} steps'}", flush=True)
    if not reused:
      start = time.time()
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, "stdout.txt"), "a") as log, \
          contextlib.redirect_stdout(log):
        results = train.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "wall.json"), "w") as f:
        json.dump({"wall_s": time.time() - start}, f)
      trained_s, trained_pairs = trained_s + time.time() - start, trained_pairs + pairs(run)
      left = sum(pairs(r) for r in runs[k + 1:])
      print(f"    {time.time() - start:.0f} s; ETA {left * trained_s / trained_pairs / 60:.1f}"
            " min (less for reused runs)", flush=True)
    summaries[run.name] = dict(_summary(results, workdir), reused=reused,
                               **dataclasses.asdict(run))
    with contextlib.suppress(OSError):
      with open(os.path.join(workdir, "wall.json")) as f:
        summaries[run.name]["wall_s"] = json.load(f)["wall_s"]
  return summaries


def label_free_baselines(base: ml_collections.ConfigDict, seeds: int) -> dict[str, dict]:
  """Per evaluator of the runs: random scores per seed (`evaluation.random_scores`)
  and the full result for scores = per-clip feature L2 norms."""
  out = {}
  for e in evaluation.make_evaluators(base, datasets.load_corpus(base)):
    randoms = []
    for seed in range(seeds):
      result = evaluation.evaluate(e.protocol, e.videos,
                                   evaluation.random_scores(e.videos, seed), split=e.split)
      randoms.append({"mAP": result["mAP"], "per_group": result["per_group"]})
    norms = {v.video_id: np.linalg.norm(v.features.astype(np.float64), axis=1)
             for v in e.videos}
    out[e.name] = {"random": randoms,
                   "l2_norm": evaluation.evaluate(e.protocol, e.videos, norms, split=e.split)}
  return out


def labelled_pools(base: ml_collections.ConfigDict) -> dict[str, tuple] | None:
  """The training table's short and long clips with their YTH train-split labels.

  Clips are subsampled as the table subsamples them. Labels are match > 0 from
  the YTH train split, which training never reads (and which is not the
  evaluation split). None for corpora without such labels.

  Returns:
    {pool: ((short features [S, D], short labels [S] bool), (long ..., ...))},
    pool "all" (what Ours-A pairs) first, then each domain (Ours-S).
  """
  if not base.corpus.builder_config.startswith("youtube_highlights"):
    return None
  labels = {v.video_id: v.labels > 0 for v in datasets.load_benchmark(
      "youtube_highlights", "train", data_dir=base.corpus.data_dir or None,
      manual_dir=os.path.join(base.eval.data_root, "youtube_highlights"),
      feature_set=base.eval.feature_set)}
  source, cap, pools = datasets.load_corpus(base).train_source, base.input.max_segments_per_video, {}
  for i in range(len(source)):
    example = source[i]
    bucket, x = int(example["bucket"]), np.asarray(example["features"], np.float32)
    y = labels[_text(example["video_id"])]
    if bucket < 2:  # 0 short, 1 long, 2 rest (not paired).
      rows = (np.linspace(0, len(y) - 1, cap).round().astype(int) if len(y) > cap
              else slice(None))
      for pool in ("all", _text(example["domain"])):
        pools.setdefault(pool, ([[], []], [[], []]))[bucket][0].append(x[rows])
        pools[pool][bucket][1].append(y[rows])
  return {pool: tuple((np.concatenate(xs), np.concatenate(ys)) for xs, ys in pools[pool])
          for pool in sorted(pools, key=lambda p: (p != "all", p))}


def run_ablation(base: ml_collections.ConfigDict, output_dir: str, *, seeds: int,
                 methods: Sequence[str] = tuple(ablation_report.METHODS),
                 models: Sequence[str] = ("A", "S"), domains: Sequence[str] = (),
                 steps: int = 0, steps_s: int = 200, groups_s: int = 0,
                 command: str = "") -> dict:
  """Trains or reuses every run; writes ablation.{md,json,png} into output_dir.

  Returns:
    The report written to ablation.json.
  """
  start = time.time()
  unknown = (set(methods) - set(ablation_report.METHODS)) | (set(models) - {"A", "S"})
  if unknown or seeds < 1:
    raise ValueError(f"unknown methods or models {sorted(unknown)}, or seeds={seeds} < 1")
  if "S" in models and not domains:
    source = datasets.load_corpus(base).train_source
    domains = sorted({_text(source[i]["domain"]) for i in range(len(source))})
  domains = list(domains) if "S" in models else []
  runs = [Run(m, d, k) for d in ([""] if "A" in models else []) + domains
          for m in methods for k in range(seeds)]
  configs = {r.name: run_config(base, r, steps, steps_s, groups_s) for r in runs}
  summaries = train_runs(runs, configs, output_dir)
  baselines = label_free_baselines(base, seeds)
  reused = sum(s["reused"] for s in summaries.values())
  a_run = next((configs[r.name] for r in runs if not r.domain), None)
  s_run = next((configs[r.name] for r in runs if r.domain), None)
  report = {
      "command": command, "machine": _machine(),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "settings": {"corpus": base.corpus.builder_config, "seeds": seeds, "methods": list(methods),
                   "domains": domains, "group_size": base.train.group_size,
                   "steps_a": a_run.train.num_steps if a_run else 0,
                   "groups_a": a_run.train.num_groups if a_run else 0,
                   "steps_s": s_run.train.num_steps if s_run else 0,
                   "groups_s": s_run.train.num_groups if s_run else 0,
                   "num_trained": len(runs) - reused, "num_reused": reused},
      "runs": summaries, "baselines": baselines,
      "tables": ablation_report.make_tables(summaries, baselines, methods, seeds),
      "diagnostics": ablation_report.diagnostics(summaries, methods),
      "pair_noise": ablation_report.pair_noise(labelled_pools(base))}
  report["total_wall_s"] = time.time() - start
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, "ablation.json"), "w") as f:
    json.dump(report, f, indent=1)
  with open(os.path.join(output_dir, "ablation.md"), "w") as f:
    f.write(ablation_report.markdown(report))
  ablation_report.plot(report["tables"], os.path.join(output_dir, "ablation.png"))
  return report


def _machine() -> str:
  load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
  return (f"{platform.node()}, {os.cpu_count()} CPUs ({jax.devices()[0].platform}), "
          f"load average {load} at the end")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if FLAGS.compilation_cache:  # Every run of a method compiles the same step.
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(os.path.abspath(FLAGS.output_dir), "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  make_base, steps_s, groups_s = CORPORA[FLAGS.corpus]
  base = make_base()
  base.corpus.data_dir = FLAGS.data_dir or base.corpus.data_dir
  harness.apply_overrides(base, FLAGS.config_overrides)
  report = run_ablation(
      base, FLAGS.output_dir, seeds=FLAGS.seeds, methods=FLAGS.methods,
      models=FLAGS.models, domains=FLAGS.domains, steps=FLAGS.steps,
      steps_s=FLAGS.steps_s or steps_s,
      groups_s=groups_s if FLAGS.groups_s < 0 else FLAGS.groups_s,
      command=" ".join(["python -m benchmarks.ablate", *sys.argv[1:]]))
  print(ablation_report.markdown(report))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
