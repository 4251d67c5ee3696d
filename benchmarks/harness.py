"""What the benchmarks share: timing probes, the machine, tables and corpora.

Timing: every measured thing is a `Probe` (a callable that does k units of
work and syncs); `round_robin` calibrates each to about `min_seconds` per
sample and then samples all of them in turn, so that on a shared machine a
load change hits every probe alike and ratios of medians stay meaningful.

A manifest corpus is what a user of the `duration_corpus/manifest` config
brings (one `[T, 1024]` feature file per video and a manifest.csv); these are
random features with the duration mix of the synthetic corpus (a third short,
a third long, a third rest; 4-s segments, 2 to 64 per video), so their
segment counts, table windows and refills behave like real data.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from typing import Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax.core import files
from hl_jax.core import parallel
from hl_jax.less_is_more import models
from hl_jax.less_is_more import segment_table
from hl_jax.less_is_more import trainer
from hl_jax.less_is_more import weightings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Probe:
  """Something timed round-robin: `run(k)` does k calls and syncs."""

  name: str
  run: Callable[[int], None]
  units_per_call: float  # Pairs (steps) or FLOPs (matmuls) per call.
  calls: int = 1  # Calls per sample, set by `calibrate`.
  samples: list[float] = dataclasses.field(default_factory=list)

  def calibrate(self, min_seconds: float) -> None:
    self.run(1)  # Compiles.
    start = time.perf_counter()
    self.run(2)
    per_call = (time.perf_counter() - start) / 2
    self.calls = max(2, int(np.ceil(min_seconds / max(per_call, 1e-6))))

  def sample(self) -> float:
    """One timed sample; returns (and keeps) units per second."""
    start = time.perf_counter()
    self.run(self.calls)
    rate = self.calls * self.units_per_call / (time.perf_counter() - start)
    self.samples.append(rate)
    return rate

  def median(self) -> float:
    return float(np.median(self.samples))


def round_robin(probes: list[Probe], rounds: int, min_seconds: float, pause: float = 0.2) -> None:
  """Calibrates every probe, then samples them in turn `rounds` times.

  `pause` seconds of sleep before each sample let the previous probe's
  spinning worker threads (OpenMP, Eigen) go idle.
  """
  for probe in probes:
    probe.calibrate(min_seconds)
    logging.info("calibrated %s: %d calls per sample", probe.name, probe.calls)
  for r in range(rounds):
    for probe in probes:
      time.sleep(pause)
      probe.sample()
    logging.info("round %d/%d done, load %s", r + 1, rounds, os.getloadavg())


def repeat_probe(name: str, fn: Callable, args: tuple, units_per_call: float) -> Probe:
  """`fn(*args)` (a jitted function) as a Probe."""

  def run(k: int) -> None:
    out = None
    for _ in range(k):
      out = fn(*args)
    jax.block_until_ready(out)

  return Probe(name, run, units_per_call)


def matmul_probe(name: str, m: int, k: int, n: int, transpose_a: bool = False) -> Probe:
  """A jitted f32 [m, k] x [k, n] product; units are FLOPs.

  transpose_a: A is stored [k, m] and contracted over its first axis, as in
  a weight gradient x^T dy.
  """
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((k, m) if transpose_a else (m, k), np.float32))
  b = jnp.asarray(rng.standard_normal((k, n), np.float32))
  fn = jax.jit((lambda a, b: a.T @ b) if transpose_a else jnp.dot)
  return repeat_probe(name, fn, (a, b), 2.0 * m * k * n)


def weighting_config(
    base: ml_collections.ConfigDict, weighting: str, num_groups: int, **model
) -> ml_collections.ConfigDict:
  """A copy of `base` with another `train.weighting`, m and `config.model` keys.

  Raises:
    ValueError: `weighting` is not one of hl_jax.less_is_more.weightings.NAMES.
  """
  weightings.get(weighting)  # A one-line error naming the known ones.
  config = ml_collections.ConfigDict(base.to_dict())
  config.train.weighting = weighting
  config.train.num_groups = num_groups
  for key, value in model.items():
    config.model[key] = value
  return config


def step_probe(
    name: str, config: ml_collections.ConfigDict, table: segment_table.SegmentTable, dim: int
) -> Probe:
  """hl_jax's compiled train step on a device `table`; units are pairs.

  Syncs every `train.sync_every` steps, as the trainer does.
  """
  mesh = parallel.make_mesh(jax.devices()[: config.num_devices or None])
  scorer, weigher = models.build(config)
  tx = trainer.make_optimizer(config)
  holder = [
      jax.device_put(
          trainer.init_state(config, scorer, weigher, tx, dim), parallel.replicated(mesh)
      )
  ]
  step = trainer.make_train_step(config, scorer, weigher, tx, mesh)
  sync_every = config.train.sync_every

  def run(k: int) -> None:
    state = holder[0]
    for i in range(k):
      state, aux = step(state, table)
      if (i + 1) % sync_every == 0:
        jax.block_until_ready(aux)
    holder[0] = jax.block_until_ready(state)

  return Probe(name, run, config.train.num_groups * config.train.group_size)


def device_table(
    config: ml_collections.ConfigDict,
    dim: int,
    host_table: segment_table.SegmentTable | None = None,
) -> segment_table.SegmentTable:
  """`host_table` (default: a random one of `input.table_segments` rows) on
  the step's mesh."""
  if host_table is None:
    host_table = random_table(config.input.table_segments, dim)
  mesh = parallel.make_mesh(jax.devices()[: config.num_devices or None])
  return jax.device_put(host_table, parallel.per_shard(mesh))


