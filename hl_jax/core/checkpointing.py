"""Orbax checkpoints of the whole run: the train state and where the input was.

A checkpoint holds two items: `state` (the family's train state: step,
params, optimizer state, and what else it keeps, as one pytree) and `input`:
one JSON file per JAX process (`input/process_<i>-of-<n>.json`, written by
Grain's Orbax handler) with what that host needs to re-read its input exactly
(Less-is-More: the Grain iterator states at the start of its current table
windows and the window number). Each host restores its own file. Orbax writes each
checkpoint to `<step>.orbax-checkpoint-tmp` and renames it to `<step>` when
complete, so a save interrupted midway leaves that tmp directory behind and
never replaces a good checkpoint. On an object store (a gs:// workdir), where
a rename is a copy, Orbax writes `<step>` in place and marks it complete with
`<step>/commit_success.txt` last; a step without it is an unfinished save.
The checkpoints of a workdir URL go to that URL itself (Orbax and tensorstore
write gs:// directly), so every host of a pod saves into, and a recreated
slice resumes from, the same directory.

`restore_latest` restores the newest checkpoint that is whole. A newer one that
is partial or corrupt (a missing file or directory, unreadable JSON, a data file
that does not read back) is skipped with a warning that says what was wrong,
and renamed to `<step>.corrupt` so that the step can be saved again.

`restore_state(workdir)` is how everything after training (prediction,
evaluation, streaming, analysis) reads a workdir's newest whole checkpoint,
with the same fallback past partial or corrupt steps, read-only (nothing is
renamed, so it is safe beside a running job).

The workdir's other files (its lock, config.json, history, results) are
hl_jax.core.workdir's.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import sys
from typing import Any

from absl import logging
from etils import epath
import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from hl_jax.core import files
from hl_jax.core import workdir as workdir_lib

CHECKPOINTS_NAME = "checkpoints"


# Orbax's suffix of a step directory still being written (unfinished save).
TMP_SUFFIX = ".orbax-checkpoint-tmp"


CORRUPT_SUFFIX = ".corrupt"


def _json_files(with_input: bool = True) -> tuple[str, ...]:
  """JSON files every complete checkpoint has (as this process reads it)."""
  files = ("_CHECKPOINT_METADATA", "state/_METADATA")
  if with_input:
    files += (f"input/process_{jax.process_index()}-of-{jax.process_count()}.json",)
  return files


class _InputState:
  """A JSON-able dict in the shape Grain's checkpoint handler saves per process."""

  def __init__(self, state: dict[str, Any] | None = None):
    self.state = state

  def get_state(self) -> bytes:
    return json.dumps(self.state).encode()

  def set_state(self, state: bytes) -> None:
    self.state = json.loads(state)

  def start_prefetch(self) -> None:
    pass


class CheckpointError(RuntimeError):
  """The workdir has checkpoints but none of them can be restored."""


def checkpoint_dir(workdir: str) -> str:
  """`<workdir>/checkpoints`: absolute if local (Orbax wants that), a URL left as it is."""
  directory = os.path.join(workdir, CHECKPOINTS_NAME)
  return directory if files.is_remote(directory) else os.path.abspath(directory)


