"""Training loop of Less-is-More: one compiled step, checkpoints, evaluation.

The train step is a pure function `(state, table) -> (state, metrics)`:
it samples m groups of n (short, long) pairs from the resident segment table
with `fold_in(state.rng, state.step)`, scores them with f, weights them with
the per-group softmax of h (joint; or one of the weightings that cannot
collapse, `train.weighting`, hl_jax/losses.py), 1/n (Ranking-D) or EM
posteriors (Ranking-EM), and applies the optax update. Every step logs the
weights' diagnostics (entropy, effective pairs per group, largest weight,
weight on satisfied pairs). It is jitted once over the mesh
with the state donated.

Ranking-EM, exactly: each pair (i, j) has a latent z_ij, valid with prior p.
A valid pair is ordered as a Bradley-Terry model says, P(order | valid) =
sigmoid(f(x_i) - f(x_j)); an invalid pair's order is a coin flip, 1/2.
E-step (with the current f, no gradient): gamma_ij = p s / (p s + (1 - p) / 2)
with s = sigmoid(f(x_i) - f(x_j)); the pair weights are gamma normalised to sum
to 1 in each group, as in the joint variant. M-step: one optimizer step of f on
the weighted loss, and p <- (1 - eta) p + eta mean(gamma), an online EM update
of the prior (eta = em.prior_rate). p lives in the train state, so it is
checkpointed and a resumed run continues exactly.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hl_jax import checkpointing
from hl_jax import config_checks
from hl_jax import datasets
from hl_jax import evaluation
from hl_jax import heldout
from hl_jax import input_pipeline
from hl_jax import losses
from hl_jax import models
from hl_jax import parallel
from hl_jax import rendering
from hl_jax import segment_table
from hl_jax import writers

VARIANTS = config_checks.VARIANTS


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; checkpointed whole.

  Attributes:
    step: [] int32, steps taken.
    params: {"f": scorer params, "h": pair-weight params (joint only)}.
    opt_state: optax state of `params`.
    rng: [2] uint32 base key; step t uses fold_in(rng, t).
    nonfinite_steps: [] int32, steps whose loss or gradient was not finite
      (their update was not applied).
    first_nonfinite_step: [] int32, the first such step, -1 if none.
    em_prior: [] float32, Ranking-EM's prior valid-pair proportion p.
  """
  step: jnp.ndarray
  params: Any
  opt_state: Any
  rng: jnp.ndarray
  nonfinite_steps: jnp.ndarray
  first_nonfinite_step: jnp.ndarray
  em_prior: jnp.ndarray


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer named by `config.train.optimizer` (adamw or sgd)."""
  train = config.train
  if train.optimizer == "adamw":
    return optax.adamw(train.learning_rate, weight_decay=train.weight_decay)
  if train.optimizer == "sgd":
    return optax.chain(optax.add_decayed_weights(train.weight_decay),
                       optax.sgd(train.learning_rate, momentum=train.momentum))
  raise ValueError(f"train.optimizer={train.optimizer!r} must be 'adamw' or 'sgd'")


def init_state(config: ml_collections.ConfigDict, scorer: models.Scorer,
               weigher: models.PairWeigher, tx: optax.GradientTransformation,
               feature_dim: int) -> TrainState:
  """A fresh state from `config.seed`."""
  rng = jax.random.PRNGKey(config.seed)
  key_f, key_h, key_run = jax.random.split(rng, 3)
  x = jnp.zeros((1, feature_dim), jnp.float32)
  params = {"f": scorer.init(key_f, x)["params"]}
  if config.variant == "joint" and config.train.weighting in losses.H_WEIGHTINGS:
    params["h"] = weigher.init(key_h, x, x)["params"]
  return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                    rng=key_run, nonfinite_steps=jnp.int32(0),
                    first_nonfinite_step=jnp.int32(-1),
                    em_prior=jnp.float32(config.em.prior_init))


def make_train_step(config: ml_collections.ConfigDict, scorer: models.Scorer,
                    weigher: models.PairWeigher,
                    tx: optax.GradientTransformation, mesh: jax.sharding.Mesh):
  """The jitted `(state, table) -> (state, metrics)` step over `mesh`."""
  m, n = config.train.num_groups, config.train.group_size
  bags = config.train.get("pair_groups", "random") == "video"
  margin = config.train.margin
  compute_dtype = jnp.dtype(config.model.dtype)
  rows_sharding = parallel.per_shard_groups(mesh)
  pairs_sharding = parallel.batch_sharded(mesh)

  weighting = config.train.weighting
  schedule_steps = config.train.weight_schedule_steps

  def loss_fn(params, em_prior, step, x_short, x_long, key):
    key_s, key_l, key_h = jax.random.split(key, 3)
    f_short = scorer.apply({"params": params["f"]}, x_short, train=True,
                           rngs={"dropout": key_s})
    f_long = scorer.apply({"params": params["f"]}, x_long, train=True,
                          rngs={"dropout": key_l})
    pair_loss = losses.pair_loss(config.train.pair_loss, f_short, f_long, margin)
    aux = {}
    if config.variant == "joint":
      logits = None
      if weighting in losses.H_WEIGHTINGS:
        logits = weigher.apply({"params": params["h"]}, x_short, x_long,
                               train=True, rngs={"dropout": key_h})
      progress = losses.ramp(step, schedule_steps)
      weights = losses.pair_weights(
          weighting, pair_loss, logits, progress,
          temperature_start=config.train.weight_temperature_start,
          valid_fraction=config.train.valid_fraction)
      loss_f, loss_h = losses.weighting_losses(
          weighting, pair_loss, weights, progress,
          valid_fraction=config.train.valid_fraction,
          entropy_bonus=config.train.weight_entropy_bonus)
      group_loss = loss_f + loss_h
    else:
      if config.variant == "ranking_em":
        posterior = em_posterior(jax.lax.stop_gradient(f_short - f_long), em_prior)
        weights = posterior / jnp.sum(posterior, axis=-1, keepdims=True)
        aux["em_posterior"] = jnp.mean(posterior)
      else:
        weights = losses.uniform_weights(pair_loss.shape)
      group_loss = losses.weighted_group_loss(pair_loss, weights)
    loss = jnp.mean(group_loss)
    aux.update(loss=loss, pair_loss_unweighted=jnp.mean(pair_loss),
               pair_accuracy=jnp.mean((f_short > f_long).astype(jnp.float32)))
    aux.update(losses.weight_diagnostics(weights, pair_loss))
    return loss, aux

  def train_step(state: TrainState, table: segment_table.SegmentTable):
    key = jax.random.fold_in(state.rng, state.step)
    key_pairs, key_dropout = jax.random.split(key)
    rows_short, rows_long = segment_table.sample_pairs(table, key_pairs, m, n, bags)
    rows_short = jax.lax.with_sharding_constraint(rows_short, rows_sharding)
    rows_long = jax.lax.with_sharding_constraint(rows_long, rows_sharding)
    x_short, x_long = (jax.lax.with_sharding_constraint(
        segment_table.gather_features(table, rows).astype(compute_dtype),
        pairs_sharding) for rows in (rows_short, rows_long))
    grads, aux = jax.grad(loss_fn, has_aux=True)(
        state.params, state.em_prior, state.step, x_short, x_long, key_dropout)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(aux["loss"]) & jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(finite, new, old))
    new_state = state.replace(
        step=state.step + 1,
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
        first_nonfinite_step=jnp.where(
            (state.first_nonfinite_step < 0) & ~finite, state.step,
            state.first_nonfinite_step))
    if config.variant == "ranking_em":
      rate = config.em.prior_rate
      new_prior = (1 - rate) * state.em_prior + rate * aux["em_posterior"]
      new_state = new_state.replace(
          em_prior=jnp.where(finite, new_prior, state.em_prior))
      aux["em_prior"] = new_state.em_prior
    return new_state, aux

  replicated = parallel.replicated(mesh)
  return jax.jit(train_step, in_shardings=(replicated, parallel.per_shard(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def em_posterior(score_gap: jnp.ndarray, prior: jnp.ndarray) -> jnp.ndarray:
  """Ranking-EM's E-step: P(pair valid | f), [..., n] -> [..., n].

  Args:
    score_gap: f(x_short) - f(x_long) per pair.
    prior: [] the prior valid-pair proportion p.
  """
  likely = prior * jax.nn.sigmoid(score_gap)
  return likely / (likely + (1.0 - prior) * 0.5)


class NonFiniteError(FloatingPointError):
  """Training met a non-finite loss or gradient."""


def _check_finite(state: TrainState, config: ml_collections.ConfigDict,
                  feeder: input_pipeline.TableFeeder | None = None,
                  window_first_step: int = 0) -> int:
  """Raises (on_nonfinite='stop') if any step since the start was non-finite.

  The error names the first bad step and, when that step drew from the current
  table windows, the videos of its pairs.
  """
  bad = int(parallel.first_replica(state.nonfinite_steps))
  if bad and config.train.on_nonfinite == "stop":
    first = int(parallel.first_replica(state.first_nonfinite_step))
    videos = None
    if feeder is not None and first >= window_first_step:
      key = jax.random.fold_in(parallel.first_replica(state.rng), first)
      videos = feeder.videos_of_pairs(jax.random.split(key)[0],
                                      config.train.num_groups, config.train.group_size,
                                      config.train.get("pair_groups", "random") == "video")
    where = (f"; its pairs came from videos {', '.join(videos[:20])}"
             f"{' ...' if len(videos) > 20 else ''}" if videos else "")
    raise NonFiniteError(
        f"non-finite loss or gradient at step {first} ({bad} such steps){where}. "
        "Its update was not applied and the last checkpoint is intact. Set "
        "train.on_nonfinite='skip' to skip such steps.")
  return bad


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains on the configured corpus, evaluates, and writes results to workdir.

  Rerunning with the same workdir resumes from its newest checkpoint.
  Every evaluation (every eval.every_steps steps and at the end) is appended to
  `<workdir>/history.jsonl` and read back on resume, so "history" covers the
  whole run (evaluations after the restored step are dropped and redone).

  Returns:
    The final results dict (also written to `<workdir>/results.json`):
    {"step", <evaluator name>: its results, "nonfinite_steps_skipped",
    "history": every evaluation in step order, and, with a "heldout"
    evaluator (corpus.holdout_fraction > 0), "selected": the evaluation with
    the best held-out pair accuracy, earliest on ties (`heldout.select`)}.

  Raises:
    config_checks.ConfigError: a bad config value (before anything is
      written), or a workdir whose checkpoints came from another config.
    checkpointing.WorkdirLockedError: another run holds the workdir.
  """
  config_checks.validate(config)
  with checkpointing.exclusive_workdir(workdir):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """train_and_evaluate, holding the workdir's lock."""
  changed = config_checks.check_resume(
      workdir, config, has_checkpoints=checkpointing.has_checkpoints(workdir))
  if changed:
    logging.warning("Resuming %s with a changed config (checkpoint.allow_changed_config): %s",
                    workdir, "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
  config_checks.check_devices(config, jax.device_count())
  mesh = parallel.make_mesh(jax.devices()[:config.num_devices or None],
                            input_pipeline.num_shards(config))
  is_chief = jax.process_index() == 0
  writer = writers.create_writer(workdir, is_chief=is_chief)
  checkpointing.save_config(workdir, config)
  data = datasets.load_corpus(config)
  logging.info("Corpus %s: %d training videos, feature dim %d, %d eval videos",
               data.name, len(data.train_source), data.feature_dim,
               len(data.eval_videos))
  evaluators = evaluation.make_evaluators(config, data)

  scorer, weigher = models.build(config)
  tx = make_optimizer(config)
  replicated = parallel.replicated(mesh)
  state = jax.device_put(
      init_state(config, scorer, weigher, tx, data.feature_dim), replicated)
  manager = checkpointing.make_manager(
      workdir, max_to_keep=config.checkpoint.max_to_keep)
  restored = checkpointing.restore_latest(
      manager, checkpointing.abstract_like(state))

  feeder = input_pipeline.TableFeeder(config, data, mesh)
  if restored is not None:
    state, input_state = restored
    feeder.restore(input_state)
  window = feeder.current_table()
  train_step = make_train_step(config, scorer, weigher, tx, mesh)

  num_steps = config.train.num_steps
  step = int(parallel.first_replica(state.step))
  history = rendering.EvalHistory(workdir, is_chief, step)
  if (config.eval.every_steps and 0 < step < num_steps
      and step % config.eval.every_steps == 0 and step not in history):
    # Killed after this step's checkpoint but before its evaluation was kept.
    _evaluate(config, evaluators, scorer, state, writer, step, history)
  if step == 0:
    writer.write_hparams(writers.flatten(config.to_dict()))
  pairs_per_step = config.train.num_groups * config.train.group_size
  logging.info("Training steps %d..%d, %d pairs per step on %d devices",
               step, num_steps, pairs_per_step, mesh.size)
  interval_start, interval_steps, interval_metrics = time.time(), 0, []
  window_first_step = step
  while step < num_steps:
    if feeder.should_refill(step):
      window = feeder.refill()
      window_first_step = step
    state, aux = train_step(state, window)
    step += 1
    interval_steps += 1
    interval_metrics.append(aux)
    if step % config.train.sync_every == 0:
      jax.block_until_ready(aux)  # Bounds queued steps (forced-CPU devices).
    if step % config.train.log_every == 0 or step == num_steps:
      _check_finite(state, config, feeder, window_first_step)
      means = jax.tree.map(lambda *xs: float(np.mean(xs)),
                           *parallel.first_replica(interval_metrics))
      elapsed = time.time() - interval_start
      rate = interval_steps * pairs_per_step / elapsed
      eta = (num_steps - step) * elapsed / interval_steps
      means.update(pairs_per_second=rate, steps_per_second=interval_steps / elapsed)
      writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
      logging.info("step %d/%d loss %.4f pair_acc %.3f pairs/group %.2f "
                   "%.0f pairs/s ETA %.0fs", step, num_steps, means["loss"],
                   means["pair_accuracy"], means["effective_pairs"], rate, eta)
      interval_start, interval_steps, interval_metrics = time.time(), 0, []
    if step % config.checkpoint.every_steps == 0 or step == num_steps:
      _check_finite(state, config, feeder, window_first_step)
      checkpointing.save(manager, step, state, feeder.input_state())
    if config.eval.every_steps and step % config.eval.every_steps == 0 \
        and step < num_steps:
      _evaluate(config, evaluators, scorer, state, writer, step, history)
  manager.wait_until_finished()
  results = _evaluate(config, evaluators, scorer, state, writer, step, history)
  results["nonfinite_steps_skipped"] = _check_finite(state, config)
  results["history"] = history.entries()
  selected = heldout.select(results["history"])
  if selected is not None:
    results["selected"] = selected
    logging.info("Selected step %d of %d evaluations by %s (%.4f)", selected["step"],
                 len(results["history"]), selected["selected_by"],
                 selected["heldout"]["heldout"]["pair_accuracy"])
  if is_chief:
    print(rendering.write_results(workdir, config.variant, results))
  writer.flush()
  return results


def _evaluate(config: ml_collections.ConfigDict, evaluators: list[Any],
              scorer: models.Scorer, state: TrainState, writer: Any, step: int,
              history: rendering.EvalHistory) -> dict[str, Any]:
  """Runs every evaluator on f: {"step", <evaluator name>: its results}.

  The results are also added to `history`.
  """
  score_fn = evaluation.make_score_fn(
      scorer, parallel.first_replica(state.params["f"]),
      chunk=config.eval.chunk_segments)
  results: dict[str, Any] = {"step": step}
  for evaluator in evaluators:
    results[evaluator.name] = result = evaluator.run(score_fn)
    logging.info("step %d %s %s", step, evaluator.name, evaluation.summary(result))
  writer.write_scalars(step, evaluation.scalars(results))
  history.add(results)
  return results
