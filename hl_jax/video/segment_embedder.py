r"""The untrained extractor: a tiny conv net for tests and plumbing (meaningless features).

`SegmentEmbedder` maps [..., F, S, S, 3] uint8 frames to [..., D]: two strided
3x3 convs, spatial mean, mean and standard deviation over the frames, one
Dense. Without weights it is initialised from a fixed seed: deterministic, so
features and predictions are reproducible, but MEANINGLESS as highlight
features (`hl_jax.video_features` never picks it unless it is named).

Weights file (--extractor_weights): the Linen params pytree ({"Conv_0":
{"kernel", "bias"}, "Conv_1": ..., "Dense_0": ...}, with or without an outer
{"params": ...}) either as `.msgpack` (`flax.serialization.msgpack_serialize`)
or `.npz` (one array per leaf, named by its '/'-joined path, "Conv_0/kernel").
`save_params` writes both. The architecture (conv widths, feature_dim) is read
from the weights' shapes.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Callable, Sequence
import zipfile

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.core import trees
from hl_jax.video import decoding

EmbedFn = Callable[[np.ndarray], np.ndarray]


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
    x = x.mean(axis=(1, 2)).reshape(lead + (x.shape[-1],))  # [..., F, C]
    # Mean and spread over the frames: appearance and (coarsely) motion.
    x = jnp.concatenate([x.mean(axis=-2), x.std(axis=-2)], axis=-1)
    return nn.Dense(self.feature_dim)(x)


def default_params(module: SegmentEmbedder, config: decoding.DecodeConfig, seed: int = 0) -> Any:
  """`module`'s parameters initialised from `seed` (deterministic)."""
  dummy = jnp.zeros(
      (1, config.frames_per_segment, config.frame_size, config.frame_size, 3), jnp.uint8
  )
  return jax.jit(module.init)(jax.random.PRNGKey(seed), dummy)["params"]


def save_params(path: str | os.PathLike[str], params: Any) -> None:
  """Writes a params pytree as .msgpack or .npz (by the file's suffix)."""
  path = pathlib.Path(path)
  params = jax.tree.map(np.asarray, flax.core.unfreeze(params))
  if path.suffix == ".msgpack":
    path.write_bytes(flax.serialization.msgpack_serialize(params))
  elif path.suffix == ".npz":
    np.savez(path, **trees.flatten(params, "/"))
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
        tree = trees.unflatten({k: data[k] for k in data.files}, "/")
  except (ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(
        f"{path}: not a readable {path.suffix} weights file ({e}); " "write it with save_params"
    ) from e
  if not isinstance(tree, dict):
    raise ValueError(f"{path}: holds a {type(tree).__name__}, not a params tree")
  if set(tree) == {"params"}:
    tree = tree["params"]
  return tree


def embedder_for(params: dict[str, Any]) -> SegmentEmbedder:
  """The SegmentEmbedder whose parameters have the shapes of `params`."""
  convs = sorted(k for k in params if k.startswith("Conv_"))
  if "Dense_0" not in params or not convs:
    raise ValueError(
        f"not SegmentEmbedder weights: top-level keys {sorted(params)}, "
        "expected Conv_0, Conv_1, ..., Dense_0"
    )
  return SegmentEmbedder(
      feature_dim=int(params["Dense_0"]["kernel"].shape[-1]),
      widths=tuple(int(params[k]["kernel"].shape[-1]) for k in convs),
  )


def check_params(params: Any, template: Any, source: str) -> None:
  """Raises ValueError naming each leaf whose path or shape differs."""
  trees.check_shapes(params, trees.flat_shapes(template), source, "the extractor")


def make_embed_fn(module: nn.Module, params: Any, batch: int = 16) -> EmbedFn:
  """Jits `module.apply`; maps [N, F, S, S, 3] uint8 to [N, D] float32.

  Inputs are padded to a multiple of `batch` segments (one compiled shape).
  """
  apply = jax.jit(lambda p, x: module.apply({"params": p}, x))

  def embed(frames: np.ndarray) -> np.ndarray:
    num = len(frames)
    padded = np.zeros((-(-num // batch) * batch,) + frames.shape[1:], frames.dtype)
    padded[:num] = frames
    outs = [
        np.asarray(apply(params, padded[i : i + batch]), np.float32)
        for i in range(0, len(padded), batch)
    ]
    return np.concatenate(outs)[:num]

  return embed


def default_embed_fn(
    config: decoding.DecodeConfig,
    *,
    weights: str | None = None,
    feature_dim: int | None = None,
    seed: int = 0,
) -> tuple[EmbedFn, str]:
  """The built-in extractor, from a weights file or the fixed seed.

  Returns:
    (embed function, a description for the output file).
  """
  if weights:
    params = read_params(weights)
    module = embedder_for(params)
    if feature_dim is not None and feature_dim != module.feature_dim:
      raise ValueError(
          f"{weights} gives {module.feature_dim}-d features, not " f"--feature_dim={feature_dim}"
      )
    check_params(params, default_params(module, config), weights)
    return make_embed_fn(module, params), f"SegmentEmbedder weights {weights}"
  if feature_dim is not None and feature_dim < 1:
    raise ValueError(f"feature_dim={feature_dim} must be >= 1")
  module = SegmentEmbedder(feature_dim=128 if feature_dim is None else feature_dim)
  return (
      make_embed_fn(module, default_params(module, config, seed)),
      f"SegmentEmbedder seed {seed} (untrained: not meaningful features)",
  )
