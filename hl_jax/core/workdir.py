"""A training workdir: its lock, its config record, its evaluation history, its results.

  <workdir>/.lock            held by the run that owns the workdir (`exclusive`)
  <workdir>/config.json      the run's config, plus "scorer": what a scorer of
                             its checkpoints needs (family, feature width, ...)
  <workdir>/history.jsonl    every evaluation, one JSON line each (`EvalHistory`)
  <workdir>/results.json     the final results; results.md for people
  <workdir>/checkpoints/     Orbax (hl_jax.core.checkpointing)
  <workdir>/metrics.jsonl, tensorboard/   training curves (hl_jax.core.writers)

Files others read are written whole or not at all (`files.atomic_output`).
Only JAX process 0 writes here; the other processes of a multi-host run
share the workdir with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from typing import Any, Iterator, Mapping

from absl import logging
import jax
import ml_collections

from hl_jax.core import config_checks
from hl_jax.core import files

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.jsonl"
RESULTS_NAME = "results.json"


class WorkdirLockedError(RuntimeError):
  """Another run holds the workdir."""


def is_chief() -> bool:
  """Whether this process writes the workdir (JAX process 0)."""
  return jax.process_index() == 0


# ----------------------------------------------------------------------------
# The config record.


def save_config(workdir: str, config: ml_collections.ConfigDict, scorer: Mapping[str, Any]) -> None:
  """Writes `<workdir>/config.json` (process 0 only): the config and the scorer record.

  Args:
    workdir: the run's directory.
    config: the run's config.
    scorer: what loading a scorer of this run's checkpoints needs
      ({"family", "feature_dim", ...}), under the "scorer" key.
  """
  if is_chief():
    os.makedirs(workdir, exist_ok=True)
    record = json.loads(config.to_json_best_effort())
    record[config_checks.SCORER_KEY] = dict(scorer)
    files.write_json(os.path.join(workdir, CONFIG_NAME), record)


def read_config_json(workdir: str) -> dict[str, Any] | None:
  """`<workdir>/config.json` as written (None if there is none)."""
  path = os.path.join(workdir, CONFIG_NAME)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path} is not the JSON a training run writes ({e})") from e


def load_config(workdir: str) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
  """The config a workdir was trained with, in today's key names, and its scorer record.

  Workdirs written before the record existed get the record their config
  implies (`scorer` is then {"family"} only; the loader derives the rest).

  Raises:
    FileNotFoundError: no config.json (not a training workdir).
    ValueError: a config.json that is not JSON.
  """
  saved = read_config_json(workdir)
  if saved is None:
    raise FileNotFoundError(
        f"{os.path.join(workdir, CONFIG_NAME)} not found: {workdir} is " "not a training workdir"
    )
  scorer = dict(saved.get(config_checks.SCORER_KEY) or {})
  config = ml_collections.ConfigDict(config_checks.upgrade(saved))
  scorer.setdefault("family", config.model_family)
  return config, scorer


# ----------------------------------------------------------------------------
# The evaluation history and the results.


class EvalHistory:
  """The run's evaluations by step, kept in <workdir>/history.jsonl.

  The chief appends each evaluation as one JSON line. A resumed run reads the
  file back, keeping the entries up to its restored step (later ones came
  from steps it redoes) and the last entry of each step.
  """

  def __init__(self, workdir: str, restored_step: int):
    self._path = os.path.join(workdir, HISTORY_NAME)
    self._by_step: dict[int, dict[str, Any]] = {}
    stale = False
    if os.path.exists(self._path):
      with open(self._path) as f:
        for line in f:
          try:
            entry = json.loads(line)
          except json.JSONDecodeError:  # A line torn by a kill mid-write.
            stale = True
            continue
          if entry["step"] <= restored_step:
            self._by_step[entry["step"]] = entry
          else:
            stale = True
    if stale and is_chief():
      files.write_text(self._path, "".join(json.dumps(e) + "\n" for e in self.entries()))

  def add(self, results: dict[str, Any]) -> None:
    """Keeps (a shallow copy of) one evaluation, {"step", ...}; the chief appends it."""
    self._by_step[results["step"]] = dict(results)  # The caller adds keys to its own.
    if is_chief():
      with open(self._path, "a") as f:
        f.write(json.dumps(results) + "\n")

  def __contains__(self, step: int) -> bool:
    return step in self._by_step

  def entries(self) -> list[dict[str, Any]]:
    """Every evaluation, in step order."""
    return [self._by_step[step] for step in sorted(self._by_step)]


def write_results(workdir: str, results: Mapping[str, Any], markdown: str) -> None:
  """Writes <workdir>/results.json (programs) and results.md (people), each whole."""
  files.write_json(os.path.join(workdir, RESULTS_NAME), results)
  files.write_text(os.path.join(workdir, "results.md"), markdown)


# ----------------------------------------------------------------------------
# The lock.


@contextlib.contextmanager
def exclusive(workdir: str) -> Iterator[None]:
  """Holds `<workdir>/.lock` (an exclusive flock) for the body of the block.

  The lock dies with the process, so a killed run never leaves the workdir
  locked; the file stays, holding the last holder's "PID hostname". Only JAX
  process 0 takes the lock: the other processes of a multi-process run share
  the workdir with it by design, and cannot write to it without it.

  Args:
    workdir: the run's directory (created if missing).

  Raises:
    WorkdirLockedError: another process holds the lock. The message names the
      workdir and the holder's PID and host.
  """
  if not is_chief():
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_NAME)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      locked = True
    except BlockingIOError:
      raise WorkdirLockedError(
          f"workdir {workdir} is in use by another run: {_holder(fd)} holds "
          f"{path}. Wait for it to end, stop it, or use another --workdir."
      ) from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        raise
      # Some network filesystems do not implement locks; run, but say so.
      logging.warning("Cannot lock %s (%s); nothing stops a second run on %s", path, e, workdir)
      locked = False
    if locked:
      os.ftruncate(fd, 0)
      os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    try:
      yield
    finally:
      if locked:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


def _holder(fd: int) -> str:
  """ "process PID on HOST" as written by the lock's holder."""
  for _ in range(20):  # The holder writes just after locking.
    fields = os.pread(fd, 256, 0).decode(errors="replace").split()
    if len(fields) == 2:
      return f"process {fields[0]} on {fields[1]}"
    time.sleep(0.05)
  return "an unknown process"
