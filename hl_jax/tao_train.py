r"""Supervised training of TaoHighlight (hl_jax/taohighlight.py) on a benchmark's labels.

  python -m hl_jax.tao_train --config=configs/taohighlight.py:benchmark=tvsum --workdir=W

Inputs, targets and batches: hl_jax/tao_data.py (the train split, config.group,
num_labelled; val or, with cv_folds > 0, a fold of the train videos).
Weak start ("feed"): config.weak.workdir's Less-is-More scorer f
(`predict.load_scorer`, on the first D_f feature columns: the feature sets are
prefixes of one another) scores every clip; z-normalised per video, the scores
are one extra visual channel, so TaoHighlight starts from what f learned.

The step `(state, batch, rng) -> (state, metrics)` is jitted over a 1-D mesh of
all devices (batch split on its leading axis, state donated); step t uses
fold_in(rng, t) and the videos `batch_indices(..., t)`, so resuming is exact;
a workdir resumes only with its config, but for RESUMABLE_KEYS (or with
checkpoint.allow_changed_config). A non-finite loss or gradient is not applied
and stops the run at the next log or checkpoint step (`train.NonFiniteError`):
nothing non-finite is saved. mAP comes only from `evaluation.evaluate`.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, NamedTuple, Sequence

from absl import app
from absl import flags
from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from hl_jax import checkpointing
from hl_jax import config_checks
from hl_jax import datasets
from hl_jax import evaluation
from hl_jax import rendering
from hl_jax import tao_data
from hl_jax import taohighlight
from hl_jax import train
from hl_jax import writers

DATA_AXIS = "data"
# Keys that may change when a workdir resumes (logging, evaluation, checkpoint
# cadence, data location, length); any other change is refused (config_checks).
RESUMABLE_KEYS = ("train.num_steps", "train.log_every", "train.eval_every", "checkpoint.",
                  "data_dir", "data_root", "distributed.")


@flax.struct.dataclass
class TrainState:
  """step [] int32; params, opt_state; first_nonfinite_step [] int32 (-1: none)."""
  step: jnp.ndarray
  params: Any
  opt_state: Any
  first_nonfinite_step: jnp.ndarray


def build_model(config: ml_collections.ConfigDict) -> taohighlight.TaoHighlight:
  """TaoHighlight with the config.model keys of the same names."""
  return taohighlight.TaoHighlight(**{k: v for k, v in config.model.items()
                                      if k != "visual_dim"})


def _context(batch: dict[str, Any]) -> dict[str, Any]:
  return {k: batch.get(k) for k in ("text", "text_mask", "audio")}


def make_mesh(batch_size: int) -> Mesh:
  """A 1-D ('data',) mesh of all devices; batch_size must divide among them."""
  devices = jax.devices()
  if batch_size % len(devices):
    raise ValueError(f"train.batch_size={batch_size} is not a multiple of the "
                     f"{len(devices)} devices")
  return Mesh(np.asarray(devices), (DATA_AXIS,))


class Steps(NamedTuple):
  """tx (adamw) and jitted init, train_step `(state, batch, rng) -> (state, loss parts)`
  (state donated) and predict `(params, batch) -> (saliency [B, T], segments [B, 2])`."""
  tx: optax.GradientTransformation
  init: Any
  train_step: Any
  predict: Any


@functools.lru_cache(maxsize=4)
def compiled(model: taohighlight.TaoHighlight, loss: ml_collections.FrozenConfigDict,
             learning_rate: float, weight_decay: float, mesh: Mesh) -> Steps:
  """`Steps` over `mesh`, built once per process for equal arguments, so runs in one
  process (CV folds, tests) compile once; loss is a frozen `config.loss`."""
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)

  def loss_fn(params, batch, key):
    out = model.apply({"params": params}, batch["visual"], batch["mask"], train=True,
                      rngs={"dropout": key}, **_context(batch))
    parts = taohighlight.total_loss(out, batch["mask"], batch["segment"], batch["saliency"],
                                    loss.segment_length, tuple(loss.thetas), loss.w_ag,
                                    loss.w_sal, loss.w_reg, loss.reg_scale)
    parts = {k: jnp.mean(v) for k, v in parts.items()}
    return parts["total"], parts

  def train_step(state: TrainState, batch: dict[str, jnp.ndarray], rng: jnp.ndarray):
    key = jax.random.fold_in(rng, state.step)
    grads, parts = jax.grad(loss_fn, has_aux=True)(state.params, batch, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(parts["total"]) & jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(finite, new, old))
    first = jnp.where((state.first_nonfinite_step < 0) & ~finite, state.step,
                      state.first_nonfinite_step)
    return state.replace(step=state.step + 1, params=keep(params, state.params),
                         opt_state=keep(opt_state, state.opt_state),
                         first_nonfinite_step=first), parts

  def predict_step(params, batch):
    out = model.apply({"params": params}, batch["visual"], batch["mask"], train=False,
                      **_context(batch))
    return out["saliency"], taohighlight.decode_segments(
        out["start_logits"], batch["mask"], loss.segment_length)

  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))
  return Steps(
      tx, jax.jit(functools.partial(model.init, train=False)),
      jax.jit(train_step, in_shardings=(replicated, sharded, replicated),
              out_shardings=(replicated, replicated), donate_argnums=0),
      # Replicated outputs: every process reads the whole prediction (multi-host).
      jax.jit(predict_step, in_shardings=(replicated, sharded), out_shardings=replicated))


def steps_of(config: ml_collections.ConfigDict, mesh: Mesh) -> Steps:
  """`compiled` for a config."""
  return compiled(build_model(config), ml_collections.FrozenConfigDict(config.loss),
                  config.train.learning_rate, config.train.weight_decay, mesh)


def init_state(seed: int, steps: Steps, batch: dict[str, np.ndarray]) -> TrainState:
  """A fresh state from `seed`, shaped by `batch` (one example is enough)."""
  params = steps.init(jax.random.PRNGKey(seed), batch["visual"], batch["mask"],
                      **_context(batch))["params"]
  return TrainState(step=jnp.int32(0), params=params, opt_state=steps.tx.init(params),
                    first_nonfinite_step=jnp.int32(-1))


def predict_examples(predict_fn, params: Any, examples: Sequence[tao_data.Example],
                     batch_size: int, t_max: int, l_max: int, text_width: int, mesh: Mesh
                     ) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
  """Per-video saliency scores [T_i] and decoded segments, each video exactly once
  (the last batch is filled up with copies of its last video, then dropped)."""
  scores, segments = [], []
  for i in range(0, len(examples), batch_size):
    chunk = list(examples[i:i + batch_size])
    filled = chunk + [chunk[-1]] * (batch_size - len(chunk))
    batch = jax.device_put(tao_data.collate(filled, t_max, l_max, text_width),
                           NamedSharding(mesh, P(DATA_AXIS)))
    sal, seg = jax.device_get(predict_fn(params, batch))
    for j, e in enumerate(chunk):
      scores.append(np.asarray(sal[j, :len(e.visual)], np.float64))
      segments.append((int(seg[j, 0]), int(seg[j, 1])))
  return scores, segments


def load_video_scorer(workdir: str) -> tuple[Any, int, int]:
  """`predict.load_video_scorer` for a TaoHighlight workdir: (fn, D, step); fn maps
  videos (.video_id, .features [T_i, D] of the run's feature_set, optional .text) to
  their [T_i] saliency logits, all padded to one shape (one compile), one device."""
  config, state = checkpointing.restore_workdir(workdir)
  mesh = Mesh(np.asarray(jax.devices()[:1]), (DATA_AXIS,))
  predict_fn = steps_of(config, mesh).predict

  def score_videos(videos: Sequence[Any]) -> list[np.ndarray]:
    weak = (tao_data.weak_channel(config.weak.workdir, videos) if config.weak.workdir
            else None)
    examples = tao_data.make_examples(videos, config, weak)
    scores, _ = predict_examples(predict_fn, state["params"], examples, 1,
                                 *tao_data.padded_lengths(examples), mesh)
    return [s.astype(np.float32) for s in scores]

  return score_videos, datasets.FEATURE_DIMS[config.feature_set], int(state["step"])


def _evaluate(config: ml_collections.ConfigDict, predict_fn: Any, data: dict[str, Any],
              mesh: Mesh, state: TrainState, step: int) -> tuple[dict, dict]:
  """({"step", "mAP", "hit1", "per_group", "iou"}, `evaluation.evaluate`'s result)."""
  videos, examples = data["eval_videos"], data["eval"]
  scores, segments = predict_examples(predict_fn, state.params, examples,
                                      config.train.batch_size, *data["shapes"], mesh)
  result = evaluation.evaluate(config.benchmark, videos, {
      v.video_id: s for v, s in zip(videos, scores)}, split=data["split"])
  iou = taohighlight.iou_summary(segments, [e.segment for e in examples])
  logging.info("step %d %s %s mAP %.2f hit1 %.2f mean IoU %.3f", step, config.benchmark,
               data["split"], 100 * result["mAP"], 100 * result["hit1"], iou["mean_iou"])
  return {"step": step, "mAP": result["mAP"], "hit1": result["hit1"],
          "per_group": result["per_group"], "iou": iou}, result


def _check_finite(state: TrainState, train_ex: Sequence[tao_data.Example], config) -> None:
  first = int(state.first_nonfinite_step)
  if first >= 0:
    idx = tao_data.batch_indices(len(train_ex), config.train.batch_size, config.seed, first)
    raise train.NonFiniteError(
        f"non-finite loss or gradient at step {first} (videos "
        f"{', '.join(train_ex[i].video_id for i in idx)}); its update was not applied "
        "and no checkpoint was written after it")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains TaoHighlight, evaluates it, writes <workdir>/results.json; resumes a workdir.

  Returns:
    {"step", "benchmark", "split", "mAP", "hit1", "per_group", "iou", "evaluation"
    (`evaluation.evaluate`'s result), "random_mAP", "history" (every evaluation),
    "num_train_videos", "num_eval_videos", "text_videos", "wall_s", "config"}.
  """
  datasets.check_choice("benchmark", config.benchmark, datasets.BENCHMARKS)
  datasets.check_choice("model.context", config.model.context, taohighlight.CONTEXTS)
  mesh = make_mesh(config.train.batch_size)
  with checkpointing.exclusive_workdir(workdir):
    changed = config_checks.check_resume(
        workdir, config, has_checkpoints=checkpointing.has_checkpoints(workdir),
        resumable=RESUMABLE_KEYS)
    if changed:
      logging.warning("Resuming %s with a changed config: %s", workdir, "; ".join(
          f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
    return _run(config, workdir, mesh)


def _prepare(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The run's videos and examples: {"train", "eval", "eval_videos", "split", "shapes"}."""
  train_videos, eval_videos, split = tao_data.load_videos(config)
  if not train_videos or not eval_videos:
    raise ValueError(f"{len(train_videos)} train, {len(eval_videos)} {split} videos: too few")
  weak = (tao_data.weak_channel(config.weak.workdir, train_videos + eval_videos)
          if config.weak.workdir else None)
  data = {"train": tao_data.make_examples(train_videos, config, weak),
          "eval": tao_data.make_examples(eval_videos, config, weak),
          "eval_videos": eval_videos, "split": split}
  data["shapes"] = tao_data.padded_lengths(data["train"] + data["eval"])
  data["text_videos"] = sum(e.text is not None for e in data["train"] + data["eval"])
  logging.info("%s: %d train, %d %s videos; T_max %d, L_max %d (%d videos with text)",
               config.benchmark, len(data["train"]), len(eval_videos), split,
               *data["shapes"][:2], data["text_videos"])
  return data


def _run(config: ml_collections.ConfigDict, workdir: str, mesh: Mesh) -> dict[str, Any]:
  start_time, is_chief = time.time(), jax.process_index() == 0
  checkpointing.save_config(workdir, config)
  data = _prepare(config)
  train_ex, shapes = data["train"], data["shapes"]
  steps = steps_of(config, mesh)
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))
  first = tao_data.collate(train_ex[:1], *shapes)
  state = jax.device_put(init_state(config.seed, steps, first), replicated)
  manager = checkpointing.make_manager(workdir, max_to_keep=config.checkpoint.max_to_keep)
  restored = checkpointing.restore_latest(manager, checkpointing.abstract_like(state))
  state = state if restored is None else restored[0]
  rng = jax.device_put(jax.random.PRNGKey(config.seed + 1), replicated)
  evaluate = functools.partial(_evaluate, config, steps.predict, data, mesh)

  step, num_steps, every = int(state.step), config.train.num_steps, config.train.eval_every
  writer = writers.create_writer(workdir, is_chief=is_chief)
  history = rendering.EvalHistory(workdir, is_chief, step)
  if every and 0 < step < num_steps and step % every == 0 and step not in history:
    history.add(evaluate(state, step)[0])  # Killed before its evaluation.
  logging.info("Training steps %d..%d, %d videos per step on %d devices", step, num_steps,
               config.train.batch_size, mesh.size)
  interval_start, interval = time.time(), []
  while step < num_steps:
    idx = tao_data.batch_indices(len(train_ex), config.train.batch_size, config.seed, step)
    batch = jax.device_put(tao_data.collate([train_ex[i] for i in idx], *shapes), sharded)
    state, parts = steps.train_step(state, batch, rng)
    step += 1
    interval.append(parts)
    if step % 10 == 0:
      jax.block_until_ready(parts)  # Bounds the queued steps (forced CPU devices).
    if step % config.train.log_every == 0 or step == num_steps:
      _check_finite(state, train_ex, config)
      _log(writer, step, num_steps, interval, time.time() - interval_start)
      interval_start, interval = time.time(), []
    if step % config.checkpoint.every_steps == 0 or step == num_steps:
      _check_finite(state, train_ex, config)
      checkpointing.save(manager, step, state, {"step": step})
    if every and step % every == 0 and step < num_steps:
      history.add(evaluate(state, step)[0])
  manager.wait_until_finished()
  final, full = evaluate(state, step)
  if step not in history:
    history.add(final)
  random = evaluation.random_baseline(config.benchmark, data["eval_videos"], 5,
                                      split=data["split"])
  results = dict(final, evaluation=full, benchmark=config.benchmark, split=data["split"],
                 random_mAP=random["mAP"], history=history.entries(),
                 num_train_videos=len(train_ex), num_eval_videos=len(data["eval"]),
                 text_videos=data["text_videos"], wall_s=time.time() - start_time,
                 config=json.loads(config.to_json_best_effort()))
  writer.flush()
  if is_chief:
    path = os.path.join(workdir, "results.json")
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)  # Atomic: a reader never sees half a file.
  logging.info("Final mAP %.2f (random %.2f) after %.0f s", 100 * results["mAP"],
               100 * results["random_mAP"], results["wall_s"])
  return results


def _log(writer: Any, step: int, num_steps: int, interval: list[Any], elapsed: float) -> None:
  """Writes the interval's mean loss parts and steps/s; logs them with the ETA."""
  means = {f"train/{k}": float(np.mean(v)) for k, v in
           jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(interval)).items()}
  means["train/steps_per_second"] = rate = len(interval) / elapsed
  writer.write_scalars(step, means)
  logging.info("step %d/%d loss %.4f (reg %.3f ag %.3f sal %.4f) %.2f steps/s ETA %.0fs",
               step, num_steps, means["train/total"], means["train/reg"], means["train/ag"],
               means["train/saliency"], rate, (num_steps - step) / rate)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  writers.quiet_libraries(logging.get_verbosity())
  tfds.disable_progress_bar()
  train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  # Defined only when run as a program: launch.py imports this module and has its own.
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Checkpoints, metrics and results.json.")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
