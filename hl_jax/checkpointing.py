"""Orbax checkpoints of the whole run: train state and input position.

A checkpoint holds two items: `state` (params, optimizer state, step, RNG and
any EM state, as one pytree) and `input` (JSON: the Grain iterator state at the
start of the current table window, and the window number). Orbax writes each
checkpoint to a temporary directory and renames it when complete, so an
interrupted save never replaces a good checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp


def make_manager(workdir: str, *, max_to_keep: int) -> ocp.CheckpointManager:
  """A manager over `<workdir>/checkpoints`, saving asynchronously."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=True, create=True)
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")),
      options=options, item_names=("state", "input"))


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         input_state: dict[str, Any]) -> None:
  """Starts an asynchronous save of `state` and `input_state` at `step`."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      input=ocp.args.JsonSave(input_state)), force=True)


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any
                   ) -> tuple[Any, dict[str, Any]] | None:
  """The newest checkpoint restored onto `abstract_state`'s shardings, or None.

  Args:
    manager: the run's checkpoint manager.
    abstract_state: a pytree of `jax.ShapeDtypeStruct` with shardings.

  Returns:
    (state, input_state), or None when the workdir has no checkpoint.
  """
  step = manager.latest_step()
  if step is None:
    return None
  logging.info("Restoring checkpoint at step %d from %s", step, manager.directory)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      input=ocp.args.JsonRestore()))
  return restored["state"], restored["input"]


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a concrete pytree of arrays."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
