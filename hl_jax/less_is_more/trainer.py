"""Less-is-More's part of the run loop: its train state, its compiled step, its evaluation.

The train step is a pure function `(state, table) -> (state, metrics)`: it
samples m groups of n (short, long) pairs from the resident segment table
with `fold_in(state.rng, state.step)`, scores them with f, weights them with
`train.weighting` (hl_jax/less_is_more/weightings.py: the joint model's
softmax(h) per group, Ranking-D's 1/n, Ranking-EM's posteriors, or a
weighting that cannot collapse), and applies the optax update unless the loss
or a gradient is not finite. Every step reports the weights' diagnostics
(entropy, effective pairs per group, largest weight, weight on satisfied
pairs). It is jitted once over the mesh with the state donated.

`Trainer` is what hl_jax.core.run_loop drives: the corpus and its table
windows (hl_jax/less_is_more/input_pipeline.py), the step, and the
evaluators (hl_jax/eval/evaluators.py: every labelled split, and the
label-free held-out videos when corpus.holdout_fraction > 0).
"""

from __future__ import annotations

from typing import Any

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from hl_jax.core import config_checks
from hl_jax.core import parallel
from hl_jax.core import run_loop
from hl_jax.data import corpora
from hl_jax.data import features_file
from hl_jax.eval import evaluators
from hl_jax.eval import heldout
from hl_jax.eval import reports
from hl_jax.less_is_more import input_pipeline
from hl_jax.less_is_more import losses
from hl_jax.less_is_more import models
from hl_jax.less_is_more import scoring
from hl_jax.less_is_more import segment_table
from hl_jax.less_is_more import weightings


@flax.struct.dataclass
class TrainState(run_loop.TrainState):
  """Everything a step changes; checkpointed whole.

  Attributes (beside run_loop.TrainState's step, params, opt_state and
  first_nonfinite_step; params are {"f": scorer, "h": pair weights (a
  weighting that uses h)}):
    rng: [2] uint32 base key; step t uses fold_in(rng, t).
    nonfinite_steps: [] int32, steps whose loss or gradient was not finite
      (their update was not applied).
    em_prior: [] float32, Ranking-EM's prior valid-pair proportion p.
  """

  rng: jnp.ndarray
  nonfinite_steps: jnp.ndarray
  em_prior: jnp.ndarray


