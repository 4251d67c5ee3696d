"""A highlight reel: chosen spans of a video cut out and joined into one mp4.

  record = json.load(open("out/video.json"))["videos"][0]    # hl_jax.predict
  spans = reel.reel_spans(record["moments"], max_seconds=30)  # best first
  reel.write_reel("video.mp4", spans, "out/video_reel.mp4")

Spans are [start, end) seconds of the source, in order of priority (best
first). With `max_seconds` they are taken best first until their union lasts
max_seconds, the last one taken cut short (its end moved earlier), the rest
dropped. The spans kept are sorted by start, overlapping or touching ones
merged, and played in time order. Times count from the first frame, as in
`hl_jax.video_features`; spans must lie within the video stream's duration
(else the container's, which may cover a longer audio track; else decoded).

Pictures: a span [a, b) plays for round((b - a) * fps) frames (fps: the
source's rate, or `fps`); frame k shows the source frame on screen at
a + (k + 1/2) / fps (the latest starting at or before it). Frames are
re-timed (pts = running count, time base 1 / fps), so timestamps rise across
cuts. Video is re-encoded as H.264 yuv420p if this FFmpeg has an H.264
encoder, else as MPEG-4 Part 2; even width and height, scaled down to
`width` if given (aspect kept, never scaled up).

Sound (`audio`, if the source has some): the same spans, re-encoded as AAC
(mono, or stereo from two or more channels; the source's sample rate if AAC
has it, else 48 kHz). Each span's sound lasts as long as its pictures, so
they stay in sync after every cut; where the source has no sound, silence.

A span more than SEEK_GAP_SECONDS past the decoding position is reached by
seeking (long videos are not decoded whole). The reel is written to
`<output stem>.<pid>.partial.mp4`, then renamed: on any error nothing is left. Bad
input (missing file, no video stream, no spans, a non-finite, reversed or
out-of-range span) raises FileNotFoundError / ValueError naming the file
and the span.
"""

from __future__ import annotations

import contextlib
import fractions
import math
import os
import pathlib
from typing import Any, Iterator, Sequence

import numpy as np

from hl_jax.core import files
from hl_jax.video import decoding

SEEK_GAP_SECONDS = 10.0


H264_ENCODERS = ("libx264", "h264", "libopenh264")


FALLBACK_ENCODER = "mpeg4"


Span = tuple[float, float]


def video_encoder() -> str:
  """The encoder reels use: the first H.264 one this FFmpeg has, else mpeg4."""
  av = decoding.import_av()
  for name in H264_ENCODERS:
    try:
      return av.Codec(name, "w").name
    except ValueError:  # UnknownCodecError: no such encoder here
      pass
  return FALLBACK_ENCODER


def merge_spans(spans: Sequence[Span]) -> list[Span]:
  """`spans` sorted by start, overlapping or touching ones merged."""
  merged: list[Span] = []
  for start, end in sorted(spans):
    if merged and start <= merged[-1][1]:
      merged[-1] = (merged[-1][0], max(merged[-1][1], end))
    else:
      merged.append((start, end))
  return merged


def take_best(spans: Sequence[Span], max_seconds: float) -> list[Span]:
  """Best-first `spans` until their union lasts `max_seconds` (the last cut short).

  Returns:
    The spans taken, in the given order. If all of them last longer than
    max_seconds, the last one taken ends earlier, so that the union lasts
    max_seconds.
  """
  if not (math.isfinite(max_seconds) and max_seconds > 0):
    raise ValueError(f"max_seconds={max_seconds} must be a finite number > 0")
  taken: list[Span] = []
  budget = max_seconds
  for start, end in spans:
    # Walk the parts of [start, end) not covered yet, spending the budget.
    cursor, new_end = start, end
    for lo, hi in merge_spans(taken) + [(math.inf, math.inf)]:
      if hi <= cursor:
        continue
      gap = max(0.0, min(lo, end) - cursor)
      if gap >= budget:
        new_end = cursor + budget
        budget = 0.0
        break
      budget -= gap
      cursor = max(cursor, hi)
      if cursor >= end:
        break
    taken.append((start, new_end))
    if budget <= 1e-9:
      break
  return taken


