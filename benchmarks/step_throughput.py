r"""Pairs per second of the compiled train step alone, and of real training.

  python benchmarks/step_throughput.py --config=configs/joint.py \
      --output=/tmp/hl_jax_bench/step_throughput.json

Step-only: the jitted step on a random resident table, timed after compilation
(each sample ends with a device sync). End to end: `train.train_and_evaluate`
on the configured TFDS corpus, read through Grain into the table (with window
refills when --window_videos is set), its pairs/s taken from the training log
after the first log interval (which includes compilation). Both run in the
same process, so their ratio is meaningful on a shared machine.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hl_jax import input_pipeline  # pylint: disable=g-import-not-at-top
from hl_jax import models
from hl_jax import parallel
from hl_jax import train

_CONFIG = config_flags.DEFINE_config_file("config", "configs/joint.py", "Config.")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps per step-only sample.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Step-only samples (median taken).")
_E2E_STEPS = flags.DEFINE_integer("e2e_steps", 600, "End-to-end training steps.")
_WINDOW_VIDEOS = flags.DEFINE_integer(
    "window_videos", 0, "End to end: videos per table window (0: whole corpus).")
_OUTPUT = flags.DEFINE_string("output", "", "JSON output path.")


def random_table(num_rows: int, dim: int, seed: int = 0) -> input_pipeline.SegmentTable:
  rng = np.random.default_rng(seed)
  half = num_rows // 2
  return input_pipeline.SegmentTable(
      features=rng.normal(size=(num_rows, dim)).astype(np.float32),
      video=np.arange(num_rows, dtype=np.int32),
      short_index=np.arange(num_rows, dtype=np.int32),
      long_index=np.roll(np.arange(num_rows, dtype=np.int32), -half),
      num_short=np.int32(half), num_long=np.int32(num_rows - half))


def step_only(config, dim: int) -> dict:
  """Median pairs/s of the compiled step over `--repeats` samples."""
  mesh = parallel.make_mesh(jax.devices()[:config.num_devices or None])
  scorer, weigher = models.build(config)
  tx = train.make_optimizer(config)
  replicated = parallel.replicated(mesh)
  state = jax.device_put(train.init_state(config, scorer, weigher, tx, dim), replicated)
  table = jax.device_put(random_table(config.input.table_segments, dim), replicated)
  step = train.make_train_step(config, scorer, weigher, tx, mesh)
  state, aux = step(state, table)  # Compile.
  jax.block_until_ready(aux)
  rates = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    for i in range(_STEPS.value):
      state, aux = step(state, table)
      if (i + 1) % config.train.sync_every == 0:
        jax.block_until_ready(aux)
    jax.block_until_ready(state)
    rates.append(_STEPS.value * config.train.num_groups * config.train.group_size
                 / (time.perf_counter() - start))
  return {"pairs_per_second": float(np.median(rates)), "samples": rates}


def end_to_end(config) -> dict:
  """Pairs/s of real training read from its metrics log."""
  config = config.copy_and_resolve_references()
  config.train.num_steps = _E2E_STEPS.value
  config.train.log_every = max(1, _E2E_STEPS.value // 6)
  config.checkpoint.every_steps = 10 * _E2E_STEPS.value
  config.eval.every_steps = 0
  if _WINDOW_VIDEOS.value:
    config.input.window_videos = _WINDOW_VIDEOS.value
    config.input.refill_every_steps = config.train.log_every // 2
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir)
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  rates = [r["train/pairs_per_second"] for r in rows if "train/pairs_per_second" in r]
  return {"pairs_per_second": float(np.median(rates[1:])), "interval_rates": rates,
          "wall_seconds_including_build_and_eval": total}


def main(argv):
  del argv
  config = _CONFIG.value
  results = {"device": str(jax.devices()[0]), "num_devices": jax.device_count(),
             "config": {"num_groups": config.train.num_groups,
                        "group_size": config.train.group_size,
                        "scorer_hidden": list(config.model.scorer_hidden),
                        "variant": config.variant, "corpus": config.corpus.config}}
  e2e = end_to_end(config)  # Builds the corpus; tells us its feature dim.
  from hl_jax import corpus  # pylint: disable=g-import-not-at-top
  dim = corpus.load(config).feature_dim
  results["feature_dim"] = dim
  results["step_only"] = step_only(config, dim)
  results["end_to_end"] = e2e
  ratio = e2e["pairs_per_second"] / results["step_only"]["pairs_per_second"]
  results["end_to_end_over_step_only"] = ratio
  print(f"| measurement | pairs/s |\n|---|---:|\n"
        f"| step only | {results['step_only']['pairs_per_second']:,.0f} |\n"
        f"| end to end (TFDS + Grain + table) | {e2e['pairs_per_second']:,.0f} |\n"
        f"| ratio | {ratio:.2f} |")
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  app.run(main)
