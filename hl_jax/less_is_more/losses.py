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


def pairwise_hinge(
    score_short: jnp.ndarray, score_long: jnp.ndarray, margin: float = 1.0
) -> jnp.ndarray:
  """Hinge that asks a short-video segment to beat a long-video one by `margin`.

  Args:
    score_short: [..., n] f(x) for segments of short videos.
    score_long: [..., n] f(x) for segments of long videos.
    margin: the ranking margin.

  Returns:
    [..., n] max(0, margin - score_short + score_long).
  """
  return jax.nn.relu(margin - score_short + score_long)


def _rax_pairs(
    score_short: jnp.ndarray, score_long: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Each pair as a two-item list with labels (1, 0): [..., n, 2] scores and labels."""
  scores = jnp.stack([score_short, score_long], axis=-1)
  labels = jnp.broadcast_to(jnp.array([1.0, 0.0], scores.dtype), scores.shape)
  return scores, labels


def _logistic(score_short, score_long, margin):
  del margin
  # Unreduced pairwise losses are [..., n, 2 * 2]; one entry is non-zero.
  return jnp.sum(
      rax.pairwise_logistic_loss(*_rax_pairs(score_short, score_long), reduce_fn=None), -1
  )


def _listwise_softmax(score_short, score_long, margin):
  del margin
  return rax.softmax_loss(*_rax_pairs(score_short, score_long), reduce_fn=None)


# name -> (score_short [..., n], score_long [..., n], margin) -> [..., n].
# "hinge" is the paper's max(0, margin - s_short + s_long). The others are rax
# learning-to-rank losses on each pair as a two-item list with labels (1, 0):
# "logistic" is rax's pairwise logistic loss log(1 + exp(s_long - s_short)),
# "softmax" is rax's listwise softmax cross-entropy -log softmax(s)_short (for
# two items the two coincide; both are kept as the rax entry points).
PAIR_LOSSES = {"hinge": pairwise_hinge, "logistic": _logistic, "softmax": _listwise_softmax}


def pair_loss(
    kind: str, score_short: jnp.ndarray, score_long: jnp.ndarray, margin: float = 1.0
) -> jnp.ndarray:
  """The per-pair ranking loss named `kind` (`PAIR_LOSSES`), [..., n] -> [..., n]."""
  if kind not in PAIR_LOSSES:
    raise ValueError(f"unknown pair loss {kind!r}; one of {tuple(PAIR_LOSSES)}")
  return PAIR_LOSSES[kind](score_short, score_long, margin)


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


def weighted_group_loss(pair_loss: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
  """Per-group loss sum_i w_i * loss_i.

  Args:
    pair_loss: [..., n] per-pair loss.
    weights: [..., n] pair weights (each group sums to 1).

  Returns:
    [...] one loss per group.
  """
  return jnp.sum(weights * pair_loss, axis=-1)


def ramp(step: jnp.ndarray, schedule_steps: int) -> jnp.ndarray:
  """0 at step 0, rising linearly to 1 at `schedule_steps` (1 if that is 0)."""
  if schedule_steps <= 0:
    return jnp.float32(1.0)
  return jnp.clip(step.astype(jnp.float32) / schedule_steps, 0.0, 1.0)


def kept_fraction(progress: jnp.ndarray, valid_fraction: float) -> jnp.ndarray:
  """q: the share of a group's pairs kept, from 1 at progress 0 to valid_fraction at 1."""
  return 1.0 - progress * (1.0 - valid_fraction)


def entropy(weights: jnp.ndarray) -> jnp.ndarray:
  """-sum_i w_i log w_i over the last axis (0 log 0 = 0), [..., n] -> [...]."""
  return -jnp.sum(
      jnp.where(weights > 0, weights * jnp.log(jnp.where(weights > 0, weights, 1.0)), 0.0), axis=-1
  )


def capped_simplex(
    logits: jnp.ndarray, budget: jnp.ndarray, keep: jnp.ndarray, iterations: int = 40
) -> jnp.ndarray:
  """Euclidean projection of the logits onto {0 <= w <= 1, sum_i w_i = budget}.

  w_i = clip(z_i - tau, 0, 1) over the kept entries (others 0), with tau found
  by bisection; the budget is capped at the number of kept entries. The
  gradient is the projection's own: on the free entries (0 < w < 1) it is
  I - 11^T / #free, as for sparsemax.

  Args:
    logits: [..., n] z.
    budget: [...] or [] the sum k of each row's weights (p n in the seed).
    keep: [..., n] bool, the entries that may get weight.
    iterations: bisection steps (40 halve the bracket to ~1e-12 of its width).

  Returns:
    [..., n] weights in [0, 1].
  """
  z = jnp.where(keep, logits.astype(jnp.float32), 0.0)
  k = jnp.minimum(
      jnp.broadcast_to(budget, z.shape[:-1]).astype(jnp.float32),
      jnp.sum(keep, axis=-1).astype(jnp.float32),
  )
  zs = jax.lax.stop_gradient(z)
  big = 1e9

  def total(tau):
    return jnp.sum(jnp.where(keep, jnp.clip(zs - tau[..., None], 0.0, 1.0), 0.0), -1)

  lo = jnp.min(jnp.where(keep, zs, big), -1) - 1.0  # total(lo) = #kept >= k
  hi = jnp.max(jnp.where(keep, zs, -big), -1)  # total(hi) = 0 <= k

  def body(_, bracket):
    lo, hi = bracket
    mid = 0.5 * (lo + hi)
    above = total(mid) > k
    return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
  tau = jax.lax.stop_gradient(0.5 * (lo + hi))
  # A budget of every kept pair gives them all weight 1: nothing is free.
  below = (k < jnp.sum(keep, axis=-1))[..., None]
  free = keep & below & (zs - tau[..., None] > 0.0) & (zs - tau[..., None] < 1.0)
  num_free = jnp.maximum(jnp.sum(free, -1, keepdims=True), 1)
  # tau's dependence on z (sum of the free entries is fixed by the budget).
  tau = tau[..., None] + jnp.sum(jnp.where(free, z - zs, 0.0), -1, keepdims=True) / num_free
  w = jnp.where(keep, jnp.where(below, jnp.clip(z - tau, 0.0, 1.0), 1.0), 0.0)
  return jnp.where(jnp.isfinite(w), w, 0.0) * (k[..., None] > 0)


def smallest_k(pair_loss: jnp.ndarray, budget: jnp.ndarray, keep: jnp.ndarray) -> jnp.ndarray:
  """Weight 1 on the round(budget) smallest kept losses of each row, else 0."""
  losses_ = jnp.where(keep, pair_loss, jnp.inf)
  rank = jnp.argsort(jnp.argsort(losses_, axis=-1), axis=-1)
  return ((rank < jnp.round(budget)) & keep).astype(jnp.float32)


def weight_diagnostics(weights: jnp.ndarray, pair_loss: jnp.ndarray) -> dict[str, jnp.ndarray]:
  """Means over groups of the weights normalised to sum 1 per group.

  weight_entropy (nats; log n for uniform), effective_pairs (1 / sum w^2; n
  for uniform, 1 for one pair), max_weight, and weight_satisfied (the share
  of weight on pairs with zero loss). Groups whose weights are all zero
  count as zero weight everywhere (effective_pairs 0).
  """
  weights = jax.lax.stop_gradient(weights)
  total = jnp.sum(weights, -1, keepdims=True)
  normalised = weights / jnp.maximum(total, 1e-30)
  squares = jnp.sum(normalised**2, -1)
  satisfied = (jax.lax.stop_gradient(pair_loss) <= 0.0).astype(jnp.float32)
  return {
      "weight_entropy": jnp.mean(entropy(normalised)),
      "effective_pairs": jnp.mean(jnp.where(squares > 0, 1.0 / jnp.maximum(squares, 1e-30), 0.0)),
      "max_weight": jnp.mean(jnp.max(normalised, -1)),
      "weight_satisfied": jnp.mean(jnp.sum(normalised * satisfied, -1)),
  }
