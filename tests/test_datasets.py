"""hl_jax.data.corpora: loading the labelled benchmarks from the builders' dummy data."""

import pathlib

import numpy as np
import pytest

from hl_jax.data import benchmarks

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
