"""One run per workdir: a second process is refused while the first holds it."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from hl_jax.core import workdir as workdir_lib

_REPO = pathlib.Path(__file__).resolve().parents[1]
_ENV = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
_HOLD = textwrap.dedent("""
    import os, sys, time
    from hl_jax.core import workdir as workdir_lib
    with workdir_lib.exclusive(sys.argv[1]):
      print(os.getpid(), flush=True)
      time.sleep(float(sys.argv[2]))
""")


def python(*args: str, **kwargs) -> subprocess.Popen:
  """`python -c ...` under timeout, in its own process group, at the repo root."""
  return subprocess.Popen(
      ["timeout", "-k", "5", "120", sys.executable, *args],
      cwd=_REPO,
      env=_ENV,
      start_new_session=True,
      text=True,
      **kwargs,
  )


def kill(process: subprocess.Popen) -> None:
  if process.poll() is None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for_release(workdir: str, timeout_s: float = 10.0) -> None:
  """Takes and drops the lock once its killed holder has finished dying."""
  deadline = time.time() + timeout_s
  while True:
    try:
      with workdir_lib.exclusive(workdir):
        return
    except workdir_lib.WorkdirLockedError:
      if time.time() > deadline:
        raise
      time.sleep(0.02)


def test_second_process_is_refused_until_the_holder_dies(tmp_path):
  workdir = str(tmp_path / "workdir")
  holder = python("-c", _HOLD, workdir, "100", stdout=subprocess.PIPE)
  try:
    pid = int(holder.stdout.readline())
    refused = python("-c", _HOLD, workdir, "0", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = refused.communicate(timeout=60)
    assert refused.returncode != 0 and not out
    message = err.strip().splitlines()[-1]
    assert message == (
        f"hl_jax.core.workdir.WorkdirLockedError: workdir {workdir} is in use "
        f"by another run: process {pid} on {socket.gethostname()} holds "
        f"{workdir}/.lock. Wait for it to end, stop it, or use another --workdir."
    )
    # In this process too (flock is per open file, not per process).
    with pytest.raises(workdir_lib.WorkdirLockedError, match=f"process {pid} "):
      with workdir_lib.exclusive(workdir):
        pass
    assert holder.poll() is None
  finally:
    kill(holder)  # SIGKILL: no clean-up runs, yet the kernel drops the lock.
  wait_for_release(workdir)
  with workdir_lib.exclusive(workdir):
    content = (tmp_path / "workdir" / ".lock").read_text()
    assert content == f"{os.getpid()} {socket.gethostname()}\n"
  assert (tmp_path / "workdir" / ".lock").read_text() == ""


def test_lock_is_released_when_the_block_raises(tmp_path):
  with pytest.raises(ZeroDivisionError):
    with workdir_lib.exclusive(str(tmp_path)):
      _ = 1 / 0
  with workdir_lib.exclusive(str(tmp_path)):
    pass


def test_second_launch_on_a_running_workdir_is_refused(tmp_path):
  workdir = tmp_path / "workdir"
  data_dir = tmp_path / "tfds"
  command = [
      "launch.py",
      "--config=configs/tiny.py",
      f"--workdir={workdir}",
      f"--config.data_dir={data_dir}",
      "--config.train.num_steps=1000000",
  ]
  first = python(*command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    lock = workdir / ".lock"
    deadline = time.time() + 100
    while not (lock.exists() and lock.read_text()):
      assert first.poll() is None and time.time() < deadline
      time.sleep(0.05)
    holder = int(lock.read_text().split()[0])
    # The holder is launch.py's python, the child of `timeout`.
    assert pathlib.Path(f"/proc/{holder}/stat").read_text().split()[3] == str(first.pid)
    second = python(*command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log, _ = second.communicate(timeout=100)
    assert second.returncode == 1, log[-3000:]
    assert (
        f"launch.py: error: workdir {workdir} is in use by another run: "
        f"process {holder} on {socket.gethostname()} holds {lock}."
    ) in log, log[-3000:]
    assert "Traceback" not in log
    assert "Training steps" not in log
    assert first.poll() is None  # The first run goes on.
  finally:
    kill(first)
  wait_for_release(str(workdir))  # Freed by its death.