def reel_spans(moments: Sequence[dict[str, Any]], max_seconds: float) -> list[Span]:
  """Spans of `hl_jax.predict` moments, best score first, cut to `max_seconds`.

  Args:
    moments: [{"start_s", "end_s", "score", ...}] as in predict's JSON.
    max_seconds: the reel's length limit (see `take_best`).

  Returns:
    [(start_s, end_s)] in order of decreasing score (ties: the given order),
    for `write_reel`.
  """
  for i, moment in enumerate(moments):
    missing = {"start_s", "end_s", "score"} - set(moment)
    if missing:
      raise ValueError(f"moment {i} has no {sorted(missing)} (keys: {sorted(moment)})")
  order = sorted(range(len(moments)), key=lambda i: -float(moments[i]["score"]))
  spans = [(float(moments[i]["start_s"]), float(moments[i]["end_s"])) for i in order]
  return take_best(spans, max_seconds) if spans else []


def _check_spans(video: str, spans: Sequence[Span], duration: float, slack: float) -> list[Span]:
  """The spans as float pairs, cut at `duration`; ValueError names a bad one."""
  if len(spans) == 0:
    raise ValueError(f"{video}: no spans to cut a reel from")
  checked = []
  for i, span in enumerate(spans):
    try:
      start, end = (float(t) for t in span)
    except (TypeError, ValueError) as e:
      raise ValueError(
          f"{video}: span {i} {span!r} is not a (start, end) pair " "of seconds"
      ) from e
    where = f"{video}: span {i} ({start}, {end})"
    if not (math.isfinite(start) and math.isfinite(end)):
      raise ValueError(f"{where} is not finite")
    if end <= start:
      raise ValueError(f"{where} ends at or before its start")
    if start < 0 or start >= duration or end > duration + slack:
      raise ValueError(f"{where} is outside the video (0 to {duration:.3f} s)")
    checked.append((start, min(end, duration)))
  return checked


def _frame_rate(stream: Any) -> fractions.Fraction:
  """decoding.frame_rate as an exact fraction (30000/1001, not 29.97...)."""
  return fractions.Fraction(decoding.frame_rate(stream)).limit_denominator(1001)


def _duration(container: Any, stream: Any, path: str) -> float:
  """Seconds of video: the video stream's (decoding.video_duration), else decoded."""
  duration = decoding.video_duration(path)
  if duration is not None:
    return duration
  last = _FrameCursor(container, stream, seek=False).at(math.inf)
  if last is None:
    raise ValueError(f"{path}: no video frames decoded")
  return last[0] + 1 / float(_frame_rate(stream))


class _FrameCursor:
  """The source frame on screen at non-decreasing times (seconds from frame 0)."""

  def __init__(self, container: Any, stream: Any, seek: bool = True):
    self._container, self._stream = container, stream
    self._rate = float(_frame_rate(stream))
    self._origin = None
    self._restart()
    self._seek = seek and self._next is not None and self._timed and stream.time_base is not None

  def _restart(self) -> None:
    self._frames = self._decode()
    self._prev, self._next = None, next(self._frames, None)

  def _decode(self) -> Iterator[tuple[float, Any]]:
    for n, frame in enumerate(self._container.decode(self._stream)):
      self._timed = frame.time is not None
      when = frame.time if self._timed else n / self._rate
      if self._origin is None:
        self._origin = when
      yield when - self._origin, frame

  @property
  def origin(self) -> float:
    """The first frame's time in the source (seconds); times count from it."""
    return self._origin or 0.0

  def _seek_to(self, when: float) -> None:
    base = self._stream.time_base
    target = int((when + self._origin) / base)
    self._container.seek(target, stream=self._stream, backward=True)
    self._restart()
    if self._next is None or self._next[0] > when:  # a bad seek: start over
      self._container.seek(self._stream.start_time or 0, stream=self._stream)
      self._restart()
      self._seek = False

  def at(self, when: float) -> tuple[float, Any] | None:
    """(time, frame) of the latest frame starting at or before `when`.

    The first frame if none starts by then; None if the video has no frames.
    """
    if self._seek and self._next is not None and when - self._next[0] > SEEK_GAP_SECONDS:
      self._seek_to(when)
    while self._next is not None and self._next[0] <= when:
      self._prev, self._next = self._next, next(self._frames, None)
    return self._prev or self._next