def make_manager(workdir: str, *, max_to_keep: int) -> ocp.CheckpointManager:
  """A manager over `<workdir>/checkpoints`, saving asynchronously."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=True, create=True
  )
  return ocp.CheckpointManager(
      checkpoint_dir(workdir), options=options, item_names=("state", "input")
  )


def has_checkpoints(workdir: str) -> bool:
  """Whether `<workdir>/checkpoints` holds any step (finished or not)."""
  return any(name.split(".")[0].isdigit() for name in _names(checkpoint_dir(workdir)))


def _names(directory: str) -> list[str]:
  """The entries of `directory` (empty if it does not exist)."""
  path = epath.Path(directory)
  return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def restore_state(workdir: str) -> dict[str, Any]:
  """The train state of a workdir's newest whole checkpoint.

  Read-only: partial or corrupt newer steps are skipped with a warning (as
  `restore_latest` does for training) but not renamed, so a running job's
  workdir can be read. Only the `state` item is read, so a workdir written by
  any number of processes restores in one.

  Returns:
    The state as a dict of numpy arrays, with "step", "params", and what
    else the family's state holds.

  Raises:
    FileNotFoundError: no finished checkpoint.
    CheckpointError: checkpoints exist but none restores.
  """
  directory = checkpoint_dir(workdir)
  if not epath.Path(directory).is_dir():
    raise FileNotFoundError(f"no checkpoint in {directory}")
  manager = ocp.CheckpointManager(directory, item_names=("state", "input"))
  restored = restore_latest(manager, None, read_only=True)
  if restored is None:
    raise FileNotFoundError(f"no finished checkpoint in {directory}")
  state, _ = restored
  return jax.tree.map(np.asarray, state)


def restore_workdir(workdir: str) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
  """(the workdir's config in today's key names, `restore_state(workdir)`)."""
  config, _ = workdir_lib.load_config(workdir)
  return config, restore_state(workdir)


def save(
    manager: ocp.CheckpointManager, step: int, state: Any, input_state: dict[str, Any]
) -> None:
  """Starts an asynchronous save of `state` and `input_state` at `step`."""
  manager.save(
      step,
      args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          input=grain.checkpoint.CheckpointSave(_InputState(input_state)),
      ),
      force=True,
  )


def restore_latest(
    manager: ocp.CheckpointManager, abstract_state: Any, *, read_only: bool = False
) -> tuple[Any, dict[str, Any] | None] | None:
  """The newest whole checkpoint restored onto `abstract_state`'s shardings.

  Newer steps that are partial or corrupt are skipped and renamed to
  `<step>.corrupt`; unfinished saves (`*.orbax-checkpoint-tmp`, or on an
  object store a `<step>` without its commit marker) are skipped and left to
  Orbax, which replaces one when it saves that step again. One warning names
  everything skipped and what was wrong with it.

  Args:
    manager: the run's checkpoint manager.
    abstract_state: a pytree of `jax.ShapeDtypeStruct` with shardings; None
      restores the arrays as saved, on this process's first device (so a
      checkpoint of any number of hosts reads in one process).
    read_only: restore only `state` (input_state is None), in this process
      alone, and rename nothing.

  Returns:
    (state, input_state), or None when the workdir has no finished checkpoint.

  Raises:
    CheckpointError: there are checkpoints but none restores (all corrupt, or
      the config changed the shapes of the state). Nothing is renamed then.
  """
  manager.reload()
  directory = str(manager.directory)
  finished = set(manager.all_steps())
  skipped = [
      (name, "unfinished save: the process stopped while writing it")
      for name in _names(directory)
      if TMP_SUFFIX in name or (name.isdigit() and int(name) not in finished)
  ]
  bad_steps = []
  for step in sorted(manager.all_steps(), reverse=True):
    problems = find_problems(os.path.join(directory, str(step)), with_input=not read_only)
    restored, error = None, ""
    if not problems:
      logging.info("Restoring checkpoint at step %d from %s", step, directory)
      restored, error = _try_restore(manager, step, abstract_state, read_only)
    whole = restored is not None
    if whole if read_only else _all_processes(whole):
      if not read_only:
        _set_aside(manager, bad_steps)
      if skipped:
        logging.warning(
            "Checkpoints skipped in %s: %s. Restored step %d.%s",
            directory,
            _describe(skipped),
            step,
            " The corrupt steps were renamed to <step>.corrupt."
            if bad_steps and not read_only
            else "",
        )
      return restored["state"], None if read_only else restored["input"].state
    bad_steps.append(step)
    why = "; ".join(problems) or error or "failed on another host"
    skipped.append((f"step {step}", why))
  if bad_steps:
    raise CheckpointError(
        f"no checkpoint in {directory} can be restored: {_describe(skipped)}. "
        "If the config changed the model or optimizer, use a new workdir; "
        "otherwise move the corrupt steps away to restart from scratch."
    )
  if skipped:
    logging.warning(
        "Checkpoints skipped in %s: %s. No finished checkpoint; " "starting from scratch.",
        directory,
        _describe(skipped),
    )
  return None


def _describe(skipped: list[tuple[str, str]]) -> str:
  return "; ".join(f"{name} ({why})" for name, why in skipped)


def find_problems(step_dir: str, with_input: bool = True) -> list[str]:
  """What makes a checkpoint step directory incomplete, cheaply checked.

  Only the JSON files are read (this process's input file only if
  `with_input`); data files are checked by restoring them.

  Returns:
    One phrase per problem, e.g. "missing state/_METADATA"; empty if none.
  """
  problems = []
  for name in _json_files(with_input):
    path = epath.Path(step_dir) / name
    try:
      json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
      problems.append(f"missing {name}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      problems.append(f"unreadable {name}: {e}")
  return problems


def _try_restore(
    manager: ocp.CheckpointManager, step: int, abstract_state: Any, state_only: bool = False
) -> tuple[Any, str]:
  """(the restored items of `step`, "") or (None, why they did not restore)."""
  _ignore_late_reads()  # Before: the late reads can land while `restore` raises.
  try:
    if abstract_state is None:  # Onto this process, whatever topology saved it.
      abstract_state = _here(os.path.join(str(manager.directory), str(step)))
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if not state_only:
      items["input"] = grain.checkpoint.CheckpointRestore(_InputState())
    return manager.restore(step, args=ocp.args.Composite(**items)), ""
  except Exception as e:  # pylint: disable=broad-except
    # Tensorstore and Orbax raise many types for unreadable data; the message
    # is what tells the user, and an older checkpoint is the remedy either way.
    step_dir = os.path.join(str(manager.directory), str(step))
    _REPORTED_FAILURES.step_dirs.add(step_dir)
    if not files.is_remote(step_dir):
      _REPORTED_FAILURES.step_dirs.add(os.path.realpath(step_dir))
    message = (str(e).strip().splitlines() or [""])[0]
    return None, f"restore failed: {type(e).__name__}: {message[:300]}"


class _ReportedFailures(std_logging.Filter):
  """Drops asyncio's "Task exception was never retrieved" for reported steps.

  When one array of a step fails to read, Orbax's sibling read tasks fail the
  same way and nobody awaits them; asyncio logs each with a traceback whenever
  the garbage collector meets it, long after the one-line warning that named
  the step. Only failures whose message names a step directory that
  `_try_restore` already reported are dropped; every other asyncio error shows.
  """

  def __init__(self):
    super().__init__()
    self.step_dirs: set[str] = set()

  def filter(self, record: std_logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    if error is None or not self.step_dirs:
      return True
    text = str(error)
    return not any(step_dir in text for step_dir in self.step_dirs)


_REPORTED_FAILURES = _ReportedFailures()


std_logging.getLogger("asyncio").addFilter(_REPORTED_FAILURES)


def _here(step_dir: str) -> Any:
  """The saved state's arrays as ShapeDtypeStructs on this process's first device.

  Without such a target Orbax restores onto the saved shardings, which name
  the devices of the processes that saved them: a checkpoint of a multi-host
  run would not restore in one process (a reader) at all.
  """
  metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(step_dir) / "state")
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
      if isinstance(leaf, ocp.metadata.ArrayMetadata)
      else leaf,
      metadata.tree,
  )


def _ignore_late_reads() -> None:
  """Drops "Event loop is closed" from the unraisable hook, once a restore failed.

  When Orbax gives up a torn checkpoint, the reads of its other arrays still
  finish in tensorstore's threads and post to the event loop the failed
  restore has closed; Python prints each as a traceback. Their results are
  discarded anyway; the failed restore itself is reported. Installed by the
  first restore of the process.
  """
  previous = sys.unraisablehook
  if getattr(previous, "ignores_late_reads", False):
    return

  def hook(unraisable: Any) -> None:
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
      previous(unraisable)

  hook.ignores_late_reads = True
  sys.unraisablehook = hook


def _set_aside(manager: ocp.CheckpointManager, steps: list[int]) -> None:
  """Renames corrupt step directories out of Orbax's view (process 0 only)."""
  if not steps:
    return
  directory = str(manager.directory)
  if jax.process_index() == 0:
    for step in steps:
      path = os.path.join(directory, str(step))
      target, n = path + CORRUPT_SUFFIX, 1
      while epath.Path(target).exists():
        n += 1
        target = f"{path}{CORRUPT_SUFFIX}.{n}"
      epath.Path(path).rename(target)  # On an object store: a copy, then a delete.
      logging.warning("Renamed corrupt checkpoint %s to %s", path, target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    multihost_utils.sync_global_devices("hl_jax_checkpoints_set_aside")
  manager.reload()


def _all_processes(flag: bool) -> bool:
  """The AND of `flag` over processes, so that all restore the same step."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return bool(np.all(multihost_utils.process_allgather(np.array(flag))))


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a concrete pytree of arrays."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
