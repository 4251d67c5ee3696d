"""hl_jax.data.benchmarks: the labelled benchmarks from the builders' dummy data, in each layout."""

import importlib.util
import pathlib

import numpy as np
import pytest

from hl_jax.data import benchmarks
from tfds_builders import layouts

import programs

REPO = pathlib.Path(__file__).resolve().parents[1]
YTH_DUMMY = REPO / "tfds_builders" / "youtube_highlights" / "dummy_data"
TVSUM_DUMMY = REPO / "tfds_builders" / "tvsum" / "dummy_data"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def yth_val(data_dir):
  return benchmarks.load_benchmark(
      "youtube_highlights", "val", manual_dir=YTH_DUMMY, data_dir=data_dir
  )


def test_load_benchmark_dummy(yth_val, data_dir):
  assert [(v.group, v.video_id) for v in yth_val] == [
      ("dog", "dummyDog_03"),
      ("surfing", "dummySurf02"),
      ("surfing", "dummySurf03"),
  ]
  dog = yth_val[0]
  assert dog.features.shape == (5, 1024) and dog.features.dtype == np.float32
  np.testing.assert_array_equal(dog.labels, [1, 0, -1, -1, 1])
  tvsum = benchmarks.load_benchmark(
      "tvsum", "all", manual_dir=TVSUM_DUMMY, data_dir=data_dir, feature_set="i3d_rgb_flow_audio"
  )
  assert [v.video_id for v in tvsum] == ["dummyBK_trn", "dummyBK_val", "dummyVT_trn", "dummyVT_val"]
  assert tvsum[3].features.shape == (6, 4096) and tvsum[3].labels.shape == (6, 20)
  # dummy_data's video i has 2 + i title tokens; dummyVT_val is i=3.
  assert tvsum[3].text.shape == (5, 512) and tvsum[3].text.dtype == np.float32
  assert all(v.text is None for v in yth_val)
  assert (
      benchmarks.load_benchmark(
          "tvsum", "other", manual_dir=None, data_dir=data_dir, feature_set="i3d_rgb_flow_audio"
      )
      == []
  )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(benchmark="tvsumm"), "unknown benchmark 'tvsumm'"),
        (dict(split="test"), "unknown split 'test'"),
        (dict(feature_set="rgb"), "unknown feature_set 'rgb'"),
    ],
)
def test_load_benchmark_bad_names(kwargs, message):
  args = dict(benchmark="tvsum", split="val", feature_set="i3d_rgb") | kwargs
  with pytest.raises(ValueError, match=message):
    benchmarks.load_benchmark(args.pop("benchmark"), args.pop("split"), manual_dir=None, **args)


def test_load_benchmark_needs_manual_dir_until_built(tmp_path):
  with pytest.raises(FileNotFoundError, match="tvsum/i3d_rgb is not built in"):
    benchmarks.load_benchmark("tvsum", "val", manual_dir=None, data_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match="manual_dir .*nowhere is not a directory"):
    benchmarks.load_benchmark("tvsum", "val", manual_dir=tmp_path / "nowhere", data_dir=tmp_path)


