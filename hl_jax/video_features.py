r"""Raw video to segment features: PyAV decoding and a pluggable Flax extractor.

  python -m hl_jax.video_features --video=V.mp4 --output=F.npz \
    --segment_seconds=2 [--extractor_weights=W.msgpack] [--feature_dim=128]
  python -m hl_jax.predict --workdir=W --features=F.npz --output=out/V.json

Decoding (`iter_segments`): the video is cut into segments
[i * s, (i + 1) * s) of s = segment_seconds, the last one cut at the video's
end (a last piece shorter than s / 2 is dropped, unless it is the only one).
From each, `frames_per_segment` frames are sampled at the centres of equal
sub-intervals: the frame on screen at time lo + (j + 1/2) (hi - lo) / F, i.e.
the latest frame starting at or before it. Sampled frames are resized (not
cropped) to frame_size x frame_size RGB. Only the sampled frames are kept, so
memory does not grow with the video's length.

Embedding: any function [N, F, S, S, 3] uint8 -> [N, D] float32 (see
`make_embed_fn`, which jits a Flax module's `apply`). The built-in
`SegmentEmbedder` is a tiny conv net (two strided 3x3 convs, spatial mean,
mean and standard deviation over the frames, one Dense). Without weights it is
initialised from a fixed seed: deterministic, so features and predictions are
reproducible, but MEANINGLESS as highlight features. Meaningful highlights
need a pretrained extractor (e.g. I3D or CLIP features, as the benchmarks
use) and a scorer f trained on features of the same kind.

Weights file (--extractor_weights) for `SegmentEmbedder`: the Linen params
pytree ({"Conv_0": {"kernel", "bias"}, "Conv_1": ..., "Dense_0": ...}, with or
without an outer {"params": ...}) either as
- `.msgpack`: `flax.serialization.msgpack_serialize(params)`, or
- `.npz`: one array per leaf, named by its '/'-joined path ("Conv_0/kernel").
`save_params` writes both. The architecture (conv widths, feature_dim) is
read from the weights' shapes. For another Flax module, call
`extract(path, make_embed_fn(module, params), ...)` from Python.

Output .npz: `features` [T, D] float32, `segment_seconds`, `stride_seconds`
(= segment_seconds), `duration_seconds`, `frames_per_segment`, `frame_size`,
`extractor` and `video` (strings), written whole or not at all. Bad input ends
in one line, `hl_jax.video_features: error: ...` (hl_jax/cli.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any, Callable, Iterator, Sequence
import zipfile

from absl import app
from absl import flags
from absl import logging
import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax import cli

FLAGS = flags.FLAGS
EmbedFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How a video is cut and sampled.

  Attributes:
    segment_seconds: segment length s.
    frames_per_segment: F frames sampled per segment.
    frame_size: S, frames are resized to S x S.
  """
  segment_seconds: float = 2.0
  frames_per_segment: int = 4
  frame_size: int = 64

  def __post_init__(self):
    if not (math.isfinite(self.segment_seconds) and self.segment_seconds > 0):
      raise ValueError(f"segment_seconds={self.segment_seconds} must be a finite number > 0")
    if self.frames_per_segment < 1 or self.frame_size < 8:
      raise ValueError(f"need frames_per_segment >= 1 (got {self.frames_per_segment}) "
                       f"and frame_size >= 8 (got {self.frame_size})")


def _import_av():
  try:
    import av  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("decoding videos needs PyAV: pip install av "
                      "(or the project's [video] extra)") from e
  return av


def num_segments(duration: float, segment_seconds: float) -> int:
  """Segments of a video: whole ones plus a last piece of >= half a segment."""
  whole = math.floor(duration / segment_seconds + 1e-9)
  rest = duration - whole * segment_seconds
  return max(1, whole + (rest >= segment_seconds / 2 - 1e-9))


