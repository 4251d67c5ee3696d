r"""Peak RSS of training as the corpus grows past the resident table.

  python -m benchmarks.memory --output=/tmp/hl_jax_bench/memory.json

For each corpus size (`--sizes` times `--base_videos` videos of random 1024-d
features, a `duration_corpus/manifest` corpus built into its own data_dir
first, in its own process), `launch.py` trains the joint model in a fresh
subprocess with a resident table of `--table_segments` rows: the 1x corpus
fits in one window (no refills), the larger ones do not, so their tables are
refilled every `--refill_every` steps from the Grain stream. The child's peak
RSS is `ru_maxrss` from `os.wait4` on that child alone (VmHWM), and its RSS is
sampled from /proc/<pid>/status while it runs. Flat means: peak RSS at 10x
within 20% of 1x while the corpus's short + long features grow 10x.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from benchmarks import harness

_SIZES = flags.DEFINE_list("sizes", ["1", "4", "10"], "Corpus sizes, x base.")
_BASE_VIDEOS = flags.DEFINE_integer("base_videos", 1000, "Videos of the 1x corpus.")
_DIM = flags.DEFINE_integer("dim", 1024, "Feature dim (the manifest config's).")
_TABLE_SEGMENTS = flags.DEFINE_integer(
    "table_segments", 16384, "input.table_segments: rows of the resident table."
)
_REFILL_EVERY = flags.DEFINE_integer("refill_every", 20, "input.refill_every_steps.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 200, "Training steps per run.")
_CONFIG = flags.DEFINE_string("config", "configs/joint.py", "Config file.")
_POLL = flags.DEFINE_float("poll_seconds", 0.1, "RSS sampling interval.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "/tmp/hl_jax_bench", "Where the corpora are written (reused)."
)
_OUTPUT = flags.DEFINE_string("output", "", "JSON output path.")


def _status_kib(pid: int, field: str) -> int | None:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except (FileNotFoundError, ProcessLookupError):
    return None
  return None


def train_and_measure(corpus: dict, workdir: str) -> dict:
  """Runs launch.py on `corpus`; its peak RSS, RSS trace and refill count."""
  command = [
      sys.executable,
      "launch.py",
      f"--config={_CONFIG.value}",
      f"--workdir={workdir}",
      "--config.corpus.builder_config=manifest",
      f"--config.corpus.manual_dir={corpus['manual_dir']}",
      f"--config.data_dir={corpus['data_dir']}",
      "--config.corpus.eval_split=",
      f"--config.input.table_segments={_TABLE_SEGMENTS.value}",
      f"--config.input.refill_every_steps={_REFILL_EVERY.value}",
      f"--config.train.num_steps={_NUM_STEPS.value}",
      f"--config.train.log_every={max(1, _NUM_STEPS.value // 4)}",
      f"--config.checkpoint.every_steps={_NUM_STEPS.value}",
      "--config.eval.every_steps=0",
  ]
  log_path = os.path.join(workdir, "launch.log")
  trace = []
  with open(log_path, "w") as log:
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=harness.REPO, stdout=log, stderr=subprocess.STDOUT)
    while True:
      pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
      if pid:
        break
      rss = _status_kib(child.pid, "VmRSS")
      if rss is not None:
        trace.append((round(time.perf_counter() - start, 2), rss))
      time.sleep(_POLL.value)
    child.returncode = os.waitstatus_to_exitcode(status)
  with open(log_path) as f:
    log_text = f.read()
  if child.returncode:
    raise RuntimeError(f"launch.py failed ({child.returncode}):\n{log_text[-3000:]}")
  windows = [int(v) for v in re.findall(r"Shard 0 window \d+: (\d+) videos", log_text)]
  rss_mib = [kib / 1024 for _, kib in trace]
  return {
      "peak_rss_mib": rusage.ru_maxrss / 1024,  # ru_maxrss is KiB on Linux.
      "windows_read": len(windows),
      "videos_in_windows": sum(windows),
      "static_table": "no refills" in log_text,
      "rss_mib_at_quartiles_of_run": [
          rss_mib[int(q * (len(rss_mib) - 1))] for q in (0.25, 0.5, 0.75, 1.0)
      ]
      if rss_mib
      else [],
      "wall_seconds": time.perf_counter() - start,
      "rss_trace_seconds_kib": trace[::10],
      "command": " ".join(command),
  }


def main(argv):
  del argv
  results = {
      "machine": harness.machine(),
      "table_segments": _TABLE_SEGMENTS.value,
      "table_mib": _TABLE_SEGMENTS.value * _DIM.value * 4 / 2**20,
      "refill_every_steps": _REFILL_EVERY.value,
      "num_steps": _NUM_STEPS.value,
      "config": _CONFIG.value,
      "runs": [],
  }
  for size in (int(s) for s in _SIZES.value):
    videos = size * _BASE_VIDEOS.value
    corpus = harness.prepare_manifest_corpus(
        os.path.join(_WORK_DIR.value, f"manifest_{videos}"), videos, _DIM.value
    )
    with tempfile.TemporaryDirectory() as workdir:
      run = train_and_measure(corpus, workdir)
    run.update(
        size=size,
        corpus=corpus,
        short_long_feature_mib=corpus["short_long_segments"] * _DIM.value * 4 / 2**20,
    )
    results["runs"].append(run)
    print(
        f"{size}x: peak RSS {run['peak_rss_mib']:.0f} MiB, "
        f"{run['windows_read']} windows of {run['videos_in_windows']} videos",
        flush=True,
    )
  base = results["runs"][0]["peak_rss_mib"]
  print(
      f"\nPeak RSS of training (launch.py, {_CONFIG.value}, manifest corpus of "
      f"{_DIM.value}-d features, table of {_TABLE_SEGMENTS.value} rows = "
      f"{results['table_mib']:.0f} MiB, {_NUM_STEPS.value} steps, refill every "
      f"{_REFILL_EVERY.value} steps when the corpus does not fit):\n"
  )
  print(
      "| corpus | videos | short+long segments (MiB of f32) | windows read "
      "(short+long videos in them) | peak RSS MiB | vs 1x |\n"
      "|---|---:|---:|---:|---:|---:|"
  )
  for run in results["runs"]:
    run["peak_over_first"] = run["peak_rss_mib"] / base
    corpus = run["corpus"]
    print(
        f"| {run['size']}x | {corpus['videos']} | {corpus['short_long_segments']} "
        f"({run['short_long_feature_mib']:.0f}) | {run['windows_read']} "
        f"({run['videos_in_windows']}){' static' if run['static_table'] else ''} | "
        f"{run['peak_rss_mib']:.0f} | {run['peak_over_first']:.2f} |"
    )
  harness.finish(results, _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