# The ISA extensions that set a CPU's f32/bf16 matmul peak. One model name
# ("AMD EPYC") has come with and without AVX-512, at over twice the square
# matmul rate with it (BENCHMARKS.md), so a ratio to the peak names them.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
  """{"cpu": model name, "isa": {flag: present}} from the first CPU in `path`."""
  model, flags = "?", None
  with open(path) as f:
    for line in f:
      key, _, value = line.partition(":")
      key = key.strip()
      if key == "model name" and model == "?":
        model = value.strip()
      elif key == "flags" and flags is None:
        flags = set(value.split())
  return {"cpu": model, "isa": {flag: flag in (flags or ()) for flag in ISA_FLAGS}}


def machine() -> dict:
  """The machine, versions, date and load average, for the report."""
  with open("/proc/meminfo") as f:
    mem_kb = int(f.readline().split()[1])
  return {
      "nproc": os.cpu_count(),
      **cpu_info(),
      "ram_gib": round(mem_kb / 2**20, 1),
      "loadavg_start": os.getloadavg(),
      "date": time.strftime("%Y-%m-%d %H:%M %Z"),
      "python": platform.python_version(),
      "jax": jax.__version__,
      "device": str(jax.devices()[0]),
      "num_devices": jax.device_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def describe_machine(info: dict) -> str:
  """One line naming the CPU a ratio holds for, e.g. "AMD EPYC, 2 cores, avx2 yes, ..."."""
  isa = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in info["isa"].items())
  return (
      f"{info['cpu']}, {info['nproc']} cores, {isa}, {info['ram_gib']} GiB RAM, "
      f"{info['num_devices']} x {info['device']}"
  )


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: list[str]
) -> ml_collections.ConfigDict:
  """`config` with "section.key=value" overrides, each value cast to the key's type."""
  for override in overrides:
    key, sep, value = override.partition("=")
    *path, name = key.strip().split(".")
    node = config
    for part in path:
      node = node[part]
    if not sep or name not in node:
      raise ValueError(
          f"config override {override!r}: expected section.key=value " "with an existing key"
      )
    current = node[name]
    if isinstance(current, bool):
      node[name] = value.lower() in ("1", "true", "yes")
    elif isinstance(current, (tuple, list)):
      node[name] = type(current)(int(v) for v in value.split(":") if v)
    else:
      node[name] = type(current)(value)
  return config


def finish(results: dict, path: str) -> None:
  """Prints the machine and the load average at the end, and writes the JSON."""
  results["machine"]["loadavg_end"] = os.getloadavg()
  print(f"\nmachine: {describe_machine(results['machine'])}")
  print(
      f"load average start {results['machine']['loadavg_start']}, "
      f"end {results['machine']['loadavg_end']}"
  )
  write_json(path, results)


def write_json(path: str, results: dict) -> None:
  """Writes `results` to `path` whole (nothing if `path` is empty)."""
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_json(path, results)


