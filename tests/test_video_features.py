"""hl_jax.video_features: frame sampling, the extractor's weights, video -> prediction."""

import dataclasses
import json

import numpy as np
import pytest

from configs import tiny
from hl_jax.core import run_loop
from hl_jax.core import trees
from hl_jax.data import features_file
from hl_jax.highlights import moments
from hl_jax.highlights import predict
from hl_jax.video import decoding
from hl_jax.video import segment_embedder

import programs

av = pytest.importorskip("av")


def _gray_video(path, num_frames, fps=10, size=32, step=8, container_format=None):
  """Frame n is gray level step * n + 5 (lossless H.264: levels survive to +-3)."""
  with av.open(str(path), "w", format=container_format) as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"qp": "0"}
    for n in range(num_frames):
      image = np.full((size, size, 3), step * n + 5, np.uint8)
      for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


@pytest.mark.parametrize(
    "num_frames, expected_frames",
    [
        # 3.0 s at 10 fps, 1 s segments, 2 frames each: times 0.25, 0.75, 1.25, ... show
        # frames 2, 7, 12, 17, 22, 27.
        (30, [[2, 7], [12, 17], [22, 27]]),
        # 2.5 s: the last half segment [2, 2.5) is kept, sampled at 2.125 and 2.375 s.
        (25, [[2, 7], [12, 17], [21, 23]]),
        # 2.4 s: a last piece of 0.4 s (< half a segment) is dropped.
        (24, [[2, 7], [12, 17]]),
    ],
)
def test_sampled_frames(tmp_path, num_frames, expected_frames):
  path = tmp_path / "gray.mp4"
  _gray_video(path, num_frames)
  assert decoding.video_duration(path) == pytest.approx(num_frames / 10)
  config = decoding.DecodeConfig(segment_seconds=1.0, frames_per_segment=2, frame_size=16)
  segments = list(decoding.iter_segments(path, config))
  assert [s.shape for s in segments] == [(2, 16, 16, 3)] * len(expected_frames)
  levels = np.asarray([s[:, 8, 8, 0] for s in segments], float)
  np.testing.assert_allclose(levels, 8 * np.asarray(expected_frames) + 5, atol=3)


def test_sampled_frames_without_timestamps(tmp_path):
  # A raw H.264 stream has no duration and no timestamps: frames are timed by the
  # stream's rate (25 fps) and the video ends one frame after the last: 50 frames, 2 s.
  path = tmp_path / "gray.h264"
  _gray_video(path, 50, fps=25, step=5, container_format="h264")
  assert decoding.video_duration(path) is None
  config = decoding.DecodeConfig(segment_seconds=1.0, frames_per_segment=2, frame_size=16)
  levels = np.asarray([s[:, 8, 8, 0] for s in decoding.iter_segments(path, config)], float)
  np.testing.assert_allclose(levels, 5 * np.asarray([[6, 18], [31, 43]]) + 5, atol=3)


@pytest.mark.parametrize(
    "duration, expected", [(10.0, 5), (9.0, 5), (8.9, 4), (0.3, 1), (4.004, 2)]
)
def test_num_segments(duration, expected):
  assert decoding.num_segments(duration, 2.0) == expected


def _leaves(tree):
  return {k: np.asarray(v) for k, v in trees.flatten(tree, "/").items()}


def test_weights_roundtrip_and_errors(tmp_path):
  config = decoding.DecodeConfig(frames_per_segment=2, frame_size=16)
  module = segment_embedder.SegmentEmbedder(feature_dim=8, widths=(4, 6))
  params = segment_embedder.default_params(module, config, seed=3)
  for suffix in (".msgpack", ".npz"):
    path = tmp_path / f"w{suffix}"
    segment_embedder.save_params(path, params)
    restored = segment_embedder.read_params(path)
    assert segment_embedder.embedder_for(restored) == module
    got, want = _leaves(restored), _leaves(params)
    assert sorted(got) == [
        "Conv_0/bias",
        "Conv_0/kernel",
        "Conv_1/bias",
        "Conv_1/kernel",
        "Dense_0/bias",
        "Dense_0/kernel",
    ]
    for key, value in want.items():
      np.testing.assert_array_equal(got[key], value)
  frames = np.random.default_rng(0).integers(0, 256, (5, 2, 16, 16, 3), dtype=np.uint8)
  embed, name = segment_embedder.default_embed_fn(config, weights=str(tmp_path / "w.msgpack"))
  np.testing.assert_allclose(
      embed(frames), module.apply({"params": params}, frames), rtol=1e-5, atol=1e-5
  )
  assert embed(frames).shape == (5, 8) and "w.msgpack" in name
  with pytest.raises(ValueError, match="gives 8-d features, not --feature_dim=16"):
    segment_embedder.default_embed_fn(config, weights=str(tmp_path / "w.npz"), feature_dim=16)
  bad = dict(params)
  bad["Dense_0"] = {"kernel": np.zeros((5, 8), np.float32), "bias": np.zeros(8, np.float32)}
  segment_embedder.save_params(tmp_path / "bad.npz", bad)
  with pytest.raises(ValueError, match=r"Dense_0/kernel: shape \(5, 8\), expected \(12, 8\)"):
    segment_embedder.default_embed_fn(config, weights=str(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(segment_seconds=0.0), "segment_seconds=0.0 must be a finite number > 0"),
        (dict(segment_seconds=-1.0), "segment_seconds=-1.0 must be"),
        (dict(segment_seconds=float("nan")), "segment_seconds=nan must be"),
        (dict(segment_seconds=float("inf")), "segment_seconds=inf must be"),
        (dict(frames_per_segment=0), "frames_per_segment >= 1"),
        (dict(frame_size=4), "frame_size >= 8"),
    ],
)
def test_decode_config_refuses(kwargs, words):
  with pytest.raises(ValueError, match=words):
    decoding.DecodeConfig(**kwargs)


