"""tvsum built from each published layout (tfds_builders/layouts.py).

dummy_data/ holds the same made-up videos as our staged copy (dummy_data/),
UMT's release (dummy_data/umt/) and lighthouse's (dummy_data/lighthouse/),
the last two for two of them; built from each, the examples must equal the
staged ones wherever the layout has the data (lighthouse has no fps or
frames, and no audio). UMT's split lists none of the dummy ids, so the dummy
tests give the umt layout the dummy's split. The real-data tests re-make
UMT's and lighthouse's layouts from the real files and check UMT's split as
copied into tfds_builders/umt_splits.py.
"""

import functools
import json
import math
import pathlib
import shutil

import numpy as np
import pytest

from tfds_builders import layouts
from tfds_builders import testing
from tfds_builders import umt_splits
from tfds_builders.tvsum import tvsum_dataset_builder as tvb

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
UNKNOWN = ("fps", "frames", "duration_s")  # what lighthouse's rows do not carry


_build = functools.partial(testing.build, tvb.Builder)


def _assert_unknown_timing(examples):
  for by_id in examples.values():
    for ex in by_id.values():
      assert math.isnan(ex["fps"]) and math.isnan(ex["duration_s"]) and ex["frames"] == -1


@pytest.fixture
def dummy():
  return testing.load_dummy(DUMMY, "tvsum_dummy")


@pytest.mark.parametrize(
    "folder, layout, root",
    [
        ("", "staged", ""),
        ("umt", "umt", "umt/data/tvsum"),
        ("umt/data/tvsum", "umt", "umt/data/tvsum"),
        ("lighthouse", "lighthouse", "lighthouse"),
    ],
)
def test_detects_the_layout(folder, layout, root):
  release = layouts.open_release(
      tvb.LAYOUTS,
      DUMMY / folder,
      "auto",
      tvb.Builder.builder_configs["i3d_rgb"],
      "tvsum",
      tvb.Builder.BUILDER_CONFIGS,
  )
  assert release.layout.name == layout
  assert pathlib.Path(release.root) == DUMMY / root


def test_umt_layout_equals_staged(tmp_path, caplog, dummy, monkeypatch):
  monkeypatch.setitem(tvb.LAYOUTS, "umt", layouts.umt("tvsum", dummy.SPLITS, title=True))
  config = "i3d_rgb_flow_audio"
  umt = _build(DUMMY / "umt", tmp_path / "umt", config)
  assert "video dummyVT_val: pann_audio features have 7 rows, labels 6" in caplog.text
  staged = testing.examples(_build(DUMMY, tmp_path / "staged", config))
  testing.assert_same(testing.examples(umt), testing.restricted(staged, dummy.SUBSET))
  assert tvb.Builder(config=config, data_dir=str(tmp_path / "umt")).info.metadata["layout"] == "umt"


def test_lighthouse_layout_equals_staged(tmp_path, dummy):
  lighthouse = testing.examples(_build(DUMMY / "lighthouse", tmp_path / "lh", "i3d_rgb_flow"))
  staged = testing.examples(_build(DUMMY, tmp_path / "staged", "i3d_rgb_flow"))
  testing.assert_same(lighthouse, testing.restricted(staged, dummy.SUBSET), skip=UNKNOWN)
  _assert_unknown_timing(lighthouse)


def test_lighthouse_clip_slowfast(tmp_path, dummy):
  builder = _build(DUMMY / "lighthouse", tmp_path, "clip_slowfast")
  assert builder.info.metadata["layout"] == "lighthouse"
  examples = testing.examples(builder)
  assert sorted(examples) == ["train", "val"]
  for i, (vid, *_) in enumerate(dummy.VIDEOS):
    if vid not in dummy.SUBSET:
      continue
    ex = examples[dummy.split_of(vid)][vid]
    want = np.concatenate([dummy.features(i, "clip"), dummy.features(i, "slowfast")], axis=1)
    np.testing.assert_array_equal(ex["features"], want)
    token, text = dummy.title_arrays(i)
    np.testing.assert_array_equal(ex["title_tokens"], token.astype(np.float32))
    np.testing.assert_array_equal(ex["title_embedding"], text[0].astype(np.float32))


@pytest.mark.parametrize(
    "folder, config, words",
    [
        (
            "lighthouse",
            "i3d_rgb_flow_audio",
            (
                "tvsum/i3d_rgb_flow_audio",
                "lighthouse layout",
                "no pann_audio features",
                "ships i3d_rgb, i3d_flow, clip, slowfast",
                "can build: i3d_rgb, i3d_rgb_flow, clip, clip_slowfast",
            ),
        ),
        ("umt", "clip_slowfast", ("umt layout", "no clip, slowfast features")),
    ],
)
def test_refuses_configs_a_layout_cannot_build(tmp_path, folder, config, words):
  with pytest.raises(ValueError) as info:
    _build(DUMMY / folder, tmp_path, config)
  testing.assert_one_line_naming(str(info.value), words)


