r"""v-iashin/video_features' I3D input, one 64-frame stack per clip of a benchmark's grid.

  config = clip_stacks.StackConfig(grid="youtube_highlights")
  for stack in clip_stacks.iter_clip_stacks(config, "v.mp4", info):   # [64, 224, 224, 3] uint8
    ...

The benchmarks' staged I3D features (YouTube Highlights, TVSum: UMT's release)
were extracted with v-iashin/video_features (its 2021 code), whose I3D input
this module reproduces:
- every frame at the video's native rate, in decoding order (OpenCV's
  `VideoCapture.read`, BGR -> RGB). PyAV's `to_ndarray(format="rgb24")` gave
  bit-identical frames to OpenCV 4.14's on the sample videos and on a
  BT.709-tagged one (measured once);
- the shorter side resized to 256 with PIL's bilinear filter (which
  antialiases when it shrinks), the longer side int(256 * long / short)
  (truncated), no resize at all when the shorter side is already 256
  (`resized_size`); then the centre 224 x 224, from ((H - 224) // 2,
  (W - 224) // 2) (`preprocess_frame`); the network then scales to
  2 x / 255 - 1;
- stacks of 64 frames at a step of 64: a stack runs once 65 frames are
  buffered, so stack k is frames [64k, 64k + 64) and exists only if frame
  64k + 64 does; floor((N - 1) / 64) stacks, an incomplete last stack dropped
  (`num_stacks`).

The benchmarks hold one feature per annotated clip, not per stack, and how
their rows were aligned to the clips is not published. Grids (`GRIDS`, the
clips of a video of N frames at fps):
- "youtube_highlights": 100-frame windows at a stride of 50, [50k,
  min(50k + 100, N)), for k < ceil((N - 100) / 50) + 1 (one window if
  N <= 100): the rule of the annotation file's "clip" lists (it gives the
  count of 416 of its 422 videos, and 83% of their windows exactly; the rest
  were shifted by hand);
- "tvsum": shots of s seconds (TVSum: 2), the frames starting in [s k, s (k + 1)),
  floor(N / fps / s) of them: a last, partial shot is dropped (the count of
  all 50 TVSum videos);
- "stacks": video_features' own output, the 64-frame stacks above.
A clip's feature is that of ONE 64-frame stack centred on the clip: frames
[c - 32, c + 32), c = (start + end) // 2, shifted to lie inside the video
(`stack_start`; frames past the end of a video shorter than 64 frames
repeat its last frame). Why this choice: the staged rows of a blank stretch
are bit-identical across two videos, so each row is a function of its own
clip's frames; a single stack keeps the statistics of video_features' rows
(each the pooling of exactly 64 frames; an average of several stacks would
shrink their spread); and it is defined for clips shorter than a stack (a
2-s TVSum shot at 30 fps is 60 frames, too short for video_features run on
the shot alone). The "stacks" grid's clips are their own stacks.

Frames are decoded once, in order, and only those a pending clip can still
need are kept (about 120 frames), so memory does not grow with the video.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
import os
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from hl_jax.video import decoding

STACK_FRAMES = 64
RESIZE_SHORTER = 256
CROP = 224
# YouTube Highlights' annotated clips: windows of 100 frames, one every 50.
YTH_WINDOW = 100
YTH_STRIDE = 50


def resized_size(width: int, height: int, shorter: int = RESIZE_SHORTER) -> tuple[int, int]:
  """(width, height) after video_features' ResizeImproved(shorter).

  The shorter side becomes `shorter`, the longer int(shorter * long / short)
  (Python's float arithmetic, truncated); a frame whose shorter side already
  is `shorter` keeps its size.
  """
  if (width <= height and width == shorter) or (height <= width and height == shorter):
    return width, height
  if width < height:
    return shorter, int(shorter * height / width)
  return int(shorter * width / height), shorter


def preprocess_frame(
    rgb: np.ndarray, shorter: int = RESIZE_SHORTER, crop: int = CROP
) -> np.ndarray:
  """[H, W, 3] uint8 RGB -> [crop, crop, 3] uint8: PIL bilinear resize, centre crop.

  Raises:
    ValueError: the resized frame is smaller than the crop (crop > shorter).
  """
  height, width = rgb.shape[:2]
  size = resized_size(width, height, shorter)
  if size != (width, height):
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
  height, width = rgb.shape[:2]
  if min(height, width) < crop:
    raise ValueError(f"a {width}x{height} frame is smaller than the {crop}x{crop} crop")
  top, left = (height - crop) // 2, (width - crop) // 2
  return np.ascontiguousarray(rgb[top : top + crop, left : left + crop])


def num_stacks(num_frames: int, stack: int = STACK_FRAMES) -> int:
  """video_features' stacks of a video of N frames (step = stack): floor((N - 1) / stack)."""
  return max(0, (num_frames - 1) // stack)


def stack_start(start: int, end: int, num_frames: int, stack: int = STACK_FRAMES) -> int:
  """First frame of the `stack` frames centred on clip [start, end), inside [0, N)."""
  centred = (start + end) // 2 - stack // 2
  return max(0, min(centred, num_frames - stack))


# ----------------------------------------------------------------------------
# Grids: a clip k has open-ended bounds [start, end) (frames), the last clip's end is
# cut at the video's N frames, and a video of N frames has count(N) clips.


@dataclasses.dataclass(frozen=True)
class Grid:
  """Where a benchmark's clips lie in a video (frame indices).

  Attributes:
    name: its name in GRIDS.
    description: how its clips are laid, for signatures.
    bounds: (k, fps, shot seconds) -> clip k's [start, end) before the cut at N.
    count: (N, fps, shot seconds) -> the number of clips; never decreases with N.
    seconds: (fps, shot seconds) -> (clip length, stride) in seconds.
  """

  name: str
  description: str
  bounds: Callable[[int, fractions.Fraction, fractions.Fraction], tuple[int, int]]
  count: Callable[[int, fractions.Fraction, fractions.Fraction], int]
  seconds: Callable[[fractions.Fraction, fractions.Fraction], tuple[float, float]]


def _yth_count(num_frames: int, *_: Any) -> int:
  if num_frames <= 0:
    return 0
  return max(0, -(-(num_frames - YTH_WINDOW) // YTH_STRIDE)) + 1


def _shot_bounds(k: int, fps: fractions.Fraction, shot: fractions.Fraction) -> tuple[int, int]:
  # Frame n starts at n / fps: the frames starting in [s k, s (k + 1)).
  return math.ceil(k * shot * fps), math.ceil((k + 1) * shot * fps)


GRIDS: dict[str, Grid] = {
    "youtube_highlights": Grid(
        "youtube_highlights",
        f"YouTube Highlights' {YTH_WINDOW}-frame windows at stride {YTH_STRIDE}",
        lambda k, fps, shot: (YTH_STRIDE * k, YTH_STRIDE * k + YTH_WINDOW),
        _yth_count,
        lambda fps, shot: (float(YTH_WINDOW / fps), float(YTH_STRIDE / fps)),
    ),
    "tvsum": Grid(
        "tvsum",
        "TVSum's shots of {shot:g} s (a last, partial shot dropped)",
        _shot_bounds,
        lambda n, fps, shot: math.floor(n / (fps * shot)),
        lambda fps, shot: (float(shot), float(shot)),
    ),
    "stacks": Grid(
        "stacks",
        f"video_features' {STACK_FRAMES}-frame stacks at step {STACK_FRAMES}",
        lambda k, fps, shot: (STACK_FRAMES * k, STACK_FRAMES * (k + 1)),
        lambda n, fps, shot: num_stacks(n),
        lambda fps, shot: (float(STACK_FRAMES / fps), float(STACK_FRAMES / fps)),
    ),
}
DEFAULT_GRID = "tvsum"


def _fraction(value: float | fractions.Fraction) -> fractions.Fraction:
  return fractions.Fraction(value).limit_denominator(1_000_000)


def clip_ranges(
    grid: str, num_frames: int, fps: float | fractions.Fraction, shot_seconds: float = 2.0
) -> np.ndarray:
  """[K, 2] int64 frame ranges [start, end) of a video's clips on `grid`."""
  g, fps, shot = GRIDS[grid], _fraction(fps), _fraction(shot_seconds)
  ranges = [g.bounds(k, fps, shot) for k in range(g.count(num_frames, fps, shot))]
  return np.asarray([(start, min(end, num_frames)) for start, end in ranges], np.int64).reshape(
      -1, 2
  )


@dataclasses.dataclass(frozen=True)
class StackConfig:
  """How video_features-style stacks are cut for one feature per clip.

  Attributes:
    grid: a name in GRIDS.
    shot_seconds: the "tvsum" grid's shot length (TVSum: 2).
    frames_per_segment: frames of the stack fed per clip (video_features: 64).
    frame_size: the centre crop (224).
    resize_shorter: the shorter side before the crop (256).
  """

  grid: str = DEFAULT_GRID
  shot_seconds: float = 2.0
  frames_per_segment: int = STACK_FRAMES
  frame_size: int = CROP
  resize_shorter: int = RESIZE_SHORTER

  def __post_init__(self):
    if self.grid not in GRIDS:
      raise ValueError(f"unknown clip grid {self.grid!r}; one of {', '.join(GRIDS)}")
    if not (math.isfinite(self.shot_seconds) and self.shot_seconds > 0):
      raise ValueError(f"shot_seconds={self.shot_seconds} must be a finite number > 0")
    if self.frames_per_segment < 1 or self.resize_shorter < self.frame_size:
      raise ValueError(
          f"need frames_per_segment >= 1 (got {self.frames_per_segment}) and "
          f"resize_shorter >= frame_size (got {self.resize_shorter} < {self.frame_size})"
      )

  def describe(self) -> str:
    """The grid and the clip rule in words (for the extractor's description)."""
    grid = GRIDS[self.grid].description.format(shot=self.shot_seconds)
    return (
        f"one {self.frames_per_segment}-frame stack centred on each clip of {grid}, "
        "inside the video"
    )


def native_rate(stream: Any) -> fractions.Fraction:
  """A stream's frame rate as OpenCV's CAP_PROP_FPS reads it: the average rate, else FFmpeg's
  guess, else 25."""
  rate = stream.average_rate or stream.guessed_rate or 25
  return _fraction(rate)


def iter_clip_stacks(
    config: StackConfig, path: str | os.PathLike[str], info: dict[str, Any] | None = None
) -> Iterator[np.ndarray]:
  """Decodes a video at its native rate and yields each clip's stack, in clip order.

  Args:
    config: the grid and the stack.
    path: a video file PyAV (FFmpeg) can read.
    info: if given, filled once decoding is done: "duration" (N / fps
      seconds), "num_frames" N, "fps", "segment_seconds" and "stride_seconds"
      (the grid's clip length and stride for this video's rate).

  Yields:
    [frames_per_segment, frame_size, frame_size, 3] uint8 per clip.

  Raises:
    ValueError: no video stream or no frames, or a video too short for one clip
      of the grid (names the file and its frame count).
  """
  av = decoding.import_av()
  grid, shot, stack = GRIDS[config.grid], _fraction(config.shot_seconds), config.frames_per_segment
  with av.open(os.fspath(path)) as container:
    stream = decoding.video_stream(container, path)
    stream.thread_type = "AUTO"
    fps = native_rate(stream)
    kept: dict[int, np.ndarray] = {}  # frame index -> preprocessed frame
    clip, decoded = 0, 0
    for frame in container.decode(stream):
      kept[decoded] = preprocess_frame(
          frame.to_ndarray(format="rgb24"), config.resize_shorter, config.frame_size
      )
      decoded += 1
      # A clip is settled once it exists and its end and its stack are decoded: every longer
      # video gives it the same frames.
      while grid.count(decoded, fps, shot) > clip:
        start, end = grid.bounds(clip, fps, shot)
        first = max(0, (start + end) // 2 - stack // 2)
        if end > decoded or first + stack > decoded:
          break
        yield np.stack([kept[i] for i in range(first, first + stack)])
        clip += 1
      # What the next clip can still need: from its start less half a stack, and the last
      # `stack` frames (where a stack is pushed back inside the video's end).
      start = grid.bounds(clip, fps, shot)[0]
      for index in [i for i in kept if i < min(start - stack // 2, decoded - stack)]:
        del kept[index]
  if not decoded:
    raise ValueError(f"{path}: no video frames decoded")
  total = grid.count(decoded, fps, shot)
  if not total:
    raise ValueError(
        f"{path}: {decoded} frames at {float(fps):.3f} fps, too short for one clip of "
        f"{GRIDS[config.grid].description.format(shot=config.shot_seconds)}"
    )
  for k in range(clip, total):
    start, end = grid.bounds(k, fps, shot)
    first = stack_start(start, min(end, decoded), decoded, stack)
    last = decoded - 1  # a video shorter than a stack repeats its last frame
    yield np.stack([kept[min(i, last)] for i in range(first, first + stack)])
  if info is not None:
    segment, stride = grid.seconds(fps, shot)
    info.update(
        duration=float(decoded / fps),
        num_frames=decoded,
        fps=float(fps),
        segment_seconds=segment,
        stride_seconds=stride,
    )
