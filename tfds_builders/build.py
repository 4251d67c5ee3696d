r"""Builds hl_jax's TFDS datasets as ArrayRecord, without TensorFlow.

`tfds build` needs TensorFlow; this does the same for our builders:

  python -m tfds_builders.build youtube_highlights/i3d_rgb \
      --manual_dir=../shared/data/youtube_highlights [--data_dir=~/tensorflow_datasets]
  python -m tfds_builders.build tvsum/i3d_rgb --manual_dir=../shared/data/tvsum
  python -m tfds_builders.build duration_corpus/youtube_highlights \
      --manual_dir=../shared/data/youtube_highlights
  python -m tfds_builders.build duration_corpus/synthetic
"""

import importlib
import os

from absl import app
from absl import flags
import tensorflow_datasets as tfds

DATASETS = ("duration_corpus", "youtube_highlights", "tvsum")


def build(name_and_config: str, manual_dir: str | None,
          data_dir: str | None) -> tfds.core.DatasetBuilder:
  """Builds `<dataset>/<config>` (if not built yet) and returns its builder."""
  name, _, config = name_and_config.partition("/")
  if name not in DATASETS:
    raise app.UsageError(f"unknown dataset {name!r}; one of {DATASETS}")
  module = importlib.import_module(f"tfds_builders.{name}.{name}_dataset_builder")
  builder = module.Builder(config=config or None, file_format="array_record",
                           data_dir=os.path.expanduser(data_dir) if data_dir else None)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir) if manual_dir else None))
  return builder


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m tfds_builders.build <dataset>/<config>")
  builder = build(argv[1], flags.FLAGS.manual_dir, flags.FLAGS.data_dir)
  for split, info in builder.info.splits.items():
    print(f"{builder.info.full_name} {split}: {info.num_examples} examples")
  print(f"in {builder.data_dir}")


if __name__ == "__main__":
  # Defined only when run as a program, so that importing this module next to
  # other tools with the same flags does not clash.
  flags.DEFINE_string("manual_dir", None, "Raw data folder.")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: $TFDS_DATA_DIR "
                      "or ~/tensorflow_datasets).")
  app.run(main)
