"""TaoHighlight: losses against float64 NumPy, graph fine-tuning, decoding, the model."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hl_jax.taohighlight import losses
from hl_jax.taohighlight import network
from hl_jax.taohighlight import targets

B, T, L, DV, DT, H = 2, 12, 5, 6, 7, 8


# ------------------------------------------------ float64 references


def np_softmax_expectation(logits, mask):
  z = np.where(mask, np.asarray(logits, np.float64), -np.inf)
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return (p * np.arange(z.shape[-1])).sum(-1)


def np_alignment(seg, gt, feat, gt_feat, tr, td, ts):
  """e per candidate, looping over videos and candidates."""
  out = np.zeros(seg.shape[:2])
  for b in range(seg.shape[0]):
    g0, g1 = float(gt[b, 0]), float(gt[b, 1])
    for k in range(seg.shape[1]):
      s0, s1 = float(seg[b, k, 0]), float(seg[b, k, 1])
      inter = max(0.0, min(s1, g1) - max(s0, g0))
      union = (s1 - s0) + (g1 - g0) - inter
      dist = abs((s0 + s1) / 2 - (g0 + g1) / 2) / union
      x, y = np.float64(feat[b, k]), np.float64(gt_feat[b])
      cos = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
      out[b, k] = tr * inter / union + td * dist + ts * cos
  return out


class LossesTest(parameterized.TestCase):

  def test_l_reg_hand_and_random(self):
    # |2.5 - 2| + |7 - 9| = 2.5 ; |0 - 0| + |3 - 3| = 0.
    got = losses.l_reg(
        jnp.array([2.5, 0.0]), jnp.array([7.0, 3.0]), jnp.array([2.0, 0.0]), jnp.array([9.0, 3.0])
    )
    np.testing.assert_allclose(got, [2.5, 0.0])
    rng = np.random.default_rng(0)
    a, b, c, d = (rng.normal(size=5).astype(np.float32) * 4 for _ in range(4))
    np.testing.assert_allclose(
        losses.l_reg(a, b, c, d), np.abs(np.float64(a) - c) + np.abs(np.float64(b) - d), rtol=1e-6
    )

  def test_expected_boundaries(self):
    rng = np.random.default_rng(1)
    start, end = (rng.normal(size=(B, T)).astype(np.float32) * 3 for _ in range(2))
    mask = np.arange(T) < np.array([[T], [7]])
    s, e = losses.expected_boundaries(jnp.asarray(start), jnp.asarray(end), jnp.asarray(mask))
    np.testing.assert_allclose(s, np_softmax_expectation(start, mask), rtol=1e-5)
    np.testing.assert_allclose(e, np_softmax_expectation(end, mask) + 1, rtol=1e-5)
    # All the mass on clip 3 (start) and clip 5 (last clip) -> [3, 6).
    one = np.full((1, T), network.NEG, np.float32)
    s, e = losses.expected_boundaries(
        jnp.asarray(one).at[0, 3].set(0.0),
        jnp.asarray(one).at[0, 5].set(0.0),
        jnp.ones((1, T), bool),
    )
    np.testing.assert_allclose([s[0], e[0]], [3.0, 6.0])

  @parameterized.parameters((1.0, -1.0, 1.0), (0.3, 0.7, -2.0))
  def test_alignment_matches_numpy(self, tr, td, ts):
    rng = np.random.default_rng(2)
    starts = rng.integers(0, 10, size=(3, 4))
    seg = np.stack([starts, starts + rng.integers(1, 5, size=(3, 4))], -1)
    gs = rng.integers(0, 10, size=3)
    gt = np.stack([gs, gs + rng.integers(1, 6, size=3)], -1)
    feat = rng.normal(size=(3, 4, H)).astype(np.float32)
    gt_feat = rng.normal(size=(3, H)).astype(np.float32)
    e = losses.segment_alignment(
        jnp.asarray(seg, jnp.float32),
        jnp.asarray(gt, jnp.float32),
        jnp.asarray(feat),
        jnp.asarray(gt_feat),
        tr,
        td,
        ts,
    )
    expected = np_alignment(seg, gt, feat, gt_feat, tr, td, ts)
    np.testing.assert_allclose(e, expected, rtol=1e-5, atol=1e-6)
    valid = rng.random((3, 4)) > 0.3
    np.testing.assert_allclose(
        losses.l_ag(e, jnp.asarray(valid)), -(expected * valid).sum(-1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(losses.l_ag(e), -expected.sum(-1), rtol=1e-5, atol=1e-6)

  def test_alignment_hand(self):
    # Candidates vs gt [2, 6): identical (IoU 1, d 0); [0, 2) disjoint (I 0, U 6,
    # centres 1 and 4 -> d 1/2); [4, 8) overlap (I 2, U 6 -> IoU 1/3, d 2/6).
    seg = jnp.array([[[2.0, 6.0], [0.0, 2.0], [4.0, 8.0]]])
    gt = jnp.array([[2.0, 6.0]])
    f = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])[None]  # cos 1, 0, -1.
    g = jnp.array([[1.0, 0.0]])
    iou = losses.segment_alignment(seg, gt, f, g, 1.0, 0.0, 0.0)
    dist = losses.segment_alignment(seg, gt, f, g, 0.0, 1.0, 0.0)
    cos = losses.segment_alignment(seg, gt, f, g, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(iou, [[1.0, 0.0, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(dist, [[0.0, 0.5, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(cos, [[1.0, 0.0, -1.0]], atol=1e-6)
    both = losses.segment_alignment(seg, gt, f, g, 2.0, -1.0, 0.5)
    np.testing.assert_allclose(
        losses.l_ag(both), [-(2.5 + (-0.5) + (2 / 3 - 1 / 3 - 0.5))], rtol=1e-6
    )

  def test_saliency_loss(self):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(B, T)).astype(np.float32) * 2
    target = rng.random((B, T)).astype(np.float32)
    mask = np.arange(T) < np.array([[T], [4]])
    x = np.float64(logits)
    bce = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
    expected = (bce * mask).sum(-1) / mask.sum(-1)
    got = losses.saliency_loss(jnp.asarray(logits), jnp.asarray(target), jnp.asarray(mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Masked clips with NEG logits and target 1 change nothing.
    logits[~mask], target[~mask] = network.NEG, 1.0
    got = losses.saliency_loss(jnp.asarray(logits), jnp.asarray(target), jnp.asarray(mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  def test_total_loss_reg_scale_and_weights(self):
    rng = np.random.default_rng(4)
    mask = np.arange(T) < np.array([[T], [6]])
    start, end, sal = (
        np.where(mask, rng.normal(size=(B, T)), network.NEG).astype(np.float32) for _ in range(3)
    )
    out = {
        "start_logits": start,
        "end_logits": end,
        "saliency": sal,
        "features": rng.normal(size=(B, T, H)).astype(np.float32),
        "top_idx": np.array([[0, 4], [1, 2]], np.int32),
        "top_valid": np.ones((B, 2), bool),
    }
    gt, target = np.array([[2, 5], [1, 4]]), rng.random((B, T)).astype(np.float32)
    args = (out, jnp.asarray(mask), jnp.asarray(gt), jnp.asarray(target), 3)
    clips = losses.total_loss(*args, reg_scale="clips")
    raw = np.abs(np_softmax_expectation(start, mask) - gt[:, 0]) + np.abs(
        np_softmax_expectation(end, mask) + 1 - gt[:, 1]
    )
    np.testing.assert_allclose(clips["reg"], raw, rtol=1e-5)
    video = losses.total_loss(*args, w_ag=0.5, w_sal=2.0, w_reg=3.0)  # reg_scale "video".
    np.testing.assert_allclose(video["reg"], raw / [T, 6], rtol=1e-5)
    np.testing.assert_allclose(
        video["total"], 3.0 * video["reg"] + 0.5 * video["ag"] + 2.0 * video["saliency"], rtol=1e-5
    )
    with self.assertRaisesRegex(ValueError, "reg_scale='frames'"):
      losses.total_loss(*args, reg_scale="frames")


# ---------------------------------------------------- graph fine-tuning


def _graph_params(k, feats, mask):
  module = network.GraphFineTune(k)
  params = module.init(jax.random.PRNGKey(0), feats, mask)["params"]
  # Score = feature 0, so the hand-made features decide the top-k.
  kernel = np.zeros((H, 1), np.float32)
  kernel[0, 0] = 1.0
  params["scorer"] = {"kernel": jnp.asarray(kernel), "bias": jnp.zeros((1,))}
  return params


class GraphFineTuneTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(B, T, H)).astype(np.float32)
    feats[:, :, 0] = np.arange(T)  # Later clips score higher...
    self.mask = np.arange(T) < np.array([[9], [5]])  # ...but the last are masked.
    self.feats = feats

  def test_masked_never_picked(self):
    params = _graph_params(4, self.feats, self.mask)
    out = network.GraphFineTune(4).apply({"params": params}, self.feats, self.mask)
    np.testing.assert_array_equal(np.sort(out["top_idx"], -1), [[5, 6, 7, 8], [1, 2, 3, 4]])
    self.assertTrue(np.all(out["top_valid"]))
    self.assertTrue(np.all(out["logits"][~self.mask] == network.NEG))

  def test_fewer_valid_than_k_and_t_below_k(self):
    mask = np.arange(T) < np.array([[T], [3]])
    params = _graph_params(6, self.feats, mask)
    out = network.GraphFineTune(6).apply({"params": params}, self.feats, mask)
    self.assertEqual(out["top_valid"][1].sum(), 3)
    picked = np.asarray(out["top_idx"][1])[np.asarray(out["top_valid"][1])]
    np.testing.assert_array_equal(np.sort(picked), [0, 1, 2])
    short = self.feats[:, :5]
    params = _graph_params(8, short, mask[:, :5])
    out = network.GraphFineTune(8).apply({"params": params}, short, mask[:, :5])
    self.assertEqual(out["top_idx"].shape, (B, 5))
    self.assertTrue(np.all(np.isfinite(out["logits"])))

  def test_off_is_plain_scorer_and_refinement_is_local(self):
    params = _graph_params(4, self.feats, self.mask)
    params["scorer"]["kernel"] = jnp.asarray(
        np.random.default_rng(5).normal(size=(H, 1)).astype(np.float32)
    )
    on = network.GraphFineTune(4).apply({"params": params}, self.feats, self.mask)
    off = network.GraphFineTune(4, use_graph=False).apply(
        {"params": {"scorer": params["scorer"]}}, self.feats, self.mask
    )
    plain = self.feats @ np.asarray(params["scorer"]["kernel"])[:, 0]
    np.testing.assert_allclose(off["logits"], np.where(self.mask, plain, network.NEG), rtol=1e-5)
    picked = np.zeros((B, T), bool)
    np.put_along_axis(picked, np.asarray(on["top_idx"]), True, axis=1)
    np.testing.assert_array_equal(on["logits"][~picked], off["logits"][~picked])
    # Every valid pick is refined (a generic GCN output is not exactly zero).
    self.assertTrue(np.all(np.abs(on["logits"] - off["logits"])[picked] > 1e-6))


# ---------------------------------------------------- decoding, targets, IoU


class DecodingTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("argmax", [0, 1, 5, 2, 0, 0, 0, 0], [1] * 8, 3, (2, 5)),
      ("clipped_at_end", [0, 1, 0, 0, 0, 0, 0, 9], [1] * 8, 3, (5, 8)),
      ("masked_ignored", [0, 1, 0, 3, 0, 0, 9, 9], [1] * 6 + [0, 0], 2, (3, 5)),
      ("masked_end", [0, 0, 0, 0, 7, 0, 9, 9], [1] * 6 + [0, 0], 4, (2, 6)),
      ("longer_than_video", [0, 1, 0, 0, 0, 0, 0, 0], [1] * 3 + [0] * 5, 5, (0, 3)),
  )
  def test_decode(self, logits, mask, length, expected):
    logits, mask = np.array(logits, np.float32), np.array(mask, bool)
    self.assertEqual(targets.decode_segment(logits, mask, length), expected)
    got = targets.decode_segments(jnp.asarray(logits)[None], jnp.asarray(mask)[None], length)
    np.testing.assert_array_equal(got, [expected])

  def test_tvsum(self):
    # Window sums (length 2): 1+3=4, 3+0=3, 0+4=4, 4+0=4, 0+1=1 -> earliest is 0.
    self.assertEqual(targets.target_segment_tvsum([1, 3, 0, 4, 0, 1], 2), (0, 2))
    # Length 3: 4, 7, 4, 5 -> (1, 4).
    self.assertEqual(targets.target_segment_tvsum([1, 3, 0, 4, 0, 1], 3), (1, 4))
    # Two annotators averaged: mean [1, 1, 3, 1] -> window 2 best at 1 or 2 -> 1.
    self.assertEqual(targets.target_segment_tvsum([[2, 0, 4, 2], [0, 2, 2, 0]], 2), (1, 3))
    self.assertEqual(targets.target_segment_tvsum([1, 2], 5), (0, 2))

  def test_yth(self):
    self.assertEqual(targets.target_segment_yth([-1, 1, 1, 0, 1, 1, 1, -1]), (4, 7))
    self.assertEqual(targets.target_segment_yth([1, 1, -1, 1, 1]), (0, 2))  # Tie: earliest.
    self.assertEqual(targets.target_segment_yth([0, -1, 1, 1, 1]), (2, 5))  # Run at the end.
    self.assertEqual(targets.target_segment_yth([-1, -1, 0, 0]), (2, 3))  # No positive.

  def test_iou(self):
    self.assertAlmostEqual(targets.segment_iou((0, 4), (2, 6)), 2 / 6)
    self.assertEqual(targets.segment_iou((0, 2), (2, 4)), 0.0)
    self.assertEqual(targets.segment_iou((3, 7), (3, 7)), 1.0)
    self.assertAlmostEqual(targets.segment_iou((0, 10), (2, 9)), 0.7)
    s = targets.iou_summary([(0, 4), (3, 7), (0, 10), (0, 2)], [(2, 6), (3, 7), (2, 9), (5, 6)])
    self.assertAlmostEqual(s["mean_iou"], (1 / 3 + 1 + 0.7 + 0) / 4)
    self.assertEqual(s["share_iou_0.5"], 0.5)
    self.assertEqual(s["share_iou_0.7"], 0.5)
    with self.assertRaises(ValueError):
      targets.iou_summary([(0, 1)], [])


# ------------------------------------------------------------ the model


def _batch(seed=6):
  rng = np.random.default_rng(seed)
  visual = rng.normal(size=(B, T, DV)).astype(np.float32)
  text = rng.normal(size=(B, L, DT)).astype(np.float32)
  vmask = np.arange(T) < np.array([[T], [8]])
  tmask = np.arange(L) < np.array([[L], [3]])
  return visual, vmask, text, tmask


class VisualStreamTest(absltest.TestCase):

  def test_padded_equals_unpadded(self):
    # The reversed GRU must start at the last valid clip, not at the padding.
    visual, _, _, _ = _batch()
    stream = network.VisualStream(H)
    params = stream.init(jax.random.PRNGKey(3), visual, np.ones((B, T), bool))
    # Non-zero biases: with the zero-initialised ones, zero padding is a fixed point.
    leaves, tree = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(8)
    params = tree.unflatten([x + rng.normal(size=x.shape).astype(np.float32) for x in leaves])
    mask = np.arange(T) < 7
    padded = stream.apply(params, visual[:1], mask[None])
    alone = stream.apply(params, visual[:1, :7], np.ones((1, 7), bool))
    np.testing.assert_allclose(padded[0, :7], alone[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(padded[0, 7:], 0.0)


class ModelTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = network.TaoHighlight(hidden=H, heads=2, k=4, dropout=0.0)
    visual, vmask, text, tmask = _batch()
    cls.params = cls.model.init(jax.random.PRNGKey(0), visual, vmask, text, tmask)["params"]
    cls.apply = staticmethod(jax.jit(cls.model.apply))

  def test_shapes_and_masked_logits(self):
    visual, vmask, text, tmask = _batch()
    out = self.apply({"params": self.params}, visual, vmask, text, tmask)
    for key in ("saliency", "start_logits", "end_logits"):
      self.assertEqual(out[key].shape, (B, T))
      self.assertTrue(np.all(out[key][~vmask] == network.NEG))
      self.assertTrue(np.all(np.isfinite(out[key])))
    self.assertEqual(out["features"].shape, (B, T, H))
    self.assertEqual(out["top_idx"].shape, (B, 4))

  def test_masked_inputs_do_not_matter(self):
    visual, vmask, text, tmask = _batch()
    out = self.apply({"params": self.params}, visual, vmask, text, tmask)
    visual2, text2 = visual.copy(), text.copy()
    visual2[~vmask] = 100.0
    text2[~tmask] = -50.0
    out2 = self.apply({"params": self.params}, visual2, vmask, text2, tmask)
    for key in ("saliency", "start_logits", "end_logits"):
      np.testing.assert_allclose(out2[key][vmask], out[key][vmask], rtol=1e-5, atol=1e-5)
    # The text matters at all (else the check above could not fail for tokens).
    text3 = text.copy()
    text3[tmask] += 1.0
    out3 = self.apply({"params": self.params}, visual, vmask, text3, tmask)
    self.assertGreater(np.abs(out3["saliency"] - out["saliency"])[vmask].max(), 1e-5)

  def test_jit_matches_eager_and_text_none(self):
    visual, vmask, text, tmask = _batch()
    eager = self.model.apply({"params": self.params}, visual, vmask, text, tmask)
    jitted = self.apply({"params": self.params}, visual, vmask, text, tmask)
    np.testing.assert_allclose(jitted["saliency"], eager["saliency"], rtol=1e-4, atol=1e-5)
    # text=None and use_text=False both skip the co-attention's parameters.
    none = self.model.apply({"params": self.params}, visual, vmask)
    off = network.TaoHighlight(hidden=H, heads=2, k=4, dropout=0.0, use_text=False).apply(
        {"params": self.params}, visual, vmask, text, tmask
    )
    np.testing.assert_allclose(none["saliency"], off["saliency"], rtol=1e-6)
    self.assertTrue(np.all(np.isfinite(none["start_logits"])))

  def test_audio_context_and_train_mode(self):
    visual, vmask, _, _ = _batch()
    audio = np.random.default_rng(7).normal(size=(B, T, 3)).astype(np.float32)
    model = network.TaoHighlight(hidden=H, heads=2, k=4, dropout=0.5, context="audio")
    params = model.init(jax.random.PRNGKey(1), visual, vmask, audio=audio)["params"]
    self.assertIn("CoAttention_0", params)
    out = model.apply(
        {"params": params},
        visual,
        vmask,
        audio=audio,
        train=True,
        rngs={"dropout": jax.random.PRNGKey(2)},
    )
    self.assertEqual(out["saliency"].shape, (B, T))
    with self.assertRaisesRegex(ValueError, "context"):
      network.TaoHighlight(hidden=H, context="video").init(jax.random.PRNGKey(0), visual, vmask)

  def test_optax_step_reduces_loss(self):
    visual, vmask, text, tmask = _batch()
    gt = jnp.array([[2, 5], [4, 7]])
    t = np.arange(T)
    target = jnp.asarray(((t >= np.array(gt)[:, :1]) & (t < np.array(gt)[:, 1:])) * 1.0)

    def loss_fn(params):
      out = self.model.apply({"params": params}, visual, vmask, text, tmask)
      parts = losses.total_loss(out, jnp.asarray(vmask), gt, target, length=3)
      return jnp.mean(parts["total"])

    opt = optax.adam(1e-2)
    state = opt.init(self.params)
    loss0, grads = jax.jit(jax.value_and_grad(loss_fn))(self.params)
    leaves = jax.tree_util.tree_leaves(grads)
    self.assertTrue(all(np.all(np.isfinite(g)) for g in leaves))
    # Every parameter (both GRU directions, QFGA, co-attention, GCN) gets a gradient.
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    dead = [jax.tree_util.keystr(path) for path, g in flat if not np.any(g)]
    self.assertEqual(dead, [])
    updates, _ = opt.update(grads, state, self.params)
    loss1 = jax.jit(loss_fn)(optax.apply_updates(self.params, updates))
    self.assertTrue(np.isfinite(loss0))
    self.assertLess(float(loss1), float(loss0))


if __name__ == "__main__":
  absltest.main()
