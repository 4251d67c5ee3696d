r"""Pairs/s of the compiled train step against the machine's matmul FLOP/s.

  python -m benchmarks.step_throughput --output=/tmp/hl_jax_bench/step_throughput.json

Questions answered in one run (so ratios hold on a shared machine):

1. Step only: pairs/s of `trainer.make_train_step` (hl_jax.less_is_more;
   compiled, state donated) on a random resident table of `--dim`-d features,
   for each pair weighting (`--weightings`, `train.weighting` names) and each
   batch m x n (`--num_groups` x group_size), timed after compilation. All
   step functions and the matmul probes are sampled round-robin, `--rounds`
   times, and the median is reported.
2. The machine's dense f32 matmul FLOP/s in the same rounds: a square
   2048^3 product (the "peak") and the model's biggest layers, [B, D] x [D, 512]
   (f, with its weight gradient x^T dy) and [B, 2D] x [2D, 512] (h), B = pairs
   per step at the first and the largest m.
3. The step's achieved FLOP/s from an analytic count per pair (below), as a
   fraction of that peak.
4. A breakdown of the joint step (weighting softmax: f and h) at the first
   batch size: the same step
   without dropout, with flax.linen.Dropout's masks (one threefry word per
   element, `model.dropout_masks="flax"`, instead of the default
   `models.ByteDropout`: one word per 4 elements) and with
   jax_threefry_partitionable=False; pair sampling plus the feature gather,
   f and h forward + backward, the AdamW update and the dropout masks alone.
5. End to end (`--e2e`): `run_loop.train_and_evaluate` on a 1024-d manifest corpus
   (TFDS array_record, Grain, resident table): the whole corpus resident;
   windows of `--e2e_window_videos` videos refilled every `--e2e_refill_every`
   steps; and the same windows in a table of `--e2e_window_table_segments`
   rows. Pairs/s come from its training log after the first interval (which
   includes compilation), against step-only samples of the same config taken
   just before and after each run.

FLOPs per pair. A dense layer in -> out costs 2 in out per row forward and
twice that backward (input and weight gradients): "nominal" counts 3 x forward
for every layer. The first layer's input gradient is never needed (the
features are not trained), so "needed" counts 2 x forward there. f runs on both
segments of a pair, h once on the concatenated [2D] pair (weightings with h).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from benchmarks import harness
from hl_jax.core import run_loop
from hl_jax.less_is_more import losses
from hl_jax.less_is_more import models
from hl_jax.less_is_more import segment_table
from hl_jax.less_is_more import trainer
from hl_jax.less_is_more import weightings

_CONFIG = config_flags.DEFINE_config_file("config", "configs/joint.py", "Base config.")
_DIM = flags.DEFINE_integer("dim", 1024, "Feature dim D of the random table.")
# The paper's three methods: the joint model (softmax(h)), Ranking-D, Ranking-EM.
JOINT = "softmax"
_WEIGHTINGS = flags.DEFINE_list(
    "weightings",
    [JOINT, "ranking_d", "ranking_em"],
    f"Pair weightings timed (train.weighting), of {list(weightings.NAMES)}.",
)
_NUM_GROUPS = flags.DEFINE_list(
    "num_groups",
    ["256", "512", "1024", "2048", "4096"],
    "Batch sweep: m values (n = config group_size); the first is the default.",
)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Round-robin rounds (median taken).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 1.5, "Length of one sample.")
_BREAKDOWN = flags.DEFINE_bool("breakdown", True, "Time parts of the joint step.")
_E2E = flags.DEFINE_bool("e2e", True, "Also time end-to-end training.")
_E2E_VIDEOS = flags.DEFINE_integer("e2e_videos", 1000, "Videos of the e2e corpus.")
_E2E_STEPS = flags.DEFINE_integer("e2e_steps", 300, "End-to-end training steps.")
_E2E_WINDOW_VIDEOS = flags.DEFINE_integer(
    "e2e_window_videos", 200, "Windowed e2e run: videos per table window."
)
_E2E_REFILL_EVERY = flags.DEFINE_integer(
    "e2e_refill_every", 50, "Windowed e2e run: steps between refills."
)
_E2E_WINDOW_TABLE = flags.DEFINE_integer(
    "e2e_window_table_segments",
    16384,
    "Third e2e run: the windowed run with input.table_segments this small " "(0: skip it).",
)
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "/tmp/hl_jax_bench", "Where the e2e corpus is written (reused)."
)
_PAUSE = flags.DEFINE_float("pause", 0.2, "Sleep before each sample (s).")
_OUTPUT = flags.DEFINE_string("output", "", "JSON output path.")


def dense_flops(widths: list[int]) -> tuple[int, int]:
  """(nominal, needed) fwd + bwd FLOPs per row of an MLP with these widths."""
  layers = [2 * a * b for a, b in zip(widths[:-1], widths[1:])]
  return 3 * sum(layers), 2 * layers[0] + 3 * sum(layers[1:])


def flops_per_pair(config: ml_collections.ConfigDict, dim: int) -> dict[str, int]:
  """Analytic fwd + bwd FLOPs of one pair (see the module docstring)."""
  f_nominal, f_needed = dense_flops([dim, *config.model.scorer_hidden, 1])
  nominal, needed = 2 * f_nominal, 2 * f_needed
  if weightings.get(config.train.weighting).uses_h:
    h_nominal, h_needed = dense_flops([2 * dim, *config.model.weigher_hidden, 1])
    nominal, needed = nominal + h_nominal, needed + h_needed
  return {"nominal": nominal, "needed": needed}


def breakdown_probes(base, table, dim: int, num_groups: int) -> list[harness.Probe]:
  """Parts of the joint step (weighting softmax) at m = num_groups (units: pairs)."""
  n = base.train.group_size
  pairs = num_groups * n
  no_dropout = harness.weighting_config(base, JOINT, num_groups, dropout=0.0)
  joint = harness.weighting_config(base, JOINT, num_groups)
  probes = [
      harness.step_probe("step without dropout", no_dropout, table, dim),
      harness.step_probe(
          "step, flax.linen.Dropout masks (a threefry word per element)",
          harness.weighting_config(base, JOINT, num_groups, dropout_masks="flax"),
          table,
          dim,
      ),
      _patched(
          harness.step_probe("step, jax_threefry_partitionable=False", joint, table, dim),
          lambda: jax.threefry_partitionable(False),
      ),
  ]

  @jax.jit
  def sample_gather(table, key):
    rows_short, rows_long = segment_table.sample_pairs(table, key, num_groups, n)
    return (
        segment_table.gather_features(table, rows_short),
        segment_table.gather_features(table, rows_long),
    )

  key = jax.random.PRNGKey(0)
  probes.append(
      harness.repeat_probe("sample_pairs + gather_features", sample_gather, (table, key), pairs)
  )

  # f and h forward + backward on fixed features: the step's dense work.
  scorer, weigher = models.build(no_dropout)
  tx = trainer.make_optimizer(no_dropout)
  state = trainer.init_state(no_dropout, scorer, weigher, tx, dim)

  def loss(params, x_short, x_long):
    f_short = scorer.apply({"params": params["f"]}, x_short)
    f_long = scorer.apply({"params": params["f"]}, x_long)
    weights = losses.group_softmax_weights(weigher.apply({"params": params["h"]}, x_short, x_long))
    return jnp.mean(losses.weighted_group_loss(losses.pairwise_hinge(f_short, f_long), weights))

  probes.append(
      harness.repeat_probe(
          "f, h forward + backward (no sampling, dropout, optimizer)",
          jax.jit(jax.grad(loss)),
          (state.params, *sample_gather(table, key)),
          pairs,
      )
  )

  @jax.jit
  def update(params, opt_state):
    updates, opt_state = tx.update(params, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  probes.append(
      harness.repeat_probe("AdamW update alone", update, (state.params, state.opt_state), pairs)
  )

  # The dropout masks of one joint step: f on both segments, h once.
  shapes = [
      (num_groups, n, w)
      for w in list(base.model.scorer_hidden) * 2 + list(base.model.weigher_hidden)
  ]
  rate = base.model.dropout

  def masks(key):
    return [
        jax.random.bernoulli(k, 1 - rate, shape)
        for k, shape in zip(jax.random.split(key, len(shapes)), shapes)
    ]

  def byte_masks(key):
    return [
        models.byte_keep_mask(k, 1 - rate, shape)
        for k, shape in zip(jax.random.split(key, len(shapes)), shapes)
    ]

  for impl in ("threefry2x32", "rbg"):
    probes.append(
        harness.repeat_probe(
            f"dropout masks alone ({impl} bernoulli)",
            jax.jit(masks),
            (jax.random.key(0, impl=impl),),
            pairs,
        )
    )
  probes.append(
      harness.repeat_probe(
          "dropout masks alone (threefry2x32, 8-bit bytes)",
          jax.jit(byte_masks),
          (jax.random.key(0),),
          pairs,
      )
  )
  return probes


def _patched(probe: harness.Probe, context) -> harness.Probe:
  """Runs (and so traces) `probe` inside `context()`."""
  run = probe.run

  def patched_run(k: int) -> None:
    with context():
      run(k)

  probe.run = patched_run
  return probe


def end_to_end(
    base, corpus: dict, window_videos: int, refill_every: int, table_segments: int = 0
) -> dict:
  """Pairs/s of real training on the manifest corpus, from its metrics log."""
  config = ml_collections.ConfigDict(base.to_dict())
  config.corpus.builder_config = "manifest"
  config.corpus.manual_dir = corpus["manual_dir"]
  config.data_dir = corpus["data_dir"]
  config.corpus.eval_split = ""
  steps = _E2E_STEPS.value
  config.train.num_steps = steps
  config.train.log_every = max(1, steps // 6)
  config.checkpoint.every_steps = 10 * steps
  config.eval.every_steps = 0
  config.input.window_videos = window_videos
  config.input.refill_every_steps = refill_every
  if table_segments:
    config.input.table_segments = table_segments
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # Its results table.
      run_loop.train_and_evaluate(config, workdir)
    total = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
  rates = [r["train/pairs_per_second"] for r in rows if "train/pairs_per_second" in r]
  return {
      "pairs_per_second": float(np.median(rates[1:])),
      "interval_rates": rates,
      "window_videos": window_videos,
      "refill_every_steps": refill_every,
      "table_segments": config.input.table_segments,
      "steps": steps,
      "wall_seconds_including_compile_and_eval": total,
  }


def main(argv):
  del argv
  base, dim = _CONFIG.value, _DIM.value
  n = base.train.group_size
  sweep = [int(m) for m in _NUM_GROUPS.value]
  results = {
      "machine": harness.machine(),
      "feature_dim": dim,
      "group_size": n,
      "scorer_hidden": list(base.model.scorer_hidden),
      "weigher_hidden": list(base.model.weigher_hidden),
      "dropout": base.model.dropout,
      "table_segments": base.input.table_segments,
  }
  table = harness.device_table(base, dim)

  steps, flops = {}, {}
  for weighting in _WEIGHTINGS.value:
    for m in sweep:
      config = harness.weighting_config(base, weighting, m)
      name = f"{weighting} m={m}"
      steps[name] = harness.step_probe(name, config, table, dim)
      flops[name] = flops_per_pair(config, dim)
  b, big = sweep[0] * n, max(sweep) * n
  shapes = {
      "square 2048^3 (peak)": (2048, 2048, 2048, False),
      f"f layer x W [{b},{dim}]x[{dim},512]": (b, dim, 512, False),
      f"f weight grad x^T dy [{dim},{b}]x[{b},512]": (dim, b, 512, True),
      f"h layer x W [{b},{2 * dim}]x[{2 * dim},512]": (b, 2 * dim, 512, False),
      f"f layer x W [{big},{dim}]x[{dim},512]": (big, dim, 512, False),
  }
  matmuls = {name: harness.matmul_probe(name, *shape) for name, shape in shapes.items()}
  parts = breakdown_probes(base, table, dim, sweep[0]) if _BREAKDOWN.value else []
  # The full joint step the parts are set against: the sweep's, or timed beside it.
  full = steps.get(f"{JOINT} m={sweep[0]}")
  extra = []
  if parts and full is None:
    full = harness.step_probe(
        f"{JOINT} m={sweep[0]}", harness.weighting_config(base, JOINT, sweep[0]), table, dim
    )
    extra.append(full)
  harness.round_robin(
      list(matmuls.values()) + list(steps.values()) + parts + extra,
      _ROUNDS.value,
      _MIN_SECONDS.value,
      _PAUSE.value,
  )

  peak = matmuls["square 2048^3 (peak)"].median()
  results["matmul_flops_per_second"] = {k: p.median() for k, p in matmuls.items()}
  results["matmul_samples"] = {k: p.samples for k, p in matmuls.items()}
  results["step_only"] = {}
  lines = [
      "| weighting | m x n | pairs/s | GFLOP/s (nominal) | of peak (nominal) "
      "| of peak (needed) |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for name, probe in steps.items():
    rate = probe.median()
    nominal, needed = rate * flops[name]["nominal"], rate * flops[name]["needed"]
    weighting, m = name.split(" m=")
    results["step_only"][name] = {
        "weighting": weighting,
        "num_groups": int(m),
        "pairs_per_second": rate,
        "samples": probe.samples,
        "flops_per_pair": flops[name],
        "fraction_of_peak_nominal": nominal / peak,
        "fraction_of_peak_needed": needed / peak,
    }
    lines.append(
        f"| {weighting} | {m} x {n} | {rate:,.0f} | {nominal / 1e9:.1f} | "
        f"{nominal / peak:.0%} | {needed / peak:.0%} |"
    )
  print(
      f"\nDense f32 matmul on {results['machine']['cpu']} "
      f"({results['machine']['nproc']} cores):\n"
  )
  print("| matmul | GFLOP/s |\n|---|---:|")
  for name, probe in matmuls.items():
    print(f"| {name} | {probe.median() / 1e9:.1f} |")
  print(
      f"\nStep only, D={dim}, hidden {tuple(base.model.scorer_hidden)}, "
      f"peak = square 2048^3 matmul ({peak / 1e9:.1f} GFLOP/s):\n"
  )
  print("\n".join(lines))

  if parts:
    joint = full.median()
    results["breakdown"] = {
        p.name: {
            "pairs_per_second": p.median(),
            "seconds_per_step": sweep[0] * n / p.median(),
            "samples": p.samples,
        }
        for p in parts
    }
    results["breakdown"]["full step"] = {
        "pairs_per_second": joint,
        "seconds_per_step": sweep[0] * n / joint,
    }
    print(f"\nParts of the joint step ({JOINT}), m x n = {sweep[0]} x {n}:\n")
    print("| part | ms per step | of the full step |\n|---|---:|---:|")
    for name, part in results["breakdown"].items():
      ms = 1e3 * part["seconds_per_step"]
      print(f"| {name} | {ms:.1f} | {part['seconds_per_step'] * joint / (sweep[0] * n):.0%} |")

  if _E2E.value:
    corpus = harness.prepare_manifest_corpus(
        os.path.join(_WORK_DIR.value, f"manifest_{_E2E_VIDEOS.value}"), _E2E_VIDEOS.value, dim
    )
    results["e2e_corpus"] = corpus
    config = harness.weighting_config(base, base.train.weighting, sweep[0])
    name = f"{base.train.weighting} m={sweep[0]}"
    probe = steps.get(name) or next((p for p in extra if p.name == name), None)
    if probe is None:  # Not timed yet: compiled and calibrated here, not in a sample.
      probe = harness.step_probe(name, config, table, dim)
      probe.calibrate(_MIN_SECONDS.value)
    runs = {}
    cases = [
        ("resident", 0, 0, 0),
        ("windows", _E2E_WINDOW_VIDEOS.value, _E2E_REFILL_EVERY.value, 0),
    ]
    if _E2E_WINDOW_TABLE.value:
      cases.append(
          (
              "windows, small table",
              _E2E_WINDOW_VIDEOS.value,
              _E2E_REFILL_EVERY.value,
              _E2E_WINDOW_TABLE.value,
          )
      )
    for label, window, refill, table_segments in cases:
      before = probe.sample()
      e2e = end_to_end(config, corpus, window, refill, table_segments)
      after = probe.sample()
      e2e["step_only_before_after"] = [before, after]
      e2e["ratio"] = e2e["pairs_per_second"] / statistics.mean([before, after])
      runs[label] = e2e
    results["end_to_end"] = runs
    print(
        f"\nEnd to end ({name}, manifest corpus of {corpus['videos']} videos, "
        f"{corpus['short_long_segments']} short+long segments) against step "
        "only just before and after:\n"
    )
    print("| run | e2e pairs/s | step-only pairs/s | ratio |\n|---|---:|---:|---:|")
    for label, e2e in runs.items():
      what = (
          "whole corpus resident"
          if label == "resident"
          else f"{e2e['window_videos']}-video windows, refill every "
          f"{e2e['refill_every_steps']} steps"
      )
      what += f", table {e2e['table_segments']} rows"
      step_rate = statistics.mean(e2e["step_only_before_after"])
      print(
          f"| {what} | {e2e['pairs_per_second']:,.0f} | {step_rate:,.0f} | " f"{e2e['ratio']:.2f} |"
      )
  harness.finish(results, _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
