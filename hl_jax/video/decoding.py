r"""Decoding videos into segments of sampled frames (PyAV).

A video is cut into segments [i * s, (i + 1) * s) of s = segment_seconds (a
last piece shorter than s / 2 is dropped, unless it is the only one). From
each, F = frames_per_segment frames are sampled at the centres of equal
sub-intervals: the frame on screen at time lo + (j + 1/2) (hi - lo) / F, i.e.
the latest frame starting at or before it. With `fixed_rate` hi - lo is
always s (every segment at the rate F / s, times past the video's end show its
last frame: what a network trained at a fixed frame rate wants); without it
the last, shorter segment spreads its F frames over what the video has.
Frames are either squashed to S x S, or resized keeping the aspect ratio so
that the shorter side is R (bilinear) and centre-cropped to S x S. Only the
sampled frames are kept, so memory does not grow with the video's length.

The video's length is its video stream's (not the container's, which may
cover a longer audio track); a stream with no timestamps (a raw .h264) is
timed by its guessed frame rate and ends one frame after its last frame.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How a video is cut and sampled.

  Attributes:
    segment_seconds: segment length s.
    frames_per_segment: F frames sampled per segment.
    frame_size: S, frames end as S x S.
    resize_shorter: None: frames are resized (squashed) to S x S. A number R:
      resized keeping the aspect ratio so that the shorter side is R
      (bilinear), then the centre S x S is cropped (needs R >= S).
    fixed_rate: False: the F frames of the last, shorter segment spread over
      what the video has of it. True: every segment is sampled at the same
      rate F / s, and times past the video's end show its last frame.
  """

  segment_seconds: float = 2.0
  frames_per_segment: int = 4
  frame_size: int = 64
  resize_shorter: int | None = None
  fixed_rate: bool = False

  def __post_init__(self):
    if not (math.isfinite(self.segment_seconds) and self.segment_seconds > 0):
      raise ValueError(f"segment_seconds={self.segment_seconds} must be a finite number > 0")
    if self.frames_per_segment < 1 or self.frame_size < 8:
      raise ValueError(
          f"need frames_per_segment >= 1 (got {self.frames_per_segment}) "
          f"and frame_size >= 8 (got {self.frame_size})"
      )
    if self.resize_shorter is not None and self.resize_shorter < self.frame_size:
      raise ValueError(
          f"resize_shorter={self.resize_shorter} must be >= "
          f"frame_size={self.frame_size} (the centre crop)"
      )

  @classmethod
  def at_rate(
      cls, segment_seconds: float, fps: float, frame_size: int, resize_shorter: int | None = None
  ) -> "DecodeConfig":
    """Frames at a fixed rate: round(s * fps) per segment, at (k + 1/2) / fps."""
    if not (math.isfinite(fps) and fps > 0):
      raise ValueError(f"fps={fps} must be a finite number > 0")
    frames = round(segment_seconds * fps)
    if frames < 1 or abs(frames - segment_seconds * fps) > 1e-6:
      raise ValueError(
          f"segment_seconds={segment_seconds} x fps={fps} must be a whole " "number of frames >= 1"
      )
    return cls(segment_seconds, frames, frame_size, resize_shorter, fixed_rate=True)


def import_av():
  try:
    import av  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "decoding videos needs PyAV: pip install av " "(or the project's [video] extra)"
    ) from e
  return av


def num_segments(duration: float, segment_seconds: float) -> int:
  """Segments of a video: whole ones plus a last piece of >= half a segment."""
  whole = math.floor(duration / segment_seconds + 1e-9)
  rest = duration - whole * segment_seconds
  return max(1, whole + (rest >= segment_seconds / 2 - 1e-9))


def sample_times(index: int, duration: float | None, config: DecodeConfig) -> np.ndarray:
  """[F] sampling times (seconds) in segment `index`, cut at `duration`."""
  lo = index * config.segment_seconds
  hi = lo + config.segment_seconds
  if duration is not None and not config.fixed_rate:
    hi = min(hi, duration)
  offsets = (np.arange(config.frames_per_segment) + 0.5) / config.frames_per_segment
  return lo + offsets * (hi - lo)


def video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
  if not container.streams.video:
    raise ValueError(
        f"{path} has no video stream (streams: " f"{[s.type for s in container.streams] or 'none'})"
    )
  return container.streams.video[0]


