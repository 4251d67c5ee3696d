"""youtube_highlights under TFDS's own `tfds.testing.DatasetBuilderTestCase`.

The harness builds every config from dummy_data/ (as manual_dir) in the
default tfrecord format and reads it back with `as_dataset`, so it needs
TensorFlow (and `dill`); without TensorFlow this module is skipped. The
array_record path is covered by youtube_highlights_dataset_builder_test.py.
"""

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("dill")

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as ytb  # pylint: disable=g-import-not-at-top,wrong-import-position


class YoutubeHighlightsTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = ytb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio"]
  # dummy_data: 3 train, 3 val, 1 annotated video outside the split file.
  # split="all" is TFDS's union of these, not a split of its own; the harness
  # also checks that no example is in two of them.
  SPLITS = {"train": 3, "val": 3, "other": 1}
