"""Config checks before a run writes anything, and one-line errors from launch.py."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import joint
from configs import ranking_em
from configs import tiny
from hl_jax import config_checks
from hl_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config", [
    tiny.get_config(), joint.get_config(), ranking_em.get_config(),
    joint.get_config("corpus=youtube_highlights"), joint.get_config("domain=dog")],
    ids=["tiny", "joint", "ranking_em", "youtube_highlights", "ours_s"])
def test_shipped_configs_are_valid(config):
  config_checks.validate(config)


BAD = [
    ("train.num_steps", -5, "train.num_steps=-5 must be an integer >= 1"),
    ("train.num_steps", 0, "train.num_steps=0 must be"),
    ("train.learning_rate", float("nan"), "train.learning_rate=nan must be a finite number > 0"),
    ("train.learning_rate", 0.0, "train.learning_rate=0.0 must be"),
    ("train.margin", float("inf"), "train.margin=inf must be a finite number >= 0"),
    ("train.weight_decay", -1e-4, "train.weight_decay=-0.0001"),
    ("train.group_size", 0, "train.group_size=0 must be an integer >= 1"),
    ("train.pair_loss", "hing", "train.pair_loss='hing' must be one of ('hinge'"),
    ("train.optimizer", "adam", "train.optimizer='adam' must be 'adamw' or 'sgd'"),
    ("train.on_nonfinite", "ignore", "train.on_nonfinite='ignore'"),
    ("train.log_every", 0, "train.log_every=0"),
    ("variant", "jointt", "variant='jointt' must be one of ('joint'"),
    ("model.dropout", 1.0, "model.dropout=1.0 must be a number in [0, 1)"),
    ("model.scorer_hidden", (), "model.scorer_hidden=() must be a non-empty tuple"),
    ("model.weigher_hidden", (0,), "model.weigher_hidden=(0,)"),
    ("model.dtype", "float64", "model.dtype='float64' must be one of"),
    ("model.dropout_masks", "numpy", "model.dropout_masks='numpy'"),
    ("input.table_segments", 0, "input.table_segments=0"),
    ("input.num_workers", -1, "input.num_workers=-1"),
    ("em.prior_init", 1.0, "em.prior_init=1.0 must be a number in (0, 1)"),
    ("em.prior_rate", float("nan"), "em.prior_rate=nan"),
    ("checkpoint.every_steps", 0, "checkpoint.every_steps=0"),
    ("eval.random_seeds", 0, "eval.random_seeds=0"),
    ("eval.feature_set", "rgb", "eval.feature_set='rgb' must be one of ('i3d_rgb'"),
    ("eval.benchmark_split", "test", "eval.benchmark_split='test'"),
    ("eval.benchmarks", ("tvsum", "yth"), "eval.benchmarks=('tvsum', 'yth') must be a tuple"),
    ("num_devices", -1, "num_devices=-1"),
]


@pytest.mark.parametrize("key, value, message", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_validate_names_the_bad_key(key, value, message):
  config = tiny.get_config()
  section, _, name = key.rpartition(".")
  (config[section] if section else config)[name] = value
  with pytest.raises(config_checks.ConfigError, match="^bad config: ") as info:
    config_checks.validate(config)
  assert message in str(info.value)
  assert "\n" not in str(info.value)


def test_validate_lists_every_bad_key_at_once():
  config = tiny.get_config()
  config.train.num_steps, config.train.learning_rate = -5, float("nan")
  with pytest.raises(config_checks.ConfigError, match="num_steps=-5.*; train.learning_rate=nan"):
    config_checks.validate(config)


def test_check_devices():
  config = tiny.get_config()  # 16 groups
  config_checks.check_devices(config, 4)
  with pytest.raises(config_checks.ConfigError, match="not divisible by the 3 devices"):
    config_checks.check_devices(config, 3)
  config.num_devices = 8
  with pytest.raises(config_checks.ConfigError, match="num_devices=8 but JAX sees only 4"):
    config_checks.check_devices(config, 4)


def _saved(tmp_path, config):
  (tmp_path / "config.json").write_text(config.to_json_best_effort(indent=1))
  return str(tmp_path)


def test_check_resume_names_keys_and_changes_nothing(tmp_path):
  workdir = _saved(tmp_path, tiny.get_config())
  before = (tmp_path / "config.json").read_text()
  config = tiny.get_config()
  config.model.scorer_hidden = (64,)
  config.input.num_workers = 2
  config.corpus.builder_config = "synthetic"
  with pytest.raises(config_checks.ConfigError) as info:
    config_checks.check_resume(workdir, config, has_checkpoints=True)
  message = str(info.value)
  for words in ("model.scorer_hidden: [32] -> [64]", "input.num_workers: 0 -> 2",
                "corpus.builder_config: 'synthetic_tiny' -> 'synthetic'",
                "allow_changed_config=True"):
    assert words in message
  assert (tmp_path / "config.json").read_text() == before
  # Nothing to protect without checkpoints; allowed changes come back listed.
  assert config_checks.check_resume(workdir, config, has_checkpoints=False) == {}
  config.checkpoint.allow_changed_config = True
  assert set(config_checks.check_resume(workdir, config, has_checkpoints=True)) == {
      "model.scorer_hidden", "input.num_workers", "corpus.builder_config"}


def test_check_resume_lets_length_logging_and_paths_change(tmp_path):
  workdir = _saved(tmp_path, tiny.get_config())
  config = tiny.get_config()
  config.train.num_steps, config.train.log_every = 500, 50
  config.checkpoint.every_steps, config.corpus.data_dir = 100, "/elsewhere"
  config.eval.every_steps, config.eval.benchmarks = 100, ("tvsum",)
  assert config_checks.check_resume(workdir, config, has_checkpoints=True) == {}
  old = json.loads((tmp_path / "config.json").read_text())
  del old["checkpoint"]["allow_changed_config"]  # A config.json of an older version.
  (tmp_path / "config.json").write_text(json.dumps(old))
  assert config_checks.check_resume(workdir, config, has_checkpoints=True) == {}


def _launch(workdir, *overrides):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "launch.py", "--config=configs/tiny.py", f"--workdir={workdir}",
       *overrides], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_launch_refuses_a_bad_config_in_one_line_and_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  proc = _launch(workdir, "--config.train.num_steps=-5", "--config.train.learning_rate=nan")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last == ("launch.py: error: bad config: train.num_steps=-5 must be an integer >= 1; "
                  "train.learning_rate=nan must be a finite number > 0")
  assert "Traceback" not in proc.stderr
  assert not workdir.exists()


def test_launch_refuses_a_workdir_of_another_model(tmp_path):
  workdir = tmp_path / "run"
  data_dir = f"--config.corpus.data_dir={tmp_path / 'tfds'}"
  assert _launch(workdir, data_dir, "--config.train.num_steps=5",
                 "--config.checkpoint.every_steps=5").returncode == 0
  files = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file() and p.name != ".lock"}
  proc = _launch(workdir, data_dir, "--config.train.num_steps=10", "--config.model.scorer_hidden=(8,)")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"launch.py: error: workdir {workdir} holds checkpoints of another config "
      "(model.scorer_hidden: [32] -> [8])")
  assert {p: p.read_bytes() for p in workdir.rglob("*")
          if p.is_file() and p.name != ".lock"} == files


def test_train_variants_are_the_checked_ones():
  assert train.VARIANTS == config_checks.VARIANTS


def test_a_config_saved_before_keys_were_added_still_resumes():
  new = json.loads(joint.get_config().to_json_best_effort())
  old = json.loads(joint.get_config().to_json_best_effort())
  for section, key in (("train", "weighting"), ("train", "weight_schedule_steps"),
                       ("train", "valid_fraction"), ("input", "pair_within"),
                       ("corpus", "holdout_fraction")):
    del old[section][key]
  assert not config_checks.changed_keys(old, new)
  new["train"]["weighting"] = "capped_simplex"
  new["corpus"]["holdout_fraction"] = 0.15
  assert set(config_checks.changed_keys(old, new)) == {"train.weighting",
                                                       "corpus.holdout_fraction"}
  # Under softmax weights the schedule keys change nothing.
  old = json.loads(joint.get_config().to_json_best_effort())
  new = json.loads(joint.get_config().to_json_best_effort())
  new["train"]["weight_schedule_steps"] = 7
  assert not config_checks.changed_keys(old, new)
  old["train"]["weighting"] = new["train"]["weighting"] = "tempered"
  assert set(config_checks.changed_keys(old, new)) == {"train.weight_schedule_steps"}
