r"""TaoHighlight's train step: videos/s step-only and end to end, in one run.

  python -m benchmarks.tao_step --data_dir=/tmp/hl_jax_ablation/tfds \
      --output=/tmp/hl_jax_bench/tao_step.json

1. Step only: the jitted train step of `trainer.compiled` (hl_jax.taohighlight; state
   donated) on one fixed batch of random inputs of each benchmark's padded shapes
   (`SHAPES`: what the trainer pads the real splits to, T_max clips of 2048-d I3D
   rgb + flow, with TVSum's title tokens or YouTube Highlights' 2048-d PANN audio as
   the context), at the config's batch size and model; its forward pass alone (the
   predict step); and a square 2048^3 f32 matmul, all sampled round-robin
   (`harness.round_robin`, medians), so ratios hold on a shared machine.
2. End to end (--e2e): `run_loop.train_and_evaluate` on the real benchmark (its TFDS
   build in --data_dir, raw data under the config's data_root), --e2e_steps steps, no
   evaluation but the final one; steps/s from its metrics log after the first interval
   (which holds the compilation), against step-only samples of the same shapes taken
   just before and after. The ratio is end to end / step only: what the host-side batch
   assembly (collate, device_put) and logging cost.
Prints tables and writes the JSON (--output).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from benchmarks import harness
from configs import taohighlight as tao_config
from hl_jax.core import parallel
from hl_jax.core import run_loop
from hl_jax.taohighlight import inputs
from hl_jax.taohighlight import trainer

# (T_max, title tokens L_max, their width) as the trainer pads the real splits.
SHAPES = {"tvsum": (328, 26, 512), "youtube_highlights": (480, 0, 0)}
AUDIO_DIM = 2048

_BENCHMARKS = flags.DEFINE_list("benchmarks", list(SHAPES), "Benchmarks' shapes to time.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data_dir of the e2e runs.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Round-robin rounds (medians reported).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 1.5, "Seconds per sample.")
_E2E = flags.DEFINE_bool("e2e", True, "Also time end-to-end training.")
_E2E_STEPS = flags.DEFINE_integer("e2e_steps", 150, "End-to-end training steps.")
_OUTPUT = flags.DEFINE_string("output", "", "JSON results.")


def config_of(benchmark: str) -> ml_collections.ConfigDict:
  config = tao_config.get_config(f"benchmark={benchmark}")
  if _DATA_DIR.value:
    config.data_dir = _DATA_DIR.value
  return config


def random_batch(config: ml_collections.ConfigDict, seed: int = 0) -> dict[str, np.ndarray]:
  """A batch of train.batch_size random videos of the benchmark's padded shapes, of
  random lengths in [T_max / 2, T_max], with a random target segment."""
  t_max, l_max, width = SHAPES[config.benchmark]
  rng = np.random.default_rng(seed)
  examples = []
  for i in range(config.train.batch_size):
    t = int(rng.integers(t_max // 2, t_max + 1))
    start = int(rng.integers(0, t - config.loss.segment_length))
    examples.append(
        inputs.Example(
            f"v{i}",
            rng.standard_normal((t, config.model.visual_dim), np.float32),
            rng.standard_normal((t, AUDIO_DIM), np.float32)
            if config.model.context == "audio"
            else None,
            rng.standard_normal((int(rng.integers(5, l_max + 1)), width), np.float32)
            if l_max
            else None,
            rng.random(t, np.float32),
            (start, start + config.loss.segment_length),
        )
    )
  return inputs.collate(examples, t_max, l_max, width)


def step_probes(config: ml_collections.ConfigDict) -> list[harness.Probe]:
  """The train step and the forward pass of `config` on a random batch, videos/s."""
  mesh = parallel.make_mesh(jax.devices()[: config.num_devices or None])
  if config.train.batch_size % mesh.size:
    raise ValueError(
        f"train.batch_size={config.train.batch_size} is not a multiple of the "
        f"{mesh.size} devices"
    )
  steps = trainer.steps_of(config, mesh)
  batch = jax.device_put(random_batch(config), parallel.batch_sharded(mesh))
  state = [trainer.init_state(config.seed, steps, batch)]
  rng = jax.random.PRNGKey(1)

  def train(k: int) -> None:
    for _ in range(k):
      state[0], parts = steps.train_step(state[0], batch, rng)
    jax.block_until_ready(parts)

  b = config.train.batch_size
  params = trainer.init_state(config.seed, steps, batch).params  # Not donated.
  return [
      harness.Probe(f"{config.benchmark} train step", train, b),
      harness.repeat_probe(
          f"{config.benchmark} forward (predict step)", steps.predict, (params, batch), b
      ),
  ]


def end_to_end(config: ml_collections.ConfigDict) -> dict:
  """Videos/s of real training, from its metrics log (after the first interval)."""
  config = ml_collections.ConfigDict(config.to_dict())
  steps = _E2E_STEPS.value
  config.train.num_steps, config.eval.every_steps = steps, 0
  config.train.log_every = max(1, steps // 6)
  config.checkpoint.every_steps = 10 * steps
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    run_loop.train_and_evaluate(config, workdir)
    total = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
  rates = [r["train/steps_per_second"] for r in rows if "train/steps_per_second" in r]
  videos = [config.train.batch_size * r for r in rates]
  return {
      "videos_per_second": float(np.median(videos[1:])),
      "interval_videos_per_second": videos,
      "steps": steps,
      "wall_seconds_including_compile_and_eval": total,
  }


def main(argv):
  del argv
  results = {"machine": harness.machine(), "shapes": SHAPES, "benchmarks": {}}
  probes = [harness.matmul_probe("square 2048^3 matmul", 2048, 2048, 2048)]
  configs = {b: config_of(b) for b in _BENCHMARKS.value}
  for config in configs.values():
    probes += step_probes(config)
  harness.round_robin(probes, _ROUNDS.value, _MIN_SECONDS.value)
  print(f"\nStep only ({_ROUNDS.value} rounds, medians; videos of the padded length):\n")
  print(
      "| benchmark | batch | T_max | probe | videos/s | ms per call |\n"
      "|---|---:|---:|---|---:|---:|"
  )
  for name, config in configs.items():
    b = config.train.batch_size
    for probe in probes:
      if probe.name.startswith(name):
        rate = probe.median()
        results["benchmarks"].setdefault(name, {})[probe.name] = {
            "videos_per_second": rate,
            "samples": probe.samples,
            "batch": b,
        }
        print(
            f"| {name} | {b} | {SHAPES[name][0]} | {probe.name[len(name) + 1:]} | "
            f"{rate:,.1f} | {1e3 * b / rate:,.1f} |"
        )
  peak = probes[0].median()
  results["matmul_gflops"] = peak / 1e9
  print(f"\nsquare 2048^3 f32 matmul: {peak / 1e9:,.1f} GFLOP/s")
  if _E2E.value:
    print(
        "\n| benchmark | e2e videos/s | step-only videos/s (before, after) | ratio |\n"
        "|---|---:|---:|---:|"
    )
    for name, config in configs.items():
      train_probe = next(p for p in probes if p.name == f"{name} train step")
      before = train_probe.sample()
      e2e = end_to_end(config)
      after = train_probe.sample()
      e2e["step_only_before_after"] = [before, after]
      e2e["ratio"] = e2e["videos_per_second"] / statistics.mean([before, after])
      results["benchmarks"][name]["end_to_end"] = e2e
      print(
          f"| {name} | {e2e['videos_per_second']:,.1f} | {before:,.1f}, {after:,.1f} | "
          f"{e2e['ratio']:.2f} |"
      )
  harness.finish(results, _OUTPUT.value)


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
