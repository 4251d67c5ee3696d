"""The run loop every model family trains in.

  python launch.py --config=C --workdir=W   ->   run_loop.train_and_evaluate(config, W)

One loop for every family (`core.families`): the config is validated (before
anything is written), the workdir is held (`workdir.exclusive`), a resume with
a changed config is refused, the family builds its `Trainer`, config.json is
written, the newest whole checkpoint is restored, and then, step by step:

  every train.sync_every steps   wait for the devices (bounds queued work)
  every train.log_every steps    check for non-finite steps; log the means of
                                 the step metrics, the rate and the ETA
  every checkpoint.every_steps   check for non-finite steps; save (Orbax)
  every eval.every_steps         evaluate; the evaluation joins history.jsonl

and at the end: evaluate again, write results.json and results.md. A family
supplies what differs: its train state, step, inputs and evaluation.

Rerunning with the same workdir resumes from its newest checkpoint. A step
whose loss or gradient is not finite is never applied (`guarded_update`): the
run stops at the next log or checkpoint step with the last checkpoint intact
(`train.on_nonfinite="skip"`, where a family offers it, counts them instead).

Preemption: a SIGTERM (what a spot VM, a maintenance event, SLURM or
Kubernetes send before they stop a job) does not kill the run. At the next
step boundary it saves a checkpoint of that step, waits until it is written,
and raises `Preempted`; rerunning the same command resumes from it. With
several JAX processes, JAX's preemption service (started by
jax.distributed.initialize) passes one host's notice to all of them and
picks the step every host saves at (Orbax's `reached_preemption`).
"""

from __future__ import annotations

import functools
import json
import signal
import threading
import time
from typing import Any, Protocol

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax.core import checkpointing
from hl_jax.core import config_checks
from hl_jax.core import families
from hl_jax.core import parallel
from hl_jax.core import workdir as workdir_lib
from hl_jax.core import writers


class NonFiniteError(FloatingPointError):
  """Training met a non-finite loss or gradient."""


class Preempted(Exception):
  """The run was told to stop (SIGTERM) and saved a checkpoint at `step` first."""

  def __init__(self, step: int):
    super().__init__(
        f"preempted at step {step}: its checkpoint is saved; rerun the same command to resume"
    )
    self.step = step


@flax.struct.dataclass
class TrainState:
  """What every family's train state holds (a family may add fields).

  Attributes:
    step: [] int32, steps taken.
    params: the parameters.
    opt_state: optax state of `params`.
    first_nonfinite_step: [] int32, the first step whose loss or gradient was
      not finite (its update was not applied), -1 if none.
  """

  step: jnp.ndarray
  params: Any
  opt_state: Any
  first_nonfinite_step: jnp.ndarray


def all_finite(loss: jnp.ndarray, grads: Any) -> jnp.ndarray:
  """[] bool: the loss and every gradient are finite."""
  return jnp.isfinite(loss) & jnp.all(
      jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
  )


def guarded_update(
    state: Any, finite: jnp.ndarray, params: Any, opt_state: Any, **changes: Any
) -> Any:
  """The state after one step: its update applied only if `finite`.

  The step count always advances; a non-finite step keeps the old params and
  optimizer state and is recorded in `first_nonfinite_step`. `changes` are
  further fields of the new state (the caller guards them).
  """
  keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(finite, new, old))
  return state.replace(
      step=state.step + 1,
      params=keep(params, state.params),
      opt_state=keep(opt_state, state.opt_state),
      first_nonfinite_step=jnp.where(
          (state.first_nonfinite_step < 0) & ~finite, state.step, state.first_nonfinite_step
      ),
      **changes,
  )


