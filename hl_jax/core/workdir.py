"""A training workdir: its lock, its config record, its evaluation history, its results.

  <workdir>/.lock            held by the run that owns a local workdir (`exclusive`)
  <workdir>/.lease           the same for a workdir on an object store (gs://, s3://)
  <workdir>/config.json      the run's config, plus "scorer": what a scorer of
                             its checkpoints needs (family, feature width, ...)
  <workdir>/history.jsonl    every evaluation, one JSON line each (`EvalHistory`)
  <workdir>/results.json     the final results; results.md for people
  <workdir>/checkpoints/     Orbax (hl_jax.core.checkpointing)
  <workdir>/metrics.jsonl, tensorboard/   training curves (hl_jax.core.writers)

A workdir is a local path or a URL (`--workdir=gs://bucket/runs/a`): every
file here is read and written through etils.epath, so the hosts of a pod
share one workdir on cloud storage. Files others read are written whole or
not at all (`files.atomic_output`; on an object store an upload is). Only JAX
process 0 writes here; the other processes of a multi-host run share the
workdir with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import socket
import threading
import time
from typing import Any, Iterator, Mapping
import uuid

from absl import logging
from etils import epath
import fsspec
import jax
import ml_collections
import numpy as np

from hl_jax.core import config_checks
from hl_jax.core import files

LOCK_NAME = ".lock"
LEASE_NAME = ".lease"
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.jsonl"
RESULTS_NAME = "results.json"

# The holder of a lease rewrites it every LEASE_RENEW_S seconds; one not
# renewed for LEASE_STALE_S (ten renewals missed) was left by a run that died
# and is taken over by the next run.
LEASE_RENEW_S = 60.0
LEASE_STALE_S = 600.0


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
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    record = json.loads(config.to_json_best_effort())
    record[config_checks.SCORER_KEY] = dict(scorer)
    files.write_json(os.path.join(workdir, CONFIG_NAME), record)


def read_config_json(workdir: str) -> dict[str, Any] | None:
  """`<workdir>/config.json` as written (None if there is none)."""
  path = os.path.join(workdir, CONFIG_NAME)
  try:
    text = _read_text(path)
    return None if text is None else json.loads(text)
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

  The chief appends each evaluation as one JSON line (on an object store,
  which cannot append, it rewrites the file whole). A resumed run reads the
  file back, keeping the entries up to its restored step (later ones came
  from steps it redoes) and the last entry of each step.
  """

  def __init__(self, workdir: str, restored_step: int):
    self._path = os.path.join(workdir, HISTORY_NAME)
    self._remote = files.is_remote(workdir)
    self._by_step: dict[int, dict[str, Any]] = {}
    stale = False
    for line in (_read_text(self._path) or "").splitlines():
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
      self._rewrite()

  def add(self, results: dict[str, Any]) -> None:
    """Keeps (a shallow copy of) one evaluation, {"step", ...}; the chief appends it."""
    self._by_step[results["step"]] = dict(results)  # The caller adds keys to its own.
    if not is_chief():
      return
    if self._remote:
      self._rewrite()
    else:
      with open(self._path, "a") as f:
        f.write(json.dumps(results) + "\n")

  def _rewrite(self) -> None:
    files.write_text(self._path, "".join(json.dumps(e) + "\n" for e in self.entries()))

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
# The lock (a local workdir) or the lease (a workdir on an object store).


class Guard:
  """What `exclusive` holds; `check()` tells whether it still does."""

  def __init__(self, lease: _Lease | None = None, remote: bool = False):
    self._lease = lease
    self._remote = remote

  def check(self) -> None:
    """Raises WorkdirLockedError on every process if another run took the lease over.

    Collective on a workdir on an object store (every process calls it at the
    same step); free for a local one, whose lock cannot be taken away.
    """
    if not self._remote:
      return
    lost = self._lease.lost if self._lease is not None else ""
    if not _all_processes(not lost):
      raise WorkdirLockedError(
          lost or "process 0 of this run no longer holds the workdir's lease (see its log)"
      )


