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


# ----------------------------------------------------------------------------
# Pair weights that cannot collapse (issue 13).
#
# For fixed per-pair losses l, the paper's objective sum_i softmax(h)_i l_i is
# minimised by all of a group's weight on its smallest loss, and with a hinge
# that pair is usually already satisfied (l = 0): f then gets no gradient. The
# weightings below each (1) train f on detached weights, L_f = sum_i sg(w_i) l_i,
# (2) leave satisfied pairs out of the weighting (they carry no gradient for f
# and would attract the weight), and (3) keep the weights spread out by
# construction or by a schedule that starts at uniform. See WEIGHTINGS.

WEIGHTINGS = ("softmax", "detached", "tempered", "capped_simplex", "self_paced")
# Weightings whose weights come from h (the others need no pair-weight network).
H_WEIGHTINGS = ("softmax", "detached", "tempered", "capped_simplex")


def ramp(step: jnp.ndarray, schedule_steps: int) -> jnp.ndarray:
  """0 at step 0, rising linearly to 1 at `schedule_steps` (1 if that is 0)."""
  if schedule_steps <= 0:
    return jnp.float32(1.0)
  return jnp.clip(step.astype(jnp.float32) / schedule_steps, 0.0, 1.0)


def kept_fraction(progress: jnp.ndarray, valid_fraction: float) -> jnp.ndarray:
  """q: the share of a group's pairs kept, from 1 at progress 0 to valid_fraction at 1."""
  return 1.0 - progress * (1.0 - valid_fraction)


def masked_softmax(logits: jnp.ndarray, keep: jnp.ndarray) -> jnp.ndarray:
  """Softmax over the kept entries of the last axis; all-zero rows where none is kept."""
  logits = jnp.where(keep, logits.astype(jnp.float32), -jnp.inf)
  top = jnp.max(logits, axis=-1, keepdims=True)
  top = jnp.where(jnp.isfinite(top), top, 0.0)
  e = jnp.where(keep, jnp.exp(logits - jax.lax.stop_gradient(top)), 0.0)
  return e / jnp.maximum(jnp.sum(e, axis=-1, keepdims=True), 1e-30)


def entropy(weights: jnp.ndarray) -> jnp.ndarray:
  """-sum_i w_i log w_i over the last axis (0 log 0 = 0), [..., n] -> [...]."""
  return -jnp.sum(jnp.where(weights > 0, weights * jnp.log(jnp.where(weights > 0, weights, 1.0)),
                            0.0), axis=-1)


def capped_simplex(logits: jnp.ndarray, budget: jnp.ndarray, keep: jnp.ndarray,
                   iterations: int = 40) -> jnp.ndarray:
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
  k = jnp.minimum(jnp.broadcast_to(budget, z.shape[:-1]).astype(jnp.float32),
                  jnp.sum(keep, axis=-1).astype(jnp.float32))
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


def smallest_k(pair_loss: jnp.ndarray, budget: jnp.ndarray,
               keep: jnp.ndarray) -> jnp.ndarray:
  """Weight 1 on the round(budget) smallest kept losses of each row, else 0."""
  losses_ = jnp.where(keep, pair_loss, jnp.inf)
  rank = jnp.argsort(jnp.argsort(losses_, axis=-1), axis=-1)
  return ((rank < jnp.round(budget)) & keep).astype(jnp.float32)


def pair_weights(weighting: str, pair_loss: jnp.ndarray, logits: jnp.ndarray | None,
                 progress: jnp.ndarray, *, temperature_start: float = 10.0,
                 valid_fraction: float = 0.5) -> jnp.ndarray:
  """The [m, n] pair weights of a weighting, before the loss is formed.

  Args:
    weighting: one of WEIGHTINGS.
    pair_loss: [m, n] per-pair losses (the weights of the collapse-proof
      weightings depend on them only through which pairs are satisfied, and,
      for self_paced, their order).
    logits: [m, n] h's logits (None for self_paced).
    progress: [] the schedule's position in [0, 1] (`ramp`).
    temperature_start: tempered's temperature at progress 0.
    valid_fraction: p of capped_simplex and self_paced at progress 1.

  Returns:
    softmax: softmax(h) (the paper's; sum 1 per group).
    detached: softmax(h) over the unsatisfied pairs (sum 1, or 0 if all are
      satisfied).
    tempered: softmax(h / T) over the unsatisfied pairs, T falling
      geometrically from temperature_start to 1 (near uniform at the start).
    capped_simplex: the seed's constraint: h's logits projected onto
      {0 <= w <= 1, sum w = q n} over the unsatisfied pairs, q falling
      linearly from 1 (all pairs, uniform) to valid_fraction.
    self_paced: no h: weight 1 on the round(q n) smallest-loss unsatisfied
      pairs, q as for capped_simplex (self-paced / trimmed selection with a
      scheduled kept fraction, as co-teaching's rate schedule).
  """
  if weighting == "softmax":
    return group_softmax_weights(logits)
  unsatisfied = jax.lax.stop_gradient(pair_loss) > 0.0
  n = pair_loss.shape[-1]
  kept = kept_fraction(progress, valid_fraction)
  if weighting == "detached":
    return masked_softmax(logits, unsatisfied)
  if weighting == "tempered":
    temperature = temperature_start ** (1.0 - progress)
    return masked_softmax(logits / temperature, unsatisfied)
  if weighting == "capped_simplex":
    return capped_simplex(logits, kept * n, unsatisfied)
  if weighting == "self_paced":
    return smallest_k(jax.lax.stop_gradient(pair_loss), kept * n, unsatisfied)
  raise ValueError(f"unknown weighting {weighting!r}; one of {WEIGHTINGS}")


def weighting_losses(weighting: str, pair_loss: jnp.ndarray, weights: jnp.ndarray,
                     progress: jnp.ndarray, *, valid_fraction: float = 0.5,
                     entropy_bonus: float = 0.0) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(loss for f, loss for h), each [m] per group; their sum is what is minimised.

  softmax: the paper's sum_i w_i l_i, for f and h alike (loss for h is 0).
  Otherwise f's loss is sum_i sg(w_i) l_i and h's is sum_i w_i sg(l_i) minus
  `entropy_bonus` times the weights' entropy (tempered); for capped_simplex and
  self_paced both are divided by the budget q n, so that they are means over
  the kept pairs.
  """
  if weighting == "softmax":
    return weighted_group_loss(pair_loss, weights), jnp.zeros(pair_loss.shape[:-1])
  scale = 1.0
  if weighting in ("capped_simplex", "self_paced"):
    n = pair_loss.shape[-1]
    scale = 1.0 / jnp.maximum(kept_fraction(progress, valid_fraction) * n, 1.0)
  loss_f = scale * weighted_group_loss(pair_loss, jax.lax.stop_gradient(weights))
  loss_h = scale * weighted_group_loss(jax.lax.stop_gradient(pair_loss), weights)
  if weighting == "tempered" and entropy_bonus:
    loss_h = loss_h - entropy_bonus * entropy(weights)
  return loss_f, loss_h


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
  squares = jnp.sum(normalised ** 2, -1)
  satisfied = (jax.lax.stop_gradient(pair_loss) <= 0.0).astype(jnp.float32)
  return {
      "weight_entropy": jnp.mean(entropy(normalised)),
      "effective_pairs": jnp.mean(jnp.where(squares > 0, 1.0 / jnp.maximum(squares, 1e-30), 0.0)),
      "max_weight": jnp.mean(jnp.max(normalised, -1)),
      "weight_satisfied": jnp.mean(jnp.sum(normalised * satisfied, -1)),
  }
