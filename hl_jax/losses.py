"""The Less-is-More ranking loss, as pure per-element functions.

Shapes: pairs come in `m` groups of `n` pairs, so scores and logits are [m, n].
Nothing here reduces over groups; the caller takes the mean over groups.

  w[g, :]   = softmax(h_logits[g, :])                     (sums to 1 per group)
  loss[g]   = sum_i w[g, i] * max(0, margin - f_short[g, i] + f_long[g, i])
  objective = mean_g loss[g]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import rax

PAIR_LOSSES = ("hinge", "logistic", "softmax")


def pairwise_hinge(score_short: jnp.ndarray, score_long: jnp.ndarray,
                   margin: float = 1.0) -> jnp.ndarray:
  """Hinge that asks a short-video segment to beat a long-video one by `margin`.

  Args:
    score_short: [..., n] f(x) for segments of short videos.
    score_long: [..., n] f(x) for segments of long videos.
    margin: the ranking margin.

  Returns:
    [..., n] max(0, margin - score_short + score_long).
  """
  return jax.nn.relu(margin - score_short + score_long)


def pair_loss(kind: str, score_short: jnp.ndarray, score_long: jnp.ndarray,
              margin: float = 1.0) -> jnp.ndarray:
  """The per-pair ranking loss named `kind`, [..., n] -> [..., n].

  "hinge" is the paper's max(0, margin - s_short + s_long). The others are rax
  learning-to-rank losses on each pair as a two-item list with labels (1, 0):
  "logistic" is rax's pairwise logistic loss log(1 + exp(s_long - s_short)),
  "softmax" is rax's listwise softmax cross-entropy -log softmax(s)_short
  (for two items the two coincide; both are kept as the rax entry points).
  """
  if kind == "hinge":
    return pairwise_hinge(score_short, score_long, margin)
  scores = jnp.stack([score_short, score_long], axis=-1)
  labels = jnp.broadcast_to(jnp.array([1.0, 0.0], scores.dtype), scores.shape)
  if kind == "logistic":
    # Unreduced pairwise losses are [..., n, 2 * 2]; one entry is non-zero.
    return jnp.sum(rax.pairwise_logistic_loss(scores, labels, reduce_fn=None), -1)
  if kind == "softmax":
    return rax.softmax_loss(scores, labels, reduce_fn=None)
  raise ValueError(f"unknown pair loss {kind!r}; one of {PAIR_LOSSES}")


def group_softmax_weights(logits: jnp.ndarray) -> jnp.ndarray:
  """Pair weights normalised within each group.

  Args:
    logits: [..., n] h(x_short, x_long) for the n pairs of each group.

  Returns:
    [..., n] non-negative weights summing to 1 over the last axis.
  """
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def uniform_weights(shape: tuple[int, ...]) -> jnp.ndarray:
  """Ranking-D's weights: 1/n for each of the n pairs of a group, [..., n]."""
  return jnp.full(shape, 1.0 / shape[-1], jnp.float32)


def weighted_group_loss(pair_loss: jnp.ndarray,
                        weights: jnp.ndarray) -> jnp.ndarray:
  """Per-group loss sum_i w_i * loss_i.

  Args:
    pair_loss: [..., n] per-pair loss.
    weights: [..., n] pair weights (each group sums to 1).

  Returns:
    [...] one loss per group.
  """
  return jnp.sum(weights * pair_loss, axis=-1)
