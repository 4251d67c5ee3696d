"""Data parallelism: one `jax.jit` over a named mesh with a `data` axis.

`pmap` is legacy in current JAX (built on jit + shard_map). hl_jax instead
compiles one step over global arrays: the state and the segment table are
replicated, the [m, n] pair groups are sharded over `data` along m, and XLA
inserts the gradient all-reduce. A group is never split across devices, so the
per-group softmax is the same on 1 device or many.
"""

from __future__ import annotations

from typing import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of all hosts)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Leading axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_divisible(num_groups: int, mesh: Mesh, key: str) -> None:
  """Raises before compiling when groups cannot be split evenly."""
  count = mesh.shape[DATA_AXIS]
  if num_groups % count:
    raise ValueError(
        f"{key}={num_groups} is not divisible by the {count} devices of the "
        f"'{DATA_AXIS}' mesh axis")