class _SoundCursor:
  """Source sound at non-decreasing positions (samples at `rate` from `origin` s)."""

  def __init__(self, container: Any, stream: Any, origin: float, rate: int, layout: str):
    self._container, self._stream = container, stream
    self._origin, self._rate, self._layout = origin, rate, layout
    self._channels = 1 if layout == "mono" else 2
    self._restart()

  def _restart(self) -> None:
    self._frames = self._container.decode(self._stream)
    self._resampler = decoding.import_av().AudioResampler("fltp", self._layout, self._rate)
    self._chunks: list[np.ndarray] = []
    self._end: int | None = None  # the sample position just after the chunks
    self._done = False

  def _pull(self) -> None:
    """Decodes one source frame onto the chunks (silence over gaps)."""
    frame = next(self._frames, None)
    self._done = frame is None
    pos = (
        None
        if frame is None or frame.time is None
        else round((frame.time - self._origin) * self._rate)
    )
    if self._end is None:
      self._end = pos or 0
    elif pos is not None and pos > self._end + self._rate // 100:  # a gap > 10 ms
      self._chunks.append(np.zeros((self._channels, pos - self._end), np.float32))
      self._end = pos
    for chunk in self._resampler.resample(frame):
      self._chunks.append(chunk.to_ndarray())
      self._end += chunk.samples

  def take(self, pos: int, count: int) -> np.ndarray:
    """[C, count] float32 samples from position `pos` (silence where none)."""
    if self._end is not None and pos - self._end > SEEK_GAP_SECONDS * self._rate:
      seconds = pos / self._rate + self._origin
      self._container.seek(int(seconds / self._stream.time_base), stream=self._stream)
      self._restart()
    while not self._done and (self._end is None or self._end < pos + count):
      self._pull()
    out = np.zeros((self._channels, count), np.float32)
    buffer = np.concatenate(self._chunks, axis=1) if self._chunks else out[:, :0]
    start = (self._end or 0) - buffer.shape[1]
    lo, hi = max(pos, start), min(pos + count, start + buffer.shape[1])
    if hi > lo:
      out[:, lo - pos : hi - pos] = buffer[:, lo - start : hi - start]
    self._chunks = [buffer[:, max(0, hi - start) :]]  # later requests start later
    return out


