"""Pair weightings: how the n (short, long) pairs of each group are weighted.

Every way of weighting a group's pairs is an entry of `WEIGHTINGS`, chosen by
`train.weighting`; the train step asks the entry for the weights and the
per-group loss, and whether it needs the pair-weight network h. Adding a
weighting is one new entry here (and its test).

The paper's methods are entries: Ranking-D ("ranking_d": 1/n each, no h),
Ranking-EM ("ranking_em": EM posteriors of "this pair is valid", no h) and the
joint model ("softmax": softmax(h) per group, the paper's objective). The
others are weightings that cannot collapse (below).

Why the paper's objective collapses: for fixed per-pair losses l,
sum_i softmax(h)_i l_i is minimised by all of a group's weight on its smallest
loss, and with a hinge that pair is usually already satisfied (l = 0): f then
gets no gradient. The collapse-proof weightings each (1) train f on detached
weights, L_f = sum_i sg(w_i) l_i, (2) leave satisfied pairs out of the
weighting (they carry no gradient for f and would attract the weight), and (3)
keep the weights spread out by construction or by a schedule that starts at
uniform (`train.weight_schedule_steps`).

Ranking-EM, exactly: each pair (i, j) has a latent z_ij, valid with prior p.
A valid pair is ordered as a Bradley-Terry model says, P(order | valid) =
sigmoid(f(x_i) - f(x_j)); an invalid pair's order is a coin flip, 1/2.
E-step (with the current f, no gradient): gamma_ij = p s / (p s + (1 - p) / 2)
with s = sigmoid(f(x_i) - f(x_j)); the pair weights are gamma normalised to
sum to 1 in each group. M-step: one optimizer step of f on the weighted loss,
and p <- (1 - eta) p + eta mean(gamma), an online EM update of the prior
(eta = em.prior_rate). p lives in the train state, so a resumed run
continues exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from hl_jax.core import ops
from hl_jax.less_is_more import losses


@dataclasses.dataclass(frozen=True)
class Pairs:
  """One step's pairs, as a weighting sees them.

  Attributes:
    pair_loss: [m, n] per-pair losses.
    score_gap: [m, n] f(x_short) - f(x_long).
    logits: [m, n] h's logits (None unless the weighting uses h).
    step: [] int32, the train step (for schedules).
    em_prior: [] float32, Ranking-EM's prior valid-pair proportion p.
  """

  pair_loss: jnp.ndarray
  score_gap: jnp.ndarray
  logits: jnp.ndarray | None
  step: jnp.ndarray
  em_prior: jnp.ndarray


# (pairs, config) -> ([m, n] weights, the [m] per-group loss terms whose sum is
# minimised (f's, then h's for a weighting with h), {name: [] diagnostic}).
WeighFn = Callable[
    [Pairs, Any], tuple[jnp.ndarray, tuple[jnp.ndarray, ...], dict[str, jnp.ndarray]]
]


@dataclasses.dataclass(frozen=True)
class Weighting:
  """A weighting of the pairs of each group.

  Attributes:
    name: its `train.weighting` name.
    uses_h: whether it needs the pair-weight network h (its logits).
    weigh: the weights and per-group loss terms of one step's pairs.
    keys: the config keys it reads beyond the pairs (others do nothing for it).
    updates_prior: whether the step updates `em_prior` from aux "em_posterior".
    summary: one line for tables and docs.
  """

  name: str
  uses_h: bool
  weigh: WeighFn
  keys: tuple[str, ...] = ()
  updates_prior: bool = False
  summary: str = ""


def em_posterior(score_gap: jnp.ndarray, prior: jnp.ndarray) -> jnp.ndarray:
  """Ranking-EM's E-step: P(pair valid | f), [..., n] -> [..., n].

  Args:
    score_gap: f(x_short) - f(x_long) per pair.
    prior: [] the prior valid-pair proportion p.
  """
  likely = prior * jax.nn.sigmoid(score_gap)
  return likely / (likely + (1.0 - prior) * 0.5)


def update_prior(prior: jnp.ndarray, mean_posterior: jnp.ndarray, rate: float) -> jnp.ndarray:
  """Ranking-EM's online M-step of p."""
  return (1 - rate) * prior + rate * mean_posterior


def _progress(pairs: Pairs, config: Any) -> jnp.ndarray:
  return losses.ramp(pairs.step, config.train.weight_schedule_steps)


def _ranking_d(pairs: Pairs, config: Any):
  del config
  weights = losses.uniform_weights(pairs.pair_loss.shape)
  return weights, (losses.weighted_group_loss(pairs.pair_loss, weights),), {}


def _ranking_em(pairs: Pairs, config: Any):
  del config
  posterior = em_posterior(jax.lax.stop_gradient(pairs.score_gap), pairs.em_prior)
  weights = posterior / jnp.sum(posterior, axis=-1, keepdims=True)
  return (
      weights,
      (losses.weighted_group_loss(pairs.pair_loss, weights),),
      {"em_posterior": jnp.mean(posterior)},
  )


def _softmax(pairs: Pairs, config: Any):
  del config
  weights = losses.group_softmax_weights(pairs.logits)
  loss_f = losses.weighted_group_loss(pairs.pair_loss, weights)
  loss_h = jnp.zeros(pairs.pair_loss.shape[:-1])
  return weights, (loss_f, loss_h), {}


