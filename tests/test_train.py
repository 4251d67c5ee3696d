"""The real train_and_evaluate, end to end, on the synthetic_tiny corpus."""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import tiny
from hl_jax import train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def make_config(data_dir, **train_overrides):
  config = tiny.get_config()
  config.corpus.data_dir = data_dir
  for key, value in train_overrides.items():
    section, name = key.split("__")
    config[section][name] = value
  return config


def logged(workdir, name):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [(r["step"], r[name]) for r in rows if name in r]


def final_params(workdir):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_names=("state", "input"))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))
  return restored["state"]["params"]


def test_four_devices_give_the_same_loss_as_one(data_dir, tmp_path):
  assert jax.device_count() >= 4, "conftest forces 4 CPU devices"
  results = {}
  for devices in (1, 4):
    config = make_config(data_dir)
    config.num_devices = devices
    workdir = str(tmp_path / f"devices{devices}")
    results[devices] = train.train_and_evaluate(config, workdir)
    results[devices]["loss"] = logged(workdir, "train/loss")
  steps1, loss1 = zip(*results[1]["loss"])
  steps4, loss4 = zip(*results[4]["loss"])
  assert steps1 == steps4 == (5, 10, 15, 20)
  np.testing.assert_allclose(loss4, loss1, rtol=2e-5)
  assert results[4]["corpus"]["model"]["mAP"] == pytest.approx(
      results[1]["corpus"]["model"]["mAP"], abs=1e-6)
  # The synthetic val split is labelled, and the random baseline is reported beside it.
  assert 0 < results[1]["corpus"]["random"]["mAP"] < 1
  assert set(results[1]["corpus"]["model"]["per_group"]) == set(
      results[1]["corpus"]["random"]["per_group"])


def test_rerun_resumes_and_matches_an_uninterrupted_run(data_dir, tmp_path):
  straight = str(tmp_path / "straight")
  train.train_and_evaluate(make_config(data_dir), straight)
  resumed = str(tmp_path / "resumed")
  train.train_and_evaluate(make_config(data_dir, train__num_steps=10), resumed)
  assert [s for s, _ in logged(resumed, "train/loss")] == [5, 10]
  train.train_and_evaluate(make_config(data_dir), resumed)
  # The second run started at step 10, not from scratch.
  assert [s for s, _ in logged(resumed, "train/loss")] == [5, 10, 15, 20]
  for a, b in zip(jax.tree.leaves(final_params(straight)),
                  jax.tree.leaves(final_params(resumed))):
    np.testing.assert_array_equal(a, b)
  # A third run of the finished job trains nothing and re-reports the results.
  results = train.train_and_evaluate(make_config(data_dir), resumed)
  assert results["step"] == 20
  assert len(logged(resumed, "train/loss")) == 4
  assert os.path.exists(os.path.join(resumed, "results.md"))


def test_ranking_d_has_no_pair_weight_network(data_dir, tmp_path):
  config = make_config(data_dir)
  config.variant = "ranking_d"
  train.train_and_evaluate(config, str(tmp_path))
  assert set(final_params(str(tmp_path))) == {"f"}


@pytest.mark.parametrize("section,key,value,message", [
    ("train", "num_groups", 6, "train.num_groups=6 is not divisible by the 4"),
    ("train", "group_size", 0, "train.group_size=0 must be >= 1"),
    ("", "variant", "ranking_x", "variant='ranking_x' is unknown"),
])
def test_bad_config_is_a_one_line_error(data_dir, tmp_path, section, key, value,
                                        message):
  config = make_config(data_dir)
  config.num_devices = 4
  (config[section] if section else config)[key] = value
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(config, str(tmp_path))


def test_nonfinite_loss_stops_with_the_last_checkpoint_intact(data_dir, tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(make_config(data_dir, train__num_steps=10), workdir)
  config = make_config(data_dir)
  config.train.margin = float("nan")
  with pytest.raises(train.NonFiniteError, match="at step 10"):
    train.train_and_evaluate(config, workdir)
  assert ocp.CheckpointManager(os.path.join(workdir, "checkpoints")).latest_step() == 10
  for leaf in jax.tree.leaves(final_params(workdir)):
    assert np.all(np.isfinite(leaf))
