r"""Throughput of the video feature extractor: decode-only, model-only, end to end.

  python -m benchmarks.extract_throughput --output=/tmp/hl_jax_bench/extract.json \
      [--extractor=i3d] [--videos=a.mp4,b.mp4] [--batch=N] [--decode_threads=2] \
      [--rounds=3]

The videos (default: bikes, bigbuckbunny and carphone_pristine of
../shared/data/sample_videos, 19 s, 10 two-second segments) are measured three
ways, each once per round, the three alternating so that a load change on a
shared machine hits them alike (medians reported, every sample in the JSON):

- decode: `decoding.iter_segments` (hl_jax.video) on --decode_threads threads (PyAV
  decoding, the resize and the centre crop; what the model is fed), nothing
  else;
- model: the jitted extractor (`Extractor.embed_fn`, batches of --batch
  segments, host-to-device transfer included) on the same segments decoded
  beforehand and held in memory;
- end to end: `extraction.extract_many`, decoding on host threads
  overlapped with the model, batches mixing videos.

Figures: segments/s and frames/s of each, and end-to-end / model-only (1.0:
the model never waits for decoding). On the CPU the decode threads and XLA
share the same cores, so the ratio there also shows what decoding takes from
the model; on an accelerator host it shows whether the input keeps the
device fed. The same command prints the device's figures when run on a GPU
(bfloat16 there by default, float32 on the CPU). Writes the JSON and a
markdown table next to it (.md), and prints the table.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import threading
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from benchmarks import harness
from hl_jax.video import decoding
from hl_jax.video import extraction
from hl_jax.video import extractors

FLAGS = flags.FLAGS
SHARED = pathlib.Path(
    os.environ.get("HL_JAX_SHARED_DATA", pathlib.Path(harness.REPO).parent / "shared" / "data")
)
DEFAULT_VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")

flags.DEFINE_string("output", "/tmp/hl_jax_bench/extract.json", "JSON path (.md next to it).")
flags.DEFINE_enum("extractor", "i3d", extractors.NAMES, "Extractor.")
flags.DEFINE_list("videos", [], "Video files (default: three sample videos).")
flags.DEFINE_integer("batch", None, "Segments per forward pass (default: the extractor's).")
flags.DEFINE_integer("decode_threads", 2, "Decoding threads.")
flags.DEFINE_integer("rounds", 3, "Samples of each measurement.")


def decode_all(
    paths: Sequence[str], config: decoding.DecodeConfig, threads: int
) -> list[np.ndarray]:
  """Every segment of `paths`, decoded on `threads` threads (as extract_many does)."""
  out: list[list[np.ndarray]] = [[] for _ in paths]
  todo = iter(range(len(paths)))
  lock = threading.Lock()

  def worker():
    while True:
      with lock:
        index = next(todo, None)
      if index is None:
        return
      out[index] = list(decoding.iter_segments(paths[index], config))

  workers = [threading.Thread(target=worker) for _ in range(threads)]
  for w in workers:
    w.start()
  for w in workers:
    w.join()
  return [segment for video in out for segment in video]


def main(argv: Sequence[str]) -> None:
  del argv
  paths = FLAGS.videos or [str(SHARED / "sample_videos" / v) for v in DEFAULT_VIDEOS]
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: no such video (set HL_JAX_SHARED_DATA or --videos)")
  extractor = extractors.make_extractor(FLAGS.extractor, batch=FLAGS.batch)
  config = extractor.config
  results: dict[str, Any] = {
      "machine": harness.machine(),
      "videos": paths,
      "extractor": extractor.description,
      "batch": extractor.batch,
      "decode_threads": FLAGS.decode_threads,
      "decode": dataclasses.asdict(config),
  }
  segments = decode_all(paths, config, FLAGS.decode_threads)
  frames = np.stack(segments)
  num, per = len(segments), config.frames_per_segment
  logging.info("%d segments of %d frames; compiling", num, per)
  extractor.embed_fn(frames[: extractor.batch])  # compile

  def run_decode():
    decode_all(paths, config, FLAGS.decode_threads)

  def run_model():
    extractor.embed_fn(frames)

  def run_e2e():
    results_ = list(extraction.extract_many(paths, extractor, decode_threads=FLAGS.decode_threads))
    assert all(r.error is None for r in results_), [r.error for r in results_]

  measures = {"decode": run_decode, "model": run_model, "end_to_end": run_e2e}
  samples: dict[str, list[float]] = {k: [] for k in measures}
  for r in range(FLAGS.rounds):
    for name, fn in measures.items():
      time.sleep(0.2)
      start = time.perf_counter()
      fn()
      samples[name].append(time.perf_counter() - start)
    logging.info(
        "round %d/%d: %s, load %s",
        r + 1,
        FLAGS.rounds,
        {k: round(v[-1], 2) for k, v in samples.items()},
        os.getloadavg(),
    )
  rows = {}
  for name, seconds in samples.items():
    median = float(np.median(seconds))
    rows[name] = {
        "seconds": seconds,
        "median_s": median,
        "segments_per_s": num / median,
        "frames_per_s": num * per / median,
    }
  ratio = rows["end_to_end"]["segments_per_s"] / rows["model"]["segments_per_s"]
  results.update(rows=rows, num_segments=num, frames_per_segment=per, end_to_end_over_model=ratio)
  lines = [
      f"{num} segments x {per} frames ({extractor.description}), batch "
      f"{extractor.batch}, {FLAGS.decode_threads} decode threads, "
      f"{FLAGS.rounds} rounds (median)",
      "",
      "| | segments/s | frames/s | s per pass |",
      "|---|---|---|---|",
  ]
  for name, row in rows.items():
    lines.append(
        f"| {name} | {row['segments_per_s']:.2f} | {row['frames_per_s']:.1f} | "
        f"{row['median_s']:.2f} |"
    )
  lines += ["", f"end to end / model only: **{ratio:.3f}**"]
  table = "\n".join(lines)
  print(table)
  output = pathlib.Path(FLAGS.output)
  output.parent.mkdir(parents=True, exist_ok=True)
  output.with_suffix(".md").write_text(table + "\n")
  harness.finish(results, str(output))


if __name__ == "__main__":
  app.run(main)
