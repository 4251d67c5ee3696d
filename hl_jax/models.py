"""The two networks of Less-is-More: the scorer f and the pair-weight network h.

Both are small MLPs (Linen, so the train step is a pure function of parameter
pytrees). Computation runs in `dtype` (e.g. bfloat16); parameters stay in
`param_dtype` (float32) so the optimizer state keeps full precision.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections


class MLP(nn.Module):
  """Dense -> ReLU -> Dropout for each hidden width, then Dense to 1 output.

  Attributes:
    hidden: widths of the hidden layers.
    dropout: dropout rate after each hidden layer.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  hidden: Sequence[int]
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Maps [..., D] inputs to [...] float32 outputs."""
    for width in self.hidden:
      x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return x[..., 0].astype(jnp.float32)


class Scorer(nn.Module):
  """f: the highlight score of one segment, [..., D] -> [...]."""
  hidden: Sequence[int]
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    return MLP(self.hidden, self.dropout, self.dtype, name="mlp")(x, train=train)


class PairWeigher(nn.Module):
  """h: the trust logit of a (short, long) pair, ([..., D], [..., D]) -> [...].

  The logit is normalised by a softmax over each group of pairs in the loss.
  """
  hidden: Sequence[int]
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_short: jnp.ndarray, x_long: jnp.ndarray, *,
               train: bool = False) -> jnp.ndarray:
    x = jnp.concatenate([x_short, x_long], axis=-1)
    return MLP(self.hidden, self.dropout, self.dtype, name="mlp")(x, train=train)


def build(config: ml_collections.ConfigDict) -> tuple[Scorer, PairWeigher]:
  """The (f, h) pair described by `config.model`."""
  dtype = jnp.dtype(config.model.dtype)
  scorer = Scorer(tuple(config.model.scorer_hidden), config.model.dropout, dtype)
  weigher = PairWeigher(tuple(config.model.weigher_hidden),
                        config.model.dropout, dtype)
  return scorer, weigher
