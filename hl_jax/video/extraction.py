"""Extracting features of whole videos: decoding on host threads, the model in batches.

  results = extraction.extract_many(paths, extractor)       # decodes while the model runs
  result = extraction.extract_one(path, extractor)           # one video, its error raised
  extraction.write_features("f.npz", result, extractor)      # the features file

`extract_many` decodes videos on host threads while the extractor's model runs
on batches that may mix segments of several videos
(benchmarks/extract_throughput.py measures it); the extractors are
hl_jax/video/extractors.py's, the features file format hl_jax/data/features_file.py's.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from typing import Any, Iterator, Sequence

import numpy as np

from hl_jax.data import features_file

# DecodeConfig, iter_segments, video_duration: this module's API too (from hl_jax.video.decoding).
from hl_jax.video import decoding
from hl_jax.video import extractors
from hl_jax.video import segment_embedder


def extract(
    path: str | os.PathLike[str],
    embed_fn: segment_embedder.EmbedFn,
    config: decoding.DecodeConfig,
    batch: int = 16,
) -> tuple[np.ndarray, float]:
  """Segment features of a video.

  Returns:
    ([T, D] float32 features, duration in seconds).
  """
  info: dict[str, float] = {}
  features, pending = [], []
  for frames in decoding.iter_segments(path, config, decoding.video_duration(path), info):
    pending.append(frames)
    if len(pending) == batch:
      features.append(embed_fn(np.stack(pending)))
      pending = []
  if pending:
    features.append(embed_fn(np.stack(pending)))
  return np.concatenate(features), info["duration"]


@dataclasses.dataclass
class VideoResult:
  """One video's outcome in `extract_many`.

  Attributes:
    index: its position in the input list.
    path: the video file.
    features: [T, D] float32 (None if it failed).
    duration: seconds (the video stream's, else its last frame's end).
    error: the exception that stopped it, or None.
    timing: "segment_seconds" and "stride_seconds" of its features (a clip
      grid's depend on the video's frame rate), and what else its decoding
      tells (`Extractor.segments`' info).
  """

  index: int
  path: str
  features: np.ndarray | None
  duration: float
  error: Exception | None = None
  timing: dict[str, Any] = dataclasses.field(default_factory=dict)


_DONE = object()


def extract_many(
    paths: Sequence[str | os.PathLike[str]],
    extractor: extractors.Extractor,
    *,
    decode_threads: int = 2,
    max_queued: int | None = None,
) -> Iterator[VideoResult]:
  """Features of many videos: decoding on host threads, overlapped with the model.

  `decode_threads` threads decode videos (one each at a time; FFmpeg and the
  resize release the GIL) into a bounded queue; this thread batches segments
  of any video (`extractor.batch`) through the jitted model while decoding goes
  on. A video that fails to decode is yielded with its error (the others go
  on). Results come as videos finish (not in input order: use `.index`).
  """
  if decode_threads < 1:
    raise ValueError(f"decode_threads={decode_threads} must be >= 1")
  paths = [os.fspath(p) for p in paths]
  items: queue.Queue = queue.Queue(max_queued or 2 * extractor.batch)
  stop = threading.Event()
  next_video = iter(range(len(paths)))
  claim = threading.Lock()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        items.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def decode_worker() -> None:
    while not stop.is_set():
      with claim:
        index = next(next_video, None)
      if index is None:
        put((None, _DONE, None))
        return
      try:
        info: dict[str, Any] = {}
        for frames in extractor.segments(paths[index], info):
          if not put((index, frames, None)):
            return
        put((index, _DONE, info))
      except Exception as e:  # pylint: disable=broad-except  # reported per video
        put((index, e, None))

  threads = [
      threading.Thread(target=decode_worker, daemon=True, name=f"decode-{k}")
      for k in range(decode_threads)
  ]
  for thread in threads:
    thread.start()
  segments: dict[int, list[np.ndarray]] = {}  # video -> embedded segments so far
  expected: dict[int, dict[str, Any]] = {}  # video -> its decoding's info, once decoded
  failed: set[int] = set()
  pending: list[tuple[int, np.ndarray]] = []
  running = len(threads)

  def flush() -> None:
    features = extractor.embed_fn(np.stack([frames for _, frames in pending]))
    for (index, _), row in zip(pending, features):
      segments.setdefault(index, []).append(row)
    pending.clear()

  def finished() -> Iterator[VideoResult]:
    done = [i for i in expected if not any(j == i for j, _ in pending)]
    for index in done:
      rows, info = segments.pop(index, []), expected.pop(index)
      yield VideoResult(
          index,
          paths[index],
          np.stack(rows).astype(np.float32),
          info.pop("duration"),
          timing=info,
      )

  try:
    while running:
      index, item, info = items.get()
      if item is _DONE:
        if index is None:
          running -= 1
        else:
          expected[index] = info
      elif isinstance(item, Exception):
        failed.add(index)
        segments.pop(index, None)
        pending[:] = [(j, f) for j, f in pending if j != index]
        yield VideoResult(index, paths[index], None, 0.0, item)
      else:
        pending.append((index, item))
        if len(pending) >= extractor.batch:
          flush()
      yield from finished()
    if pending:
      flush()
    yield from finished()
  finally:
    stop.set()
    for thread in threads:
      thread.join(timeout=5)


def extract_one(
    path: str | os.PathLike[str], extractor: extractors.Extractor, decode_threads: int = 1
) -> VideoResult:
  """One video's `VideoResult`; its decode error is raised."""
  (result,) = extract_many([path], extractor, decode_threads=decode_threads)
  if result.error is not None:
    raise result.error
  return result


def extract_video(
    path: str | os.PathLike[str], extractor: extractors.Extractor, decode_threads: int = 1
) -> tuple[np.ndarray, float]:
  """([T, D] features, duration) of one video; its decode error is raised."""
  result = extract_one(path, extractor, decode_threads)
  return result.features, result.duration


def write_features(
    output: str | os.PathLike[str],
    result: VideoResult,
    extractor: extractors.Extractor,
    video: str | os.PathLike[str] | None = None,
) -> None:
  """Writes a video's features file (hl_jax/data/features_file.py), whole or not at all.

  With the extractor's decoding, signature and feature space, and the
  video's own segment and stride seconds.

  Args:
    output: the .npz path.
    result: the video's extraction (`extract_many`, `extract_one`).
    extractor: the extractor that made it.
    video: the video file to record (default `result.path`).
  """
  timing = {
      k: result.timing[k] for k in ("segment_seconds", "stride_seconds") if k in result.timing
  }
  features_file.write(
      output,
      result.features,
      result.duration,
      {**dataclasses.asdict(extractor.config), **timing},
      extractor=extractor.description,
      video=os.fspath(video if video is not None else result.path),
      signature=extractor.signature(),
      feature_space=extractor.feature_space,
  )
