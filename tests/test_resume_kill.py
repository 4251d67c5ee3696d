"""A launch.py run killed with SIGKILL resumes exactly: bit-identical on CPU, both families.

Each case starts the real `launch.py` twice on a tiny config: one run goes
straight through; the other is killed (SIGKILL, no chance to clean up) at an
arbitrary step after its second checkpoint, possibly in the middle of a save,
and is then started again with the same command. The table is refilled every
25 steps, so the restart also re-reads a Grain window from its saved start:
read in the training process, or by Grain worker processes
(`input.num_workers=2`, whose iterator state the checkpoint holds too).
TaoHighlight's case trains the tiny model on the real TVSum data (skipped
without it), whose batches follow from (seed, step) alone.
"""

import json
import os
import pathlib
import random
import re
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from hl_jax.core import checkpointing
from hl_jax.core import workdir as workdir_lib

import programs

NUM_STEPS, EVERY = 100, 10
# TaoHighlight's tiny model on the real TVSum features takes ~4x as long a step.
TAO_STEPS = 40
TIME_LIMIT_S = 300  # Per run, enforced by `timeout -k`.


def start(workdir: pathlib.Path, data_dir: str, case: str, *flags: str) -> subprocess.Popen:
  """launch.py (plus `flags`) in its own process group, logging to <workdir>.log."""
  if case == "taohighlight":
    config = ["--config=configs/taohighlight.py:tiny", "--config.train.log_every=5"]
  else:
    config = [
        "--config=configs/tiny.py",
        f"--config.train.weighting={case}",
        "--config.input.window_videos=30",
        "--config.input.refill_every_steps=25",
    ]
  return programs.start_launch(
      workdir,
      *config,
      f"--config.data_dir={data_dir}",
      f"--config.train.num_steps={TAO_STEPS if case == 'taohighlight' else NUM_STEPS}",
      f"--config.checkpoint.every_steps={EVERY}",
      *flags,
      time_limit_s=TIME_LIMIT_S,
  )


def finish(process: subprocess.Popen, workdir: pathlib.Path) -> str:
  """Waits for a run that should succeed; returns its log."""
  process.wait()
  log = pathlib.Path(f"{workdir}.log").read_text()
  assert process.returncode == 0, log[-3000:]
  return log


def finished_steps(workdir: pathlib.Path) -> list[int]:
  checkpoints = workdir / "checkpoints"
  names = os.listdir(checkpoints) if checkpoints.is_dir() else []
  return sorted(int(name) for name in names if name.isdigit())


def kill_after_second_checkpoint(
    process: subprocess.Popen, workdir: pathlib.Path, delay_s: float
) -> None:
  """SIGKILLs the run `delay_s` after its second checkpoint is complete."""
  deadline = time.time() + TIME_LIMIT_S
  while not any(step >= 2 * EVERY for step in finished_steps(workdir)):
    assert process.poll() is None, "the run ended before its second checkpoint"
    assert time.time() < deadline
    time.sleep(0.005)
  time.sleep(delay_s)
  os.killpg(process.pid, signal.SIGKILL)  # timeout and python: the whole group.
  process.wait()
  assert process.returncode == -signal.SIGKILL
  wait_until_unlocked(workdir)
  assert not (
      workdir / "results.json"
  ).exists(), "the run finished before it was killed; raise its number of steps"


def wait_until_unlocked(workdir: pathlib.Path, timeout_s: float = 10.0) -> None:
  """Until the killed python (a child of `timeout`) has died and let go."""
  deadline = time.time() + timeout_s
  while True:
    try:
      with workdir_lib.exclusive(str(workdir)):
        return
    except workdir_lib.WorkdirLockedError:
      assert time.time() < deadline, "the killed run still holds the workdir"
      time.sleep(0.02)


def final_state(workdir: pathlib.Path, num_steps: int):
  state = checkpointing.restore_state(str(workdir))
  assert int(state["step"]) == num_steps
  return state


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, num_workers",
    [("softmax", 0), ("ranking_em", 0), ("ranking_d", 0), ("softmax", 2), ("taohighlight", 0)],
)
def test_sigkill_then_rerun_matches_an_uninterrupted_run(
    tiny_data_dir, tmp_path, request, variant, num_workers
):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  flags = [f"--config.input.num_workers={num_workers}"]
  if variant == "taohighlight":
    shared = request.getfixturevalue("shared_data")
    flags = [f"--config.data_root={shared}"]
  processes = [
      start(straight, tiny_data_dir, variant, *flags),
      start(killed, tiny_data_dir, variant, *flags),
  ]
  try:
    delay_s = random.Random(f"{variant}{num_workers or ''}").uniform(0.0, 0.3)
    kill_after_second_checkpoint(processes[1], killed, delay_s)
    left = sorted(os.listdir(killed / "checkpoints"))
    unfinished = [name for name in left if name.endswith(checkpointing.TMP_SUFFIX)]
    print(
        f"{variant}, {num_workers} workers: killed {delay_s:.3f} s after checkpoint "
        f"{2 * EVERY}; left {left}"
    )
    processes[1] = start(killed, tiny_data_dir, variant, *flags)  # The same command again.
    log = finish(processes[1], killed)
    finish(processes[0], straight)
  finally:
    for process in processes:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

  restored = [int(s) for s in re.findall(r"Restoring checkpoint at step (\d+)", log)]
  num_steps = TAO_STEPS if variant == "taohighlight" else NUM_STEPS
  assert restored and 2 * EVERY <= restored[-1] < num_steps, restored
  if unfinished:  # Killed during a save: the restart said what it skipped.
    assert "unfinished save" in log
  expected, got = final_state(straight, num_steps), final_state(killed, num_steps)
  assert jax.tree.structure(expected) == jax.tree.structure(got)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
  results = [json.loads((w / "results.json").read_text()) for w in (straight, killed)]
  for result in results:
    del result["wall_s"]  # Seconds of the process that wrote it.
  assert results[0] == results[1]
