"""duration_corpus under TFDS's own `tfds.testing.DatasetBuilderTestCase`.

The harness builds each config from dummy_data in the default tfrecord format
and reads it back with `as_dataset`, so it needs TensorFlow (and `dill`);
without TensorFlow this module is skipped. The array_record path is covered
by duration_corpus_dataset_builder_test.py.
"""

import dataclasses
import pathlib

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("dill")

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top,wrong-import-position

_YTH_DUMMY = pathlib.Path(__file__).parents[1] / "youtube_highlights" / "dummy_data"


def _d8(name: str) -> dcb.DurationCorpusConfig:
  """A manifest config at the dummy features' width (D = 8)."""
  return dataclasses.replace(dcb.Builder.builder_configs[name], name=f"{name}_d8", feature_dim=8)


class DurationCorpusSyntheticTest(tfds.testing.DatasetBuilderTestCase):
  """The synthetic corpus needs no manual_dir."""

  DATASET_CLASS = dcb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["synthetic_tiny"]
  SPLITS = {"train": 60, "val": 12}


class DurationCorpusManifestTest(tfds.testing.DatasetBuilderTestCase):
  """manual_dir = dummy_data/ (manifest.csv, .npy and .npz features)."""

  DATASET_CLASS = dcb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [_d8("manifest"), _d8("manifest_ctr")]
  SPLITS = {"train": 5}


class DurationCorpusSegmentSignalTest(tfds.testing.DatasetBuilderTestCase):
  """'<vid>#hi' / '<vid>#lo' examples of the 3 videos with a usable spread."""

  DATASET_CLASS = dcb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [_d8("manifest_segment_signal")]
  SPLITS = {"train": 6}


class DurationCorpusYouTubeHighlightsTest(tfds.testing.DatasetBuilderTestCase):
  """manual_dir = the youtube_highlights builder's dummy_data/ (3 usable train videos)."""

  DATASET_CLASS = dcb.Builder
  EXAMPLE_DIR = str(_YTH_DUMMY)
  BUILDER_CONFIG_NAMES_TO_TEST = ["youtube_highlights", "youtube_highlights_rgb_flow"]
  SPLITS = {"train": 3}
