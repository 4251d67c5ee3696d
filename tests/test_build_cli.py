"""The build command used in the docs, on the tiny synthetic corpus and TVSum."""

from absl import app
import pytest

from tfds_builders import build


def test_builds_synthetic_tiny(tmp_path):
  builder = build.build("duration_corpus/synthetic_tiny", None, str(tmp_path))
  assert builder.info.splits["train"].num_examples == 60
  assert builder.info.splits["val"].num_examples == 12


def test_builds_tvsum_from_real_data(shared_data, tmp_path):
  builder = build.build("tvsum/i3d_rgb", str(shared_data / "tvsum"), str(tmp_path))
  assert builder.info.splits["train"].num_examples == 40
  assert builder.info.splits["val"].num_examples == 10


def test_unknown_dataset():
  with pytest.raises(app.UsageError, match="unknown dataset 'tvsumm'"):
    build.build("tvsumm/i3d_rgb", None, None)
