"""The two networks of Less-is-More: the scorer f and the pair-weight network h.

Both are small MLPs (Linen, so the train step is a pure function of parameter
pytrees). Computation runs in `dtype` (e.g. bfloat16); parameters stay in
`param_dtype` (float32) so the optimizer state keeps full precision.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

DROPOUT_MASKS = ("bytes", "flax")


def byte_keep_mask(key: jax.Array, keep: float, shape: tuple[int, ...]) -> jnp.ndarray:
  """A Bernoulli(keep) mask from random bytes: 4 elements per 32 random bits.

  keep must be a multiple of 1/256 (see `ByteDropout`). The bits are drawn with
  the leading axes of `shape` intact, so a batch-sharded mask is drawn where
  it is used and equals the unsharded one (partitionable threefry).
  """
  *lead, width = shape
  words = jax.random.bits(key, (*lead, -(-width // 4)), jnp.uint32)
  bytes_ = jax.lax.bitcast_convert_type(words, jnp.uint8)  # [..., w/4, 4]
  bytes_ = bytes_.reshape(*lead, -1)[..., :width]
  return bytes_ < round(keep * 256)


class ByteDropout(nn.Module):
  """Inverted dropout whose masks cost a quarter of flax.linen.Dropout's.

  `nn.Dropout` draws a 32-bit threefry word per element; this draws one per
  four elements and compares bytes, so the keep probability is rounded to a
  multiple of 1/256 (exact for rates 0.5, 0.25, 0.125, 0.1015625...). The
  kept values are scaled by 1 / (that keep probability), so E[output] = input.
  At the default sizes, masks drawn this way cost 3% of a CPU train step's
  time alone against 15% for threefry words (BENCHMARKS.md).

  Attributes:
    rate: the drop probability.
    deterministic: no dropout if True.
  """

  rate: float
  deterministic: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.rate == 0.0 or self.deterministic:
      return x
    keep = round((1.0 - self.rate) * 256) / 256
    if keep <= 0.0:
      return jnp.zeros_like(x)
    mask = byte_keep_mask(self.make_rng("dropout"), keep, x.shape)
    return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))


class MLP(nn.Module):
  """Dense -> ReLU -> Dropout for each hidden width, then Dense to 1 output.

  Attributes:
    hidden: widths of the hidden layers.
    dropout: dropout rate after each hidden layer.
    dropout_masks: "bytes" (`ByteDropout`, the default) or "flax"
      (`flax.linen.Dropout`, the masks of results made before it).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  hidden: Sequence[int]
  dropout: float = 0.0
  dropout_masks: str = "bytes"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Maps [..., D] inputs to [...] float32 outputs."""
    for width in self.hidden:
      x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      if self.dropout_masks == "flax":
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
      else:
        x = ByteDropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x[..., 0].astype(jnp.float32)


class Scorer(nn.Module):
  """f: the highlight score of one segment, [..., D] -> [...].

  Attributes:
    streams: () scores all D features with one MLP; otherwise half-open
      column ranges ((start, end), ...) of the features, each scored by an MLP
      of its own, the scores summed: late fusion of one scorer per stream
      (e.g. ((0, 2048), (2048, 4096)): I3D rgb+flow and PANN audio), or one
      range alone to score one stream (((2048, 4096),): audio only).
  """

  hidden: Sequence[int]
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  dropout_masks: str = "bytes"
  streams: tuple[tuple[int, int], ...] = ()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if not self.streams:
      return MLP(self.hidden, self.dropout, self.dropout_masks, self.dtype, name="mlp")(
          x, train=train
      )
    if max(end for _, end in self.streams) > x.shape[-1]:
      raise ValueError(f"model.streams {self.streams} reach beyond the {x.shape[-1]} " "features")
    return sum(
        MLP(self.hidden, self.dropout, self.dropout_masks, self.dtype, name=f"mlp_{k}")(
            x[..., start:end], train=train
        )
        for k, (start, end) in enumerate(self.streams)
    )


class PairWeigher(nn.Module):
  """h: the trust logit of a (short, long) pair, ([..., D], [..., D]) -> [...].

  The logit is normalised by a softmax over each group of pairs in the loss.
  """

  hidden: Sequence[int]
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  dropout_masks: str = "bytes"

  @nn.compact
  def __call__(
      self, x_short: jnp.ndarray, x_long: jnp.ndarray, *, train: bool = False
  ) -> jnp.ndarray:
    x = jnp.concatenate([x_short, x_long], axis=-1)
    return MLP(self.hidden, self.dropout, self.dropout_masks, self.dtype, name="mlp")(
        x, train=train
    )


def build(config: ml_collections.ConfigDict) -> tuple[Scorer, PairWeigher]:
  """The (f, h) pair described by `config.model`."""
  model = config.model
  masks = model.get("dropout_masks", "bytes")
  if masks not in DROPOUT_MASKS:
    raise ValueError(f"model.dropout_masks={masks!r} is unknown; one of " f"{DROPOUT_MASKS}")
  if not 0.0 <= model.dropout < 1.0:
    raise ValueError(f"model.dropout={model.dropout} must be in [0, 1)")
  dtype = jnp.dtype(model.dtype)
  streams = tuple(tuple(int(b) for b in pair) for pair in model.get("streams", ()))
  if any(len(pair) != 2 or not 0 <= pair[0] < pair[1] for pair in streams):
    raise ValueError(
        f"model.streams={streams!r} must be (start, end) column ranges " "with 0 <= start < end"
    )
  scorer = Scorer(tuple(model.scorer_hidden), model.dropout, dtype, masks, streams)
  weigher = PairWeigher(tuple(model.weigher_hidden), model.dropout, dtype, masks)
  return scorer, weigher
