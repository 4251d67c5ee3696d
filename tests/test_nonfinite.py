"""train.on_nonfinite='skip': steps with a NaN loss are skipped and counted.

A few long-video segments of the training corpus are made NaN (the builder
would refuse such a corpus, so it is done here, on the opened data source):
only the steps whose sampled pairs hit one of them see a NaN loss.
"""

import dataclasses
import json
import math
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from configs import tiny
from hl_jax.core import checkpointing
from hl_jax.core import run_loop
from hl_jax.data import corpora
from hl_jax.less_is_more import segment_table

NUM_STEPS = 30
POISONED_VIDEOS = 5


class PoisonedSource:
  """A data source whose first `count` long videos start with a NaN segment."""

  def __init__(self, source, count: int):
    self._source = source
    long_videos = [i for i in range(len(source)) if int(source[i]["bucket"]) == segment_table.LONG]
    self.poisoned = long_videos[:count]

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int):
    example = self._source[index]
    if index in self.poisoned:
      example = dict(example, features=np.array(example["features"], np.float32))
      example["features"][0] = np.nan  # Row 0 survives any subsampling.
    return example

  def __repr__(self) -> str:
    return f"PoisonedSource({self._source!r}, {self.poisoned})"


def states(workdir: str) -> dict[int, dict]:
  """Every checkpointed state of a run, by step."""
  manager = ocp.CheckpointManager(
      checkpointing.checkpoint_dir(workdir), item_names=("state", "input")
  )
  return {
      step: manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))[
          "state"
      ]
      for step in manager.all_steps()
  }


def logged_losses(workdir: str) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def same(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_skip_mode_skips_and_counts_nonfinite_steps(tmp_path, monkeypatch):
  load = corpora.load_corpus

  def poisoned_load(config):
    data = load(config)
    return dataclasses.replace(
        data, train_source=PoisonedSource(data.train_source, POISONED_VIDEOS)
    )

  monkeypatch.setattr(corpora, "load_corpus", poisoned_load)
  config = tiny.get_config()
  config.data_dir = str(tmp_path / "tfds")
  config.train.on_nonfinite = "skip"
  config.train.num_steps = NUM_STEPS
  config.train.log_every = 1  # The loss of every single step is logged.
  config.checkpoint.every_steps = 1  # And its state is kept.
  config.checkpoint.max_to_keep = NUM_STEPS
  workdir = str(tmp_path / "workdir")
  results = run_loop.train_and_evaluate(config, workdir)

  losses = logged_losses(workdir)
  assert sorted(losses) == list(range(1, NUM_STEPS + 1))
  skipped = [step for step, loss in losses.items() if not math.isfinite(loss)]
  assert 0 < len(skipped) < NUM_STEPS // 2, losses
  assert results["nonfinite_steps_skipped"] == len(skipped)
  saved = states(workdir)
  final = saved[NUM_STEPS]
  assert int(final["nonfinite_steps"]) == len(skipped)
  assert int(final["first_nonfinite_step"]) == skipped[0] - 1  # Its step count.
  for leaf in jax.tree.leaves(final["params"]):
    assert np.all(np.isfinite(leaf))
  # A skipped step changes neither the params nor the optimizer state; the
  # others do. (Logged step s is the step that took the state from s-1 to s.)
  for step in range(2, NUM_STEPS + 1):
    before, after = saved[step - 1], saved[step]
    assert int(after["step"]) == step
    unchanged = same(before["params"], after["params"]) and same(
        before["opt_state"], after["opt_state"]
    )
    assert unchanged == (step in skipped), step
