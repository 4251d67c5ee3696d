"""The pair weightings (the registry's entries) against float64 NumPy transcriptions."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import joint
from hl_jax.less_is_more import losses
from hl_jax.less_is_more import weightings

SCHEDULE = 100  # train.weight_schedule_steps of `weigh`: progress p is step 100 p.


def weigh(name, pair_loss, logits, progress, *, score_gap=None, em_prior=0.5, **train):
  """(weights, loss terms, aux) of weighting `name` at schedule position `progress`."""
  config = joint.get_config()
  config.train.weight_schedule_steps = SCHEDULE
  config.train.update(train)
  pairs = weightings.Pairs(
      pair_loss=jnp.asarray(pair_loss),
      logits=None if logits is None else jnp.asarray(logits),
      score_gap=jnp.zeros(np.shape(pair_loss)) if score_gap is None else jnp.asarray(score_gap),
      step=jnp.int32(round(progress * SCHEDULE)),
      em_prior=jnp.float32(em_prior),
  )
  return weightings.get(name).weigh(pairs, ml_collections.FrozenConfigDict(config))


def numpy_capped_simplex(z, k, keep):
  """float64: argmin ||w - z|| s.t. 0 <= w <= 1, sum w = min(k, #keep), w = 0 off keep."""
  z, keep = np.asarray(z, np.float64), np.asarray(keep, bool)
  out = np.zeros_like(z)
  for g in range(z.shape[0]):
    idx = np.flatnonzero(keep[g])
    budget = min(k, len(idx))
    if budget == 0:
      continue
    lo, hi = z[g, idx].min() - 1, z[g, idx].max()
    for _ in range(200):
      mid = (lo + hi) / 2
      if np.clip(z[g, idx] - mid, 0, 1).sum() > budget:
        lo = mid
      else:
        hi = mid
    out[g, idx] = np.clip(z[g, idx] - (lo + hi) / 2, 0, 1)
  return out


def random_case(seed, m=6, n=8):
  rng = np.random.default_rng(seed)
  logits = (3 * rng.normal(size=(m, n))).astype(np.float32)
  pair_loss = np.maximum(0, rng.normal(size=(m, n))).astype(np.float32)  # ~half satisfied
  pair_loss[0] = 0.0  # A group with every pair satisfied.
  return logits, pair_loss


@pytest.mark.parametrize("k", [1.0, 3.0, 4.0, 8.0])
def test_capped_simplex_is_the_projection(k):
  logits, pair_loss = random_case(int(k))
  keep = pair_loss > 0
  w = np.asarray(losses.capped_simplex(jnp.asarray(logits), jnp.float32(k), jnp.asarray(keep)))
  expected = numpy_capped_simplex(logits, k, keep)
  np.testing.assert_allclose(w, expected, atol=1e-5)
  assert np.all((w >= 0) & (w <= 1)) and np.all(w[~keep] == 0)
  np.testing.assert_allclose(w.sum(-1), np.minimum(k, keep.sum(-1)), atol=1e-4)


def test_capped_simplex_gradient_is_the_projections():
  logits, pair_loss = random_case(5)
  keep = jnp.asarray(pair_loss > 0)
  v = jnp.asarray(np.random.default_rng(1).normal(size=logits.shape), jnp.float32)

  def objective(z):
    return jnp.sum(v * losses.capped_simplex(z, jnp.float32(3.0), keep))

  grad = np.asarray(jax.grad(objective)(jnp.asarray(logits)))
  eps = 1e-3
  numeric = np.zeros_like(grad)
  for index in np.ndindex(logits.shape):
    up, down = logits.copy(), logits.copy()
    up[index] += eps
    down[index] -= eps
    numeric[index] = (
        np.sum(np.asarray(v, np.float64) * numpy_capped_simplex(up, 3.0, pair_loss > 0))
        - np.sum(np.asarray(v, np.float64) * numpy_capped_simplex(down, 3.0, pair_loss > 0))
    ) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, atol=2e-3)


def test_self_paced_keeps_the_smallest_unsatisfied_losses():
  _, pair_loss = random_case(2)
  for progress, q in ((0.0, 1.0), (1.0, 0.25), (0.5, 0.625)):
    w = np.asarray(weigh("self_paced", pair_loss, None, progress, valid_fraction=0.25)[0])
    for g in range(len(pair_loss)):
      idx = np.flatnonzero(pair_loss[g] > 0)
      chosen = idx[np.argsort(pair_loss[g, idx], kind="stable")][: int(np.round(q * 8))]
      expected = np.zeros(8)
      expected[chosen] = 1
      np.testing.assert_array_equal(w[g], expected)


def test_tempered_starts_near_uniform_and_ends_at_the_masked_softmax():
  logits, pair_loss = random_case(3)
  keep = pair_loss > 0
  start = np.asarray(weigh("tempered", pair_loss, logits, 0.0, weight_temperature_start=1e4)[0])
  end = np.asarray(weigh("tempered", pair_loss, logits, 1.0, weight_temperature_start=1e4)[0])
  for g in range(len(logits)):
    idx = np.flatnonzero(keep[g])
    if not len(idx):
      assert not start[g].any() and not end[g].any()
      continue
    np.testing.assert_allclose(start[g, idx], 1 / len(idx), atol=2e-3)
    z = np.exp(logits[g, idx].astype(np.float64) - logits[g, idx].max())
    np.testing.assert_allclose(end[g, idx], z / z.sum(), rtol=1e-5)
    assert not end[g, ~keep[g]].any()


