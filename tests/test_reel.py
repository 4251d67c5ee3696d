"""hl_jax.highlights.reel: spans cut from a video and joined, checked frame by frame.

The synthetic sources (tests/videos.py) draw each frame's index and play a
tone whose pitch says the second, so a reel's pictures and sound can be traced
back to the source times they came from.
"""

import fractions
import math

import numpy as np
import pytest

from hl_jax.highlights import reel

import videos

av = pytest.importorskip("av")

NTSC = fractions.Fraction(30000, 1001)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """10 s, 25 fps, 96x64, with sound; a keyframe every second (for seeking)."""
  path = tmp_path_factory.mktemp("src") / "ten.mp4"
  return videos.make_video(path, seconds=10, fps=25, audio=True, keyframe_every=25)


def _indices(path):
  return [index for _, index in videos.decode_frames(path)]


def _tones(path, reel_times):
  """The audio's pitch around each of `reel_times` (a quarter second from it)."""
  samples, rate = videos.decode_audio(path)
  return [
      videos.dominant_hz(samples[round(t * rate) : round((t + 0.25) * rate)], rate)
      for t in reel_times
  ]


def test_reel_of_two_spans(source, tmp_path):
  out = tmp_path / "reel.mp4"
  result = reel.write_reel(source, [(6, 8), (1, 3)], out)
  assert result["reel"] == str(out) and result["audio"] and result["frames"] == 100
  assert result["duration_s"] == pytest.approx(4.0, abs=1 / 25)
  assert result["spans_s"] == [[1.0, 3.0], [6.0, 8.0]]  # time order
  assert result["codec"] == reel.video_encoder()
  # Pictures: source frames 25..74 (1-3 s), then 150..199 (6-8 s).
  frames = videos.decode_frames(out)
  assert [i for _, i in frames] == list(range(25, 75)) + list(range(150, 200))
  times = [t for t, _ in frames]
  np.testing.assert_allclose(times, np.arange(100) / 25, atol=1e-6)  # re-timed
  # Sound: reel 0-2 s is source 1-3 s (500, 750 Hz), reel 2-4 s is 6-8 s.
  wanted = [videos.tone_hz(t) for t in (1.1, 2.1, 6.1, 7.1)]
  assert _tones(out, [0.1, 1.1, 2.1, 3.1]) == pytest.approx(wanted, abs=10)
  with av.open(str(out)) as container:
    (video,) = container.streams.video
    assert (video.codec_context.width, video.codec_context.height) == (96, 64)
    assert video.codec_context.pix_fmt == "yuv420p"
    if result["codec"] == "libx264":
      assert video.codec_context.name == "h264"
    (audio,) = container.streams.audio
    assert audio.codec_context.name == "aac"
    assert float(audio.duration * audio.time_base) == pytest.approx(4.0, abs=0.1)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.mp4"]  # no .partial


def test_max_seconds_takes_the_best_spans_first(source, tmp_path):
  # Best first: all of (6, 8), then (1, 3) cut to (1, 2); (4, 5) does not fit.
  result = reel.write_reel(source, [(6, 8), (1, 3), (4, 5)], tmp_path / "r.mp4", max_seconds=3)
  assert result["spans_s"] == [[1.0, 2.0], [6.0, 8.0]] and result["frames"] == 75
  assert _indices(result["reel"]) == list(range(25, 50)) + list(range(150, 200))


def test_overlapping_spans_merge(source, tmp_path):
  result = reel.write_reel(source, [(2, 4), (3, 5), (1, 2.5)], tmp_path / "r.mp4")
  assert result["spans_s"] == [[1.0, 5.0]]
  assert _indices(result["reel"]) == list(range(25, 125))  # no frame twice


def test_ntsc_source_without_sound(tmp_path):
  path = videos.make_video(tmp_path / "ntsc.mp4", seconds=4, fps=NTSC)
  result = reel.write_reel(path, [(1, 3)], tmp_path / "r.mp4")
  assert not result["audio"] and result["fps"] == pytest.approx(float(NTSC))
  # round(2 * 29.97) = 60 frames; frame k shows 1 s + (k + 1/2) / 29.97: source 30 + k.
  assert result["frames"] == 60 and result["spans_s"] == [[1.0, 3.002]]
  assert _indices(result["reel"]) == list(range(30, 90))
  with av.open(result["reel"]) as container:
    assert not container.streams.audio
    assert container.streams.video[0].average_rate == NTSC


def test_frame_rate_width_and_no_sound(source, tmp_path):
  result = reel.write_reel(source, [(1, 3)], tmp_path / "r.mp4", fps=10, width=50, audio=False)
  assert result["size"] == [50, 34] and result["frames"] == 20 and not result["audio"]
  # Frame k shows the source (25 fps) at 1 + (k + 1/2) / 10 s.
  assert _indices(result["reel"]) == [math.floor(25 + 2.5 * k + 1.25) for k in range(20)]
  with av.open(result["reel"]) as container:
    assert not container.streams.audio
    assert container.streams.video[0].codec_context.width == 50


