"""Builds youtube_highlights from dummy_data (and the real data when present).

tfds.testing.DatasetBuilderTestCase needs TensorFlow, so these are pytest tests
that build into a temporary data_dir and read back with as_data_source.
"""

import functools
import pathlib
import shutil

import numpy as np
import pytest

from tfds_builders import testing
from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as ytb

DUMMY = pathlib.Path(__file__).parent / "dummy_data"


_build = functools.partial(testing.build, ytb.Builder)


def _dummy_spec():
  return testing.load_dummy(DUMMY, "yth_dummy")


def test_name_and_configs():
  assert ytb.Builder.name == "youtube_highlights"
  dims = {c.name: c.dim for c in ytb.Builder.BUILDER_CONFIGS}
  assert dims == testing.FEATURE_SET_DIMS


def test_dummy_data(tmp_path, caplog):
  dummy = _dummy_spec()
  builder = _build(DUMMY, tmp_path, "i3d_rgb_flow_audio")
  splits = {s: sorted(testing.by_id(builder, s)) for s in ("train", "val", "other", "all")}
  assert splits["train"] == ["dummyDog_01", "dummyDog_02", "dummySurf01"]
  assert splits["val"] == ["dummyDog_03", "dummySurf02", "dummySurf03"]
  assert splits["other"] == ["dummyOther1"]
  assert splits["all"] == sorted(splits["train"] + splits["val"] + splits["other"])
  assert "1 of 8 annotated videos have no feature files" in caplog.text
  assert "dummyNoFeat" in caplog.text
  assert "1 split video ids have no annotation" in caplog.text
  assert builder.info.metadata["layout"] == "staged"

  examples = testing.by_id(builder, "all")
  for i, (vid, domain, match, files) in enumerate(dummy.VIDEOS):
    if files is None:
      continue
    ex = examples[vid]
    num_clips = len(match)
    assert ex["domain"].decode() == domain
    np.testing.assert_array_equal(ex["match"], match)
    assert ex["clips"].shape == (num_clips, 2) and ex["clips"].dtype == np.int32
    np.testing.assert_array_equal(ex["clips"][:, 1] - ex["clips"][:, 0], 100)
    assert ex["fps"] == pytest.approx(dummy.FPS)
    assert ex["frames"] == 50 * num_clips + 50
    assert ex["duration_s"] == pytest.approx(ex["frames"] / dummy.FPS)
    features = ex["features"]
    assert features.shape == (num_clips, 4096) and features.dtype == np.float16
    for t in range(num_clips):
      # rgb | flow | audio, in that order, one constant per kind.
      expected = np.repeat([dummy.feature_value(i, t, k) for k in range(3)], [1024, 1024, 2048])
      np.testing.assert_array_equal(features[t], expected.astype(np.float16))


def _copy_dummy(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  return manual


def _rewrite(manual, kind, vid, array):
  path = manual / "features_umt_f16" / kind / f"{vid}.npz"
  np.savez_compressed(path, features=array.astype(np.float16))


def _break_missing_file(manual):
  (manual / "features_umt_f16" / "i3d_rgb" / "dummyDog_02.npz").unlink()


def _break_nan(manual):
  array = np.zeros((3, 1024))
  array[1, 7] = np.nan
  _rewrite(manual, "i3d_rgb", "dummyDog_02", array)


def _break_dim(manual):
  _rewrite(manual, "i3d_rgb", "dummyDog_02", np.zeros((3, 512)))


def _break_rows(manual):
  _rewrite(manual, "i3d_rgb", "dummyDog_02", np.zeros((5, 1024)))


def _break_frames(manual):
  path = manual / "labels" / "umt_youtube_anno.json"
  path.write_text(path.read_text().replace('"frames": "250"', '"frames": "249.5"', 1))


def _break_json(manual):
  (manual / "labels" / "umt_youtube_anno.json").write_text('{"dummyDog_01": {')


def _break_key(manual):
  path = manual / "labels" / "umt_youtube_anno.json"
  path.write_text(path.read_text().replace('"match"', '"matches"', 1))


@pytest.mark.parametrize(
    "breaker, error, words",
    [
        (
            _break_missing_file,
            FileNotFoundError,
            ("dummyDog_02", "i3d_rgb", "features_umt_f16/i3d_rgb/dummyDog_02.npz"),
        ),
        (_break_frames, ValueError, ("dummyDog_01", "249.5", "umt_youtube_anno.json")),
        (_break_nan, ValueError, ("dummyDog_02.npz", "NaN", "row 1")),
        (_break_dim, ValueError, ("dummyDog_02.npz", "(3, 512)", "1024")),
        (_break_rows, ValueError, ("dummyDog_02", "i3d_rgb", "5 rows", "3 clips")),
        (_break_json, ValueError, ("malformed JSON", "umt_youtube_anno.json")),
        (_break_key, KeyError, ("dummyDog_01", "'match'", "umt_youtube_anno.json")),
    ],
)
def test_errors_name_the_culprit(tmp_path, breaker, error, words):
  manual = _copy_dummy(tmp_path)
  breaker(manual)
  data_dir = tmp_path / "data"
  with pytest.raises(error) as info:
    _build(manual, data_dir)
  for word in words:
    assert word in str(info.value)
  # TFDS writes into an incomplete.* folder and renames it only on success.
  config_dir = data_dir / "youtube_highlights" / "i3d_rgb"
  assert not config_dir.exists() or not list(config_dir.iterdir())


def test_real_data(shared_data, tmp_path):
  manual = shared_data / "youtube_highlights"
  builder = _build(manual, tmp_path)
  counts = {s: len(builder.as_data_source(split=s)) for s in ("train", "val", "other", "all")}
  assert counts == {"train": 234, "val": 157, "other": 29, "all": 420}
  anno = ytb.umt_release.load_json(manual / ytb.ANNOTATIONS)
  assert len(anno) == 422
  domains = set()
  for ex in builder.as_data_source(split="all"):
    vid = ex["video_id"].decode()
    domains.add(ex["domain"].decode())
    assert ex["features"].shape == (len(anno[vid]["match"]), 1024)
    np.testing.assert_array_equal(ex["match"], anno[vid]["match"])
  assert domains == {"dog", "gymnastics", "parkour", "skating", "skiing", "surfing"}
  with np.load(manual / "features_umt_f16" / "i3d_rgb" / f"{vid}.npz") as source:
    np.testing.assert_array_equal(ex["features"], source["features"])
