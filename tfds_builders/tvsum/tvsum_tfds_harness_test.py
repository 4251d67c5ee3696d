"""tvsum under TFDS's own `tfds.testing.DatasetBuilderTestCase`.

The harness builds every config from dummy_data/ (as manual_dir) in the
default tfrecord format and reads it back with `as_dataset`, so it needs
TensorFlow (and `dill`); without TensorFlow this module is skipped. The
array_record path is covered by tvsum_dataset_builder_test.py.
"""

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("dill")

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfds_builders.tvsum import tvsum_dataset_builder as tvb  # pylint: disable=g-import-not-at-top,wrong-import-position


class TvsumTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = tvb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio"]
  # split="all" is TFDS's union of these, not a split of its own; the harness
  # also checks that no example is in two of them.
  SPLITS = {"train": 2, "val": 2}
