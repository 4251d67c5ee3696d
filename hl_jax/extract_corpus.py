r"""Corpora from raw videos: sharded, resumable feature extraction and a manifest.

The path from raw videos to a trained scorer (I3D features, 1024-d: the
registered `manifest` config of duration_corpus):

  # 1. Features and manifest.csv.
  python -m hl_jax.extract_corpus --videos=/data/videos.csv --output_dir=/data/my_corpus
  # 2. The TFDS corpus (ArrayRecord, no TensorFlow needed).
  python -m tfds_builders.build duration_corpus/manifest \
      --manual_dir=/data/my_corpus --data_dir=/data/tfds
  # 3. Training (a manifest corpus has a train split only).
  python launch.py --config=configs/joint.py --workdir=/data/runs/my_corpus \
      --config.corpus.builder_config=manifest \
      --config.corpus.manual_dir=/data/my_corpus --config.data_dir=/data/tfds

Another width D (`--extractor=untrained`: 128-d, plumbing only) has its own
config: build with `--feature_dim=128`, train with builder_config=manifest_d128.
A list with a `ctr` column also builds duration_corpus/manifest_ctr
(tfds_builders/duration_corpus/README.md).

Feature spaces: a model scores only features of the extractor it was trained
on (each features file records its `feature_space`; the workdir records the
corpus's). `--extractor=i3d_imagenet --extractor_weights=i3d_rgb.pt` (DeepMind's
rgb_imagenet, verified; `--clip_grid=tvsum` 2-s shots by default, or
youtube_highlights' 100-frame windows) gives the benchmarks' own space, so a
corpus extracted with it trains models that also score the staged benchmark
features; the default i3d gives hl_jax's own (rgb_scratch) space.

--videos: video paths one a line (blank and # lines skipped), or a .csv /
.jsonl with a `video` column, optional `video_id` (default: the file's stem),
`domain` (default empty: 'all' to the builder) and other columns (signals such
as ctr) copied into the manifest unchanged. Paths are relative to the list's
folder; two lines with one video_id are an error naming both.

Sharding: video i of the list (0-based) belongs to shard i % K. One process
does all (K = 1); or `--num_shards=K --shard_index=I`, one command per shard
on any machines sharing output_dir, in any order; or each process of a JAX
job takes shard jax.process_index() of jax.process_count():

  python -m hl_jax.extract_corpus --videos=L --output_dir=D \
      --coordinator_address=HOST0:PORT --num_processes=K --process_id=I

Threads decode videos while the model embeds batches of segments across
videos (`video_features.extract_many`). A shard writes in --output_dir
features/<video_id>.npz (atomically), manifest_shard<I>of<K>.csv (its videos
with features) and, if some videos failed to decode, failures_shard<I>.jsonl
(video_id, video, line, error). The shard that ends to find all K shard
manifests (or --merge_only) writes manifest.csv: video_id, duration_s, domain,
feature_path (features/<video_id>.npz), then the carried columns, list order.

A rerun skips each video whose features file has this extractor's signature
and width ("skipped N already extracted"): a killed run redoes only what it
had not finished. A features file of another extractor or config (or not
readable as one) is refused, naming it: use another --output_dir, or
--overwrite to re-extract. A video that fails to decode is logged and
recorded, the others go on, and the program exits 1 listing the failures (10
at most). Other user errors end in one line, `hl_jax.extract_corpus: error:`.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Sequence

from absl import app
from absl import flags

from hl_jax.core import cli
from hl_jax.video import corpus_extraction
from hl_jax.video import extractors

FLAGS = flags.FLAGS


PROGRAM = "hl_jax.extract_corpus"


def _define_flags() -> None:
  # Defined only when run as a program (no clashes when imported).
  flags.DEFINE_string(
      "videos",
      None,
      "Video list: paths one a line, or a .csv / .jsonl "
      "with a `video` column (more: the module docstring).",
  )
  flags.DEFINE_string(
      "output_dir",
      None,
      "Where features/<video_id>.npz, the shard "
      "manifests, failures_shard<I>.jsonl and manifest.csv go.",
  )
  extractors.define_extractor_flags()
  flags.DEFINE_integer("decode_threads", 2, "Threads decoding videos while the model runs.")
  flags.DEFINE_integer(
      "num_shards",
      None,
      "K: this run does the videos i with i % K == "
      "--shard_index (give both, or neither for K = 1).",
  )
  flags.DEFINE_integer("shard_index", None, "I in [0, K).")
  flags.DEFINE_string(
      "coordinator_address",
      None,
      "Multi-host JAX: HOST:PORT of process "
      "0; the shard is then jax.process_index() of jax.process_count().",
  )
  flags.DEFINE_integer("num_processes", None, "Multi-host JAX: number of processes.")
  flags.DEFINE_integer("process_id", None, "Multi-host JAX: this process's id.")
  flags.DEFINE_bool(
      "overwrite",
      False,
      "Re-extract videos whose features file is of "
      "another extractor or config (default: refuse).",
  )
  flags.DEFINE_bool(
      "merge_only",
      False,
      "Only write manifest.csv from the K shard " "manifests (K: --num_shards, default 1).",
  )
  flags.mark_flags_as_required(["videos", "output_dir"])
  for name in ("decode_threads", "num_shards", "num_processes"):
    cli.check(name, "an integer >= 1", lambda n: n >= 1)
  for name in ("shard_index", "process_id"):
    cli.check(name, "an integer >= 0", lambda n: n >= 0)


def shard_from_flags() -> tuple[int, int]:
  """(shard index, number of shards); starts multi-host JAX if the flags say so."""
  distributed = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if any(v is not None for v in distributed):
    if (
        None in distributed
        or FLAGS.process_id >= FLAGS.num_processes
        or FLAGS.merge_only
        or FLAGS.num_shards is not None
        or FLAGS.shard_index is not None
    ):
      raise app.UsageError(
          "multi-host JAX takes --coordinator_address, --num_processes "
          "and --process_id < --num_processes, without --num_shards, "
          "--shard_index or --merge_only (the shard is the process index)"
      )
    import jax  # pylint: disable=g-import-not-at-top

    jax.distributed.initialize(*distributed)  # (coordinator_address, num_processes, process_id)
    return jax.process_index(), jax.process_count()
  if FLAGS.merge_only:
    return 0, FLAGS.num_shards or 1
  if (FLAGS.num_shards is None) != (FLAGS.shard_index is None) or (
      FLAGS.num_shards is not None and FLAGS.shard_index >= FLAGS.num_shards
  ):
    raise app.UsageError("give both --num_shards=K and --shard_index=I < K, or neither")
  return FLAGS.shard_index or 0, FLAGS.num_shards or 1


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses arguments that are not flags
  shard_index, num_shards = shard_from_flags()
  videos, carried = corpus_extraction.read_video_list(FLAGS.videos)
  output_dir = pathlib.Path(FLAGS.output_dir).expanduser()
  if FLAGS.merge_only:
    manifest = corpus_extraction.merge_manifests(
        videos, carried, output_dir, num_shards, required=True
    )
    print(f"{manifest}: merged {num_shards} shard manifest(s)")
    return
  report = corpus_extraction.run_shard(
      videos,
      carried,
      output_dir,
      extractors.extractor_from_flags(),
      shard_index=shard_index,
      num_shards=num_shards,
      decode_threads=FLAGS.decode_threads,
      overwrite=FLAGS.overwrite,
  )
  print(
      f"shard {shard_index}/{num_shards}: {report.extracted} extracted, {report.skipped} "
      f"skipped (already extracted), {len(report.failures)} failed; "
      f"{report.manifest or 'manifest.csv waits for the other shards'}"
  )
  if report.failures:
    lines = [
        f"  {v.path} (list line {v.line}): {error}"
        for v, error in report.failures[: corpus_extraction.MAX_LISTED_FAILURES]
    ]
    if len(report.failures) > corpus_extraction.MAX_LISTED_FAILURES:
      lines.append(f"  ... and {len(report.failures) - corpus_extraction.MAX_LISTED_FAILURES} more")
    sys.stderr.write("\n".join(lines) + "\n")
    first = report.failures[0][0].path if len(report.failures) == 1 else "listed above"
    cli.fail(
        PROGRAM,
        f"{len(report.failures)} of {report.total} videos of shard "
        f"{shard_index}/{num_shards} failed to decode ({first}; all in "
        f"{output_dir}/failures_shard{shard_index}.jsonl); the others were written",
    )


if __name__ == "__main__":
  _define_flags()
  # PyAV's errors subclass ValueError / OSError; ImportError: PyAV missing.
  cli.run(main, PROGRAM, (ImportError,))
