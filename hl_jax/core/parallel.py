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

import os
import re
from typing import Mapping, Sequence

from absl import logging
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

  Under SLURM or Open MPI on GPUs, JAX gives each process ONE GPU, the one
  numbered by its local rank (SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK),
  unless $JAX_LOCAL_DEVICE_IDS lists the GPUs a process drives: run one task
  per GPU, or one per host with JAX_LOCAL_DEVICE_IDS=0,1,...; a layout with
  fewer tasks than GPUs on a node is logged as a warning (`gpu_layout_problem`).
  """
  dist = config.distributed
  if not dist.initialize:
    return
  problem = gpu_layout_problem(os.environ)
  if problem:
    logging.warning("%s", problem)
  # Passed on explicitly: older jax releases do not read the variable themselves.
  devices = local_device_ids(os.environ)
  if dist.coordinator_address:
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address,
        num_processes=dist.num_processes,
        process_id=dist.process_id,
        local_device_ids=devices,
    )
  else:
    jax.distributed.initialize(local_device_ids=devices)


def local_device_ids(env: Mapping[str, str]) -> list[int] | None:
  """$JAX_LOCAL_DEVICE_IDS ("0,1,2,3") as a list, None if unset or empty.

  Raises:
    ValueError: a value that is not comma-separated integers.
  """
  text = env.get("JAX_LOCAL_DEVICE_IDS", "").strip()
  if not text:
    return None
  try:
    return [int(part) for part in text.split(",")]
  except ValueError:
    raise ValueError(
        f"JAX_LOCAL_DEVICE_IDS={text!r} must be comma-separated device numbers, e.g. 0,1,2,3"
    ) from None


def gpu_layout_problem(env: Mapping[str, str]) -> str:
  """Why a SLURM / Open MPI job would leave GPUs idle under JAX's detection ("" if not).

  JAX's cluster detection gives each SLURM or Open MPI task the one GPU of its
  local rank, so a node with G GPUs needs G tasks, unless JAX_LOCAL_DEVICE_IDS
  says which GPUs a task drives.

  Args:
    env: the process's environment variables.
  """
  if env.get("JAX_LOCAL_DEVICE_IDS"):
    return ""
  if "SLURM_JOB_ID" in env and "SLURM_LOCALID" in env:
    tasks = _leading_int(env.get("SLURM_NTASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE", ""))
    gpus = _leading_int(env.get("SLURM_GPUS_ON_NODE", ""))
    launcher = "SLURM"
  elif "OMPI_COMM_WORLD_LOCAL_SIZE" in env:
    tasks = _leading_int(env["OMPI_COMM_WORLD_LOCAL_SIZE"])
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    gpus = len([d for d in visible.split(",") if d.strip()]) if visible else None
    launcher = "Open MPI"
  else:
    return ""
  if tasks is None or gpus is None or tasks >= gpus:
    return ""
  return (
      f"{launcher} runs {tasks} task(s) on this node, which has {gpus} GPUs, and JAX gives "
      f"each task one GPU: {gpus - tasks} GPUs stay idle. Run one task per GPU (e.g. srun "
      f"--ntasks-per-node={gpus}), or set JAX_LOCAL_DEVICE_IDS=0,...,{gpus - 1} in a "
      "single task per node."
  )


def _leading_int(text: str) -> int | None:
  """The first integer in `text` ("8(x2)" -> 8), None if there is none."""
  found = re.match(r"\s*(\d+)", text)
  return int(found.group(1)) if found else None
