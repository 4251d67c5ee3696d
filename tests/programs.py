"""Running the repository's programs as users run them: `python -m <module> --flags`.

Tests import this module by name (pytest puts tests/ on sys.path, as tests are
not a package):

  import programs
  done = programs.run("hl_jax.predict", f"--workdir={workdir}", ...)
  assert done.returncode == 0, done.stderr
  process = programs.start_launch(workdir, "--config=configs/tiny.py", time_limit_s=300)
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(module: str, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
  """`python -m module *args` from the repository root, stdout and stderr captured as text.

  Args:
    module: the program ("hl_jax.predict").
    *args: its flags.
    timeout: seconds before subprocess.TimeoutExpired.
    **env: environment variables beside this process's (and PYTHONPATH=the repository).

  Returns:
    The finished process (never raises for a non-zero exit status).
  """
  return subprocess.run(
      [sys.executable, "-m", module, *args],
      cwd=REPO,
      env=dict(os.environ, PYTHONPATH=str(REPO), **env),
      capture_output=True,
      text=True,
      timeout=timeout,
      check=False,
  )


def start_launch(
    workdir: str | os.PathLike[str], *args: str, time_limit_s: float
) -> subprocess.Popen:
  """Starts `launch.py *args --workdir=<workdir>` on 4 CPU devices, logging to <workdir>.log.

  It runs under `timeout -k 5 <time_limit_s>` in a session of its own (a
  signal to its group reaches launch.py's python, the child of `timeout`).

  Args:
    workdir: the run's workdir.
    *args: launch.py's flags (--config=..., --config.<key>=...).
    time_limit_s: seconds before `timeout` ends it.

  Returns:
    The running `timeout` process.
  """
  command = ["timeout", "-k", "5", str(time_limit_s), sys.executable, "launch.py", *args]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
  with open(f"{os.fspath(workdir)}.log", "ab") as log:
    return subprocess.Popen(
        command + [f"--workdir={os.fspath(workdir)}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