def test_detached_weights_put_nothing_on_satisfied_pairs():
  logits, pair_loss = random_case(4)
  w = np.asarray(weigh("detached", pair_loss, logits, 0.0)[0])
  assert not w[pair_loss <= 0].any()
  np.testing.assert_allclose(w.sum(-1), (pair_loss > 0).any(-1).astype(float), atol=1e-6)
  paper = np.asarray(weigh("softmax", pair_loss, logits, 0.0)[0])
  np.testing.assert_allclose(paper.sum(-1), 1, atol=1e-6)
  assert paper[pair_loss <= 0].sum() > 0  # The paper's weights do go to satisfied pairs.


@pytest.mark.parametrize("weighting", ["detached", "tempered", "capped_simplex"])
def test_f_sees_detached_weights_and_h_detached_losses(weighting):
  logits, pair_loss = random_case(6)
  pair_loss = pair_loss + 0.1  # All unsatisfied, so every weight is free to move.

  def parts(pl, z):
    return weigh(weighting, pl, z, 0.5, valid_fraction=0.5, weight_entropy_bonus=0.1)[1]

  pl, z = jnp.asarray(pair_loss), jnp.asarray(logits)
  d_f = jax.grad(lambda a, b: jnp.sum(parts(a, b)[0]), argnums=(0, 1))(pl, z)
  d_h = jax.grad(lambda a, b: jnp.sum(parts(a, b)[1]), argnums=(0, 1))(pl, z)
  assert not np.asarray(d_f[1]).any() and not np.asarray(d_h[0]).any()
  assert np.asarray(d_f[0]).any() and np.asarray(d_h[1]).any()
  # f's gradient on each pair's loss is its weight, over the budget.
  w = np.asarray(weigh(weighting, pl, z, 0.5, valid_fraction=0.5)[0])
  scale = 1 / (0.75 * 8) if weighting == "capped_simplex" else 1.0
  np.testing.assert_allclose(np.asarray(d_f[0]), scale * w, rtol=1e-5)


def test_weight_diagnostics():
  n = 8
  uniform = jnp.full((3, n), 1 / n)
  one = jnp.zeros((3, n)).at[:, 2].set(1.0)
  pair_loss = jnp.ones((3, n)).at[:, 2].set(0.0)
  d_uniform = losses.weight_diagnostics(uniform, pair_loss)
  d_one = losses.weight_diagnostics(one, pair_loss)
  np.testing.assert_allclose(d_uniform["weight_entropy"], np.log(n), rtol=1e-6)
  np.testing.assert_allclose(d_uniform["effective_pairs"], n, rtol=1e-5)
  np.testing.assert_allclose(d_uniform["weight_satisfied"], 1 / n, rtol=1e-6)
  assert float(d_one["weight_entropy"]) == 0 and float(d_one["max_weight"]) == 1
  np.testing.assert_allclose(d_one["effective_pairs"], 1, rtol=1e-6)
  assert float(d_one["weight_satisfied"]) == 1


def test_ramp():
  assert float(losses.ramp(jnp.int32(0), 100)) == 0
  assert float(losses.ramp(jnp.int32(50), 100)) == 0.5
  assert float(losses.ramp(jnp.int32(500), 100)) == 1
  assert float(losses.ramp(jnp.int32(0), 0)) == 1


def test_ranking_d_and_em_are_weightings_without_h():
  logits, pair_loss = random_case(7)
  gap = np.random.default_rng(7).normal(size=pair_loss.shape).astype(np.float32)
  uniform, (loss,), aux = weigh("ranking_d", pair_loss, None, 0.0)
  np.testing.assert_allclose(uniform, 1 / 8)
  np.testing.assert_allclose(loss, pair_loss.mean(-1), rtol=1e-6)
  assert aux == {}
  em, (loss,), aux = weigh("ranking_em", pair_loss, None, 0.0, score_gap=gap, em_prior=0.7)
  s = 1 / (1 + np.exp(-gap.astype(np.float64)))
  gamma = 0.7 * s / (0.7 * s + 0.15)
  np.testing.assert_allclose(em, gamma / gamma.sum(-1, keepdims=True), rtol=1e-5)
  np.testing.assert_allclose(aux["em_posterior"], gamma.mean(), rtol=1e-5)
  np.testing.assert_allclose(loss, (em * pair_loss).sum(-1), rtol=1e-5)
  assert not weightings.get("ranking_d").uses_h and not weightings.get("ranking_em").uses_h
  assert weightings.get("ranking_em").updates_prior
  assert [n for n, w in weightings.WEIGHTINGS.items() if w.uses_h] == [
      "softmax",
      "detached",
      "tempered",
      "capped_simplex",
  ]


def test_unknown_weighting_is_one_line():
  with pytest.raises(ValueError, match="unknown train.weighting 'jointt'; one of"):
    weightings.get("jointt")
