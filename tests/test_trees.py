"""hl_jax.core.trees: flat paths of nested dicts, and a params tree checked against a template."""

import jax
import numpy as np
import pytest

from hl_jax.core import trees


def test_flatten_and_unflatten_are_inverse():
  tree = {"train": {"weighting": "softmax", "steps": 10}, "seed": 0}
  flat = trees.flatten(tree)
  assert flat == {"train.weighting": "softmax", "train.steps": 10, "seed": 0}
  assert trees.unflatten(flat) == tree
  params = {"Conv_0": {"kernel": 1, "bias": 2}, "Dense_0": {"kernel": 3}}
  assert trees.flatten(params, "/") == {"Conv_0/kernel": 1, "Conv_0/bias": 2, "Dense_0/kernel": 3}
  assert trees.unflatten(trees.flatten(params, "/"), "/") == params


def test_flat_shapes_of_arrays_traced_shapes_and_numbers():
  tree = {
      "a": {"w": np.zeros((2, 3))},
      "b": jax.ShapeDtypeStruct((4,), np.float32),
      "c": 1.5,
  }
  assert trees.flat_shapes(tree) == {"a/w": (2, 3), "b": (4,), "c": ()}


def test_check_shapes_names_each_leaf_in_one_line():
  want = {"a/w": (2, 3), "a/b": (3,), "c": (1,)}
  trees.check_shapes(
      {"a": {"w": np.zeros((2, 3)), "b": np.zeros(3)}, "c": np.zeros(1)}, want, "f", "M"
  )
  bad = {"a": {"w": np.zeros((3, 2))}, "c": np.zeros(1), "d": np.zeros(2)}
  with pytest.raises(ValueError) as error:
    trees.check_shapes(bad, want, "w.npz", "the model")
  assert str(error.value) == (
      "w.npz does not fit the model (3 leaves): a/b: missing; d: unexpected; "
      "a/w: shape (3, 2), expected (2, 3)"
  )
