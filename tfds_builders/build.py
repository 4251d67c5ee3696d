r"""Builds hl_jax's TFDS datasets as ArrayRecord, without TensorFlow.

`tfds build` needs TensorFlow; this does the same for our builders:

  python -m tfds_builders.build youtube_highlights/i3d_rgb \
      --manual_dir=../shared/data/youtube_highlights [--data_dir=~/tensorflow_datasets]
  python -m tfds_builders.build tvsum/i3d_rgb --manual_dir=../shared/data/tvsum
  python -m tfds_builders.build duration_corpus/youtube_highlights \
      --manual_dir=../shared/data/youtube_highlights
  python -m tfds_builders.build duration_corpus/synthetic

duration_corpus only: `--feature_dim=N` derives a config of another width from
the registered one, named `<config>_d<N>` (TFDS keeps one folder per config
name), and `--beam_options` builds it as an Apache Beam pipeline (manifest /
youtube_highlights sources; needs apache-beam), e.g. on Dataflow with the
corpus and data_dir on GCS (WORKSPACE.md, "Building a manifest corpus of
millions of videos (Apache Beam)"):

  python -m tfds_builders.build duration_corpus/manifest_ctr --feature_dim=512 \
      --data_dir=gs://BUCKET/tfds --manual_dir=gs://BUCKET/corpus \
      --beam_options="--runner=DataflowRunner --project=P --region=R ..."
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shlex
from typing import Sequence

from absl import app
from absl import flags
import tensorflow_datasets as tfds

from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

DATASETS = ("duration_corpus", "youtube_highlights", "tvsum")


def resolve_config(name: str, feature_dim: int = 0) -> dcb.DurationCorpusConfig:
  """The registered duration_corpus config `name`, or its `<name>_d<feature_dim>` variant."""
  if name not in dcb.Builder.builder_configs:
    raise ValueError(f"unknown config {name!r}; registered: "
                     f"{', '.join(dcb.Builder.builder_configs)}")
  config = dcb.Builder.builder_configs[name]
  if feature_dim > 0 and feature_dim != config.feature_dim:
    config = dataclasses.replace(config, name=f"{name}_d{feature_dim}",
                                 feature_dim=feature_dim)
  return config


def build_corpus(name: str, data_dir: str | None, manual_dir: str | None,
                 feature_dim: int = 0, beam_args: Sequence[str] | None = None
                 ) -> tfds.core.DatasetBuilder:
  """Builds duration_corpus/<name> (if needed); with Beam if `beam_args` is non-empty."""
  beam_options = None
  if beam_args:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
    beam_options = pipeline_options.PipelineOptions(list(beam_args))
  return dcb.get_builder(resolve_config(name, feature_dim), data_dir,
                         manual_dir=manual_dir, beam_options=beam_options)


def build(name_and_config: str, manual_dir: str | None, data_dir: str | None,
          feature_dim: int = 0, beam_args: Sequence[str] | None = None
          ) -> tfds.core.DatasetBuilder:
  """Builds `<dataset>/<config>` (if not built yet) and returns its builder."""
  name, _, config = name_and_config.partition("/")
  if name not in DATASETS:
    raise app.UsageError(f"unknown dataset {name!r}; one of {DATASETS}")
  manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  if name == "duration_corpus":
    return build_corpus(config or dcb.Builder.DEFAULT_CONFIG_NAME, data_dir,
                        manual_dir, feature_dim, beam_args)
  if feature_dim or beam_args:
    raise app.UsageError(f"--feature_dim and --beam_options apply to duration_corpus "
                         f"only, not {name}")
  module = importlib.import_module(f"tfds_builders.{name}.{name}_dataset_builder")
  builder = module.Builder(config=config or None, file_format="array_record",
                           data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m tfds_builders.build <dataset>/<config>")
  builder = build(argv[1], flags.FLAGS.manual_dir, flags.FLAGS.data_dir,
                  flags.FLAGS.feature_dim, shlex.split(flags.FLAGS.beam_options))
  for split, info in builder.info.splits.items():
    print(f"{builder.info.full_name} {split}: {info.num_examples} examples")
  print(f"in {builder.data_dir}")


if __name__ == "__main__":
  # Defined only when run as a program, so that importing this module next to
  # other tools with the same flags does not clash.
  flags.DEFINE_string("manual_dir", None, "Raw data folder.")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir, local or gs:// (default: "
                      "$TFDS_DATA_DIR or ~/tensorflow_datasets).")
  flags.DEFINE_integer("feature_dim", 0, "duration_corpus only: if > 0, build "
                       "<config>_d<feature_dim> of this width.")
  flags.DEFINE_string("beam_options", "", "duration_corpus only: Beam pipeline "
                      'options, e.g. "--runner=DataflowRunner --project=P"; empty: '
                      "build without Beam.")
  app.run(main)
