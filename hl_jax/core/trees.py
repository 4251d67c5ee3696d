"""Nested dicts as flat {path: leaf} maps, and a params tree checked against the module's.

One copy of the flattening that configs ("train.weighting"), weights files
("Conv_0/kernel") and the weight checks share.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np


def flatten(tree: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1} (`sep` between the keys of a path)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update({f"{key}{sep}{k}": v for k, v in flatten(value, sep).items()})
    else:
      flat[str(key)] = value
  return flat


def unflatten(flat: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
  """{"a.b": 1} -> {"a": {"b": 1}}: the inverse of `flatten`."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split(sep)
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  return tree


def flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{'params/Mixed_3b/Branch_0/Conv3d_0a_1x1/Conv_0/kernel': shape, ...} of any pytree.

  Leaves are arrays, `jax.ShapeDtypeStruct`s or numbers (shape ()).
  """
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {
      "/".join(str(getattr(k, "key", k)) for k in path): tuple(np.shape(leaf))
      for path, leaf in leaves
  }


def check_shapes(tree: Any, want: Mapping[str, tuple[int, ...]], source: str, what: str) -> None:
  """Raises one ValueError naming each leaf of `tree` whose path or shape differs from `want`.

  Args:
    tree: the loaded params (or variables) pytree.
    want: `flat_shapes` of the module's own tree.
    source: where `tree` came from (a file), for the message.
    what: what it should fit ("InceptionI3d"), for the message.
  """
  got = flat_shapes(tree)
  problems = [f"{k}: missing" for k in sorted(set(want) - set(got))]
  problems += [f"{k}: unexpected" for k in sorted(set(got) - set(want))]
  problems += [
      f"{k}: shape {got[k]}, expected {want[k]}"
      for k in sorted(set(got) & set(want))
      if got[k] != want[k]
  ]
  if problems:
    raise ValueError(
        f"{source} does not fit {what} ({len(problems)} leaves): " + "; ".join(problems)
    )