def test_seeking_gives_the_same_reel(source, tmp_path, monkeypatch):
  spans = [(8, 9), (0.6, 1), (5, 6)]
  expected = list(range(15, 25)) + list(range(125, 150)) + list(range(200, 225))
  monkeypatch.setattr(reel, "SEEK_GAP_SECONDS", 0.5)  # seek before 5 s and 8 s
  result = reel.write_reel(source, spans, tmp_path / "r.mp4")
  assert _indices(result["reel"]) == expected
  wanted = [videos.tone_hz(t) for t in (0.7, 5.2, 8.2)]
  assert _tones(result["reel"], [0.02, 0.6, 1.6]) == pytest.approx(wanted, abs=10)


class _CountingContainer:
  """A PyAV input container that records its seeks (the first `overshoot` too far)."""

  def __init__(self, container, overshoot=0):
    self.container, self.seeks, self.overshoot = container, [], overshoot

  def decode(self, *args):
    return self.container.decode(*args)

  def seek(self, offset, **kwargs):
    self.seeks.append(offset)
    if len(self.seeks) == 1:
      offset += self.overshoot
    return self.container.seek(offset, **kwargs)


@pytest.mark.parametrize(
    "overshoot_s, num_seeks",
    [
        (0, 2),  # the jumps from 1.9 s to 7.3 s and from 7.5 s to 9.9 s
        (3, 2),  # the first lands after 7.3 s: back to the start, no more seeking
    ],
)
def test_frame_cursor_seeks_over_long_gaps(source, monkeypatch, overshoot_s, num_seeks):
  monkeypatch.setattr(reel, "SEEK_GAP_SECONDS", 2.0)
  with av.open(source) as container:
    stream = container.streams.video[0]
    counting = _CountingContainer(container, int(overshoot_s / stream.time_base))
    cursor = reel._FrameCursor(counting, stream)  # pylint: disable=protected-access
    picked = [
        (t, videos.frame_index(f.to_ndarray(format="rgb24")))
        for t, f in (cursor.at(w) for w in (0.5, 1.9, 7.3, 7.5, 9.9))
    ]
  assert len(counting.seeks) == num_seeks
  assert [i for _, i in picked] == [12, 47, 182, 187, 247]
  assert [t for t, _ in picked] == pytest.approx([0.48, 1.88, 7.28, 7.48, 9.88])


@pytest.mark.parametrize(
    "spans, max_seconds, expected",
    [
        ([(6, 8), (1, 3)], 3, [(6, 8), (1, 2)]),
        ([(0, 2)], 5, [(0, 2)]),  # under the limit
        ([(1, 5), (2, 8), (0, 10)], 8, [(1, 5), (2, 8), (0, 1)]),  # only new time counts
        ([(1, 3), (1, 3), (5, 6)], 2.5, [(1, 3), (1, 3), (5, 5.5)]),
        ([(4, 6), (0, 10)], 5, [(4, 6), (0, 3)]),
    ],
)
def test_take_best(spans, max_seconds, expected):
  assert reel.take_best(spans, max_seconds) == expected


@pytest.mark.parametrize(
    "spans, expected",
    [
        ([(6, 8), (1, 3), (2.5, 4)], [(1, 4), (6, 8)]),
        ([(1, 2), (2, 3)], [(1, 3)]),
        ([(0, 9), (1, 2)], [(0, 9)]),
    ],
)
def test_merge_spans(spans, expected):
  assert reel.merge_spans(spans) == expected


def test_reel_spans_from_predicted_moments():
  moments = [
      {"start_s": 0.0, "end_s": 2.0, "score": 0.2, "start_segment": 0},
      {"start_s": 6.0, "end_s": 10.0, "score": 0.9},
      {"start_s": 3.0, "end_s": 5.0, "score": 0.5},
  ]
  assert reel.reel_spans(moments, max_seconds=7) == [(6.0, 10.0), (3.0, 5.0), (0.0, 1.0)]
  assert reel.reel_spans(moments, max_seconds=100) == [(6.0, 10.0), (3.0, 5.0), (0.0, 2.0)]
  assert reel.reel_spans([], max_seconds=5) == []
  with pytest.raises(ValueError, match=r"moment 1 has no \['score'\]"):
    reel.reel_spans([moments[0], {"start_s": 1, "end_s": 2}], max_seconds=5)
  with pytest.raises(ValueError, match="max_seconds=0 must be"):
    reel.reel_spans(moments, max_seconds=0)


@pytest.fixture(scope="module")
def sound_only(tmp_path_factory):
  return videos.make_audio_only(tmp_path_factory.mktemp("m4a") / "sound.m4a")


