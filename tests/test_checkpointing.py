"""Checkpoint faults: partial, corrupt and unfinished checkpoints are skipped.

The checkpoints here are real Orbax ones written by `checkpointing.save`, of a
small state whose every value encodes its step, so a restore says which step
it came from.
"""

import gc
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types

import jax.numpy as jnp
import numpy as np
import pytest

from hl_jax.core import checkpointing
from hl_jax.core import workdir as workdir_lib

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A failed Orbax restore leaves un-awaited coroutines behind; they are collected
# (and reported by pytest) within each test here, not in a later one.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_garbage():
  yield
  gc.collect()


def make_state(step: int, size: int = 64) -> dict:
  return {"params": {"w": jnp.full((size,), step, jnp.float32)}, "step": jnp.int32(step)}


def save_steps(workdir: str, steps, size: int = 64):
  manager = checkpointing.make_manager(workdir, max_to_keep=10)
  for step in steps:
    checkpointing.save(
        manager, step, make_state(step, size), {"window_start": {"step": step}, "window_index": 0}
    )
  manager.wait_until_finished()
  return manager


def restore(workdir: str, size: int = 64):
  manager = checkpointing.make_manager(workdir, max_to_keep=10)
  return manager, checkpointing.restore_latest(
      manager, checkpointing.abstract_like(make_state(0, size))
  )


def step_dir(workdir: str, name) -> str:
  return os.path.join(workdir, "checkpoints", str(name))


