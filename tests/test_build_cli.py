"""The build command used in the docs, on the tiny synthetic corpus and TVSum."""

import pathlib
import subprocess
import sys

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


def test_duration_corpus_only_flags():
  with pytest.raises(app.UsageError, match="duration_corpus only, not tvsum"):
    build.build("tvsum/i3d_rgb", None, None, feature_dim=8)
  with pytest.raises(app.UsageError, match="duration_corpus only, not youtube_highlights"):
    build.build("youtube_highlights/i3d_rgb", None, None, beam_args=["--runner=X"])


def test_command_line_with_feature_dim(tmp_path):
  repo = pathlib.Path(__file__).resolve().parent.parent
  done = subprocess.run(
      [
          sys.executable,
          "-m",
          "tfds_builders.build",
          "duration_corpus/synthetic_tiny",
          "--feature_dim=8",
          f"--data_dir={tmp_path}",
      ],
      cwd=repo,
      capture_output=True,
      text=True,
      check=False,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert "duration_corpus/synthetic_tiny_d8/1.1.0 train: 60 examples" in done.stdout