def sample_times(index: int, duration: float | None,
                 config: DecodeConfig) -> np.ndarray:
  """[F] sampling times (seconds) in segment `index`, cut at `duration`."""
  lo = index * config.segment_seconds
  hi = lo + config.segment_seconds
  if duration is not None:
    hi = min(hi, duration)
  offsets = (np.arange(config.frames_per_segment) + 0.5) / config.frames_per_segment
  return lo + offsets * (hi - lo)


def _video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
  if not container.streams.video:
    raise ValueError(f"{path} has no video stream (streams: "
                     f"{[s.type for s in container.streams] or 'none'})")
  return container.streams.video[0]


def video_duration(path: str | os.PathLike[str]) -> float | None:
  """The container's video duration in seconds, None if it does not say."""
  av = _import_av()
  with av.open(os.fspath(path)) as container:
    stream = _video_stream(container, path)
    if stream.duration is not None and stream.time_base is not None:
      return float(stream.duration * stream.time_base)
    if container.duration is not None:
      return container.duration / av.time_base
  return None


def iter_segments(path: str | os.PathLike[str], config: DecodeConfig,
                  duration: float | None = None) -> Iterator[np.ndarray]:
  """Decodes a video and yields each segment's sampled frames as they complete.

  Args:
    path: a video file PyAV (FFmpeg) can read.
    config: segment length, frames per segment, frame size.
    duration: seconds (None: from the container; if it has none, frames
      without timestamps are timed by the stream's frame rate, the video
      ends one frame after the last one starts, and the last segment is
      sampled as if it were whole, its missing frames repeating the last).

  Yields:
    [F, S, S, 3] uint8 frames per segment, in order.
  """
  av = _import_av()
  if duration is None:
    duration = video_duration(path)
  total = num_segments(duration, config.segment_seconds) if duration else None
  with av.open(os.fspath(path)) as container:
    stream = _video_stream(container, path)
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate or 25)

    def array(frame):
      return frame.to_ndarray(width=config.frame_size, height=config.frame_size,
                              format="rgb24")

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
          targets = (sample_times(index, duration, config)
                     if total is None or index < total else None)
      if targets is None:
        return
      prev, prev_array = frame, None
    if prev is None:
      raise ValueError(f"{path}: no video frames decoded")
    # The remaining targets show the last frame. Without a known duration the
    # video ends one frame after the last one starts.
    if total is None:
      total = num_segments(when + 1 / rate, config.segment_seconds)
    last = array(prev)
    while index < total:
      frames += [last] * (config.frames_per_segment - len(frames))
      yield np.stack(frames)
      index, frames = index + 1, []


class SegmentEmbedder(nn.Module):
  """The default extractor: [..., F, S, S, 3] uint8 frames -> [..., D] features.

  Attributes:
    feature_dim: D.
    widths: channels of the two strided 3x3 convolutions.
  """
  feature_dim: int = 128
  widths: Sequence[int] = (16, 32)

  @nn.compact
  def __call__(self, frames: jnp.ndarray) -> jnp.ndarray:
    x = frames.astype(jnp.float32) / 255.0
    x = (x - 0.45) / 0.225
    lead = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:])
    for width in self.widths:
      x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(x))
    x = x.mean(axis=(1, 2)).reshape(lead + (x.shape[-1],))     # [..., F, C]
    # Mean and spread over the frames: appearance and (coarsely) motion.
    x = jnp.concatenate([x.mean(axis=-2), x.std(axis=-2)], axis=-1)
    return nn.Dense(self.feature_dim)(x)


def default_params(module: SegmentEmbedder, config: DecodeConfig,
                   seed: int = 0) -> Any:
  """`module`'s parameters initialised from `seed` (deterministic)."""
  dummy = jnp.zeros((1, config.frames_per_segment, config.frame_size,
                     config.frame_size, 3), jnp.uint8)
  return jax.jit(module.init)(jax.random.PRNGKey(seed), dummy)["params"]


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
  if not isinstance(tree, dict):
    return {prefix: np.asarray(tree)}
  flat = {}
  for key, value in tree.items():
    flat.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key)))
  return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split("/")
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  return tree


