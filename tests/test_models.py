"""Shapes and dtypes of f and h."""

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import ml_collections

from hl_jax import models


def _config(dtype="float32"):
  return ml_collections.ConfigDict({"model": {
      "scorer_hidden": (8, 4), "weigher_hidden": (6,), "dropout": 0.5,
      "dtype": dtype}})


class ModelsTest(parameterized.TestCase):

  @parameterized.parameters("float32", "bfloat16")
  def test_shapes_and_dtypes(self, dtype):
    scorer, weigher = models.build(_config(dtype))
    x = jnp.ones((3, 5, 16))
    pf = scorer.init(jax.random.PRNGKey(0), x)["params"]
    ph = weigher.init(jax.random.PRNGKey(1), x, x)["params"]
    self.assertEqual(pf["mlp"]["Dense_0"]["kernel"].shape, (16, 8))
    self.assertEqual(pf["mlp"]["Dense_2"]["kernel"].shape, (4, 1))
    self.assertEqual(ph["mlp"]["Dense_0"]["kernel"].shape, (32, 6))
    self.assertEqual(pf["mlp"]["Dense_0"]["kernel"].dtype, jnp.float32)
    scores = scorer.apply({"params": pf}, x)
    logits = weigher.apply({"params": ph}, x, x, train=True,
                           rngs={"dropout": jax.random.PRNGKey(2)})
    self.assertEqual(scores.shape, (3, 5))
    self.assertEqual(logits.shape, (3, 5))
    self.assertEqual(scores.dtype, jnp.float32)

  def test_dropout_only_in_training(self):
    scorer, _ = models.build(_config())
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 16))
    p = scorer.init(jax.random.PRNGKey(0), x)["params"]
    eval_a = scorer.apply({"params": p}, x)
    eval_b = scorer.apply({"params": p}, x)
    train = scorer.apply({"params": p}, x, train=True,
                         rngs={"dropout": jax.random.PRNGKey(1)})
    self.assertTrue(jnp.array_equal(eval_a, eval_b))
    self.assertFalse(jnp.allclose(eval_a, train))