class Trainer(Protocol):
  """What a family supplies for one run (`Family.make_trainer(config, mesh)`).

  Attributes:
    scorer_record: written into config.json ("scorer"): what loading a scorer
      of the run's checkpoints needs ({"family", "feature_dim", ...}).
    unit: what a step consumes, for the rate ("pairs", "videos").
    units_per_step: how many.
  """

  scorer_record: dict[str, Any]
  unit: str
  units_per_step: int

  def init_state(self) -> Any:
    """A fresh train state on the mesh (a `TrainState`, maybe with more fields)."""

  def restore_input(self, input_state: dict[str, Any] | None) -> None:
    """Re-positions the input at a checkpoint's `input_state()`."""

  def input_state(self) -> dict[str, Any]:
    """What a checkpoint keeps (per host) to re-read the input exactly."""

  def train_step(self, state: Any, step: int) -> tuple[Any, dict[str, jax.Array]]:
    """Step `step` (its batch, then the compiled step): (new state, step metrics)."""

  def evaluate(self, state: Any, step: int) -> dict[str, Any]:
    """One evaluation: {"step", ...}, an entry of history.jsonl."""

  def eval_scalars(self, evaluation: dict[str, Any]) -> dict[str, float]:
    """The scalars of one evaluation for the metric writers (eval/...)."""

  def describe(self, means: dict[str, float]) -> str:
    """The middle of a log line from the interval's mean step metrics."""

  def where_nonfinite(self, state: Any, step: int) -> str:
    """Where step `step`'s data came from ("" if not known), for the error."""

  def results(self, final: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """results.json from the final evaluation and every evaluation."""

  def markdown(self, results: dict[str, Any]) -> str:
    """results.md: the results for people."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the config's model family, evaluates it, writes results to the workdir.

  Returns:
    The results (also written to `<workdir>/results.json`): the family's
    `Trainer.results`, with "history" (every evaluation, in step order, across
    restarts), "nonfinite_steps_skipped" where the state counts them, and
    "wall_s" (this process's seconds).

  Raises:
    config_checks.ConfigError: a bad config (before anything is written), or a
      workdir whose checkpoints came from another config.
    workdir.WorkdirLockedError: another run holds the workdir (or took over its
      lease while this one ran).
    NonFiniteError: a non-finite step with train.on_nonfinite="stop".
    Preempted: a SIGTERM (or another host's preemption notice) arrived; the
      checkpoint of the step it stopped at is saved.
  """
  family = families.validate(config)
  with workdir_lib.exclusive(workdir) as guard:
    saved = (
        workdir_lib.read_config_json(workdir) if checkpointing.has_checkpoints(workdir) else None
    )
    changed = config_checks.check_resume(
        saved,
        config,
        workdir=workdir,
        resumable=tuple(config_checks.COMMON_RESUMABLE) + tuple(family.resumable),
        added=family.added,
        irrelevant=family.irrelevant,
    )
    if changed:
      logging.warning(
          "Resuming %s with a changed config (checkpoint.allow_changed_config): %s",
          workdir,
          "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()),
      )
    return _run(config, workdir, family, guard)


def _run(
    config: ml_collections.ConfigDict,
    workdir: str,
    family: families.Family,
    guard: workdir_lib.Guard,
) -> dict[str, Any]:
  start_time = time.time()
  available = jax.device_count()
  if config.num_devices > available:
    raise config_checks.ConfigError(
        f"num_devices={config.num_devices} but JAX sees only {available} devices; use 0 "
        "for all of them"
    )
  mesh = parallel.make_mesh(
      jax.devices()[: config.num_devices or None], family.num_input_shards(config)
  )
  trainer = family.make_trainer(config, mesh)
  writer = writers.create_writer(workdir, is_chief=workdir_lib.is_chief())
  workdir_lib.save_config(workdir, config, trainer.scorer_record)

  state = trainer.init_state()
  manager = checkpointing.make_manager(workdir, max_to_keep=config.checkpoint.max_to_keep)
  restored = checkpointing.restore_latest(manager, checkpointing.abstract_like(state))
  if restored is not None:
    state, input_state = restored
    trainer.restore_input(input_state)
  else:
    trainer.restore_input(None)
  on_nonfinite = config.train.get("on_nonfinite", "stop")

  def check_finite() -> int:
    return _check_finite(state, trainer, on_nonfinite)

  def evaluate(step: int) -> dict[str, Any]:
    evaluation = trainer.evaluate(state, step)
    writer.write_scalars(step, trainer.eval_scalars(evaluation))
    history.add(evaluation)
    return evaluation

  num_steps, every = config.train.num_steps, config.eval.every_steps
  step = int(parallel.first_replica(state.step))
  history = workdir_lib.EvalHistory(workdir, step)
  if every and 0 < step < num_steps and step % every == 0 and step not in history:
    evaluate(step)  # Killed after this step's checkpoint, before its evaluation was kept.
  if step == 0:
    writer.write_hparams(writers.flatten(config.to_dict()))
  logging.info(
      "Training steps %d..%d, %d %s per step on %d devices",
      step,
      num_steps,
      trainer.units_per_step,
      trainer.unit,
      mesh.size,
  )
  interval_start, interval = time.time(), []
  with _PreemptionNotice() as notice:
    while step < num_steps:
      state, metrics = trainer.train_step(state, step)
      step += 1
      interval.append(metrics)
      if step % config.train.sync_every == 0:
        jax.block_until_ready(metrics)  # Bounds queued steps (forced-CPU devices).
      if step % config.train.log_every == 0 or step == num_steps:
        check_finite()
        _log(writer, trainer, step, num_steps, interval, time.time() - interval_start)
        interval_start, interval = time.time(), []
      saving = step % config.checkpoint.every_steps == 0 or step == num_steps
      preempted = notice.reached(manager, step)
      if saving or preempted:
        check_finite()
        guard.check()
        checkpointing.save(manager, step, state, trainer.input_state())
      if preempted:
        manager.wait_until_finished()
        writer.flush()
        logging.warning("Preempted at step %d: its checkpoint is saved in %s", step, workdir)
        raise Preempted(step)
      if every and step % every == 0 and step < num_steps:
        evaluate(step)
  manager.wait_until_finished()
  final = evaluate(step)
  skipped = check_finite()
  results = trainer.results(final, history.entries())
  results["history"] = history.entries()
  if hasattr(state, "nonfinite_steps"):
    results["nonfinite_steps_skipped"] = skipped
  results["wall_s"] = time.time() - start_time
  if workdir_lib.is_chief():
    markdown = trainer.markdown(results)
    workdir_lib.write_results(workdir, json.loads(json.dumps(results)), markdown)
    print(markdown)
  writer.flush()
  return results


class _PreemptionNotice:
  """Whether the run was told to stop: SIGTERM here, or JAX's preemption service.

  Alone (no jax.distributed), a SIGTERM handler notes the signal. With
  jax.distributed, JAX already handles SIGTERM (its preemption notifier, in
  C++; a Python handler would replace it): one host's notice reaches every
  host, and `reached_preemption_sync_point` (asked through Orbax's manager at
  every step, on every host) turns true on all of them at the same step.
  """

  def __init__(self):
    self._signalled = False
    self._previous: Any = None

  def __enter__(self) -> _PreemptionNotice:
    if not jax.distributed.is_initialized() and (
        threading.current_thread() is threading.main_thread()
    ):
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _handle(self, signum: int, frame: Any) -> None:
    del signum, frame
    self._signalled = True

  def reached(self, manager: Any, step: int) -> bool:
    """Whether to save `step` and stop (call at every step, on every process)."""
    return manager.reached_preemption(step) or self._signalled


def _check_finite(state: Any, trainer: Trainer, on_nonfinite: str) -> int:
  """The number of non-finite steps so far; raises NonFiniteError if any and "stop"."""
  first = int(parallel.first_replica(state.first_nonfinite_step))
  if first < 0:
    return 0
  count = (
      int(parallel.first_replica(state.nonfinite_steps)) if hasattr(state, "nonfinite_steps") else 1
  )
  if on_nonfinite == "stop":
    counted = f" ({count} such steps)" if hasattr(state, "nonfinite_steps") else ""
    hint = (
        " Set train.on_nonfinite='skip' to skip such steps."
        if hasattr(state, "nonfinite_steps")
        else ""
    )
    raise NonFiniteError(
        f"non-finite loss or gradient at step {first}{counted}"
        f"{trainer.where_nonfinite(state, first)}. Its update was not applied and the "
        f"last checkpoint is intact.{hint}"
    )
  return count


def _log(
    writer: Any, trainer: Trainer, step: int, num_steps: int, interval: list[Any], elapsed: float
) -> None:
  """Writes the interval's mean step metrics and rates; logs them with the ETA."""
  means = jax.tree.map(lambda *xs: float(np.mean(xs)), *parallel.first_replica(interval))
  steps_per_second = len(interval) / elapsed
  rate = steps_per_second * trainer.units_per_step
  means.update({f"{trainer.unit}_per_second": rate, "steps_per_second": steps_per_second})
  writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
  logging.info(
      "step %d/%d %s %.0f %s/s ETA %.0fs",
      step,
      num_steps,
      trainer.describe(means),
      rate,
      trainer.unit,
      (num_steps - step) / steps_per_second,
  )