def save_params(path: str | os.PathLike[str], params: Any) -> None:
  """Writes a params pytree as .msgpack or .npz (by the file's suffix)."""
  path = pathlib.Path(path)
  params = jax.tree.map(np.asarray, flax.core.unfreeze(params))
  if path.suffix == ".msgpack":
    path.write_bytes(flax.serialization.msgpack_serialize(params))
  elif path.suffix == ".npz":
    np.savez(path, **_flatten(params))
  else:
    raise ValueError(f"{path}: weights must be a .msgpack or .npz file")


def read_params(path: str | os.PathLike[str]) -> dict[str, Any]:
  """Reads a params pytree written by `save_params` (or the same format)."""
  path = pathlib.Path(path)
  if path.suffix not in (".msgpack", ".npz"):
    raise ValueError(f"{path}: weights must be a .msgpack or .npz file")
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such weights file")
  try:
    if path.suffix == ".msgpack":
      tree = flax.serialization.msgpack_restore(path.read_bytes())
    else:
      with np.load(path, allow_pickle=False) as data:
        tree = _unflatten({k: data[k] for k in data.files})
  except (ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: not a readable {path.suffix} weights file ({e}); "
                     "write it with save_params") from e
  if not isinstance(tree, dict):
    raise ValueError(f"{path}: holds a {type(tree).__name__}, not a params tree")
  if set(tree) == {"params"}:
    tree = tree["params"]
  return tree


def embedder_for(params: dict[str, Any]) -> SegmentEmbedder:
  """The SegmentEmbedder whose parameters have the shapes of `params`."""
  convs = sorted(k for k in params if k.startswith("Conv_"))
  if "Dense_0" not in params or not convs:
    raise ValueError(f"not SegmentEmbedder weights: top-level keys {sorted(params)}, "
                     "expected Conv_0, Conv_1, ..., Dense_0")
  return SegmentEmbedder(
      feature_dim=int(params["Dense_0"]["kernel"].shape[-1]),
      widths=tuple(int(params[k]["kernel"].shape[-1]) for k in convs))


def check_params(params: Any, template: Any, source: str) -> None:
  """Raises ValueError naming each leaf whose path or shape differs."""
  got = {k: v.shape for k, v in _flatten(params).items()}
  want = {k: v.shape for k, v in _flatten(jax.tree.map(np.asarray, template)).items()}
  problems = [f"{k}: missing" for k in sorted(set(want) - set(got))]
  problems += [f"{k}: unexpected" for k in sorted(set(got) - set(want))]
  problems += [f"{k}: shape {got[k]}, expected {want[k]}"
               for k in sorted(set(got) & set(want)) if got[k] != want[k]]
  if problems:
    raise ValueError(f"{source} does not fit the extractor: " + "; ".join(problems))


