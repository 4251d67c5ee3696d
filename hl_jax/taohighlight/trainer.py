r"""TaoHighlight's part of the run loop: supervised training on a benchmark's labels.

  python launch.py --config=configs/taohighlight.py:benchmark=tvsum --workdir=W

Inputs, targets and batches: hl_jax/taohighlight/inputs.py (the train split,
config.group, num_labelled; val or, with cv_folds > 0, a fold of the train
videos). Weak start ("feed"): config.weak.workdir's per-segment scorer
(`families.load_segment_scorer`, on the first D_f feature columns: the
feature sets are prefixes of one another) scores every clip; z-normalised per
video, the scores are one extra visual channel, so TaoHighlight starts from
what that model learned.

The step `(state, batch, rng) -> (state, metrics)` is jitted over the mesh
(batch split on its leading axis, state donated); step t uses
fold_in(rng, t) and the videos `batch_indices(..., t)`, so resuming is exact.
A non-finite loss or gradient is not applied and stops the run at the next
log or checkpoint step (hl_jax.core.run_loop). mAP comes only from
`protocols.evaluate`, the reference protocol.
"""

from __future__ import annotations

import functools
import json
from typing import Any, NamedTuple, Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import numpy as np
import optax

from hl_jax.core import config_checks
from hl_jax.core import parallel
from hl_jax.core import run_loop
from hl_jax.data import benchmarks
from hl_jax.data import features_file
from hl_jax.eval import protocols
from hl_jax.eval import reports
from hl_jax.taohighlight import baselines
from hl_jax.taohighlight import inputs
from hl_jax.taohighlight import losses
from hl_jax.taohighlight import network
from hl_jax.taohighlight import targets

TrainState = run_loop.TrainState


