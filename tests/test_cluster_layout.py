"""hl_jax.core.parallel: GPU clusters under SLURM / Open MPI, where JAX gives a task one GPU."""

import pytest

from hl_jax.core import parallel

_SLURM = {"SLURM_JOB_ID": "7", "SLURM_LOCALID": "0", "SLURM_GPUS_ON_NODE": "8"}


@pytest.mark.parametrize(
    "env, idle",
    [
        ({**_SLURM, "SLURM_NTASKS_PER_NODE": "1"}, 7),  # One task per node: 7 of 8 GPUs idle.
        ({**_SLURM, "SLURM_TASKS_PER_NODE": "2(x4)"}, 6),
        ({**_SLURM, "SLURM_TASKS_PER_NODE": "8(x2)"}, None),  # One task per GPU.
        ({**_SLURM, "SLURM_NTASKS_PER_NODE": "1", "JAX_LOCAL_DEVICE_IDS": "0,1,2,3,4,5,6,7"}, None),
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "2", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 2),
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "4", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, None),
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "1"}, None),  # GPUs unknown: nothing said.
        ({"SLURM_JOB_ID": "7", "SLURM_LOCALID": "0"}, None),  # No GPUs allocated.
        ({}, None),
    ],
)
def test_gpu_layout_problem_names_the_idle_gpus(env, idle):
  problem = parallel.gpu_layout_problem(env)
  if idle is None:
    assert problem == ""
  else:
    assert f"{idle} GPUs stay idle" in problem and "\n" not in problem
    assert "JAX_LOCAL_DEVICE_IDS=0,...," in problem


def test_local_device_ids_from_the_environment():
  assert parallel.local_device_ids({}) is None
  assert parallel.local_device_ids({"JAX_LOCAL_DEVICE_IDS": ""}) is None
  assert parallel.local_device_ids({"JAX_LOCAL_DEVICE_IDS": "0,1,2,3"}) == [0, 1, 2, 3]
  with pytest.raises(ValueError, match="JAX_LOCAL_DEVICE_IDS='0;1' must be comma-separated"):
    parallel.local_device_ids({"JAX_LOCAL_DEVICE_IDS": "0;1"})