def make_embed_fn(module: nn.Module, params: Any, batch: int = 16) -> EmbedFn:
  """Jits `module.apply`; maps [N, F, S, S, 3] uint8 to [N, D] float32.

  Inputs are padded to a multiple of `batch` segments (one compiled shape).
  """
  apply = jax.jit(lambda p, x: module.apply({"params": p}, x))

  def embed(frames: np.ndarray) -> np.ndarray:
    num = len(frames)
    padded = np.zeros((-(-num // batch) * batch,) + frames.shape[1:], frames.dtype)
    padded[:num] = frames
    outs = [np.asarray(apply(params, padded[i:i + batch]), np.float32)
            for i in range(0, len(padded), batch)]
    return np.concatenate(outs)[:num]

  return embed


def default_embed_fn(config: DecodeConfig, *, weights: str | None = None,
                     feature_dim: int | None = None,
                     seed: int = 0) -> tuple[EmbedFn, str]:
  """The built-in extractor, from a weights file or the fixed seed.

  Returns:
    (embed function, a description for the output file).
  """
  if weights:
    params = read_params(weights)
    module = embedder_for(params)
    if feature_dim is not None and feature_dim != module.feature_dim:
      raise ValueError(f"{weights} gives {module.feature_dim}-d features, not "
                       f"--feature_dim={feature_dim}")
    check_params(params, default_params(module, config), weights)
    return make_embed_fn(module, params), f"SegmentEmbedder weights {weights}"
  if feature_dim is not None and feature_dim < 1:
    raise ValueError(f"feature_dim={feature_dim} must be >= 1")
  module = SegmentEmbedder(feature_dim=128 if feature_dim is None else feature_dim)
  return (make_embed_fn(module, default_params(module, config, seed)),
          f"SegmentEmbedder seed {seed} (untrained: not meaningful features)")


def extract(path: str | os.PathLike[str], embed_fn: EmbedFn, config: DecodeConfig,
            batch: int = 16) -> tuple[np.ndarray, float]:
  """Segment features of a video.

  Returns:
    ([T, D] float32 features, duration in seconds).
  """
  duration = video_duration(path)
  features, pending, count = [], [], 0
  for frames in iter_segments(path, config, duration):
    pending.append(frames)
    count += 1
    if len(pending) == batch:
      features.append(embed_fn(np.stack(pending)))
      pending = []
  if pending:
    features.append(embed_fn(np.stack(pending)))
  if duration is None:
    duration = count * config.segment_seconds
  return np.concatenate(features), float(duration)


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
             extractor=np.str_(extractor), video=np.str_(os.path.abspath(video)))
  os.replace(partial, output)


def _define_flags() -> None:
  # Defined only when run as a program (no clashes when imported).
  flags.DEFINE_string("video", None, "Video file (anything FFmpeg reads).")
  flags.DEFINE_string("output", None, "Output .npz.")
  flags.DEFINE_float("segment_seconds", 2.0, "Segment length.")
  flags.DEFINE_integer("frames_per_segment", 4, "Frames sampled per segment.")
  flags.DEFINE_integer("frame_size", 64, "Frames are resized to this square size.")
  flags.DEFINE_string("extractor_weights", None,
                      "SegmentEmbedder weights (.msgpack / .npz); default: fixed seed.")
  flags.DEFINE_integer("feature_dim", None, "Feature size D (default 128, or the weights').")
  flags.DEFINE_integer("seed", 0, "Seed of the untrained default extractor.")
  flags.mark_flags_as_required(["video", "output"])
  cli.check("output", "a path ending in .npz", lambda path: path.endswith(".npz"))
  cli.check("segment_seconds", "a finite number of seconds > 0", cli.positive)
  cli.check("frames_per_segment", "an integer >= 1", lambda n: n >= 1)
  cli.check("frame_size", "an integer >= 8 (pixels)", lambda n: n >= 8)
  cli.check("feature_dim", "an integer >= 1", lambda n: n >= 1)
  cli.check("seed", "an integer in [0, 2**32)", lambda n: 0 <= n < 2**32)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; flags take the form --name=value")
  config = DecodeConfig(FLAGS.segment_seconds, FLAGS.frames_per_segment, FLAGS.frame_size)
  embed_fn, name = default_embed_fn(config, weights=FLAGS.extractor_weights,
                                    feature_dim=FLAGS.feature_dim, seed=FLAGS.seed)
  features, duration = extract(FLAGS.video, embed_fn, config)
  write_features(FLAGS.output, features, duration, config, extractor=name,
                 video=FLAGS.video)
  logging.info("%s: %.2f s, %d segments of %d-d features (%s) -> %s", FLAGS.video,
               duration, len(features), features.shape[1], name, FLAGS.output)
  print(f"{FLAGS.output}: features {features.shape}, {duration:.2f} s")


if __name__ == "__main__":
  _define_flags()
  # PyAV's errors subclass ValueError / OSError; ImportError: PyAV missing.
  cli.run(main, "hl_jax.video_features", (ImportError,))
