r"""Builds hl_jax's TFDS datasets as ArrayRecord, without TensorFlow.

`tfds build` needs TensorFlow; this does the same for our builders:

  python -m tfds_builders.build youtube_highlights/i3d_rgb \
      --manual_dir=../shared/data/youtube_highlights [--data_dir=~/tensorflow_datasets]
  python -m tfds_builders.build tvsum/i3d_rgb --manual_dir=../shared/data/tvsum
  python -m tfds_builders.build tvsum/i3d_rgb_flow_audio --manual_dir=/path/to/UMT --layout=umt
  python -m tfds_builders.build youtube_highlights/clip_slowfast --manual_dir=lighthouse
  python -m tfds_builders.build duration_corpus/youtube_highlights \
      --manual_dir=../shared/data/youtube_highlights
  python -m tfds_builders.build duration_corpus/synthetic

youtube_highlights and tvsum read our staged copy, UMT's data release or
lighthouse's (`tfds_builders.layouts`); `--layout=auto` (the default) detects
which one --manual_dir holds, `staged` / `umt` / `lighthouse` insists on one.

duration_corpus only: `--feature_dim=N` derives a config of another width from
the registered one, named `<config>_d<N>` (TFDS keeps one folder per config
name), and `--beam_options` builds it as an Apache Beam pipeline (manifest /
youtube_highlights sources; needs apache-beam), e.g. on Dataflow with the
corpus and data_dir on GCS (WORKSPACE.md, "Building a manifest corpus of
millions of videos (Apache Beam)"):

  python -m tfds_builders.build duration_corpus/manifest_ctr --feature_dim=512 \
      --data_dir=gs://BUCKET/tfds --manual_dir=gs://BUCKET/corpus \
      --beam_options="--runner=DataflowRunner --project=P --region=R ..."

A user error (an unknown dataset or config, a missing --manual_dir, raw data
that cannot be read) ends in one line, `tfds_builders.build: error: ...`,
naming the file, line or video, with exit status 1 or 2 (--verbosity=1 adds
the traceback). A failed build leaves no dataset: TFDS renames one into place
only when whole, and the empty folders it made are removed.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shlex
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from tfds_builders import layouts
from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

PROGRAM = "tfds_builders.build"
DATASETS = ("duration_corpus", "youtube_highlights", "tvsum")
# A user's mistake: a name, a flag, a missing or malformed file. Each message
# names the file, line or video at fault.
USER_ERRORS = (app.UsageError, ValueError, KeyError, OSError)


def resolve_config(name: str, feature_dim: int = 0) -> dcb.DurationCorpusConfig:
  """The registered duration_corpus config `name`, or its `<name>_d<feature_dim>` variant."""
  if feature_dim < 0:
    raise ValueError(f"feature_dim={feature_dim} must be >= 0 (0: the config's own)")
  if name not in dcb.Builder.builder_configs:
    raise ValueError(
        f"unknown config {name!r}; registered: " f"{', '.join(dcb.Builder.builder_configs)}"
    )
  config = dcb.Builder.builder_configs[name]
  if feature_dim > 0 and feature_dim != config.feature_dim:
    config = dataclasses.replace(config, name=f"{name}_d{feature_dim}", feature_dim=feature_dim)
  return config


def check_manual_dir(builder: tfds.core.DatasetBuilder, manual_dir: str | None) -> None:
  """Raises, saying what to pass, if `builder` still has to read a missing manual_dir."""
  config = builder.builder_config
  if getattr(config, "source", None) == "synthetic" or builder.is_prepared():
    return
  what = f"{builder.name}/{config.name}"
  instructions = " ".join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())
  if not manual_dir:
    raise app.UsageError(f"{what} is built from raw data: pass --manual_dir. " f"{instructions}")
  if not epath.Path(manual_dir).is_dir():
    raise FileNotFoundError(
        f"--manual_dir={manual_dir} is not a folder; {what} is " f"built from one. {instructions}"
    )


def build_corpus(
    name: str,
    data_dir: str | None,
    manual_dir: str | None,
    feature_dim: int = 0,
    beam_args: Sequence[str] | None = None,
) -> tfds.core.DatasetBuilder:
  """Builds duration_corpus/<name> (if needed); with Beam if `beam_args` is non-empty."""
  config = resolve_config(name, feature_dim)
  check_manual_dir(dcb.Builder(config=config, data_dir=data_dir), manual_dir)
  beam_options = None
  if beam_args:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top

    beam_options = pipeline_options.PipelineOptions(list(beam_args))
  return dcb.get_builder(config, data_dir, manual_dir=manual_dir, beam_options=beam_options)


def build(
    name_and_config: str,
    manual_dir: str | None,
    data_dir: str | None,
    feature_dim: int = 0,
    beam_args: Sequence[str] | None = None,
    layout: str = "auto",
) -> tfds.core.DatasetBuilder:
  """Builds `<dataset>/<config>` (if not built yet) and returns its builder.

  `layout` (youtube_highlights and tvsum only): the release in manual_dir,
  one of `layouts.CHOICES` ("auto": detect it).

  Raises:
    app.UsageError: an unknown dataset, a flag that does not apply to it, or
      a missing --manual_dir.
    ValueError, KeyError, OSError: an unknown config, or raw data that cannot
      be read (naming the file, line or video). TFDS renames the data into
      place only once it is whole, so a failed build leaves no dataset.
  """
  name, _, config = name_and_config.partition("/")
  if name not in DATASETS:
    raise app.UsageError(f"unknown dataset {name!r}; one of {DATASETS}")
  manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  layouts.check_choice(layout)
  if name == "duration_corpus":
    if layout != "auto":
      raise app.UsageError(f"--layout applies to youtube_highlights and tvsum only, not {name}")
    return build_corpus(
        config or dcb.Builder.DEFAULT_CONFIG_NAME, data_dir, manual_dir, feature_dim, beam_args
    )
  if feature_dim or beam_args:
    raise app.UsageError(
        f"--feature_dim and --beam_options apply to duration_corpus " f"only, not {name}"
    )
  module = importlib.import_module(f"tfds_builders.{name}.{name}_dataset_builder")
  if config and config not in module.Builder.builder_configs:
    raise ValueError(
        f"unknown config {config!r}; registered: " f"{', '.join(module.Builder.builder_configs)}"
    )
  builder = module.Builder(
      config=config or None, file_format="array_record", data_dir=data_dir, layout=layout
  )
  check_manual_dir(builder, manual_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _local_paths(root: str, name: str) -> set[str] | None:
  """Paths under `root` that a build of dataset `name` writes (None: no root)."""
  if "://" in root or not os.path.isdir(root):
    return None
  paths = {root}
  for top in (os.path.join(root, name), os.path.join(root, "downloads")):
    for folder, dirs, files in os.walk(top):
      paths.add(folder)
      paths.update(os.path.join(folder, n) for n in dirs + files)
  return paths


def remove_leftovers(root: str, name: str, before: set[str] | None) -> None:
  """Removes what a failed build left in a local data_dir that was not there before.

  TFDS writes a dataset into a temporary folder and renames it into place only
  when whole; what remains of a failed build is empty folders and TFDS's
  `<name>/.config/metadata.json`.
  """
  after = _local_paths(root, name) or set()
  for path in sorted(after - (before or set()), reverse=True):  # children first
    if path.endswith(os.path.join(".config", "metadata.json")):
      os.remove(path)
    elif os.path.isdir(path) and not os.listdir(path):
      os.rmdir(path)


def fail(error: BaseException, status: int) -> None:
  """Prints `tfds_builders.build: error: <message>` on one line and exits."""
  text = error.args[0] if isinstance(error, KeyError) and error.args else error
  text = " ".join(line.strip() for line in str(text).splitlines() if line.strip())
  sys.stderr.write(f"{PROGRAM}: error: {text}\n")
  raise SystemExit(status)


def parse_flags(argv: Sequence[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(e, 2)


def main(argv):
  if len(argv) != 2:
    fail(
        app.UsageError(
            f"expected one <dataset>/<config> (e.g. tvsum/i3d_rgb), got "
            f"{argv[1:] or 'none'}; python -m {PROGRAM} --helpfull lists "
            "the flags"
        ),
        2,
    )
  flag_values = flags.FLAGS
  try:
    beam_args = shlex.split(flag_values.beam_options)
  except ValueError as e:
    fail(ValueError(f"--beam_options={flag_values.beam_options!r}: {e}"), 2)
  root = os.path.expanduser(flag_values.data_dir or tfds.core.constants.DATA_DIR)
  name = argv[1].partition("/")[0]
  before = _local_paths(root, name) if name in DATASETS else None
  try:
    builder = build(
        argv[1],
        flag_values.manual_dir,
        flag_values.data_dir,
        flag_values.feature_dim,
        beam_args,
        layout=flag_values.layout,
    )
  except USER_ERRORS as e:
    if name in DATASETS:
      remove_leftovers(root, name, before)
    if logging.get_verbosity() >= 1:
      raise
    fail(e, 2 if isinstance(e, app.UsageError) else 1)
  for split, info in builder.info.splits.items():
    print(f"{builder.info.full_name} {split}: {info.num_examples} examples")
  print(f"in {builder.data_dir}")


if __name__ == "__main__":
  # Defined only when run as a program, so that importing this module next to
  # other tools with the same flags does not clash.
  flags.DEFINE_string("manual_dir", None, "Raw data folder.")
  flags.DEFINE_string(
      "data_dir",
      None,
      "TFDS data_dir, local or gs:// (default: " "$TFDS_DATA_DIR or ~/tensorflow_datasets).",
  )
  flags.DEFINE_enum(
      "layout",
      "auto",
      layouts.CHOICES,
      "youtube_highlights and tvsum: the release in --manual_dir (staged: our copy, "
      "umt: UMT's data release, lighthouse: lighthouse's; auto: detect it).",
  )
  flags.DEFINE_integer(
      "feature_dim",
      0,
      "duration_corpus only: if > 0, build " "<config>_d<feature_dim> of this width.",
      lower_bound=0,
  )
  flags.DEFINE_string(
      "beam_options",
      "",
      "duration_corpus only: Beam pipeline "
      'options, e.g. "--runner=DataflowRunner --project=P"; empty: '
      "build without Beam.",
  )
  app.run(main, flags_parser=parse_flags)
