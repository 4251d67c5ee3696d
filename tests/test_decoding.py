"""Decoding edge cases of hl_jax.video_features: odd rates, short and odd videos.

tests/test_video_features.py checks the sampling rule at 10 fps and a raw
stream at 25 fps; here the same rule meets NTSC, fractional and low frame
rates, videos shorter than a segment, sound tracks, several lengths, and
`extract`'s batching. Every synthetic frame draws its index (tests/videos.py),
and expectations are computed by hand with exact fractions: segment i spans
[i s, min((i + 1) s, duration)), frame j of F samples the frame on screen at
lo + (j + 1/2) (hi - lo) / F, i.e. frame floor(t * fps).
"""

import fractions
import math

import numpy as np
import pytest

from hl_jax.video import decoding
from hl_jax.video import extraction

import videos

av = pytest.importorskip("av")

Fraction = fractions.Fraction
NTSC = Fraction(30000, 1001)


def _config(segment_seconds, frames_per_segment, frame_size=16):
  return decoding.DecodeConfig(
      segment_seconds=segment_seconds, frames_per_segment=frames_per_segment, frame_size=frame_size
  )


def _decoded(path, config, duration=None):
  """[[frame index per sample] per segment] as iter_segments yields them."""
  segments = list(decoding.iter_segments(path, config, duration))
  for frames in segments:
    assert (
        frames.shape == (config.frames_per_segment, config.frame_size, config.frame_size, 3)
        and frames.dtype == np.uint8
    )
  return [[videos.frame_index(f) for f in frames] for frames in segments]


def _expected(num_frames, fps, segment_seconds, per_segment, num):
  """Hand rule, in exact fractions: the frame on screen at each sample time."""
  fps, seg = Fraction(fps), Fraction(segment_seconds)
  duration = num_frames / fps
  expected = []
  for i in range(num):
    lo, hi = i * seg, min((i + 1) * seg, duration)
    times = [lo + Fraction(2 * j + 1, 2 * per_segment) * (hi - lo) for j in range(per_segment)]
    # A sample exactly on a frame's start would make the test depend on rounding.
    assert all((t * fps).denominator != 1 for t in times), times
    expected.append([min(math.floor(t * fps), num_frames - 1) for t in times])
  return expected


def test_a_one_second_video_is_one_two_second_segment(tmp_path):
  path = videos.make_video(tmp_path / "one.mp4", seconds=1, fps=10)
  # Samples at 0.125, 0.375, 0.625, 0.875 s of the 1-s video.
  assert _decoded(path, _config(2.0, 4)) == [[1, 3, 6, 8]]


@pytest.mark.parametrize(
    "fps, seconds, audio, num",
    [
        (NTSC, 5, True, 3),  # 150 frames, 5.005 s: a last piece of 1.005 s is kept
        (12.5, 5, False, 2),  # 62 frames, 4.96 s: a last piece of 0.96 s is dropped
        (7, 5, True, 3),  # 35 frames, 5.0 s
        (NTSC, 2.5, False, 1),  # 75 frames, 2.5025 s
    ],
)
def test_odd_frame_rates(tmp_path, fps, seconds, audio, num):
  path = videos.make_video(tmp_path / "v.mp4", seconds=seconds, fps=fps, audio=audio)
  num_frames = round(seconds * Fraction(fps).limit_denominator(1001))
  duration = decoding.video_duration(path)
  assert duration == pytest.approx(float(num_frames / Fraction(fps).limit_denominator(1001)))
  assert decoding.num_segments(duration, 2.0) == num
  assert _decoded(path, _config(2.0, 4)) == _expected(num_frames, fps, 2.0, 4, num)


def test_a_sound_track_changes_nothing(tmp_path):
  config = _config(1.0, 3)
  silent = videos.make_video(tmp_path / "silent.mp4", seconds=3, fps=NTSC)
  sound = videos.make_video(tmp_path / "sound.mp4", seconds=3, fps=NTSC, audio=True)
  assert _decoded(sound, config) == _decoded(silent, config) == _expected(90, NTSC, 1, 3, 3)


def test_a_longer_sound_track_does_not_lengthen_the_video(tmp_path):
  # mp4 gives each stream its duration: the video's 3 s count, not the sound's 5 s.
  path = videos.make_video(tmp_path / "v.mp4", seconds=3, fps=10, audio=True, audio_seconds=5)
  assert decoding.video_duration(path) == pytest.approx(3.0)
  assert _decoded(path, _config(1.0, 2)) == [[2, 7], [12, 17], [22, 27]]