def random_table(num_rows: int, dim: int, seed: int = 0) -> segment_table.SegmentTable:
  """A full stacked table ([1, ...] shard axis) of N(0, 1) features.

  Each row is its own video; the first half are short-video segments, the
  rest long-video ones. Built as the window reader builds its tables, so the
  table keeps up with new SegmentTable fields.
  """
  rng = np.random.default_rng(seed)
  buckets = np.where(
      np.arange(num_rows) < num_rows // 2, segment_table.SHORT, segment_table.LONG
  ).astype(np.int32)
  table = segment_table.make_table(  # pylint: disable=protected-access
      rng.standard_normal((num_rows, dim), np.float32), np.arange(num_rows, dtype=np.int32), buckets
  )
  return segment_table.stack_tables([table])


def write_manifest_corpus(manual_dir: str, num_videos: int, dim: int = 1024, seed: int = 0) -> dict:
  """Writes `manual_dir/manifest.csv` and `features/v<i>.npy` (float16).

  Returns:
    Counts: videos per bucket and short + long segments (table rows needed).
  """
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(manual_dir, "features"), exist_ok=True)
  bucket = rng.integers(0, 3, num_videos)  # 0 short, 1 long, 2 rest.
  duration = np.where(
      bucket == 0,
      rng.uniform(5.0, 14.9, num_videos),
      np.where(
          bucket == 1,
          np.exp(rng.uniform(np.log(46.0), np.log(240.0), num_videos)),
          rng.uniform(16.0, 44.0, num_videos),
      ),
  )
  segments = np.clip(np.round(duration / 4.0), 2, 64).astype(int)
  rows = []
  for i in range(num_videos):
    path = os.path.join("features", f"v{i:06d}.npy")
    np.save(
        os.path.join(manual_dir, path),
        rng.standard_normal((segments[i], dim), np.float32).astype(np.float16),
    )
    rows.append(
        {
            "video_id": f"v{i:06d}",
            "duration_s": f"{duration[i]:.3f}",
            "domain": "all",
            "feature_path": path,
        }
    )
  with open(os.path.join(manual_dir, "manifest.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return {
      "videos": num_videos,
      "short_videos": int(np.sum(bucket == 0)),
      "long_videos": int(np.sum(bucket == 1)),
      "short_long_segments": int(np.sum(segments[bucket < 2])),
      "all_segments": int(np.sum(segments)),
  }


def build_manifest_corpus(manual_dir: str, data_dir: str) -> None:
  """Builds duration_corpus/manifest from `manual_dir` into `data_dir`.

  Runs in a subprocess so that the build's memory is not the caller's.
  """
  code = (
      "import sys; import tensorflow_datasets as tfds; tfds.disable_progress_bar();"
      " from tfds_builders.duration_corpus import duration_corpus_dataset_builder"
      " as dcb; dcb.get_builder('manifest', data_dir=sys.argv[1],"
      " manual_dir=sys.argv[2])"
  )
  done = subprocess.run(
      [sys.executable, "-c", code, data_dir, manual_dir],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
  )
  if done.returncode:
    raise RuntimeError(f"building {manual_dir} failed:\n{done.stderr[-3000:]}")


def prepare_manifest_corpus(root: str, num_videos: int, dim: int = 1024) -> dict:
  """`root/manual` and `root/tfds` for a corpus of `num_videos` (reused if built).

  Returns:
    {"manual_dir", "data_dir", and the counts of `write_manifest_corpus`}.
  """
  manual_dir = os.path.join(root, "manual")
  data_dir = os.path.join(root, "tfds")
  counts_path = os.path.join(root, "counts.json")
  if os.path.exists(counts_path):
    with open(counts_path) as f:
      counts = json.load(f)
    if counts["videos"] != num_videos:
      raise ValueError(
          f"{root} holds a corpus of {counts['videos']} videos, "
          f"not {num_videos}; remove it or use another root"
      )
  else:
    counts = write_manifest_corpus(manual_dir, num_videos, dim)
    build_manifest_corpus(manual_dir, data_dir)
    with open(counts_path, "w") as f:
      json.dump(counts, f)
  return {"manual_dir": manual_dir, "data_dir": data_dir, **counts}
