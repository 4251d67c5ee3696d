"""video_features.extract_many: threaded decoding, batches across videos, data parallel."""

import jax
import numpy as np
import pytest

from hl_jax.video import extraction
from hl_jax.video import extractors

av = pytest.importorskip("av")
import videos  # pylint: disable=g-import-not-at-top,wrong-import-position  # tests/videos.py


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  root = tmp_path_factory.mktemp("clips")
  paths = [
      videos.make_video(root / "a.mp4", seconds=3, fps=10),
      videos.make_video(root / "b.mp4", seconds=2, fps=12.5, audio=True),
      videos.make_video(root / "c.mp4", seconds=0.3, fps=10),
  ]
  (root / "bad.mp4").write_bytes(b"not a video\n")
  return [str(p) for p in paths], str(root / "bad.mp4")


@pytest.fixture(scope="module")
def extractor():
  return extractors.make_extractor(
      "untrained", segment_seconds=1.0, frames_per_segment=2, frame_size=16, feature_dim=8, batch=4
  )


@pytest.mark.parametrize("threads", [1, 3])
def test_same_features_as_one_video_at_a_time(clips, extractor, threads):
  paths, bad = clips
  results = list(
      extraction.extract_many(
          paths[:2] + [bad] + paths[2:], extractor, decode_threads=threads, max_queued=2
      )
  )
  by_index = {r.index: r for r in results}
  assert sorted(by_index) == [0, 1, 2, 3] and len(results) == 4
  assert by_index[2].features is None and "Invalid data" in str(by_index[2].error)
  for index, path in zip((0, 1, 3), paths):
    result = by_index[index]
    assert result.error is None and result.path == path
    # Batches of 4 segments mixing videos give each video's own features.
    alone, duration = extraction.extract(path, extractor.embed_fn, extractor.config, batch=1)
    np.testing.assert_allclose(result.features, alone, rtol=1e-5, atol=1e-6)
    assert result.duration == pytest.approx(duration)
  assert [len(by_index[i].features) for i in (0, 1, 3)] == [3, 2, 1]


def test_closing_early_stops_the_decoders(clips, extractor):
  paths, _ = clips
  stream = extraction.extract_many(paths * 4, extractor, decode_threads=2, max_queued=1)
  next(stream)
  stream.close()
  import threading  # pylint: disable=g-import-not-at-top

  assert not [t for t in threading.enumerate() if t.name.startswith("decode-") and t.is_alive()]


@pytest.mark.parametrize("num", [1, 3, 4, 5, 9])
def test_batched_is_data_parallel_and_pads_little(num):
  devices = jax.local_devices()
  shapes = []

  def apply(params, x):
    shapes.append(x.shape[0])
    assert len(x.sharding.device_set) == len(devices)  # split over every device
    return x.astype(np.float32).sum(axis=(1, 2)) * params

  embed = extractors.batched(apply, np.float32(2.0), batch=2 * len(devices))
  frames = np.random.default_rng(num).integers(0, 255, (num, 3, 5), np.uint8)
  np.testing.assert_allclose(embed(frames), frames.astype(np.float32).sum(axis=(1, 2)) * 2)
  batch = 2 * len(devices)
  assert all(s % len(devices) == 0 and s <= batch for s in shapes)
  # Only the last chunk is smaller, padded to a power-of-two multiple of the devices.
  rest = num % batch
  if rest:
    assert shapes[-1] == min(
        batch, len(devices) * 2 ** max(0, int(np.ceil(np.log2(rest / len(devices)))))
    )


def test_make_extractor_refuses():
  with pytest.raises(ValueError, match="unknown extractor 'c3d'"):
    extractors.make_extractor("c3d")
  with pytest.raises(ValueError, match="1024-d features, not feature_dim=16"):
    extractors.make_extractor("i3d", feature_dim=16)
  with pytest.raises(ValueError, match="whole number of frames"):
    extractors.make_extractor("i3d", segment_seconds=1.01)
  with pytest.raises(ValueError, match="batch=0"):
    extractors.make_extractor("untrained", batch=0)