@pytest.mark.parametrize(
    "spans, kwargs, error, words",
    [
        ([], {}, ValueError, r"ten.mp4: no spans to cut"),
        ([(1, 2), (3, 3)], {}, ValueError, r"ten.mp4: span 1 \(3.0, 3.0\) ends at or before"),
        ([(4, 2)], {}, ValueError, r"span 0 \(4.0, 2.0\) ends at or before its start"),
        ([(math.nan, 2)], {}, ValueError, r"ten.mp4: span 0 \(nan, 2.0\) is not finite"),
        ([(1, math.inf)], {}, ValueError, r"span 0 \(1.0, inf\) is not finite"),
        ([(9, 11)], {}, ValueError, r"span 0 \(9.0, 11.0\) is outside the video \(0 to 10.000 s\)"),
        ([(-1, 2)], {}, ValueError, r"span 0 \(-1.0, 2.0\) is outside the video"),
        ([(10, 12)], {}, ValueError, r"span 0 \(10.0, 12.0\) is outside the video"),
        ([(1, 2, 3)], {}, ValueError, r"span 0 \(1, 2, 3\) is not a \(start, end\) pair"),
        ([(1, 2)], {"max_seconds": -1.0}, ValueError, "max_seconds=-1.0 must be"),
        ([(1, 2)], {"fps": math.nan}, ValueError, "fps=nan must be"),
        ([(1, 2)], {"width": 1}, ValueError, "width=1 must be >= 2"),
        ([(1, 1.01)], {}, ValueError, r"all shorter than half a frame at 25.000 fps"),
    ],
)
def test_bad_spans_leave_nothing(source, tmp_path, spans, kwargs, error, words):
  out = tmp_path / "out" / "reel.mp4"
  with pytest.raises(error, match=words):
    reel.write_reel(source, spans, out, **kwargs)
  assert not out.parent.exists()


def test_bad_files_leave_nothing(source, sound_only, tmp_path):
  out = tmp_path / "out" / "reel.mp4"
  with pytest.raises(FileNotFoundError, match="nope.mp4: no such video file"):
    reel.write_reel(tmp_path / "nope.mp4", [(0, 1)], out)
  with pytest.raises(ValueError, match=r"sound.m4a has no video stream \(streams: \['audio'\]\)"):
    reel.write_reel(sound_only, [(0, 0.1)], out)
  with pytest.raises(ValueError, match=r"reel .*reel.mov must end in .mp4"):
    reel.write_reel(source, [(0, 1)], tmp_path / "out" / "reel.mov")
  with pytest.raises(ValueError, match="would overwrite its source video"):
    reel.write_reel(source, [(0, 1)], source)
  assert not out.parent.exists()


def test_a_failure_midway_leaves_the_old_reel(source, tmp_path, monkeypatch):
  out = tmp_path / "reel.mp4"
  out.write_bytes(b"the previous reel")
  real_at, calls = reel._FrameCursor.at, []  # pylint: disable=protected-access

  def failing_at(self, when):
    calls.append(when)
    if len(calls) == 30:
      assert list(tmp_path.glob("reel.*.partial.mp4"))  # being written
      raise RuntimeError("disk on fire")
    return real_at(self, when)

  monkeypatch.setattr(reel._FrameCursor, "at", failing_at)  # pylint: disable=protected-access
  with pytest.raises(RuntimeError, match="disk on fire"):
    reel.write_reel(source, [(1, 3)], out)
  assert len(calls) == 30
  assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.mp4"]
  assert out.read_bytes() == b"the previous reel"


def test_reel_of_a_real_video(shared_data, tmp_path):
  video = shared_data / "sample_videos" / "bigbuckbunny.mp4"  # 1280x720, 25 fps, 5.3 s
  result = reel.write_reel(video, [(3, 4.5), (1, 2)], tmp_path / "bbb.mp4", width=320)
  # round(1.5 * 25) = 38 frames (banker's rounding of 37.5) after 25.
  assert result["frames"] == 63 and result["size"] == [320, 180] and result["audio"]
  assert result["spans_s"] == [[1.0, 2.0], [3.0, 4.52]]
  with av.open(result["reel"]) as container:
    decoded = list(container.decode(video=0))
    frames = [f.to_ndarray(format="rgb24").astype(float) for f in decoded]
    times = [f.time for f in decoded]
    (audio,) = container.streams.audio
    assert float(audio.duration * audio.time_base) == pytest.approx(2.52, abs=0.1)
  assert len(frames) == 63
  np.testing.assert_allclose(times, np.arange(63) / 25, atol=1e-6)
  with av.open(str(video)) as container:
    source = [
        f.to_ndarray(width=320, height=180, format="rgb24").astype(float)
        for f in container.decode(video=0)
    ]
  # Reel frames 0, 25, 62 look most like source frames 25 (1 s), 75 (3 s), 112.
  for k, expected in [(0, 25), (25, 75), (62, 112)]:
    differences = [np.abs(frames[k] - picture).mean() for picture in source]
    assert abs(int(np.argmin(differences)) - expected) <= 1, (k, differences)
    assert min(differences) < 6