def test_unrecognised_folder_names_each_layout(tmp_path):
  (tmp_path / "manual" / "data").mkdir(parents=True)
  (tmp_path / "manual" / "data" / "tvsum_anno.json").write_text("{}")  # one level too deep
  with pytest.raises(FileNotFoundError) as info:
    _build(tmp_path / "manual", tmp_path / "data")
  words = (
      "holds no tvsum layout",
      "staged: labels/umt_tvsum_anno.json",
      "features_umt_f16/clip_title_query/<vid>.npz",
      "umt: [data/tvsum/]tvsum_anno.json",
      "query_features/<vid>.npz",
      "lighthouse: data/tvsum/tvsum_{train,val}_release.jsonl",
      "features/tvsum/i3d/<vid>_{rgb,opt}.npy",
      "features/tvsum/{clip,slowfast,clip_text}/<vid>.npz",
  )
  testing.assert_one_line_naming(str(info.value), words)


def test_lighthouse_title_without_text_is_named(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY / "lighthouse", manual)
  path = manual / "features" / "tvsum" / "clip_text" / "dummyVT_trn.npz"
  np.savez_compressed(path, token=np.zeros((2, 512), np.float16))
  with pytest.raises(ValueError) as info:
    _build(manual, tmp_path / "data")
  for word in ("video dummyVT_trn", "clip_text/dummyVT_trn.npz", "no key 'text'"):
    assert word in str(info.value)


def test_real_umt_split_equals_staged(shared_data):
  staged = json.loads((shared_data / "tvsum" / tvb.SPLITS).read_text())
  assert {
      g: {s: list(ids) for s, ids in by.items()} for g, by in umt_splits.TVSUM_SPLITS.items()
  } == staged


def _link(target, path):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.symlink_to(target)


def _write_rgb_npy(real, folder, suffix="_rgb.npy"):
  """The staged I3D RGB arrays as .npy files, as UMT and lighthouse ship them."""
  folder.mkdir(parents=True, exist_ok=True)
  for path in (real / "features_umt_f16" / "i3d_rgb").iterdir():
    with np.load(path) as npz:
      np.save(folder / f"{path.stem}{suffix}", npz["features"])


def test_real_umt_layout(shared_data, tmp_path):
  """UMT's layout re-made from the real staged files builds the same dataset."""
  real, umt = shared_data / "tvsum", tmp_path / "umt" / "data" / "tvsum"
  _link(real / tvb.ANNOTATIONS, umt / "tvsum_anno.json")
  _write_rgb_npy(real, umt / "video_features")
  for path in (real / "features_umt_f16" / tvb.TITLE_DIR).iterdir():
    _link(path, umt / "query_features" / path.name)
  built = testing.examples(_build(tmp_path / "umt", tmp_path / "data"))
  assert {s: len(e) for s, e in built.items()} == {"train": 40, "val": 10}
  testing.assert_same(built, testing.examples(_build(real, tmp_path / "staged")))


def test_real_lighthouse_layout(shared_data, tmp_path):
  """lighthouse's real jsonl, with the real I3D and title files, reads as UMT's data."""
  real, lighthouse = shared_data / "tvsum", tmp_path / "lighthouse"
  for split in ("train", "val"):
    _link(
        real / "labels" / f"lighthouse_tvsum_{split}_release.jsonl",
        lighthouse / "data" / "tvsum" / f"tvsum_{split}_release.jsonl",
    )
  _write_rgb_npy(real, lighthouse / "features" / "tvsum" / "i3d")
  for path in (real / "features_umt_f16" / tvb.TITLE_DIR).iterdir():
    _link(path, lighthouse / "features" / "tvsum" / "clip_text" / path.name)
  built = testing.examples(_build(lighthouse, tmp_path / "data"))
  testing.assert_same(built, testing.examples(_build(real, tmp_path / "staged")), skip=UNKNOWN)
  _assert_unknown_timing(built)
  # Every video's labels and title, read through the jsonl, are UMT's; its
  # `duration` counts 2-second shots.
  anno = json.loads((real / tvb.ANNOTATIONS).read_text())
  labels = tvb.LAYOUTS["lighthouse"].read_labels(lighthouse)
  assert sorted(labels.entries) == sorted(anno)
  for vid, entry in labels.entries.items():
    assert entry["anno"] == anno[vid]["anno"] and entry["title"] == anno[vid]["title"], vid
    assert entry["domain"] == anno[vid]["domain"], vid
  for split in ("train", "val"):
    for line in (real / "labels" / f"lighthouse_tvsum_{split}_release.jsonl").open():
      row = json.loads(line)
      assert row["duration"] == len(anno[row["vid"]]["anno"]), row["vid"]
