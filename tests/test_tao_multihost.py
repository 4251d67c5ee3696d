"""TaoHighlight over two local JAX processes (2 CPU devices each) on 127.0.0.1.

Every process loads the whole (small) benchmark and builds the same global batch from
(seed, step); the batch is split over the 4 devices of both hosts. One process with 4
devices must log the same losses and reach the same mAP, and both resume alike.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import test_multihost  # tests/test_multihost.py: ports, device counts.

from hl_jax.data import benchmarks

TIMEOUT_S = 300


@pytest.fixture
def tvsum_data_dir(shared_data, tmp_path):
  data_dir = os.environ.get("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  benchmarks.load_benchmark(
      "tvsum",
      "val",
      manual_dir=str(shared_data / "tvsum"),
      data_dir=data_dir,
      feature_set="i3d_rgb_flow_audio",
  )  # Built once.
  return data_dir


def tao_args(workdir, data_dir, data_root, steps):
  return [
      "timeout",
      "-k",
      "5",
      str(TIMEOUT_S),
      sys.executable,
      "launch.py",
      "--config=configs/taohighlight.py:benchmark=tvsum,tiny",
      f"--workdir={workdir}",
      f"--config.data_dir={data_dir}",
      f"--config.data_root={data_root}",
      f"--config.train.num_steps={steps}",
  ]


def run(workdir, args_of, processes):
  port, procs = test_multihost.free_port(), []
  for i in range(processes):
    extra = (
        []
        if processes == 1
        else [
            "--config.distributed.initialize=True",
            f"--config.distributed.coordinator_address=127.0.0.1:{port}",
            f"--config.distributed.num_processes={processes}",
            f"--config.distributed.process_id={i}",
        ]
    )
    procs.append(
        subprocess.Popen(
            args_of(workdir) + extra,
            cwd=test_multihost.REPO,
            text=True,
            env=test_multihost.env_with_devices(4 // processes),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    )
  outs = [p.communicate()[0] for p in procs]
  assert [p.returncode for p in procs] == [0] * processes, "\n".join(o[-3000:] for o in outs)


def losses(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [(r["step"], r["train/total"]) for r in rows if "train/total" in r]


@pytest.mark.slow
def test_two_processes_match_one_process_and_resume(shared_data, tvsum_data_dir, tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  for steps in (2, 4):  # The second call resumes from step 2's checkpoint.
    args_of = lambda w, n=steps: tao_args(w, tvsum_data_dir, str(shared_data), n)
    run(one, args_of, 1)
    run(two, args_of, 2)
  steps_one, loss_one = zip(*losses(one))
  steps_two, loss_two = zip(*losses(two))
  assert steps_one == steps_two == (2, 4)
  np.testing.assert_allclose(loss_two, loss_one, rtol=2e-5)
  results = [json.load(open(os.path.join(w, "results.json"))) for w in (one, two)]
  assert results[0]["step"] == results[1]["step"] == 4
  assert results[1]["mAP"] == pytest.approx(results[0]["mAP"], abs=1e-6)
  assert results[1]["num_train_videos"] == 40