def video_duration(path: str | os.PathLike[str]) -> float | None:
  """The video stream's duration in seconds, None if the file does not say.

  The stream's own duration when the container records one (mp4); else the
  end of its last packet, found by demuxing the video stream (no decoding;
  Matroska / WebM, whose container duration covers the longest stream, audio
  included); None when its packets carry no timestamps (a raw .h264).
  """
  av = import_av()
  with av.open(os.fspath(path)) as container:
    stream = video_stream(container, path)
    if stream.duration is not None and stream.time_base is not None:
      return float(stream.duration * stream.time_base)
    start = stream.start_time or 0
    end = None
    for packet in container.demux(stream):
      if packet.pts is not None:
        end = max(end or 0, packet.pts + (packet.duration or 0))
    if end is not None and stream.time_base is not None and end > start:
      return float((end - start) * stream.time_base)
  return None


def frame_rate(stream: Any) -> float:
  """A video stream's frame rate: FFmpeg's guess (right for raw streams), else 25."""
  return float(stream.guessed_rate or stream.average_rate or 25)


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
  """(width, height) scaled so that the shorter side is `shorter` (rounded)."""
  if width <= height:
    return shorter, max(shorter, round(height * shorter / width))
  return max(shorter, round(width * shorter / height)), shorter


def frame_array(frame: Any, config: DecodeConfig) -> np.ndarray:
  """A decoded PyAV frame as [S, S, 3] uint8 RGB, resized as `config` says."""
  size = config.frame_size
  if config.resize_shorter is None:
    return frame.to_ndarray(width=size, height=size, format="rgb24")
  width, height = resized_size(frame.width, frame.height, config.resize_shorter)
  image = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BILINEAR")
  top, left = (height - size) // 2, (width - size) // 2
  return np.ascontiguousarray(image[top : top + size, left : left + size])


def decode_segments(
    config: DecodeConfig, path: str | os.PathLike[str], info: dict[str, Any] | None = None
) -> Iterator[np.ndarray]:
  """`iter_segments` of a whole video (its duration from the file), as an extractor decodes.

  `info`, if given, gets "duration" and the features file's "segment_seconds"
  and "stride_seconds" (both the config's segment length).
  """
  if info is not None:
    info.update(segment_seconds=config.segment_seconds, stride_seconds=config.segment_seconds)
  yield from iter_segments(path, config, video_duration(path), info)


def iter_segments(
    path: str | os.PathLike[str],
    config: DecodeConfig,
    duration: float | None = None,
    info: dict[str, float] | None = None,
) -> Iterator[np.ndarray]:
  """Decodes a video and yields each segment's sampled frames as they complete.

  Args:
    path: a video file PyAV (FFmpeg) can read.
    config: segment length, frames per segment, frame size.
    duration: seconds (None: from the container; if it has none, frames
      without timestamps are timed by the stream's frame rate, the video
      ends one frame after the last one starts, and the last segment is
      sampled as if it were whole, its missing frames repeating the last).
    info: if given, info["duration"] is set to the duration used (the one
      above, or the last frame's start + 1 / rate) once decoding is done.

  Yields:
    [F, S, S, 3] uint8 frames per segment, in order.
  """
  av = import_av()
  if duration is None:
    duration = video_duration(path)
  total = num_segments(duration, config.segment_seconds) if duration is not None else None
  with av.open(os.fspath(path)) as container:
    stream = video_stream(container, path)
    stream.thread_type = "AUTO"
    rate = frame_rate(stream)

    def array(frame):
      return frame_array(frame, config)

    index, frames, targets = 0, [], sample_times(0, duration, config)
    prev, prev_array, origin, when = None, None, None, 0.0
    for n, frame in enumerate(container.decode(stream)):
      when = frame.time if frame.time is not None else n / rate
      origin = when if origin is None else origin
      when -= origin
      # Targets before this frame's start show the previous frame (the first
      # frame starts at 0, before every target).
      while targets is not None and targets[len(frames)] < when:
        if prev_array is None:
          prev_array = array(prev)
        frames.append(prev_array)
        if len(frames) == config.frames_per_segment:
          yield np.stack(frames)
          index, frames = index + 1, []
          targets = (
              sample_times(index, duration, config) if total is None or index < total else None
          )
      if targets is None:
        if info is not None:
          info["duration"] = float(duration)
        return
      prev, prev_array = frame, None
    if prev is None:
      raise ValueError(f"{path}: no video frames decoded")
    # The remaining targets show the last frame. Without a known duration the
    # video ends one frame after the last one starts.
    if total is None:
      duration = when + 1 / rate
      total = num_segments(duration, config.segment_seconds)
    if info is not None:
      info["duration"] = float(duration)
    last = array(prev)
    while index < total:
      frames += [last] * (config.frames_per_segment - len(frames))
      yield np.stack(frames)
      index, frames = index + 1, []