def _detached_losses(
    pair_loss: jnp.ndarray, weights: jnp.ndarray, scale: Any = 1.0
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """f's loss on detached weights, h's on detached losses: (loss_f, loss_h), [m] each."""
  loss_f = scale * losses.weighted_group_loss(pair_loss, jax.lax.stop_gradient(weights))
  loss_h = scale * losses.weighted_group_loss(jax.lax.stop_gradient(pair_loss), weights)
  return loss_f, loss_h


def _unsatisfied(pairs: Pairs) -> jnp.ndarray:
  return jax.lax.stop_gradient(pairs.pair_loss) > 0.0


def _detached(pairs: Pairs, config: Any):
  del config
  weights = ops.masked_softmax(pairs.logits, _unsatisfied(pairs))
  loss_f, loss_h = _detached_losses(pairs.pair_loss, weights)
  return weights, (loss_f, loss_h), {}


def _tempered(pairs: Pairs, config: Any):
  progress = _progress(pairs, config)
  temperature = config.train.weight_temperature_start ** (1.0 - progress)
  weights = ops.masked_softmax(pairs.logits / temperature, _unsatisfied(pairs))
  loss_f, loss_h = _detached_losses(pairs.pair_loss, weights)
  if config.train.weight_entropy_bonus:
    loss_h = loss_h - config.train.weight_entropy_bonus * losses.entropy(weights)
  return weights, (loss_f, loss_h), {}


def _budget_scale(pairs: Pairs, progress: jnp.ndarray, config: Any) -> jnp.ndarray:
  """1 / (q n): capped_simplex's and self_paced's losses are means over the kept pairs."""
  n = pairs.pair_loss.shape[-1]
  return 1.0 / jnp.maximum(losses.kept_fraction(progress, config.train.valid_fraction) * n, 1.0)


def _capped_simplex(pairs: Pairs, config: Any):
  progress = _progress(pairs, config)
  n = pairs.pair_loss.shape[-1]
  kept = losses.kept_fraction(progress, config.train.valid_fraction)
  weights = losses.capped_simplex(pairs.logits, kept * n, _unsatisfied(pairs))
  loss_f, loss_h = _detached_losses(
      pairs.pair_loss, weights, _budget_scale(pairs, progress, config)
  )
  return weights, (loss_f, loss_h), {}


def _self_paced(pairs: Pairs, config: Any):
  progress = _progress(pairs, config)
  n = pairs.pair_loss.shape[-1]
  kept = losses.kept_fraction(progress, config.train.valid_fraction)
  weights = losses.smallest_k(jax.lax.stop_gradient(pairs.pair_loss), kept * n, _unsatisfied(pairs))
  loss_f, loss_h = _detached_losses(
      pairs.pair_loss, weights, _budget_scale(pairs, progress, config)
  )
  return weights, (loss_f, loss_h), {}


_SCHEDULE = ("train.weight_schedule_steps",)
WEIGHTINGS: dict[str, Weighting] = {
    w.name: w
    for w in (
        Weighting(
            "softmax", True, _softmax, summary="the paper's joint model: softmax(h) per group"
        ),
        Weighting("ranking_d", False, _ranking_d, summary="Ranking-D: 1/n per pair, no h"),
        Weighting(
            "ranking_em",
            False,
            _ranking_em,
            ("em.prior_init", "em.prior_rate"),
            updates_prior=True,
            summary="Ranking-EM: normalised EM posteriors that a pair is valid, no h",
        ),
        Weighting(
            "detached",
            True,
            _detached,
            summary="softmax(h) over the unsatisfied pairs; f trains on detached weights",
        ),
        Weighting(
            "tempered",
            True,
            _tempered,
            _SCHEDULE + ("train.weight_temperature_start", "train.weight_entropy_bonus"),
            summary="detached, softmax(h / T) with T falling to 1 over the schedule",
        ),
        Weighting(
            "capped_simplex",
            True,
            _capped_simplex,
            _SCHEDULE + ("train.valid_fraction",),
            summary="h's logits projected onto {0 <= w <= 1, sum w = q n}, q falling "
            "to train.valid_fraction",
        ),
        Weighting(
            "self_paced",
            False,
            _self_paced,
            _SCHEDULE + ("train.valid_fraction",),
            summary="weight 1 on the q n smallest-loss unsatisfied pairs, no h",
        ),
    )
}
NAMES = tuple(WEIGHTINGS)
# Every key some weighting reads: a run's config may change the ones its own
# weighting does not read without changing the run.
ALL_KEYS = tuple(sorted({k for w in WEIGHTINGS.values() for k in w.keys}))


def get(name: str) -> Weighting:
  """The weighting named `name`; a one-line error names the known ones."""
  if name not in WEIGHTINGS:
    raise ValueError(f"unknown train.weighting {name!r}; one of {NAMES}")
  return WEIGHTINGS[name]


def group_loss(terms: tuple[jnp.ndarray, ...]) -> jnp.ndarray:
  """[m] the per-group loss minimised: the sum of a weighting's terms."""
  total = terms[0]
  for term in terms[1:]:
    total = total + term
  return total