def test_a_video_shorter_than_one_window(tmp_path):
  # 3 frames, 0.3 s, 16 samples of a 2-s segment: spread over the 0.3 s.
  path = videos.make_video(tmp_path / "short.mp4", seconds=0.3, fps=10)
  config = _config(2.0, 16)
  assert _decoded(path, config) == [[0] * 5 + [1] * 6 + [2] * 5]
  assert _decoded(path, config) == _expected(3, 10, 2.0, 16, 1)


def test_a_short_stream_without_duration_repeats_its_last_frame(tmp_path):
  # A raw stream (no duration): the segment is sampled as if whole, at
  # (j + 1/2) / 8 s; the 3 frames (0, 0.04, 0.08 s) run out after the second.
  path = videos.make_video(tmp_path / "short.h264", seconds=0.12, fps=25, container_format="h264")
  assert decoding.video_duration(path) is None
  assert _decoded(path, _config(2.0, 16)) == [[1] + [2] * 15]


def test_a_given_duration_overrides_the_container(tmp_path):
  # Told the video lasts 2 s, the 1-s video's second segment repeats its last frame.
  path = videos.make_video(tmp_path / "v.mp4", seconds=1, fps=10)
  assert _decoded(path, _config(1.0, 2), duration=2.0) == [[2, 7], [9, 9]]


@pytest.mark.parametrize(
    "seconds, fps, segment_seconds, expected",
    [
        (0.3, 10, 2.0, 1),  # shorter than half a segment, but the only one
        (0.9, 10, 2.0, 1),
        (2.9, 10, 2.0, 1),  # 0.9 s left over: dropped
        (3.0, 10, 2.0, 2),  # 1.0 s left over: kept
        (4.0, NTSC, 2.0, 2),  # 120 frames, 4.004 s (carphone's length)
        (5.0, 10, 1.5, 3),  # 0.5 s < 0.75 s left over
        (5.3, 10, 1.5, 4),  # 0.8 s left over
    ],
)
def test_segment_count_of_decoded_videos(tmp_path, seconds, fps, segment_seconds, expected):
  path = videos.make_video(tmp_path / "v.mp4", seconds=seconds, fps=fps)
  duration = decoding.video_duration(path)
  assert decoding.num_segments(duration, segment_seconds) == expected
  config = _config(segment_seconds, 1, frame_size=8)
  assert len(list(decoding.iter_segments(path, config))) == expected


def test_extract_keeps_segment_order_across_batches(tmp_path):
  path = videos.make_video(tmp_path / "v.mp4", seconds=3.5, fps=10)
  batches = []

  def embed(frames):  # [N, F, S, S, 3] -> [N, F]: the sampled frame indices
    batches.append(len(frames))
    return np.asarray([[videos.frame_index(f) for f in segment] for segment in frames], np.float32)

  features, duration = extraction.extract(path, embed, _config(0.5, 2), batch=3)
  assert batches == [3, 3, 1] and duration == pytest.approx(3.5)
  # Segment i samples 0.5 i + 0.125 and + 0.375 s: frames 5 i + 1 and 5 i + 3.
  np.testing.assert_array_equal(features, [[5 * i + 1, 5 * i + 3] for i in range(7)])


# Timing without stream durations: a raw stream is timed by its guessed rate
# (average_rate is FFmpeg's 25 fps default there), and a Matroska video ends
# where its video packets end, not where a longer sound track does.


def test_a_raw_stream_at_10_fps(tmp_path):
  path = videos.make_video(tmp_path / "v.h264", seconds=3, fps=10, container_format="h264")
  assert _decoded(path, _config(1.0, 2)) == [[2, 7], [12, 17], [22, 27]]


def test_a_longer_sound_track_in_matroska(tmp_path):
  path = videos.make_video(tmp_path / "v.mkv", seconds=3, fps=10, audio=True, audio_seconds=5)
  assert decoding.video_duration(path) == pytest.approx(3.0)
  assert _decoded(path, _config(1.0, 2)) == [[2, 7], [12, 17], [22, 27]]


def test_extract_reports_the_decoded_duration_of_a_raw_stream(tmp_path):
  # No duration in the file: the video ends one frame after its last frame
  # starts (2.5 s for 25 frames at 10 fps), not at segments x s (3.0).
  path = videos.make_video(tmp_path / "v.h264", seconds=2.5, fps=10, container_format="h264")
  embed = lambda frames: np.zeros((len(frames), 1), np.float32)
  features, duration = extraction.extract(path, embed, _config(1.0, 2))
  assert len(features) == 3 and duration == pytest.approx(2.5)