def build_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The network of config.model.kind: TaoHighlight with the config.model keys of the
  same names, or a plain baseline (hl_jax/taohighlight/baselines.py). Configs made
  before model.kind existed are TaoHighlight."""
  kind = config.model.get("kind", "taohighlight")
  if kind in baselines.BUILDERS:
    return baselines.BUILDERS[kind](config.model)
  unused = ("visual_dim", "kind", "layers")  # Not TaoHighlight's.
  return network.TaoHighlight(**{k: v for k, v in config.model.items() if k not in unused})


def _context(batch: dict[str, Any]) -> dict[str, Any]:
  return {k: batch.get(k) for k in ("text", "text_mask", "audio")}


class Steps(NamedTuple):
  """tx (adamw) and jitted init, train_step `(state, batch, rng) -> (state, loss parts)`
  (state donated) and predict `(params, batch) -> (saliency [B, T], segments [B, 2])`."""

  tx: optax.GradientTransformation
  init: Any
  train_step: Any
  predict: Any


@functools.lru_cache(maxsize=4)
def compiled(
    model: network.TaoHighlight,
    loss: ml_collections.FrozenConfigDict,
    learning_rate: float,
    weight_decay: float,
    mesh: Mesh,
) -> Steps:
  """`Steps` over `mesh`, built once per process for equal arguments, so runs in one
  process (CV folds, tests) compile once; loss is a frozen `config.loss`."""
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)

  def loss_fn(params, batch, key):
    out = model.apply(
        {"params": params},
        batch["visual"],
        batch["mask"],
        train=True,
        rngs={"dropout": key},
        **_context(batch),
    )
    parts = losses.total_loss(
        out,
        batch["mask"],
        batch["segment"],
        batch["saliency"],
        loss.segment_length,
        tuple(loss.thetas),
        loss.w_ag,
        loss.w_sal,
        loss.w_reg,
        loss.reg_scale,
    )
    parts = {k: jnp.mean(v) for k, v in parts.items()}
    return parts["total"], parts

  def train_step(state: TrainState, batch: dict[str, jnp.ndarray], rng: jnp.ndarray):
    key = jax.random.fold_in(rng, state.step)
    grads, parts = jax.grad(loss_fn, has_aux=True)(state.params, batch, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = run_loop.all_finite(parts["total"], grads)
    return run_loop.guarded_update(state, finite, params, opt_state), parts

  def predict_step(params, batch):
    out = model.apply(
        {"params": params}, batch["visual"], batch["mask"], train=False, **_context(batch)
    )
    return out["saliency"], targets.decode_segments(
        out["start_logits"], batch["mask"], loss.segment_length
    )

  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  return Steps(
      tx,
      jax.jit(functools.partial(model.init, train=False)),
      jax.jit(
          train_step,
          in_shardings=(replicated, sharded, replicated),
          out_shardings=(replicated, replicated),
          donate_argnums=0,
      ),
      # Replicated outputs: every process reads the whole prediction (multi-host).
      jax.jit(predict_step, in_shardings=(replicated, sharded), out_shardings=replicated),
  )


def steps_of(config: ml_collections.ConfigDict, mesh: Mesh) -> Steps:
  """`compiled` for a config."""
  return compiled(
      build_model(config),
      ml_collections.FrozenConfigDict(config.loss),
      config.train.learning_rate,
      config.train.weight_decay,
      mesh,
  )


def init_state(seed: int, steps: Steps, batch: dict[str, np.ndarray]) -> TrainState:
  """A fresh state from `seed`, shaped by `batch` (one example is enough)."""
  params = steps.init(jax.random.PRNGKey(seed), batch["visual"], batch["mask"], **_context(batch))[
      "params"
  ]
  return TrainState(
      step=jnp.int32(0),
      params=params,
      opt_state=steps.tx.init(params),
      first_nonfinite_step=jnp.int32(-1),
  )


def predict_examples(
    predict_fn,
    params: Any,
    examples: Sequence[inputs.Example],
    batch_size: int,
    t_max: int,
    l_max: int,
    text_width: int,
    mesh: Mesh,
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
  """Per-video saliency scores [T_i] and decoded segments, each video exactly once
  (the last batch is filled up with copies of its last video, then dropped)."""
  scores, segments = [], []
  for i in range(0, len(examples), batch_size):
    chunk = list(examples[i : i + batch_size])
    filled = chunk + [chunk[-1]] * (batch_size - len(chunk))
    batch = jax.device_put(
        inputs.collate(filled, t_max, l_max, text_width), parallel.batch_sharded(mesh)
    )
    sal, seg = jax.device_get(predict_fn(params, batch))
    for j, e in enumerate(chunk):
      scores.append(np.asarray(sal[j, : len(e.visual)], np.float64))
      segments.append((int(seg[j, 0]), int(seg[j, 1])))
  return scores, segments


class Trainer:
  """TaoHighlight for one run (hl_jax.core.run_loop.Trainer).

  Attributes:
    train_examples, eval_examples: the run's model inputs and targets.
    eval_videos: the evaluated videos (val, or a CV fold of train).
    split: their split's name.
  """

  unit = "videos"

  def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh):
    config_checks.check_choice("benchmark", config.benchmark, benchmarks.BENCHMARKS)
    config_checks.check_choice("model.context", config.model.context, network.CONTEXTS)
    if config.train.batch_size % mesh.size:
      raise config_checks.ConfigError(
          f"train.batch_size={config.train.batch_size} is not a multiple of the "
          f"{mesh.size} devices"
      )
    self._config, self._mesh = config, mesh
    train_videos, self.eval_videos, self.split = inputs.load_videos(config)
    if not train_videos or not self.eval_videos:
      raise ValueError(
          f"{len(train_videos)} train, {len(self.eval_videos)} {self.split} " "videos: too few"
      )
    weak = (
        inputs.weak_channel(config.weak.workdir, train_videos + self.eval_videos)
        if config.weak.workdir
        else None
    )
    self.train_examples = inputs.make_examples(train_videos, config, weak)
    self.eval_examples = inputs.make_examples(self.eval_videos, config, weak)
    self._shapes = inputs.padded_lengths(self.train_examples + self.eval_examples)
    self._text_videos = sum(e.text is not None for e in self.train_examples + self.eval_examples)
    logging.info(
        "%s: %d train, %d %s videos; T_max %d, L_max %d (%d videos with text)",
        config.benchmark,
        len(self.train_examples),
        len(self.eval_videos),
        self.split,
        *self._shapes[:2],
        self._text_videos,
    )
    self._steps = steps_of(config, mesh)
    self._rng = jax.device_put(jax.random.PRNGKey(config.seed + 1), parallel.replicated(mesh))
    self._full: dict[str, Any] = {}  # The last evaluation's protocols.evaluate result.
    self._random: dict[str, Any] = {}  # Random scores' results (`results`).
    self.units_per_step = config.train.batch_size
    self.scorer_record = {
        "family": "taohighlight",
        "feature_dim": benchmarks.FEATURE_DIMS[config.feature_set],
        "feature_set": config.feature_set,
        "benchmark": config.benchmark,
        # Which extractor's features it scores (hl_jax.highlights.scorers.check_feature_space).
        "feature_space": features_file.staged_feature_space(config.feature_set),
    }

  def init_state(self) -> TrainState:
    first = inputs.collate(self.train_examples[:1], *self._shapes)
    return jax.device_put(
        init_state(self._config.seed, self._steps, first), parallel.replicated(self._mesh)
    )

  def restore_input(self, input_state: dict[str, Any] | None) -> None:
    del input_state  # A step's videos follow from (seed, step) alone.

  def input_state(self) -> dict[str, Any]:
    return {}

  def _batch_indices(self, step: int) -> np.ndarray:
    return inputs.batch_indices(
        len(self.train_examples), self._config.train.batch_size, self._config.seed, step
    )

  def train_step(self, state: TrainState, step: int) -> tuple[TrainState, dict[str, Any]]:
    examples = [self.train_examples[i] for i in self._batch_indices(step)]
    t_max, l_max, text_width = self._shapes
    if self._config.train.get("pad_per_batch", False):  # A few compiled lengths, less padding.
      t_max = inputs.bucket_length(max(len(e.visual) for e in examples), t_max)
    batch = inputs.collate(examples, t_max, l_max, text_width)
    batch = jax.device_put(batch, parallel.batch_sharded(self._mesh))
    return self._steps.train_step(state, batch, self._rng)

  def evaluate(self, state: TrainState, step: int) -> dict[str, Any]:
    """{"step", "mAP", "hit1", "per_group", "iou"} of the evaluated split."""
    config = self._config
    scores, segments = predict_examples(
        self._steps.predict,
        state.params,
        self.eval_examples,
        config.train.batch_size,
        *self._shapes,
        self._mesh,
    )
    self._full = protocols.evaluate(
        config.benchmark,
        self.eval_videos,
        {v.video_id: s for v, s in zip(self.eval_videos, scores)},
        split=self.split,
    )
    iou = targets.iou_summary(segments, [e.segment for e in self.eval_examples])
    logging.info(
        "step %d %s %s mAP %.2f hit1 %.2f mean IoU %.3f",
        step,
        config.benchmark,
        self.split,
        100 * self._full["mAP"],
        100 * self._full["hit1"],
        iou["mean_iou"],
    )
    return {
        "step": step,
        "mAP": self._full["mAP"],
        "hit1": self._full["hit1"],
        "per_group": self._full["per_group"],
        "iou": iou,
    }

  def eval_scalars(self, evaluation: dict[str, Any]) -> dict[str, float]:
    name = self._config.benchmark
    return {
        f"eval/{name}_mAP": evaluation["mAP"],
        f"eval/{name}_hit1": evaluation["hit1"],
        f"eval/{name}_mean_iou": evaluation["iou"]["mean_iou"],
    }

  def describe(self, means: dict[str, float]) -> str:
    return (
        f"loss {means['total']:.4f} (reg {means['reg']:.3f} ag {means['ag']:.3f} "
        f"sal {means['saliency']:.4f})"
    )

  def where_nonfinite(self, state: TrainState, step: int) -> str:
    del state
    ids = [self.train_examples[i].video_id for i in self._batch_indices(step)]
    return f"; its videos were {', '.join(ids)}"

  def results(self, final: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """{"step", "benchmark", "split", "mAP", "hit1", "per_group", "iou", "evaluation"
    (`protocols.evaluate`'s result), "random_mAP", "num_train_videos",
    "num_eval_videos", "text_videos", "config"}."""
    del history
    config = self._config
    self._random = random = protocols.random_baseline(
        config.benchmark, self.eval_videos, 5, split=self.split
    )
    return dict(
        final,
        evaluation=self._full,
        benchmark=config.benchmark,
        split=self.split,
        random_mAP=random["mAP"],
        num_train_videos=len(self.train_examples),
        num_eval_videos=len(self.eval_examples),
        text_videos=self._text_videos,
        config=json.loads(config.to_json_best_effort()),
    )

  def markdown(self, results: dict[str, Any]) -> str:
    config = self._config
    title = f"TaoHighlight on {config.benchmark}" + (f" ({config.group})" if config.group else "")
    return reports.results_markdown(
        title,
        {
            "step": results["step"],
            config.benchmark: {
                "title": f"{config.benchmark}, split {self.split}",
                "model": results["evaluation"],
                "random": self._random,
            },
        },
    )
