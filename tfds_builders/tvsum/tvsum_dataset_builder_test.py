"""Builds tvsum from dummy_data (and the real data when present).

tfds.testing.DatasetBuilderTestCase needs TensorFlow, so these are pytest tests
that build into a temporary data_dir and read back with as_data_source.
"""

import functools
import json
import pathlib
import shutil

import numpy as np
import pytest

from tfds_builders import testing
from tfds_builders.tvsum import tvsum_dataset_builder as tvb

DUMMY = pathlib.Path(__file__).parent / "dummy_data"


_build = functools.partial(testing.build, tvb.Builder)


def _dummy_spec():
  return testing.load_dummy(DUMMY, "tvsum_dummy")


def test_name_and_configs():
  assert tvb.Builder.name == "tvsum"
  dims = {c.name: c.dim for c in tvb.Builder.BUILDER_CONFIGS}
  assert dims == testing.FEATURE_SET_DIMS
  assert str(tvb.Builder.VERSION) == "1.1.0"
  assert "title tokens" in tvb.Builder.RELEASE_NOTES["1.1.0"]


def test_dummy_data(tmp_path, caplog):
  dummy = _dummy_spec()
  builder = _build(DUMMY, tmp_path, "i3d_rgb_flow_audio")
  assert sorted(testing.by_id(builder, "train")) == ["dummyBK_trn", "dummyVT_trn"]
  assert sorted(testing.by_id(builder, "val")) == ["dummyBK_val", "dummyVT_val"]
  assert "video dummyVT_val: pann_audio features have 7 rows, labels 6" in caplog.text
  assert builder.info.metadata["layout"] == "staged"

  anno = json.loads((DUMMY / tvb.ANNOTATIONS).read_text())
  examples = testing.by_id(builder, "all")
  assert len(examples) == len(dummy.VIDEOS)
  for i, (vid, category, num_clips, _) in enumerate(dummy.VIDEOS):
    ex = examples[vid]
    assert ex["category"].decode() == category
    assert ex["title"].decode() == anno[vid]["title"]
    assert ex["frames"] == int(anno[vid]["frames"])
    assert ex["duration_s"] == pytest.approx(ex["frames"] / dummy.FPS)
    np.testing.assert_array_equal(ex["scores"], anno[vid]["anno"])
    assert ex["scores"].shape == (num_clips, 20)
    features = ex["features"]
    assert features.shape == (num_clips, 4096) and features.dtype == np.float16
    for t in range(num_clips):
      expected = np.repeat([dummy.feature_value(i, t, k) for k in range(3)], [1024, 1024, 2048])
      np.testing.assert_array_equal(features[t], expected.astype(np.float16))
    token, text = dummy.title_arrays(i)
    assert ex["title_tokens"].shape == (dummy.num_title_tokens(i), 512)
    assert ex["title_tokens"].dtype == np.float32
    np.testing.assert_array_equal(ex["title_tokens"], token.astype(np.float32))
    assert ex["title_embedding"].shape == (512,) and ex["title_embedding"].dtype == np.float32
    np.testing.assert_array_equal(ex["title_embedding"], text[0].astype(np.float32))


