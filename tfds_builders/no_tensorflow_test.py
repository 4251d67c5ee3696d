"""The builders still build and read without TensorFlow when TensorFlow is installed.

The `test` extra installs TensorFlow for the `*_tfds_harness_test.py` files,
so the rest of the suite no longer runs the way users run it (no TensorFlow).
This test hides TensorFlow from a subprocess (as if it were not installed:
`import tensorflow` fails and `importlib.util.find_spec` returns None), builds
every builder from its dummy_data as array_record and reads it back. Without
TensorFlow installed the other builder tests already cover this: skipped.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent("""
    import importlib.machinery, importlib.util, sys

    class HideTensorFlow(importlib.machinery.PathFinder):
      @classmethod
      def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
          return None
        return super().find_spec(name, path, target)

    sys.meta_path = [HideTensorFlow if f is importlib.machinery.PathFinder else f
                     for f in sys.meta_path]
    assert importlib.util.find_spec("tensorflow") is None

    import tensorflow_datasets as tfds
    from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb
    from tfds_builders.tvsum import tvsum_dataset_builder as tvb
    from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as ytb

    data_dir, builders = sys.argv[1], "tfds_builders"
    counts = {"duration_corpus": len(dcb.get_builder("synthetic_tiny", data_dir)
                                     .as_data_source("train"))}
    for module, name in ((tvb, "tvsum"), (ytb, "youtube_highlights")):
      builder = module.Builder(config="i3d_rgb_flow_audio", data_dir=data_dir,
                               file_format="array_record")
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=f"{builders}/{name}/dummy_data"))
      source = builder.as_data_source("all")
      assert source[0]["features"].shape[1] == 4096
      counts[name] = len(source)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
    assert not loaded, loaded[:5]
    print("COUNTS", counts)
    """)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="TensorFlow is not installed: the other builder tests run without it",
)
def test_builders_without_tensorflow(tmp_path):
  env = dict(
      os.environ,
      PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
  )
  run = subprocess.run(
      [sys.executable, "-c", _SCRIPT, str(tmp_path)],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  assert "COUNTS {'duration_corpus': 60, 'tvsum': 4, 'youtube_highlights': 7}" in run.stdout
