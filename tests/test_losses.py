"""Loss and weights against a float64 NumPy transcription of the paper's loss."""

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.less_is_more import losses


def numpy_loss(f_short, f_long, logits, margin):
  """float64 reference: mean_g sum_i softmax(h)_gi * max(0, m - fs + fl)."""
  f_short, f_long, logits = (np.asarray(a, np.float64) for a in (f_short, f_long, logits))
  z = np.exp(logits - logits.max(axis=-1, keepdims=True))
  w = z / z.sum(axis=-1, keepdims=True)
  hinge = np.maximum(0.0, margin - f_short + f_long)
  return (w * hinge).sum(axis=-1).mean(), w


class LossesTest(parameterized.TestCase):

  @parameterized.product(m=[1, 7], n=[1, 8], margin=[1.0, 0.5])
  def test_matches_float64_numpy(self, m, n, margin):
    rng = np.random.default_rng(m * 100 + n)
    fs, fl, logits = (rng.normal(size=(m, n)).astype(np.float32) for _ in range(3))
    logits *= 5
    w = losses.group_softmax_weights(jnp.asarray(logits))
    loss = jnp.mean(
        losses.weighted_group_loss(
            losses.pairwise_hinge(jnp.asarray(fs), jnp.asarray(fl), margin), w
        )
    )
    expected_loss, expected_w = numpy_loss(fs, fl, logits, margin)
    np.testing.assert_allclose(w, expected_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(w).sum(-1), np.ones(m), rtol=1e-6)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)

  def test_hand_computed_group(self):
    # One group, two pairs: hinge = [max(0, 1 - 2 + 0), max(0, 1 - 0 + 1)] = [0, 2];
    # logits [0, ln 3] -> weights [1/4, 3/4] -> loss = 3/4 * 2 = 1.5.
    hinge = losses.pairwise_hinge(jnp.array([[2.0, 0.0]]), jnp.array([[0.0, 1.0]]))
    w = losses.group_softmax_weights(jnp.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(hinge, [[0.0, 2.0]])
    np.testing.assert_allclose(w, [[0.25, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(losses.weighted_group_loss(hinge, w), [1.5], rtol=1e-6)

  def test_uniform_weights_are_ranking_d(self):
    w = losses.uniform_weights((3, 4))
    np.testing.assert_allclose(w, np.full((3, 4), 0.25))

  def test_gradient_matches_numpy(self):
    rng = np.random.default_rng(0)
    fs, fl, logits = (rng.normal(size=(4, 8)) for _ in range(3))

    def loss(fs, fl, logits):
      w = losses.group_softmax_weights(logits)
      return jnp.mean(losses.weighted_group_loss(losses.pairwise_hinge(fs, fl), w))

    grads = jax.grad(loss, argnums=(0, 1, 2))(
        *(jnp.asarray(a, jnp.float32) for a in (fs, fl, logits))
    )
    # Central differences of the float64 reference.
    eps = 1e-6
    for arg, grad in enumerate(grads):
      expected = np.zeros_like(fs)
      for idx in np.ndindex(fs.shape):
        args_hi = [fs.copy(), fl.copy(), logits.copy()]
        args_lo = [fs.copy(), fl.copy(), logits.copy()]
        args_hi[arg][idx] += eps
        args_lo[arg][idx] -= eps
        expected[idx] = (numpy_loss(*args_hi, 1.0)[0] - numpy_loss(*args_lo, 1.0)[0]) / (2 * eps)
      np.testing.assert_allclose(grad, expected, atol=1e-5)


class PairLossTest(parameterized.TestCase):

  @parameterized.parameters("logistic", "softmax")
  def test_rax_losses_match_numpy(self, kind):
    rng = np.random.default_rng(1)
    fs, fl = rng.normal(size=(2, 3, 4))
    expected = np.log1p(np.exp(fl - fs))  # Both are -log sigmoid(fs - fl) for two items.
    got = losses.pair_loss(kind, jnp.asarray(fs, jnp.float32), jnp.asarray(fl, jnp.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  def test_hinge_is_the_default_kind(self):
    got = losses.pair_loss("hinge", jnp.array([0.5]), jnp.array([0.0]), margin=1.0)
    np.testing.assert_allclose(got, [0.5])

  def test_unknown_kind(self):
    with self.assertRaisesRegex(ValueError, "unknown pair loss 'l2'"):
      losses.pair_loss("l2", jnp.zeros(2), jnp.zeros(2))