@contextlib.contextmanager
def exclusive(
    workdir: str, *, renew_every_s: float = LEASE_RENEW_S, stale_after_s: float = LEASE_STALE_S
) -> Iterator[Guard]:
  """Holds the workdir for the body of the block: one run per workdir.

  Only JAX process 0 takes it: the other processes of a multi-process run
  share the workdir with it by design, and cannot write to it without it.
  When process 0 is refused, every process raises.

  A local workdir: an exclusive flock on `<workdir>/.lock`. The lock dies with
  the process, so a killed run never leaves the workdir locked; the file
  stays, holding the last holder's "PID hostname".

  A workdir on an object store (gs://, s3://), where no lock exists: a lease,
  `<workdir>/.lease`, created only if absent (one conditional upload, so two
  runs cannot both create it), holding its holder (pid, host) and the time it
  was last renewed. The holder renews it every `renew_every_s` seconds and
  deletes it when the block ends. A lease left by a run that died is taken
  over (with a warning) once it has not been renewed for `stale_after_s`
  seconds, or at once when its holder was a process of this host that no
  longer exists; deleting `<workdir>/.lease` by hand takes it over too.
  `Guard.check()` raises if the lease was taken over meanwhile.

  Args:
    workdir: the run's directory or URL (created if missing).
    renew_every_s: seconds between renewals of a lease.
    stale_after_s: a lease not renewed for this long is taken over.

  Yields:
    The Guard (the run loop checks it before each checkpoint).

  Raises:
    WorkdirLockedError: another run holds the workdir. The message names the
      workdir and the holder's PID and host.
  """
  remote = files.is_remote(workdir)
  lease, error = None, None
  with contextlib.ExitStack() as release:
    if is_chief():
      try:
        if remote:
          lease = _Lease(workdir, renew_every_s, stale_after_s)
          lease.acquire()
          release.callback(lease.release)
        else:
          release.enter_context(_flock(workdir))
      except WorkdirLockedError as e:
        error = e
    if not _all_processes(error is None):
      raise error or WorkdirLockedError(
          f"workdir {workdir} is in use by another run: process 0 of this run "
          "could not take it (its log names the holder)"
      )
    yield Guard(lease, remote)


@contextlib.contextmanager
def _flock(workdir: str) -> Iterator[None]:
  """An exclusive flock on `<workdir>/.lock` for the block (see `exclusive`)."""
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


class _Lease:
  """`<workdir>/.lease` on an object store: created if absent, renewed, released."""

  def __init__(self, workdir: str, renew_every_s: float, stale_after_s: float):
    self.workdir = workdir
    self.url = os.path.join(workdir, LEASE_NAME)
    self.lost = ""  # Why the lease is no longer ours ("" while it is).
    self._renew_every_s = renew_every_s
    self._stale_after_s = stale_after_s
    self._record = _process_record()
    self._stop = threading.Event()
    self._renewer: threading.Thread | None = None

  def acquire(self) -> None:
    """Creates the lease, taking over a stale one; raises WorkdirLockedError if held."""
    for _ in range(3):  # A stale lease is deleted, then created again if absent.
      self._record["renewed"] = time.time()
      try:
        _create_if_absent(self.url, _encode(self._record))
      except FileExistsError:
        current = _read_lease(self.url)
        if current is None:  # Deleted meanwhile.
          continue
        why = self._stale(current)
        if not why:
          age = time.time() - float(current.get("renewed", 0))
          raise WorkdirLockedError(
              f"workdir {self.workdir} is in use by another run: {_describe(current)} holds "
              f"{self.url} (renewed {age:.0f} s ago). Wait for it to end, stop it, or use "
              f"another --workdir; a lease not renewed for {self._stale_after_s:.0f} s is "
              "taken over."
          ) from None
        logging.warning("Taking over %s from %s: %s", self.url, _describe(current), why)
        epath.Path(self.url).unlink(missing_ok=True)
        continue
      if self._is_mine():  # Another run taking over the same stale lease may have won.
        self._renewer = threading.Thread(target=self._renew, name="hl_jax-lease", daemon=True)
        self._renewer.start()
        return
    raise WorkdirLockedError(
        f"workdir {self.workdir}: another run took {self.url} while this one was taking it "
        "over; use another --workdir or try again"
    )

  def _stale(self, record: dict[str, Any]) -> str:
    """Why `record`'s holder has let go ("" if it may still be running)."""
    if not record.get("token"):
      return "it is not a lease hl_jax wrote"
    if _is_gone(record):
      return "its holder no longer runs"
    age = time.time() - float(record.get("renewed", 0))
    if age > self._stale_after_s:
      return f"not renewed for {age:.0f} s"
    return ""

  def _is_mine(self) -> bool:
    current = _read_lease(self.url)
    return current is not None and current.get("token") == self._record["token"]

  def _renew(self) -> None:
    while not self._stop.wait(self._renew_every_s):
      try:
        current = _read_lease(self.url)
        if current is None or current.get("token") != self._record["token"]:
          self.lost = (
              f"workdir {self.workdir}: its lease {self.url} was "
              + (f"taken over by {_describe(current)}" if current else "deleted")
              + " while this run held it; this run stops so as not to write beside another"
          )
          logging.error("%s", self.lost)
          return
        self._record["renewed"] = time.time()
        epath.Path(self.url).write_bytes(_encode(self._record))
      except OSError as e:  # A network error: the next renewal tries again.
        logging.warning("Could not renew %s: %s", self.url, e)

  def release(self) -> None:
    """Stops renewing and deletes the lease if it is still this run's."""
    self._stop.set()
    if self._renewer is not None:
      self._renewer.join()
    if not self.lost and self._is_mine():
      epath.Path(self.url).unlink(missing_ok=True)


