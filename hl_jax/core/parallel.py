"""Data parallelism: one `jax.jit` over a named 2-D mesh, ('shard', 'data').

`pmap` is legacy in current JAX (built on jit + shard_map). hl_jax compiles
one step over global arrays instead. The mesh has S rows, one per input shard
(a host's slice of the corpus and its resident table), and N / S columns of
data-parallel replicas. The segment table is split over 'shard' (each host's
devices hold that host's table), the train state is replicated, and the [m, n]
pair groups are split over both axes along m, so the batch spans all hosts.
XLA inserts the gradient all-reduce. A group is never split across devices, so
the per-group softmax is the same on 1 device or many.
"""

from __future__ import annotations

from typing import Sequence

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

SHARD_AXIS = "shard"


DATA_AXIS = "data"


BATCH_AXES = (SHARD_AXIS, DATA_AXIS)


def make_mesh(devices: Sequence[jax.Device] | None = None, num_shards: int = 1) -> Mesh:
  """An (S, N / S) mesh; row s holds the devices of the host reading shard s.

  Args:
    devices: the devices to use (default: all devices of all hosts).
    num_shards: S, the number of input shards (a multiple of the host count).
  """
  devices = jax.devices() if devices is None else list(devices)
  devices = sorted(devices, key=lambda d: (d.process_index, d.id))
  if len(devices) % num_shards:
    raise ValueError(
        f"input.num_shards={num_shards} does not divide the " f"{len(devices)} devices"
    )
  return Mesh(np.asarray(devices).reshape(num_shards, -1), (SHARD_AXIS, DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (group) axis split over all devices, shard-major."""
  return NamedSharding(mesh, P(BATCH_AXES))


def per_shard(mesh: Mesh) -> NamedSharding:
  """Leading [S] axis over 'shard', replicated over 'data' (the tables)."""
  return NamedSharding(mesh, P(SHARD_AXIS))


def per_shard_groups(mesh: Mesh) -> NamedSharding:
  """[S, m / S, ...] arrays: shards over 'shard', their groups over 'data'."""
  return NamedSharding(mesh, P(SHARD_AXIS, DATA_AXIS))


def first_replica(tree):
  """Host numpy copies of replicated global arrays (works on every host)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def initialize_distributed(config) -> None:
  """Starts multi-host JAX as `config.distributed` says; call before any jax use.

  - distributed.initialize=False (default): single host, nothing to do.
  - initialize=True, coordinator_address="": `jax.distributed.initialize()`
    detects the cluster itself (TPU pod slices, SLURM, Open MPI, ...).
  - initialize=True with coordinator_address="host:port", num_processes and
    process_id: an explicit GPU/CPU cluster (or local processes on 127.0.0.1).
  """
  dist = config.distributed
  if not dist.initialize:
    return
  if dist.coordinator_address:
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address,
        num_processes=dist.num_processes,
        process_id=dist.process_id,
    )
  else:
    jax.distributed.initialize()
