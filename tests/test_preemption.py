"""A preemption notice (SIGTERM) saves the step the run reached; the rerun resumes exactly.

The real `launch.py` trains the tiny config with no periodic checkpoints
(`checkpoint.every_steps` past the end), gets a SIGTERM once it has logged a
few steps, and must save a checkpoint of the very step it stopped at, say so
in one line and exit with status 143. The same command (to a later step)
resumes from there and ends bit-identical to an uninterrupted run. Two hosts
stopped by a notice to one of them: tests/test_cloud_workdirs.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from hl_jax.core import checkpointing

import programs

TIME_LIMIT_S = 200  # Per run, enforced by `timeout -k`.
MORE_STEPS = 15  # Trained after the stop.


def start(workdir: pathlib.Path, data_dir: str, num_steps: int, every: int) -> subprocess.Popen:
  return programs.start_launch(
      workdir,
      "--config=configs/tiny.py",
      f"--config.data_dir={data_dir}",
      f"--config.train.num_steps={num_steps}",
      f"--config.checkpoint.every_steps={every}",
      "--config.train.log_every=5",
      "--config.input.window_videos=30",
      "--config.input.refill_every_steps=25",
      time_limit_s=TIME_LIMIT_S,
  )


def logged_steps(workdir: pathlib.Path) -> list[int]:
  path = workdir / "metrics.jsonl"
  lines = path.read_text().splitlines() if path.exists() else []
  return [row["step"] for row in map(json.loads, lines) if "train/loss" in row]


def python_child(process: subprocess.Popen) -> int:
  """launch.py's python: the child of `timeout`."""
  children = pathlib.Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
  return int(children.split()[0])


@pytest.mark.slow
def test_sigterm_saves_the_step_reached_and_the_rerun_resumes_exactly(tiny_data_dir, tmp_path):
  stopped, straight = tmp_path / "stopped", tmp_path / "straight"
  run = start(stopped, tiny_data_dir, num_steps=100_000, every=100_000)
  processes = [run]
  try:
    deadline = time.time() + TIME_LIMIT_S
    while max(logged_steps(stopped), default=0) < 10:  # Metrics flushed: past step 10.
      assert run.poll() is None and time.time() < deadline, pathlib.Path(
          f"{stopped}.log"
      ).read_text()
      time.sleep(0.05)
    reached = max(logged_steps(stopped))
    os.kill(python_child(run), signal.SIGTERM)
    assert run.wait() == 143, pathlib.Path(f"{stopped}.log").read_text()[-3000:]
    log = pathlib.Path(f"{stopped}.log").read_text()
    step = int(re.search(r"Preempted at step (\d+): its checkpoint is saved", log).group(1))
    assert f"launch.py: preempted at step {step}: its checkpoint is saved; rerun the same " in log
    assert "Traceback" not in log
    # The step it reached, not a multiple of checkpoint.every_steps (none came).
    assert step >= reached
    assert sorted(os.listdir(stopped / "checkpoints")) == [str(step)]
    assert not (stopped / "results.json").exists()

    # The same command, to a later step; and an uninterrupted run to that step.
    end = step + MORE_STEPS
    processes += [
        start(stopped, tiny_data_dir, end, every=10),
        start(straight, tiny_data_dir, end, every=10),
    ]
    assert [p.wait() for p in processes[1:]] == [0, 0], pathlib.Path(f"{stopped}.log").read_text()[
        -3000:
    ]
  finally:
    for process in processes:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
  log = pathlib.Path(f"{stopped}.log").read_text()
  assert f"Restoring checkpoint at step {step} " in log
  expected, got = (checkpointing.restore_workdir(str(w))[1] for w in (straight, stopped))
  assert int(got["step"]) == end
  assert jax.tree.structure(expected) == jax.tree.structure(got)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
  results = [json.loads((w / "results.json").read_text()) for w in (straight, stopped)]
  for result in results:
    del result["wall_s"]
  assert results[0] == results[1]
