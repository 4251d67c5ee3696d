r"""Recurrence as a build step: a per-segment signal file for each video of a manifest corpus.

The label-free recurrence score of `hl_jax.signals.recurrence` (defaults: kNN, k=20,
cosine) becomes the `segment_signal` of a manifest corpus (see
tfds_builders/duration_corpus/README.md, "The `manifest` corpus"). The
duration_corpus config `manifest_segment_signal` then splits each video into
its most recurrent third (`<vid>#hi`, preferred) and its least recurrent third
(`<vid>#lo`), and the trainer pairs the two within the video. For I3D
features (1024-d, what `hl_jax.extract_corpus` writes):

  # 1. Scores and a manifest that names them (/data/my_corpus holds manifest.csv).
  python -m hl_jax.recurrence_build --manual_dir=/data/my_corpus
  # 2. The TFDS corpus, in a data_dir of its own (below).
  python -m tfds_builders.build duration_corpus/manifest_segment_signal \
      --manual_dir=/data/my_corpus/recurrence_corpus --data_dir=/data/tfds_recurrence
  # 3. Training (a manifest corpus has a train split only).
  python launch.py --config=configs/joint.py --workdir=/data/runs/my_corpus_recurrence \
      --config.corpus.builder_config=manifest_segment_signal \
      --config.corpus.manual_dir=/data/my_corpus/recurrence_corpus \
      --config.data_dir=/data/tfds_recurrence

The builder reads `manifest.csv` / `manifest.jsonl` of --manual_dir only, so
the new manifest goes to a folder of its own, by default
DIR/recurrence_corpus/manifest.csv. `manifest_segment_signal` is a registered
name and TFDS reuses a dataset already built under it: a data_dir that holds
one built from another per-segment signal (viewers) would silently give that
one, hence the separate data_dir. Another width D builds with `--feature_dim=D`
into `manifest_segment_signal_d<D>`; train with that name (the trainer reads
the within-video pairing from the examples' `pair_group`).

Which segments a score sees (transductive over the manifest, no labels): a
segment of video v is compared with the segments of the OTHER videos of the
manifest that share v's `domain` (--group_by=domain, the default; videos
without a domain form the domain 'all', as in the builder), or with those of
all other videos of the manifest (--group_by=all). v's own segments never
count. A video alone in its domain is compared with all other videos of the
manifest (logged). Only `feature_path` and `domain` are read: no label, no
duration, ctr or other column. A video's score thus depends on which other
videos the manifest lists (add or drop videos and it changes); videos you
evaluate on must not be in the manifest if the evaluation is to stay
inductive.

Files (all written atomically, a rerun on the same inputs gives
byte-identical files): DIR/recurrence/<video_id>.npy, [T] float32, T the
video's feature rows (an id that is not a plain file name gets a cleaned name
plus a hash of the id); the new manifest, last, so it exists only when every
score file does: the input manifest's rows, columns and order, `feature_path`
rewritten to be correct from the new manifest's folder (relative where it
can be, absolute else), plus a `segment_signal` column (relative paths to
the score files). A manifest that already has a `segment_signal` column is
refused unless --overwrite (which replaces that column). The output format
is the --output_manifest suffix: .csv or .jsonl. Local paths only.

Cost: all features are held in memory (sum of T x D x 4 bytes); the scores
take a [1024, M_g] similarity block at a time, M_g a domain's segments.
User errors end in one line, `hl_jax.recurrence_build: error: ...`, naming
the manifest, line, video or file.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from hl_jax.core import cli
from hl_jax.signals import recurrence_corpus
from tfds_builders.duration_corpus import readers

FLAGS = flags.FLAGS


PROGRAM = "hl_jax.recurrence_build"


def _define_flags() -> None:
  # Defined only when run as a program (no clashes when imported).
  flags.DEFINE_string(
      "manual_dir",
      None,
      "Folder of the corpus's manifest.csv / "
      "manifest.jsonl; the score files go to <manual_dir>/recurrence/.",
  )
  flags.DEFINE_string(
      "output_manifest",
      None,
      "The new manifest, .csv or .jsonl " "(default <manual_dir>/recurrence_corpus/manifest.csv).",
  )
  flags.DEFINE_integer("k", 20, "Neighbours of the kNN recurrence score.")
  flags.DEFINE_enum(
      "group_by",
      "domain",
      recurrence_corpus.GROUP_BY,
      "domain: compare a video with the " "other videos of its domain; all: with all other videos.",
  )
  flags.DEFINE_bool("overwrite", False, "Replace an existing segment_signal column.")
  flags.mark_flag_as_required("manual_dir")
  cli.check("k", "an integer >= 1", lambda n: n >= 1)


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses arguments that are not flags
  built = recurrence_corpus.build(
      FLAGS.manual_dir,
      FLAGS.output_manifest,
      k=FLAGS.k,
      group_by=FLAGS.group_by,
      overwrite=FLAGS.overwrite,
  )
  print(
      f"{built.manifest}: {built.num_videos} videos, segment_signal = recurrence "
      f"(k={FLAGS.k}, group_by={FLAGS.group_by})"
  )
  if built.manifest.name in readers.MANIFEST_NAMES:
    width = "" if built.feature_dim == 1024 else f" --feature_dim={built.feature_dim}"
    print(
        f"next: python -m tfds_builders.build duration_corpus/manifest_segment_signal"
        f"{width} --manual_dir={built.manifest.parent} --data_dir=<a data_dir of its own>"
    )


if __name__ == "__main__":
  _define_flags()
  cli.run(main, PROGRAM)
