"""Two local JAX processes (2 CPU devices each) on 127.0.0.1 against one process.

Each process reads its own input shard into its own table; the global batch
spans both. One process with 4 devices and input.num_shards=2 reads the same
shards, so both runs must log the same losses, and both must resume from their
checkpoints.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  dcb.get_builder("synthetic_tiny", data_dir=path)  # Built once, not raced.
  return path


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch_args(workdir, data_dir, steps):
  return [
      sys.executable,
      "launch.py",
      "--config=configs/tiny.py",
      f"--workdir={workdir}",
      f"--config.data_dir={data_dir}",
      f"--config.train.num_steps={steps}",
  ]


def env_with_devices(count):
  env = dict(
      os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={count}"
  )
  return env


def run_two_processes(workdir, data_dir, steps):
  port = free_port()
  procs, logs = [], []
  for i in range(2):
    args = (
        ["timeout", "-k", "5", str(TIMEOUT_S)]
        + launch_args(workdir, data_dir, steps)
        + [
            "--config.distributed.initialize=True",
            f"--config.distributed.coordinator_address=127.0.0.1:{port}",
            "--config.distributed.num_processes=2",
            f"--config.distributed.process_id={i}",
        ]
    )
    log = open(
        os.path.join(os.path.dirname(workdir), f"{os.path.basename(workdir)}_p{i}.log"), "w+"
    )
    procs.append(
        subprocess.Popen(
            args, cwd=REPO, env=env_with_devices(2), stdout=log, stderr=subprocess.STDOUT
        )
    )
    logs.append(log)
  codes = [p.wait() for p in procs]
  texts = []
  for log in logs:
    log.seek(0)
    texts.append(log.read())
  assert codes == [0, 0], "\n".join(t[-3000:] for t in texts)
  return texts


def run_one_process(workdir, data_dir, steps):
  args = (
      ["timeout", "-k", "5", str(TIMEOUT_S)]
      + launch_args(workdir, data_dir, steps)
      + ["--config.input.num_shards=2"]
  )
  done = subprocess.run(args, cwd=REPO, env=env_with_devices(4), capture_output=True, text=True)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return done.stderr


def losses(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]


@pytest.mark.slow
def test_two_processes_match_one_process_and_resume(data_dir, tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  run_one_process(one, data_dir, 10)
  run_two_processes(two, data_dir, 10)
  # Checkpoints were written by both hosts, then both resume from them.
  run_one_process(one, data_dir, 20)
  texts = run_two_processes(two, data_dir, 20)
  for text in texts:
    assert "Restoring checkpoint at step 10" in text
  steps_one, loss_one = zip(*losses(one))
  steps_two, loss_two = zip(*losses(two))
  assert steps_one == steps_two == (5, 10, 15, 20)
  np.testing.assert_allclose(loss_two, loss_one, rtol=2e-5)
