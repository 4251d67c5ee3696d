"""What the builders' tests share: build from a manual_dir, read the examples back, compare.

  from tfds_builders import testing
  builder = testing.build(tvb.Builder, DUMMY, tmp_path, "i3d_rgb_flow", layout="umt")
  testing.assert_same(testing.examples(builder), want)

Builds are ArrayRecord (no TensorFlow needed), read back with `as_data_source`.
"""

from __future__ import annotations

import importlib.util
import os
import types
from typing import Any, Collection, Mapping

import numpy as np
import tensorflow_datasets as tfds

# {split: {video_id: example}}
Examples = Mapping[str, Mapping[str, Mapping[str, Any]]]
# Each benchmark builder's configs and their feature widths D (written out by hand:
# what the tests expect of umt_release.FEATURE_SETS).
FEATURE_SET_DIMS = {
    "i3d_rgb": 1024,
    "i3d_rgb_flow": 2048,
    "i3d_rgb_flow_audio": 4096,
    "clip": 512,
    "clip_slowfast": 2816,
}


def load_dummy(dummy_dir: str | os.PathLike[str], name: str) -> types.ModuleType:
  """A builder's dummy_data/make_dummy_data.py (what the dummy videos hold), as module `name`."""
  path = os.path.join(dummy_dir, "make_dummy_data.py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def build(
    builder_class: type[tfds.core.DatasetBuilder],
    manual_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    config: str = "i3d_rgb",
    **kwargs: Any,
) -> tfds.core.DatasetBuilder:
  """`builder_class(config, **kwargs)` built from `manual_dir` into `data_dir` as ArrayRecord."""
  builder = builder_class(
      config=config, data_dir=os.fspath(data_dir), file_format="array_record", **kwargs
  )
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
  )
  return builder


def by_id(builder: tfds.core.DatasetBuilder, split: str) -> dict[str, Mapping[str, Any]]:
  """{video_id: example} of one split."""
  return {ex["video_id"].decode(): ex for ex in builder.as_data_source(split=split)}


def examples(builder: tfds.core.DatasetBuilder) -> dict[str, dict[str, Mapping[str, Any]]]:
  """{split: {video_id: example}} of every split the builder wrote."""
  return {split: by_id(builder, split) for split in builder.info.splits}


def restricted(got: Examples, ids: Collection[str]) -> dict[str, dict[str, Mapping[str, Any]]]:
  """`got` with only the videos in `ids` (each split kept, if empty)."""
  return {s: {v: ex for v, ex in by_vid.items() if v in ids} for s, by_vid in got.items()}


def assert_one_line_naming(message: str, words: Collection[str]) -> None:
  """`message` is one line (a user error) and names each of `words`."""
  assert "\n" not in message, message
  for word in words:
    assert word in message, (word, message)


def assert_same(got: Examples, want: Examples, skip: Collection[str] = ()) -> None:
  """The same splits, videos and keys, and equal values except under the keys in `skip`."""
  assert {s: sorted(e) for s, e in got.items()} == {s: sorted(e) for s, e in want.items()}
  for split, by_vid in want.items():
    for vid, ex in by_vid.items():
      assert sorted(got[split][vid]) == sorted(ex)
      for key in sorted(set(ex) - set(skip)):
        np.testing.assert_array_equal(got[split][vid][key], ex[key], err_msg=f"{vid} {key}")
