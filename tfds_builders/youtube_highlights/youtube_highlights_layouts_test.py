"""youtube_highlights built from each published layout (tfds_builders/layouts.py).

dummy_data/ holds the same made-up videos as our staged copy (dummy_data/),
UMT's release (dummy_data/umt/, three of them) and lighthouse's
(dummy_data/lighthouse/, the split's); built from each, the examples must
equal the staged ones wherever the layout has the data. UMT's split lists
none of the dummy ids, so the dummy tests give the umt layout the dummy's
split; the real-data tests check UMT's split as copied into
tfds_builders/umt_splits.py, and lighthouse's annotations, against ours.
"""

import functools
import json
import pathlib
import pickle
import shutil

import numpy as np
import pytest

from tfds_builders import layouts
from tfds_builders import testing
from tfds_builders import umt_splits
from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as ytb

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
LIGHTHOUSE_JSONL = "data/youtube_highlight/youtube_highlight_{}_release.jsonl"


_build = functools.partial(testing.build, ytb.Builder)


@pytest.fixture
def dummy():
  return testing.load_dummy(DUMMY, "yth_dummy")


@pytest.fixture
def umt_dummy_split(dummy, monkeypatch):
  """The umt layout with the dummy's split in place of UMT's."""
  monkeypatch.setitem(ytb.LAYOUTS, "umt", layouts.umt("youtube", dummy.SPLITS))


def _release(manual_dir, layout="auto", config="i3d_rgb"):
  return layouts.open_release(
      ytb.LAYOUTS,
      manual_dir,
      layout,
      ytb.Builder.builder_configs[config],
      "youtube_highlights",
      ytb.Builder.BUILDER_CONFIGS,
  )


@pytest.mark.parametrize(
    "folder, layout, root",
    [
        ("", "staged", ""),
        ("umt", "umt", "umt/data/youtube"),  # a UMT checkout
        ("umt/data/youtube", "umt", "umt/data/youtube"),  # UMT's dataset folder itself
        ("lighthouse", "lighthouse", "lighthouse"),
    ],
)
def test_detects_the_layout(folder, layout, root):
  release = _release(DUMMY / folder, config="clip" if layout == "lighthouse" else "i3d_rgb")
  assert release.layout.name == layout
  assert pathlib.Path(release.root) == DUMMY / root


@pytest.mark.parametrize("config", ["i3d_rgb", "i3d_rgb_flow_audio"])
def test_umt_layout_equals_staged(tmp_path, dummy, umt_dummy_split, config):
  del umt_dummy_split
  staged = _build(DUMMY, tmp_path / "staged", config)
  umt = _build(DUMMY / "umt", tmp_path / "umt", config)
  assert {s: sorted(e) for s, e in testing.examples(umt).items()} == {
      "train": ["dummyDog_02"],
      "val": ["dummySurf02"],
      "other": ["dummyOther1"],
  }
  testing.assert_same(
      testing.examples(umt), testing.restricted(testing.examples(staged), dummy.UMT_VIDEOS)
  )
  # The layout is recorded with the data and read back by a new builder.
  assert ytb.Builder(config=config, data_dir=str(tmp_path / "umt")).info.metadata["layout"] == "umt"
  assert (
      layouts.built_from(ytb.Builder(config=config, data_dir=str(tmp_path / "staged"))) == "staged"
  )


def test_umt_layout_takes_umts_split(tmp_path, caplog):
  """UMT's own split lists none of the dummy ids: every video is "other"."""
  umt = testing.examples(_build(DUMMY / "umt", tmp_path))
  assert {s: sorted(e) for s, e in umt.items()} == {
      "other": ["dummyDog_02", "dummyOther1", "dummySurf02"]
  }
  assert (
      "UMT's split (tfds_builders/umt_splits.py): 419 split video ids have no "
      "annotation" in caplog.text
  )


def test_lighthouse_layout_equals_staged(tmp_path, dummy):
  lighthouse = testing.examples(_build(DUMMY / "lighthouse", tmp_path / "lh", "clip_slowfast"))
  staged = testing.examples(_build(DUMMY, tmp_path / "staged", "i3d_rgb"))
  # lighthouse lists the split's videos only: no "other".
  del staged["other"]
  testing.assert_same(lighthouse, staged, skip=("features",))
  index = {vid: i for i, (vid, *_) in enumerate(dummy.VIDEOS)}
  for examples in lighthouse.values():
    for vid, ex in examples.items():
      i, num_clips = index[vid], len(ex["match"])
      want = np.concatenate([dummy.features(i, "clip"), dummy.features(i, "slowfast")], axis=1)
      assert ex["features"].shape == (num_clips, 2816) and ex["features"].dtype == np.float16
      np.testing.assert_array_equal(ex["features"], want)


@pytest.mark.parametrize(
    "folder, config, words",
    [
        (
            "lighthouse",
            "i3d_rgb",
            (
                "youtube_highlights/i3d_rgb",
                "lighthouse layout",
                "no i3d_rgb features",
                "can build: clip, clip_slowfast",
            ),
        ),
        ("lighthouse", "i3d_rgb_flow_audio", ("no i3d_rgb, i3d_flow, pann_audio features",)),
        (
            "",
            "clip_slowfast",
            (
                "staged layout",
                "no clip, slowfast features",
                "can build: i3d_rgb, i3d_rgb_flow, i3d_rgb_flow_audio",
            ),
        ),
        ("umt", "clip", ("umt layout", "no clip features")),
    ],
)
def test_refuses_configs_a_layout_cannot_build(tmp_path, folder, config, words):
  with pytest.raises(ValueError) as info:
    _build(DUMMY / folder, tmp_path, config)
  testing.assert_one_line_naming(str(info.value), words)