def truncate_data_files(path: str) -> None:
  """Halves every non-empty file of the state's data (a torn write)."""
  files = [
      f
      for f in glob.glob(os.path.join(path, "state", "**", "d", "*"), recursive=True)
      if os.path.getsize(f)
  ]
  assert files
  for name in files:
    with open(name, "r+b") as f:
      f.truncate(os.path.getsize(name) // 2)


def write(path: str, text: str) -> None:
  with open(path, "w") as f:
    f.write(text)


CORRUPTIONS = {
    "truncated data file": (truncate_data_files, "step 3 (restore failed"),
    "missing input item": (
        lambda p: shutil.rmtree(os.path.join(p, "input")),
        "step 3 (missing input/process_0-of-1.json",
    ),
    "missing state metadata": (
        lambda p: os.remove(os.path.join(p, "state", "_METADATA")),
        "step 3 (missing state/_METADATA",
    ),
    "empty step directory": (lambda p: (shutil.rmtree(p), os.makedirs(p)), "step 3 (missing "),
    "unreadable input JSON": (
        lambda p: write(os.path.join(p, "input", "process_0-of-1.json"), '{"window_'),
        "step 3 (unreadable input/process_0-of-1.json",
    ),
    "unreadable checkpoint metadata": (
        lambda p: write(os.path.join(p, "_CHECKPOINT_METADATA"), ""),
        "step 3 (unreadable _CHECKPOINT_METADATA",
    ),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_latest_falls_back_to_newest_good(tmp_path, caplog, kind):
  workdir = str(tmp_path)
  save_steps(workdir, [1, 2, 3])
  corrupt, reason = CORRUPTIONS[kind]
  corrupt(step_dir(workdir, 3))
  with caplog.at_level(logging.WARNING):
    manager, (state, input_state) = restore(workdir)
  assert int(state["step"]) == 2 and input_state["window_start"] == {"step": 2}
  np.testing.assert_array_equal(state["params"]["w"], np.full(64, 2, np.float32))
  warning = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
  assert len(warning) == 1 and reason in warning[0], caplog.text
  assert "Restored step 2" in warning[0]
  # The corrupt step is kept for inspection but out of the way: step 3 saves again.
  assert os.path.isdir(step_dir(workdir, "3.corrupt"))
  assert manager.all_steps() == [1, 2]
  checkpointing.save(manager, 3, make_state(3), {"window_start": {}, "window_index": 0})
  manager.wait_until_finished()
  caplog.clear()
  _, (state, _) = restore(workdir)
  assert int(state["step"]) == 3 and "skipped" not in caplog.text


def test_leftover_tmp_dir_is_skipped_and_replaced_by_the_next_save(tmp_path, caplog):
  workdir = str(tmp_path)
  save_steps(workdir, [1, 2])
  # What a process killed while saving step 3 leaves: a partial tmp directory.
  tmp = step_dir(workdir, "3.orbax-checkpoint-tmp")
  shutil.copytree(step_dir(workdir, 2), tmp)
  shutil.rmtree(os.path.join(tmp, "input"))
  with caplog.at_level(logging.WARNING):
    manager, (state, _) = restore(workdir)
  assert int(state["step"]) == 2
  assert "3.orbax-checkpoint-tmp (unfinished save" in caplog.text
  assert os.path.isdir(tmp)  # Left for Orbax, which replaces it when saving 3.
  checkpointing.save(manager, 3, make_state(3), {"window_start": {}, "window_index": 0})
  manager.wait_until_finished()
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2", "3"]


def test_only_unfinished_saves_start_from_scratch(tmp_path, caplog):
  workdir = str(tmp_path)
  save_steps(workdir, [1])
  os.rename(step_dir(workdir, 1), step_dir(workdir, "1.orbax-checkpoint-tmp"))
  with caplog.at_level(logging.WARNING):
    assert restore(workdir)[1] is None
  assert "1.orbax-checkpoint-tmp (unfinished save" in caplog.text
  assert restore(str(tmp_path / "empty"))[1] is None


def test_nothing_restorable_is_an_error_and_renames_nothing(tmp_path):
  workdir = str(tmp_path)
  save_steps(workdir, [1, 2])
  for step in (1, 2):
    os.remove(os.path.join(step_dir(workdir, step), "state", "_METADATA"))
  with pytest.raises(
      checkpointing.CheckpointError,
      match=r"no checkpoint in .* can be restored: step 2 \(missing "
      r"state/_METADATA\); step 1 \(missing state/_METADATA\)",
  ):
    restore(workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]


def test_a_changed_state_shape_is_an_error_not_corruption(tmp_path):
  workdir = str(tmp_path)
  save_steps(workdir, [1, 2])
  with pytest.raises(checkpointing.CheckpointError, match="step 2 .* step 1 "):
    restore(workdir, size=65)  # E.g. a config that changed a layer width.
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]


_SAVER = textwrap.dedent("""
    import sys
    import jax.numpy as jnp
    from hl_jax.core import checkpointing
    manager = checkpointing.make_manager(sys.argv[1], max_to_keep=100)
    for step in range(1, 1000):  # Large saves, one after another, until killed.
      state = {"params": {"w": jnp.full((%d,), step, jnp.float32)},
               "step": jnp.int32(step)}
      checkpointing.save(manager, step, state,
                         {"window_start": {"step": step}, "window_index": 0})
""")
_SAVER_SIZE = 16 * 2**20  # 64 MiB of float32 per save.


def test_sigkill_during_a_save_leaves_the_previous_checkpoint_intact(tmp_path, caplog):
  workdir = str(tmp_path / "workdir")
  checkpoints = os.path.join(workdir, "checkpoints")
  saver = subprocess.Popen(
      ["timeout", "-k", "5", "120", sys.executable, "-c", _SAVER % _SAVER_SIZE, workdir],
      cwd=_REPO,
      env=dict(os.environ, JAX_PLATFORMS="cpu"),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
      start_new_session=True,
  )
  try:
    deadline = time.time() + 100
    while True:  # Kill while a save after the first finished one is running.
      assert saver.poll() is None and time.time() < deadline
      names = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
      if "1" in names and any(n.endswith(checkpointing.TMP_SUFFIX) for n in names):
        break
      time.sleep(0.001)
    os.killpg(saver.pid, signal.SIGKILL)
    saver.wait()
  finally:
    if saver.poll() is None:
      os.killpg(saver.pid, signal.SIGKILL)
      saver.wait()
  names = os.listdir(checkpoints)
  finished = sorted(int(n) for n in names if n.isdigit())
  unfinished = [n for n in names if n.endswith(checkpointing.TMP_SUFFIX)]
  assert finished and unfinished, names
  with caplog.at_level(logging.WARNING):
    _, (state, input_state) = restore(workdir, size=_SAVER_SIZE)
  newest = finished[-1]
  assert int(state["step"]) == newest
  assert input_state["window_start"] == {"step": newest}
  w = np.asarray(state["params"]["w"])
  assert w.min() == w.max() == newest
  assert f"{unfinished[0]} (unfinished save" in caplog.text


def write_config(workdir: str) -> None:
  write(os.path.join(workdir, "config.json"), '{"variant": "ranking_d", "seed": 3}')


@pytest.mark.parametrize(
    "kind", ["truncated data file", "missing state metadata", "missing input item"]
)
def test_restore_workdir_skips_a_torn_newest_step_read_only(tmp_path, caplog, kind):
  workdir = str(tmp_path)
  save_steps(workdir, [1, 2, 3])
  write_config(workdir)
  CORRUPTIONS[kind][0](step_dir(workdir, 3))
  with caplog.at_level(logging.WARNING):
    config, state = checkpointing.restore_workdir(workdir)
  # An older config.json, read in today's names.
  assert config.train.weighting == "ranking_d" and config.seed == 3
  assert config.model_family == "less_is_more"
  # Only `state` is read: a step without its input item restores as it is.
  expected = 3 if kind == "missing input item" else 2
  assert int(state["step"]) == expected
  np.testing.assert_array_equal(state["params"]["w"], np.full(64, expected, np.float32))
  assert isinstance(state["params"]["w"], np.ndarray)
  if expected == 2:
    assert "step 3 (" in caplog.text and "Restored step 2" in caplog.text
  # Read-only: nothing in the workdir is renamed.
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2", "3"]


def test_restore_workdir_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json not found"):
    checkpointing.restore_workdir(str(tmp_path))
  write_config(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no checkpoint in"):
    checkpointing.restore_workdir(str(tmp_path))
  save_steps(str(tmp_path), [1])
  truncate_data_files(step_dir(str(tmp_path), 1))
  with pytest.raises(checkpointing.CheckpointError, match="step 1 .restore failed"):
    checkpointing.restore_workdir(str(tmp_path))


def test_load_config_names_a_malformed_file(tmp_path):
  write(os.path.join(tmp_path, "config.json"), '{"variant": ')
  with pytest.raises(ValueError, match="config.json is not the JSON a training run writes"):
    workdir_lib.load_config(str(tmp_path))


def test_unretrieved_sibling_failures_of_a_reported_step_stay_quiet(tmp_path, caplog):
  workdir = str(tmp_path)
  save_steps(workdir, [1, 2])
  write_config(workdir)
  torn = step_dir(workdir, 2)
  truncate_data_files(torn)
  with caplog.at_level(logging.WARNING):
    _, state = checkpointing.restore_workdir(workdir)
    gc.collect()
    asyncio_logger = logging.getLogger("asyncio")
    # What asyncio logs for a failed read task nobody awaited, for the reported
    # step (dropped) and for anything else (kept).
    for path in (torn, "/elsewhere/7"):
      error = ValueError(f'OUT_OF_RANGE: Error reading "{path}/state/d/0"')
      asyncio_logger.error(
          "Task exception was never retrieved\nfuture: <Task>", exc_info=(ValueError, error, None)
      )
  assert int(state["step"]) == 1 and "step 2 (restore failed" in caplog.text
  never_retrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
  assert len(never_retrieved) == 1 and "/elsewhere/7" in str(never_retrieved[0].exc_info[1])


def test_late_reads_of_a_failed_restore_stay_quiet(tmp_path, monkeypatch):
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  save_steps(str(tmp_path), [1, 2])
  write_config(str(tmp_path))
  truncate_data_files(step_dir(str(tmp_path), 2))
  _, state = checkpointing.restore_workdir(str(tmp_path))
  assert int(state["step"]) == 1
  for error in (RuntimeError("Event loop is closed"), RuntimeError("other")):
    sys.unraisablehook(types.SimpleNamespace(exc_value=error))
  assert [str(u.exc_value) for u in seen] == ["other"]