def test_load_benchmark_loses_a_build_race(tmp_path, monkeypatch):
  from tfds_builders.tvsum import tvsum_dataset_builder  # pylint: disable=g-import-not-at-top

  builder_cls = tvsum_dataset_builder.Builder
  real_prepare = builder_cls.download_and_prepare

  def prepare_then_lose(self, **kwargs):
    real_prepare(self, **kwargs)  # another host's copy lands first ...
    raise FileExistsError("rename of incomplete dir")  # ... and ours cannot

  monkeypatch.setattr(builder_cls, "download_and_prepare", prepare_then_lose)
  videos = benchmarks.load_benchmark("tvsum", "val", manual_dir=TVSUM_DUMMY, data_dir=tmp_path)
  assert [v.video_id for v in videos] == ["dummyBK_val", "dummyVT_val"]

  def fail(self, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(builder_cls, "download_and_prepare", fail)
  with pytest.raises(OSError, match="disk full"):
    benchmarks.load_benchmark("tvsum", "val", manual_dir=TVSUM_DUMMY, data_dir=tmp_path / "b")


# ----------------------------------------------------------------------------
# The releases as published: our staged copy, UMT's and lighthouse's
# (tfds_builders/layouts.py), each in the builders' dummy_data.


def _dummy_module(benchmark):
  path = {"youtube_highlights": YTH_DUMMY, "tvsum": TVSUM_DUMMY}[benchmark] / "make_dummy_data.py"
  spec = importlib.util.spec_from_file_location(f"{benchmark}_dummy", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture
def umt_dummy_splits(monkeypatch):
  """UMT's layout with the dummies' split: UMT's own (its code) lists none of their ids."""
  from tfds_builders.tvsum import tvsum_dataset_builder as tvb  # pylint: disable=g-import-not-at-top
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as ytb  # pylint: disable=g-import-not-at-top

  monkeypatch.setitem(
      ytb.LAYOUTS, "umt", layouts.umt("youtube", _dummy_module("youtube_highlights").SPLITS)
  )
  monkeypatch.setitem(
      tvb.LAYOUTS, "umt", layouts.umt("tvsum", _dummy_module("tvsum").SPLITS, title=True)
  )


def _dummy_rows(benchmark, video_id, kind):
  """[T] the value every feature of each row of a dummy video holds (make_dummy_data.py)."""
  dummy = _dummy_module(benchmark)
  i = [v[0] for v in dummy.VIDEOS].index(video_id)
  return dummy.features(i, kind)[:, 0].astype(np.float32)


@pytest.mark.parametrize(
    "benchmark, folder, layout, feature_set, val_ids",
    [
        (
            "youtube_highlights",
            "",
            "auto",
            "i3d_rgb",
            ["dummyDog_03", "dummySurf02", "dummySurf03"],
        ),
        ("youtube_highlights", "umt", "auto", "i3d_rgb_flow_audio", ["dummySurf02"]),
        ("youtube_highlights", "umt", "umt", "i3d_rgb", ["dummySurf02"]),
        (
            "youtube_highlights",
            "lighthouse",
            "lighthouse",
            "clip_slowfast",
            ["dummyDog_03", "dummySurf02", "dummySurf03"],
        ),
        ("tvsum", "", "staged", "i3d_rgb_flow", ["dummyBK_val", "dummyVT_val"]),
        ("tvsum", "umt", "auto", "i3d_rgb_flow_audio", ["dummyVT_val"]),
        ("tvsum", "lighthouse", "auto", "i3d_rgb", ["dummyVT_val"]),
        ("tvsum", "lighthouse", "lighthouse", "clip", ["dummyVT_val"]),
    ],
)
def test_load_benchmark_reads_each_release(
    tmp_path, umt_dummy_splits, benchmark, folder, layout, feature_set, val_ids
):
  del umt_dummy_splits
  root = {"youtube_highlights": YTH_DUMMY, "tvsum": TVSUM_DUMMY}[benchmark]
  videos = benchmarks.load_benchmark(
      benchmark,
      "val",
      manual_dir=root / folder,
      data_dir=tmp_path,
      feature_set=feature_set,
      layout=layout,
  )
  assert [v.video_id for v in videos] == val_ids
  assert benchmarks.built_layout(benchmark, data_dir=tmp_path, feature_set=feature_set) == (
      folder or "staged"
  )
  kinds = {
      "i3d_rgb": ("i3d_rgb",),
      "i3d_rgb_flow": ("i3d_rgb", "i3d_flow"),
      "i3d_rgb_flow_audio": ("i3d_rgb", "i3d_flow", "pann_audio"),
      "clip": ("clip",),
      "clip_slowfast": ("clip", "slowfast"),
  }[feature_set]
  dummy = _dummy_module(benchmark)
  for video in videos:
    assert video.features.shape[1] == benchmarks.FEATURE_DIMS[feature_set]
    # The same rows whichever release they came from: the first column of each kind.
    offsets = np.cumsum([0] + [dummy.KIND_DIMS[k] for k in kinds])[:-1]
    for kind, offset in zip(kinds, offsets):
      # (TVSum's dummyVT_val has an audio row more than labels; the builder drops it.)
      np.testing.assert_array_equal(
          video.features[:, offset],
          _dummy_rows(benchmark, video.video_id, kind)[: video.num_clips],
      )
    # Clip times from the examples: YouTube Highlights' 100-frame windows at
    # stride 50 over 25 fps (4-s clips every 2 s); TVSum's 2-s shots.
    t = np.arange(video.num_clips, dtype=np.float64)
    expected = np.stack([2 * t, 2 * t + (4 if benchmark == "youtube_highlights" else 2)], 1)
    np.testing.assert_allclose(video.segments_s, expected)


def test_feature_sets_and_layouts_are_the_builders():
  from tfds_builders import umt_release  # pylint: disable=g-import-not-at-top

  assert benchmarks.LAYOUTS == layouts.CHOICES
  assert benchmarks.FEATURE_SETS == tuple(c.name for c in umt_release.FEATURE_SETS)
  assert benchmarks.FEATURE_DIMS == {c.name: c.dim for c in umt_release.FEATURE_SETS}


def test_load_benchmark_refuses_the_wrong_layout(tmp_path):
  with pytest.raises(ValueError, match="unknown layout 'umd'"):
    benchmarks.load_benchmark("tvsum", "val", manual_dir=TVSUM_DUMMY, layout="umd")
  with pytest.raises(FileNotFoundError, match="is not tvsum's umt layout, which expects"):
    benchmarks.load_benchmark(
        "tvsum", "val", manual_dir=TVSUM_DUMMY, data_dir=tmp_path / "a", layout="umt"
    )
  with pytest.raises(ValueError, match="cannot be built from the staged layout"):
    benchmarks.load_benchmark(
        "youtube_highlights", "val", manual_dir=YTH_DUMMY, data_dir=tmp_path, feature_set="clip"
    )
  # Built from the staged copy, the data_dir is not read as lighthouse's.
  benchmarks.load_benchmark("tvsum", "val", manual_dir=TVSUM_DUMMY, data_dir=tmp_path / "b")
  with pytest.raises(ValueError, match="built from the staged layout, not lighthouse"):
    benchmarks.load_benchmark(
        "tvsum",
        "val",
        manual_dir=TVSUM_DUMMY / "lighthouse",
        data_dir=tmp_path / "b",
        layout="lighthouse",
    )


def _build_cli(*args, data_dir):
  return programs.run("tfds_builders.build", *args, f"--data_dir={data_dir}")


def test_build_cli_layout_flag(tmp_path):
  done = _build_cli(
      "youtube_highlights/clip",
      f"--manual_dir={YTH_DUMMY / 'lighthouse'}",
      "--layout=lighthouse",
      data_dir=tmp_path,
  )
  assert done.returncode == 0, done.stderr
  assert "youtube_highlights/clip/1.0.0 val: 3 examples" in done.stdout
  done = _build_cli(
      "tvsum/i3d_rgb", f"--manual_dir={TVSUM_DUMMY}", "--layout=umt", data_dir=tmp_path
  )
  assert done.returncode == 1
  # TFDS's and absl's log lines, then the error on one line.
  (line,) = [l for l in done.stderr.splitlines() if l.startswith("tfds_builders.build: error:")]
  assert "is not tvsum's umt layout" in line
  done = _build_cli("duration_corpus/synthetic", "--layout=umt", data_dir=tmp_path)
  assert done.returncode == 2 and "--layout applies to youtube_highlights and tvsum only" in (
      done.stderr
  )