def _copy_dummy(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  return manual


def _break_rows(manual):
  np.savez_compressed(
      manual / "features_umt_f16" / "i3d_rgb" / "dummyBK_val.npz",
      features=np.zeros((6, 1024), np.float16),
  )


def _break_missing_file(manual):
  (manual / "features_umt_f16" / "i3d_rgb" / "dummyVT_val.npz").unlink()


def _break_inf(manual):
  np.save(
      manual / "features_umt_f16" / "i3d_rgb" / "dummyBK_trn.npy", np.full((5, 1024), 1e6)
  )  # overflows float16
  (manual / "features_umt_f16" / "i3d_rgb" / "dummyBK_trn.npz").unlink()


def _title_file(manual, vid):
  return manual / "features_umt_f16" / tvb.TITLE_DIR / f"{vid}.npz"


def _break_missing_title(manual):
  _title_file(manual, "dummyBK_val").unlink()


def _break_title_key(manual):
  np.savez_compressed(_title_file(manual, "dummyVT_trn"), token=np.zeros((3, 512), np.float16))


def _break_title_shape(manual):
  np.savez_compressed(
      _title_file(manual, "dummyBK_trn"),
      token=np.zeros((3, 256), np.float16),
      text=np.zeros((1, 512), np.float16),
  )


def _break_title_zip(manual):
  _title_file(manual, "dummyVT_val").write_bytes(b"PK\x03\x04torn")


def _break_scores(manual):
  path = manual / tvb.ANNOTATIONS
  anno = json.loads(path.read_text())
  anno["dummyVT_trn"]["anno"][1] = anno["dummyVT_trn"]["anno"][1][:19]
  path.write_text(json.dumps(anno))


def _break_split_json(manual):
  (manual / tvb.SPLITS).write_text('{"BK": {"train": ["dummyBK_trn"]}}')


@pytest.mark.parametrize(
    "breaker, error, words",
    [
        (_break_rows, ValueError, ("dummyBK_val", "i3d_rgb", "6 rows", "4 clips")),
        (_break_missing_file, FileNotFoundError, ("dummyVT_val", "i3d_rgb")),
        (_break_inf, ValueError, ("dummyBK_trn.npy", "NaN/Inf")),
        (
            _break_missing_title,
            FileNotFoundError,
            ("video dummyBK_val", "title tokens", "clip_title_query/dummyBK_val.npz"),
        ),
        (_break_title_key, ValueError, ("video dummyVT_trn", "dummyVT_trn.npz", "no key 'text'")),
        (
            _break_title_shape,
            ValueError,
            ("dummyBK_trn.npz", "video dummyBK_trn", "(3, 256)", "[L, 512]"),
        ),
        (_break_title_zip, ValueError, ("clip_title_query/dummyVT_val.npz", "not a readable")),
        (_break_scores, ValueError, ("dummyVT_trn", "'anno'")),
        (_break_split_json, ValueError, ("umt_tvsum_splits.json", "'BK'", "'val'")),
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
  config_dir = data_dir / "tvsum" / "i3d_rgb"
  assert not config_dir.exists() or not list(config_dir.iterdir())


@pytest.mark.parametrize("config, dim", [("i3d_rgb", 1024), ("i3d_rgb_flow_audio", 4096)])
def test_real_data(shared_data, tmp_path, caplog, config, dim):
  manual = shared_data / "tvsum"
  builder = _build(manual, tmp_path, config)
  counts = {s: len(builder.as_data_source(split=s)) for s in ("train", "val", "all")}
  assert counts == {"train": 40, "val": 10, "all": 50}
  anno = tvb.umt_release.load_json(manual / tvb.ANNOTATIONS)
  categories = {}
  for ex in builder.as_data_source(split="val"):
    categories[ex["category"].decode()] = ex["video_id"].decode()
  assert sorted(categories) == ["BK", "BT", "DS", "FM", "GA", "MS", "PK", "PR", "VT", "VU"]
  for ex in builder.as_data_source(split="all"):
    vid = ex["video_id"].decode()
    assert ex["features"].shape == (len(anno[vid]["anno"]), dim)
    np.testing.assert_array_equal(ex["scores"], anno[vid]["anno"])
  if config == "i3d_rgb_flow_audio":  # the one audio file with an extra row
    assert "video kLxoNp-UchI: pann_audio features have 65 rows, labels 64" in caplog.text


def test_real_title_tokens(shared_data, tmp_path):
  manual = shared_data / "tvsum"
  builder = _build(manual, tmp_path)
  lengths = set()
  for ex in builder.as_data_source(split="all"):
    vid = ex["video_id"].decode()
    with np.load(manual / "features_umt_f16" / "clip_title_query" / f"{vid}.npz") as npz:
      token, text = npz["token"], npz["text"]
    assert ex["title_tokens"].dtype == np.float32 and ex["title_embedding"].shape == (512,)
    np.testing.assert_array_equal(ex["title_tokens"], token.astype(np.float32))
    np.testing.assert_array_equal(ex["title_embedding"], text[0].astype(np.float32))
    lengths.add(len(token))
  assert len(lengths) > 1  # titles have different token counts