def _process_record() -> dict[str, Any]:
  """What a lease says about its holder, this process."""
  return {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "boot_id": _boot_id(),
      "start_ticks": _start_ticks(os.getpid()),
      "token": uuid.uuid4().hex,
      "acquired": time.time(),
  }


def _describe(record: dict[str, Any]) -> str:
  return f"process {record.get('pid', '?')} on {record.get('host', '?')}"


def _is_gone(record: dict[str, Any]) -> bool:
  """Whether the lease's holder was a process of this machine that has ended."""
  if record.get("host") != socket.gethostname() or not record.get("boot_id"):
    return False
  if record.get("boot_id") != _boot_id():
    return True  # This machine rebooted since.
  ticks = _start_ticks(int(record.get("pid", 0)))
  return ticks is None or ticks != record.get("start_ticks")  # Ended, or its pid reused.


def _boot_id() -> str:
  try:
    return pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
  except OSError:  # Not Linux: holders on this host are never judged gone.
    return ""


def _start_ticks(pid: int) -> int | None:
  """When process `pid` started (clock ticks since boot), None if it does not exist."""
  try:
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
  except OSError:
    return None
  return int(stat.rsplit(")", 1)[1].split()[19])  # Field 22; the name may hold spaces.


def _encode(record: dict[str, Any]) -> bytes:
  return (json.dumps(record) + "\n").encode()


def _read_lease(url: str) -> dict[str, Any] | None:
  """The lease at `url`, None if there is none; {} if it is not JSON."""
  text = _read_text(url)
  if text is None:
    return None
  try:
    record = json.loads(text)
  except json.JSONDecodeError:
    return {}
  return record if isinstance(record, dict) else {}


def _create_if_absent(url: str, data: bytes) -> None:
  """Writes `url` only if no object has that name.

  gcsfs sends one upload with ifGenerationMatch=0, which GCS refuses if the
  object exists (atomic); fsspec's default for other stores checks, then writes.

  Raises:
    FileExistsError: the object exists.
  """
  fs, path = fsspec.core.url_to_fs(url)
  fs.pipe_file(path, data, mode="create")


def _read_text(path: str) -> str | None:
  """The text of a local file or object, None if it does not exist."""
  try:
    return epath.Path(path).read_text()
  except FileNotFoundError:
    return None


def _all_processes(flag: bool) -> bool:
  """The AND of `flag` over JAX processes (all of them must call it)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return bool(np.all(multihost_utils.process_allgather(np.array(flag))))
