"""Shapes and dtypes of f and h."""

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax.less_is_more import models


def _config(dtype="float32"):
  return ml_collections.ConfigDict(
      {"model": {"scorer_hidden": (8, 4), "weigher_hidden": (6,), "dropout": 0.5, "dtype": dtype}}
  )


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
    logits = weigher.apply(
        {"params": ph}, x, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)}
    )
    self.assertEqual(scores.shape, (3, 5))
    self.assertEqual(logits.shape, (3, 5))
    self.assertEqual(scores.dtype, jnp.float32)

  def test_dropout_only_in_training(self):
    scorer, _ = models.build(_config())
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 16))
    p = scorer.init(jax.random.PRNGKey(0), x)["params"]
    eval_a = scorer.apply({"params": p}, x)
    eval_b = scorer.apply({"params": p}, x)
    train = scorer.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    self.assertTrue(jnp.array_equal(eval_a, eval_b))
    self.assertFalse(jnp.allclose(eval_a, train))

  def test_byte_masks_keep_the_rate_and_the_mean(self):
    for rate in (0.5, 0.1, 0.25):
      keep = round((1 - rate) * 256) / 256
      mask = models.byte_keep_mask(jax.random.PRNGKey(0), keep, (64, 8, 513))
      self.assertEqual(mask.shape, (64, 8, 513))
      # 262,656 Bernoulli draws: the fraction is within 4 sigma of keep.
      sigma = (keep * (1 - keep) / mask.size) ** 0.5
      self.assertLess(abs(float(jnp.mean(mask)) - keep), 4 * sigma)
    x = jnp.ones((4096, 64))
    y = models.ByteDropout(0.5).apply({}, x, rngs={"dropout": jax.random.PRNGKey(3)})
    self.assertEqual(set(np.unique(np.asarray(y)).tolist()), {0.0, 2.0})
    self.assertAlmostEqual(float(jnp.mean(y)), 1.0, delta=0.02)

  def test_byte_masks_do_not_depend_on_sharding(self):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ("data",))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    key = jax.random.PRNGKey(5)
    mask = jax.jit(lambda k: models.byte_keep_mask(k, 0.5, (16, 8, 130)), out_shardings=sharded)(
        key
    )
    np.testing.assert_array_equal(
        np.asarray(mask), np.asarray(models.byte_keep_mask(key, 0.5, (16, 8, 130)))
    )

  def test_flax_masks_and_bad_options(self):
    config = _config()
    config.model.dropout_masks = "flax"
    scorer, _ = models.build(config)
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 16))
    p = scorer.init(jax.random.PRNGKey(0), x)["params"]
    flax_out = scorer.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    byte_out = models.build(_config())[0].apply(
        {"params": p}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)}
    )
    self.assertFalse(jnp.allclose(flax_out, byte_out))  # Different masks.
    config.model.dropout_masks = "bits"
    with self.assertRaisesRegex(ValueError, "model.dropout_masks='bits'"):
      models.build(config)
    config.model.dropout_masks = "bytes"
    config.model.dropout = 1.0
    with self.assertRaisesRegex(ValueError, r"model.dropout=1.0 must be in \[0, 1\)"):
      models.build(config)