def _output_size(width: int, height: int, limit: int | None) -> tuple[int, int]:
  """Even (width, height), scaled down to width <= `limit` (aspect kept)."""
  scaled = width if limit is None else min(width, limit)
  return max(2, scaled // 2 * 2), max(2, 2 * round(height * scaled / width / 2))


def _add_video_stream(
    container: Any, codec: str, rate: fractions.Fraction, size: tuple[int, int]
) -> Any:
  stream = container.add_stream(codec, rate=rate)
  stream.width, stream.height = size
  stream.pix_fmt = "yuv420p"
  if codec == "libx264":
    stream.options = {"crf": "20", "preset": "veryfast"}
  else:  # about 0.2 bits per pixel
    stream.bit_rate = max(300_000, int(0.2 * size[0] * size[1] * float(rate)))
  return stream


class _SoundTrack:
  """The reel's AAC track: each span's source sound, as long as its pictures."""

  def __init__(self, source: Any, origin: float, out: Any):
    av = decoding.import_av()
    stream = source.streams.audio[0]
    rate = stream.codec_context.sample_rate
    self._rate = rate if rate in (av.Codec("aac", "w").audio_rates or ()) else 48000
    self._layout = "mono" if stream.codec_context.layout.nb_channels == 1 else "stereo"
    self._source = _SoundCursor(source, stream, origin, self._rate, self._layout)
    self._chunker = av.AudioResampler("fltp", self._layout, self._rate, frame_size=1024)
    self._out = out
    self._stream = out.add_stream("aac", rate=self._rate, layout=self._layout)
    self._samples = self._encoded = 0

  def add(self, start: float, until: fractions.Fraction) -> None:
    """Sound from `start` (source seconds) up to reel time `until` (seconds)."""
    # Up to the pictures' end, not by span length: no drift across cuts.
    want = round(until * self._rate) - self._samples
    data = self._source.take(round(start * self._rate), want)
    frame = decoding.import_av().AudioFrame.from_ndarray(data, format="fltp", layout=self._layout)
    frame.sample_rate, frame.pts = self._rate, self._samples
    frame.time_base = fractions.Fraction(1, self._rate)
    self._samples += want
    self._encode(frame)

  def close(self) -> None:
    self._encode(None)
    self._out.mux(self._stream.encode())

  def _encode(self, frame: Any) -> None:
    for chunk in self._chunker.resample(frame):  # AAC takes 1024-sample frames
      chunk.pts, chunk.time_base = self._encoded, fractions.Fraction(1, self._rate)
      self._encoded += chunk.samples
      self._out.mux(self._stream.encode(chunk))


def _encode(
    video: str,
    partial: pathlib.Path,
    plan: Sequence[tuple[float, float, int]],
    rate: fractions.Fraction,
    width: int | None,
    audio: bool,
) -> dict[str, Any]:
  """Writes the reel of `plan` [(start, end, frames)] to `partial`."""
  av = decoding.import_av()
  codec, step = video_encoder(), fractions.Fraction(1) / rate
  with contextlib.ExitStack() as stack:
    source = stack.enter_context(av.open(video))
    stream = source.streams.video[0]
    stream.thread_type = "AUTO"
    pictures = _FrameCursor(source, stream)
    size = _output_size(stream.codec_context.width, stream.codec_context.height, width)
    out = stack.enter_context(av.open(os.fspath(partial), "w", format="mp4"))
    video_out = _add_video_stream(out, codec, rate, size)
    sound = None
    if audio and source.streams.audio and "aac" in av.codecs_available:
      sound = _SoundTrack(stack.enter_context(av.open(video)), pictures.origin, out)
    frames, used = 0, []
    for start, _, count in plan:
      for k in range(count):
        found = pictures.at(start + float((k + fractions.Fraction(1, 2)) * step))
        if found is None:
          raise ValueError(f"{video}: no video frames decoded")
        picture = found[1].reformat(width=size[0], height=size[1], format="yuv420p")
        picture.pts, picture.time_base = frames, step
        out.mux(video_out.encode(picture))
        frames += 1
      if sound is not None:
        sound.add(start, frames * step)
      used.append([round(start, 3), round(start + float(count * step), 3)])
    out.mux(video_out.encode())
    if sound is not None:
      sound.close()
  return {
      "duration_s": float(frames * step),
      "spans_s": used,
      "codec": codec,
      "frames": frames,
      "audio": sound is not None,
      "fps": float(rate),
      "size": list(size),
  }


def write_reel(
    video: str | os.PathLike[str],
    spans: Sequence[Span],
    output: str | os.PathLike[str],
    *,
    max_seconds: float | None = None,
    fps: float | None = None,
    width: int | None = None,
    audio: bool = True,
) -> dict[str, Any]:
  """Cuts `spans` out of `video` and joins them, in time order, into an mp4.

  Args:
    video: the source, any file FFmpeg reads.
    spans: [(start, end)] seconds of the source, best first (see the module
      docstring for how max_seconds picks among them).
    output: the reel, a path ending in .mp4 (folders are created).
    max_seconds: the reel's length limit (None: all spans).
    fps: the reel's frame rate (None: the source's).
    width: scale down to at most this width (None: the source's).
    audio: copy the source's sound (re-encoded as AAC), if it has any.

  Returns:
    {"reel": output path, "duration_s": frames / fps, "spans_s": [[start,
    end]] of the source actually played, in time order, "codec": video
    encoder, "frames": frames written, "audio": whether it has sound,
    "fps": frame rate, "size": [width, height]}.
  """
  av = decoding.import_av()
  video, output = os.fspath(video), pathlib.Path(output)
  if not os.path.isfile(video):
    raise FileNotFoundError(f"{video}: no such video file")
  if output.suffix != ".mp4":
    raise ValueError(f"reel {output} must end in .mp4")
  if output.exists() and os.path.samefile(video, output):
    raise ValueError(f"reel {output} would overwrite its source video")
  for name, value in (("max_seconds", max_seconds), ("fps", fps)):
    if value is not None and not (math.isfinite(value) and value > 0):
      raise ValueError(f"{name}={value} must be a finite number > 0")
  if width is not None and width < 2:
    raise ValueError(f"width={width} must be >= 2 pixels")
  with av.open(video) as source:
    stream = decoding.video_stream(source, video)
    rate = _frame_rate(stream)
    duration = _duration(source, stream, video)
  spans = _check_spans(video, spans, duration, slack=0.5 / float(rate) + 1e-3)
  if max_seconds is not None:
    spans = take_best(spans, max_seconds)
  if fps is not None:
    rate = fractions.Fraction(fps).limit_denominator(1001)
  plan = [(a, b, round((b - a) * rate)) for a, b in merge_spans(spans)]
  plan = [(a, b, n) for a, b, n in plan if n > 0]
  if not plan:
    raise ValueError(
        f"{video}: spans {spans} are all shorter than half a frame " f"at {float(rate):.3f} fps"
    )
  output.parent.mkdir(parents=True, exist_ok=True)
  with files.atomic_output(output) as partial:
    result = _encode(video, partial, plan, rate, width, audio)
  return {"reel": str(output), **result}