def test_unrecognised_folder_names_each_layout(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "notes.txt").write_text("not a release")
  with pytest.raises(FileNotFoundError) as info:
    _build(tmp_path / "manual", tmp_path / "data")
  words = (
      "staged: labels/umt_youtube_anno.json",
      "splits/umt_youtube_splits.json",
      "umt: [data/youtube/]youtube_anno.json",
      "video_features/<vid>_{rgb,opt}.npy",
      "audio_features/<vid>.npy",
      "lighthouse: data/youtube_highlight/" "youtube_highlight_{train,val}_release.jsonl",
      "features/youtube_highlight/{clip,slowfast}/<vid>.npz",
  )
  testing.assert_one_line_naming(str(info.value), words)


def test_explicit_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match="is not youtube_highlights's umt layout"):
    _build(DUMMY, tmp_path / "a", layout="umt")
  with pytest.raises(ValueError, match=r"unknown layout 'UMT'; expected one of \['auto'"):
    ytb.Builder(config="i3d_rgb", data_dir=str(tmp_path), layout="UMT")
  # Files of two layouts: "auto" refuses, a choice picks one.
  both = tmp_path / "both"
  shutil.copytree(DUMMY, both, ignore=shutil.ignore_patterns("lighthouse", "umt"))
  shutil.copytree(DUMMY / "lighthouse" / "data", both / "data")
  with pytest.raises(
      ValueError,
      match=r"several youtube_highlights layouts \(staged, "
      r"lighthouse\); choose one with layout=",
  ):
    _build(both, tmp_path / "b")
  assert _build(both, tmp_path / "c", layout="staged").info.metadata["layout"] == "staged"


def test_a_data_dir_built_from_another_layout_is_refused(tmp_path):
  _build(DUMMY, tmp_path)
  with pytest.raises(ValueError) as info:
    ytb.Builder(config="i3d_rgb", data_dir=str(tmp_path), layout="umt")
  assert "built from the staged layout, not umt" in str(info.value)
  for layout in ("auto", "staged"):
    assert ytb.Builder(config="i3d_rgb", data_dir=str(tmp_path), layout=layout).is_prepared()


def test_layout_survives_pickling(tmp_path):
  builder = ytb.Builder(config="clip", data_dir=str(tmp_path), layout="lighthouse")
  assert pickle.loads(pickle.dumps(builder)).layout == "lighthouse"


def test_lighthouse_label_must_match(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY / "lighthouse", manual)
  path = manual / LIGHTHOUSE_JSONL.format("val")
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  rows[0]["label"][0] = [1 - rows[0]["label"][0][0]]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  with pytest.raises(ValueError) as info:
    _build(manual, tmp_path / "data", "clip")
  for word in (rows[0]["vid"], "youtube_highlight_val_release.jsonl", "[[match > 0]]"):
    assert word in str(info.value)


def test_lighthouse_bad_line_names_file_and_line(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY / "lighthouse", manual)
  path = manual / LIGHTHOUSE_JSONL.format("train")
  path.write_text(path.read_text() + "{not json\n")
  with pytest.raises(
      ValueError, match=r"malformed JSON in .*youtube_highlight_train_" r"release.jsonl line 4"
  ):
    _build(manual, tmp_path / "data", "clip")


def test_real_umt_split_equals_staged(shared_data):
  staged = json.loads((shared_data / "youtube_highlights" / ytb.SPLITS).read_text())
  assert {
      g: {s: list(ids) for s, ids in by.items()} for g, by in umt_splits.YOUTUBE_SPLITS.items()
  } == staged


def test_real_umt_layout(shared_data, tmp_path):
  """UMT's layout re-made from the real staged files builds the same dataset."""
  real = shared_data / "youtube_highlights"
  umt = tmp_path / "umt" / "data" / "youtube"
  (umt / "video_features").mkdir(parents=True)
  (umt / "youtube_anno.json").symlink_to(real / ytb.ANNOTATIONS)
  for path in (real / "features_umt_f16" / "i3d_rgb").iterdir():
    with np.load(path) as npz:
      np.save(umt / "video_features" / f"{path.stem}_rgb.npy", npz["features"])
  built = testing.examples(_build(tmp_path / "umt", tmp_path / "data"))
  assert {s: len(e) for s, e in built.items()} == {"train": 234, "val": 157, "other": 29}
  testing.assert_same(built, testing.examples(_build(real, tmp_path / "staged")))


def test_real_lighthouse_labels_equal_umt(shared_data, tmp_path):
  """Every video of lighthouse's jsonl reads as UMT's annotation, in UMT's split."""
  real = shared_data / "youtube_highlights"
  for split in ("train", "val"):
    path = tmp_path / LIGHTHOUSE_JSONL.format(split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(real / "labels" / f"lighthouse_youtube_highlight_{split}_release.jsonl")
  labels = ytb.LAYOUTS["lighthouse"].read_labels(tmp_path)
  anno = json.loads((real / ytb.ANNOTATIONS).read_text())
  assert len(labels.entries) == 385
  for vid, entry in labels.entries.items():
    want = anno[vid]
    assert entry["domain"] == want["domain"] and entry["match"] == want["match"], vid
    assert entry["clip"] == want["clip"] and entry["fps"] == want["fps"], vid
    assert float(entry["frames"]) == float(want["frames"]), vid
  # lighthouse's split is UMT's, less 7 videos it does not list.
  for group, by_split in labels.splits.items():
    for split, ids in by_split.items():
      assert set(ids) <= set(umt_splits.YOUTUBE_SPLITS[group][split]), (group, split)
  listed = sum(len(ids) for by in labels.splits.values() for ids in by.values())
  assert listed == 385