@pytest.mark.parametrize("feature_dim", [0, -3])
def test_feature_dim_is_not_replaced_by_the_default(feature_dim):
  with pytest.raises(ValueError, match=f"feature_dim={feature_dim} must be >= 1"):
    segment_embedder.default_embed_fn(decoding.DecodeConfig(), feature_dim=feature_dim)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("w.msgpack", b"\x00garbage", "w.msgpack: not a readable .msgpack weights file"),
        ("w.npz", b"PK\x03\x04torn", "w.npz: not a readable .npz weights file"),
        ("w.msgpack", None, "w.msgpack: no such weights file"),
        ("w.pt", b"", "weights must be a .msgpack or .npz file"),
    ],
)
def test_read_params_refuses(tmp_path, name, content, words):
  if content is not None:
    (tmp_path / name).write_bytes(content)
  with pytest.raises((ValueError, FileNotFoundError), match=words):
    segment_embedder.read_params(tmp_path / name)


def test_no_video_stream(tmp_path):
  import videos  # pylint: disable=g-import-not-at-top  # tests/videos.py (needs av)

  path = videos.make_audio_only(tmp_path / "audio.m4a")
  with pytest.raises(ValueError, match=r"audio.m4a has no video stream \(streams: \['audio'\]\)"):
    decoding.video_duration(path)


def test_write_features_is_whole_or_absent(tmp_path):
  config = decoding.DecodeConfig()
  out = tmp_path / "sub" / "f.npz"
  features_file.write(
      out, np.ones((3, 4)), 6.0, dataclasses.asdict(config), extractor="x", video="v.mp4"
  )
  assert sorted(p.name for p in out.parent.iterdir()) == ["f.npz"]  # no .partial left
  with np.load(out) as data:
    assert data["features"].shape == (3, 4) and float(data["duration_seconds"]) == 6.0


def test_default_extractor_is_deterministic():
  config = decoding.DecodeConfig(frames_per_segment=2, frame_size=16)
  module = segment_embedder.SegmentEmbedder(feature_dim=16)
  first = _leaves(segment_embedder.default_params(module, config))
  second = _leaves(segment_embedder.default_params(module, config))
  other = _leaves(segment_embedder.default_params(module, config, seed=1))
  for key, value in first.items():
    np.testing.assert_array_equal(second[key], value)
  assert not np.array_equal(other["Dense_0/kernel"], first["Dense_0/kernel"])


@pytest.mark.slow
def test_video_to_features_to_prediction(shared_data, tmp_path):
  video = shared_data / "sample_videos" / "bikes.mp4"  # 10 s, 640x272, 25 fps
  features = tmp_path / "bikes.npz"
  proc = programs.run(
      "hl_jax.video_features",
      f"--video={video}",
      f"--output={features}",
      "--extractor=untrained",
      "--segment_seconds=2",
      "--feature_dim=16",
      timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  with np.load(features) as data:
    assert data["features"].shape == (5, 16) and data["features"].dtype == np.float32
    assert float(data["segment_seconds"]) == 2.0
    assert float(data["duration_seconds"]) == pytest.approx(10.0)
  # A model of the same feature dimension (the synthetic_tiny corpus, D = 16).
  config = tiny.get_config()
  config.data_dir = str(tmp_path / "tfds")
  config.train.num_steps = 4
  config.eval.random_seeds = 1
  workdir = str(tmp_path / "workdir")
  run_loop.train_and_evaluate(config, workdir)
  out = tmp_path / "bikes.json"
  predict.run(
      workdir, out, features=[str(features)], rule=moments.MomentRule(top_k=2, min_gap_seconds=0)
  )
  (record,) = json.loads(out.read_text())["videos"]
  assert record["video_id"] == "bikes" and len(record["scores"]) == 5
  assert record["segments_s"] == [[0, 2], [2, 4], [4, 6], [6, 8], [8, 10]]
  assert 1 <= len(record["moments"]) <= 2
  assert all(0 <= m["start_s"] < m["end_s"] <= 10 for m in record["moments"])
  assert out.with_suffix(".png").is_file()