# train.optimizer -> the optax optimizer of a config's train section.
OPTIMIZERS = {
    "adamw": lambda t: optax.adamw(t.learning_rate, weight_decay=t.weight_decay),
    "sgd": lambda t: optax.chain(
        optax.add_decayed_weights(t.weight_decay), optax.sgd(t.learning_rate, momentum=t.momentum)
    ),
}


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer named by `config.train.optimizer` (`OPTIMIZERS`)."""
  config_checks.check_choice("train.optimizer", config.train.optimizer, tuple(OPTIMIZERS))
  return OPTIMIZERS[config.train.optimizer](config.train)


def init_state(
    config: ml_collections.ConfigDict,
    scorer: models.Scorer,
    weigher: models.PairWeigher,
    tx: optax.GradientTransformation,
    feature_dim: int,
) -> TrainState:
  """A fresh state from `config.seed`."""
  rng = jax.random.PRNGKey(config.seed)
  key_f, key_h, key_run = jax.random.split(rng, 3)
  x = jnp.zeros((1, feature_dim), jnp.float32)
  params = {"f": scorer.init(key_f, x)["params"]}
  if weightings.get(config.train.weighting).uses_h:
    params["h"] = weigher.init(key_h, x, x)["params"]
  return TrainState(
      step=jnp.int32(0),
      params=params,
      opt_state=tx.init(params),
      rng=key_run,
      nonfinite_steps=jnp.int32(0),
      first_nonfinite_step=jnp.int32(-1),
      em_prior=jnp.float32(config.em.prior_init),
  )


def make_train_step(
    config: ml_collections.ConfigDict,
    scorer: models.Scorer,
    weigher: models.PairWeigher,
    tx: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
):
  """The jitted `(state, table) -> (state, metrics)` step over `mesh`."""
  m, n = config.train.num_groups, config.train.group_size
  bags = config.train.pair_groups == "video"
  margin = config.train.margin
  compute_dtype = jnp.dtype(config.model.dtype)
  rows_sharding = parallel.per_shard_groups(mesh)
  pairs_sharding = parallel.batch_sharded(mesh)
  weighting = weightings.get(config.train.weighting)

  def loss_fn(params, em_prior, step, x_short, x_long, key):
    key_s, key_l, key_h = jax.random.split(key, 3)
    f_short = scorer.apply({"params": params["f"]}, x_short, train=True, rngs={"dropout": key_s})
    f_long = scorer.apply({"params": params["f"]}, x_long, train=True, rngs={"dropout": key_l})
    pair_loss = losses.pair_loss(config.train.pair_loss, f_short, f_long, margin)
    logits = None
    if weighting.uses_h:
      logits = weigher.apply(
          {"params": params["h"]}, x_short, x_long, train=True, rngs={"dropout": key_h}
      )
    pairs = weightings.Pairs(
        pair_loss=pair_loss, score_gap=f_short - f_long, logits=logits, step=step, em_prior=em_prior
    )
    weights, terms, aux = weighting.weigh(pairs, config)
    loss = jnp.mean(weightings.group_loss(terms))
    aux.update(
        loss=loss,
        pair_loss_unweighted=jnp.mean(pair_loss),
        pair_accuracy=jnp.mean((f_short > f_long).astype(jnp.float32)),
    )
    aux.update(losses.weight_diagnostics(weights, pair_loss))
    return loss, aux

  def train_step(state: TrainState, table: segment_table.SegmentTable):
    key = jax.random.fold_in(state.rng, state.step)
    key_pairs, key_dropout = jax.random.split(key)
    rows_short, rows_long = segment_table.sample_pairs(table, key_pairs, m, n, bags)
    rows_short = jax.lax.with_sharding_constraint(rows_short, rows_sharding)
    rows_long = jax.lax.with_sharding_constraint(rows_long, rows_sharding)
    x_short, x_long = (
        jax.lax.with_sharding_constraint(
            segment_table.gather_features(table, rows).astype(compute_dtype), pairs_sharding
        )
        for rows in (rows_short, rows_long)
    )
    grads, aux = jax.grad(loss_fn, has_aux=True)(
        state.params, state.em_prior, state.step, x_short, x_long, key_dropout
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = run_loop.all_finite(aux["loss"], grads)
    new_state = run_loop.guarded_update(
        state,
        finite,
        params,
        opt_state,
        nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
    )
    if weighting.updates_prior:
      new_prior = weightings.update_prior(state.em_prior, aux["em_posterior"], config.em.prior_rate)
      new_state = new_state.replace(em_prior=jnp.where(finite, new_prior, state.em_prior))
      aux["em_prior"] = new_state.em_prior
    return new_state, aux

  replicated = parallel.replicated(mesh)
  return jax.jit(
      train_step,
      in_shardings=(replicated, parallel.per_shard(mesh)),
      out_shardings=(replicated, replicated),
      donate_argnums=0,
  )


def title(config: ml_collections.ConfigDict) -> str:
  """What a results table calls a run: its weighting."""
  return f"weighting {config.train.weighting}"


class Trainer:
  """Less-is-More for one run (hl_jax.core.run_loop.Trainer).

  Attributes:
    corpus: the opened training corpus.
    evaluators: what every evaluation runs, in order.
  """

  unit = "pairs"

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    if config.train.num_groups % mesh.size:
      raise config_checks.ConfigError(
          f"train.num_groups={config.train.num_groups} is not divisible by the {mesh.size} "
          "devices"
      )
    self._config, self._mesh = config, mesh
    self.corpus = corpora.load_corpus(config)
    logging.info(
        "Corpus %s: %d training videos, feature dim %d, %d eval videos",
        self.corpus.name,
        len(self.corpus.train_source),
        self.corpus.feature_dim,
        len(self.corpus.eval_videos),
    )
    self.evaluators = evaluators.make_evaluators(config, self.corpus)
    self._scorer, self._weigher = models.build(config)
    self._tx = make_optimizer(config)
    self._feeder = input_pipeline.TableFeeder(config, self.corpus, mesh)
    self._step = make_train_step(config, self._scorer, self._weigher, self._tx, mesh)
    self._window = None
    self._window_first_step: int | None = None
    self.units_per_step = config.train.num_groups * config.train.group_size
    self.scorer_record = {
        "family": "less_is_more",
        "feature_dim": self.corpus.feature_dim,
        "streams": [list(s) for s in config.model.streams],
        "feature_set": config.eval.feature_set if config.eval.benchmarks else None,
        "corpus": self.corpus.name,
        # Which extractor's features it scores (hl_jax.highlights.scorers.check_feature_space).
        "feature_space": features_file.corpus_feature_space(
            config.corpus.builder_config, config.corpus.manual_dir or None
        ),
    }

  def init_state(self) -> TrainState:
    return jax.device_put(
        init_state(self._config, self._scorer, self._weigher, self._tx, self.corpus.feature_dim),
        parallel.replicated(self._mesh),
    )

  def restore_input(self, input_state: dict[str, Any] | None) -> None:
    if input_state is not None:
      self._feeder.restore(input_state)
    self._window = self._feeder.current_table()

  def input_state(self) -> dict[str, Any]:
    return self._feeder.input_state()

  def train_step(self, state: TrainState, step: int) -> tuple[TrainState, dict[str, Any]]:
    if self._window_first_step is None:
      self._window_first_step = step
    if self._feeder.should_refill(step):
      self._window = self._feeder.refill()
      self._window_first_step = step
    return self._step(state, self._window)

  def evaluate(self, state: TrainState, step: int) -> dict[str, Any]:
    """Runs every evaluator on f: {"step", <evaluator name>: its results}."""
    score_fn = scoring.make_score_fn(
        self._scorer,
        parallel.first_replica(state.params["f"]),
        chunk=self._config.eval.chunk_segments,
    )
    results: dict[str, Any] = {"step": step}
    for evaluator in self.evaluators:
      results[evaluator.name] = result = evaluator.run(score_fn)
      logging.info("step %d %s %s", step, evaluator.name, evaluators.summary(result))
    return results

  def eval_scalars(self, evaluation: dict[str, Any]) -> dict[str, float]:
    return evaluators.scalars(evaluation)

  def describe(self, means: dict[str, float]) -> str:
    return (
        f"loss {means['loss']:.4f} pair_acc {means['pair_accuracy']:.3f} "
        f"pairs/group {means['effective_pairs']:.2f}"
    )

  def where_nonfinite(self, state: TrainState, step: int) -> str:
    """The videos of step `step`'s pairs, when they came from the current windows."""
    if self._window_first_step is None or step < self._window_first_step:
      return ""
    key = jax.random.fold_in(parallel.first_replica(state.rng), step)
    videos = self._feeder.videos_of_pairs(
        jax.random.split(key)[0],
        self._config.train.num_groups,
        self._config.train.group_size,
        self._config.train.pair_groups == "video",
    )
    if not videos:
      return ""
    return (
        f"; its pairs came from videos {', '.join(videos[:20])}"
        f"{' ...' if len(videos) > 20 else ''}"
    )

  def results(self, final: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The final evaluation, and with held-out videos the one they select.

    "selected": the evaluation with the best held-out pair accuracy, earliest
    on ties (`heldout.select`), when corpus.holdout_fraction > 0.
    """
    results = dict(final)
    selected = heldout.select(history)
    if selected is not None:
      results["selected"] = selected
      logging.info(
          "Selected step %d of %d evaluations by %s (%.4f)",
          selected["step"],
          len(history),
          selected["selected_by"],
          selected["heldout"]["heldout"]["pair_accuracy"],
      )
    return results

  def markdown(self, results: dict[str, Any]) -> str:
    return reports.results_markdown(title(self._config), results)
