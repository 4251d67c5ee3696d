r"""Builds one duration_corpus config, optionally as an Apache Beam pipeline.

Plain build, in this process:

  python -m tfds_builders.duration_corpus.build --config=manifest_ctr \
      --data_dir=/data/tfds --manual_dir=/data/my_corpus

Beam build (manifest / youtube_highlights sources; needs apache-beam), e.g. on
Dataflow with the corpus and data_dir on GCS (docs_snippets/corpus_at_scale.md):

  python -m tfds_builders.duration_corpus.build --config=manifest_ctr \
      --feature_dim=512 --data_dir=gs://BUCKET/tfds --manual_dir=gs://BUCKET/corpus \
      --beam_options="--runner=DataflowRunner --project=P --region=R ..."

`--feature_dim` derives a config of another width from the registered one,
named `<config>_d<feature_dim>` (TFDS keeps one folder per config name).
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from absl import app
from absl import flags

from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

_CONFIG = flags.DEFINE_string('config', 'manifest', 'Registered config name.')
_FEATURE_DIM = flags.DEFINE_integer(
    'feature_dim', 0, 'If > 0: build <config>_d<feature_dim> of this width.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data dir (local or gs://).')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'Folder of the manifest.')
_BEAM_OPTIONS = flags.DEFINE_string(
    'beam_options', '', 'Beam pipeline options, e.g. "--runner=DataflowRunner '
    '--project=P"; empty: build without Beam.')


def resolve_config(name: str, feature_dim: int = 0) -> dcb.DurationCorpusConfig:
  """The registered config `name`, or its `<name>_d<feature_dim>` variant."""
  if name not in dcb.Builder.builder_configs:
    raise ValueError(f'unknown config {name!r}; registered: '
                     f'{", ".join(dcb.Builder.builder_configs)}')
  config = dcb.Builder.builder_configs[name]
  if feature_dim > 0 and feature_dim != config.feature_dim:
    config = dataclasses.replace(config, name=f'{name}_d{feature_dim}',
                                 feature_dim=feature_dim)
  return config


def build_corpus(name: str, data_dir: str | None, manual_dir: str | None,
                 feature_dim: int = 0, beam_args: list[str] | None = None) -> Any:
  """Builds (if needed) and returns the builder; Beam if `beam_args` is non-empty."""
  beam_options = None
  if beam_args:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
    beam_options = pipeline_options.PipelineOptions(beam_args)
  return dcb.get_builder(resolve_config(name, feature_dim), data_dir,
                         manual_dir=manual_dir, beam_options=beam_options)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  builder = build_corpus(_CONFIG.value, _DATA_DIR.value, _MANUAL_DIR.value,
                         _FEATURE_DIM.value, shlex.split(_BEAM_OPTIONS.value))
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f'{builder.data_dir}: {splits}')


if __name__ == '__main__':
  app.run(main)
