"""Config checks before a run writes anything, and one-line errors from launch.py."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import joint
from configs import ranking_em
from configs import taohighlight
from configs import tiny
from hl_jax.core import config_checks
from hl_jax.core import families

REPO = pathlib.Path(__file__).resolve().parents[1]
LIM = families.get("less_is_more")


@pytest.mark.parametrize(
    "config",
    [
        tiny.get_config(),
        joint.get_config(),
        ranking_em.get_config(),
        joint.get_config("corpus=youtube_highlights"),
        joint.get_config("domain=dog"),
        joint.get_config("weighting=ranking_d"),
        taohighlight.get_config(),
        taohighlight.get_config("benchmark=youtube_highlights,no_graph"),
        taohighlight.get_config("tiny"),
    ],
    ids=[
        "tiny",
        "joint",
        "ranking_em",
        "youtube_highlights",
        "ours_s",
        "ranking_d",
        "taohighlight",
        "taohighlight_yth",
        "taohighlight_tiny",
    ],
)
def test_shipped_configs_are_valid(config):
  assert families.validate(config).name == config.model_family


BAD = [
    ("train.num_steps", -5, "train.num_steps=-5 must be an integer >= 1"),
    ("train.num_steps", 0, "train.num_steps=0 must be"),
    ("train.learning_rate", float("nan"), "train.learning_rate=nan must be a finite number > 0"),
    ("train.learning_rate", 0.0, "train.learning_rate=0.0 must be"),
    ("train.margin", float("inf"), "train.margin=inf must be a finite number >= 0"),
    ("train.weight_decay", -1e-4, "train.weight_decay=-0.0001"),
    ("train.group_size", 0, "train.group_size=0 must be an integer >= 1"),
    ("train.pair_loss", "hing", "train.pair_loss='hing' must be one of ('hinge'"),
    ("train.optimizer", "adam", "train.optimizer='adam' must be one of ('adamw', 'sgd')"),
    ("train.on_nonfinite", "ignore", "train.on_nonfinite='ignore'"),
    ("train.log_every", 0, "train.log_every=0"),
    ("train.weighting", "jointt", "train.weighting='jointt' must be one of ('softmax'"),
    ("model.dropout", 1.0, "model.dropout=1.0 must be a number in [0, 1)"),
    ("model.scorer_hidden", (), "model.scorer_hidden=() must be a non-empty tuple"),
    ("model.weigher_hidden", (0,), "model.weigher_hidden=(0,)"),
    ("model.dtype", "float64", "model.dtype='float64' must be one of"),
    ("model.dropout_masks", "numpy", "model.dropout_masks='numpy'"),
    ("model.streams", ((8, 4),), "model.streams=((8, 4),) must be a tuple of (start, end)"),
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
    ("model_family", "lim", "model_family='lim' must be one of"),
]
TAO_BAD = [
    ("train.learning_rate", float("nan"), "train.learning_rate=nan must be a finite number > 0"),
    ("benchmark", "nope", "benchmark='nope' must be one of ('youtube_highlights', 'tvsum')"),
    ("train.batch_size", 0, "train.batch_size=0 must be an integer >= 1"),
    ("model.context", "video", "model.context='video' must be one of ('text', 'audio')"),
    ("loss.reg_scale", "frames", "loss.reg_scale='frames'"),
    ("cv_folds", 1, "cv_folds=1 must be 0 (off) or >= 2"),
    ("model.visual_dim", 5000, "model.visual_dim=5000 is wider than the 4096-d features"),
    ("eval.every_steps", -1, "eval.every_steps=-1 must be an integer >= 0"),
]


def _set(config, key, value):
  section, _, name = key.rpartition(".")
  (config[section] if section else config)[name] = value


@pytest.mark.parametrize(
    "make, key, value, message",
    [(tiny.get_config, *b) for b in BAD] + [(taohighlight.get_config, *b) for b in TAO_BAD],
    ids=[f"lim:{k}={v}" for k, v, _ in BAD] + [f"tao:{k}={v}" for k, v, _ in TAO_BAD],
)
def test_validate_names_the_bad_key(make, key, value, message):
  config = make()
  _set(config, key, value)
  with pytest.raises(config_checks.ConfigError, match="^bad config: ") as info:
    families.validate(config)
  assert message in str(info.value)
  assert "\n" not in str(info.value)


def test_validate_lists_every_bad_key_at_once():
  config = tiny.get_config()
  config.train.num_steps, config.train.learning_rate = -5, float("nan")
  with pytest.raises(config_checks.ConfigError, match="num_steps=-5.*; train.learning_rate=nan"):
    families.validate(config)


@pytest.mark.parametrize("make", [tiny.get_config, taohighlight.get_config])
def test_unknown_keys_are_named_with_the_nearest_known_one(make):
  config = make()
  config.train.num_step = 5  # A ConfigDict from a user's config file takes new keys.
  with pytest.raises(
      config_checks.ConfigError,
      match=r"unknown config key train.num_step \(did you mean train.num_steps",
  ):
    families.validate(config)


@pytest.mark.parametrize(
    "make, old, new",
    [
        (tiny.get_config, "corpus.data_dir", "data_dir"),
        (tiny.get_config, "eval.data_root", "data_root"),
        (taohighlight.get_config, "train.eval_every", "eval.every_steps"),
    ],
)
def test_old_key_names_are_refused_naming_the_new_one(make, old, new):
  config = make()
  _set(config, old, 7)
  with pytest.raises(config_checks.ConfigError, match=f"config key {old} was renamed {new}"):
    families.validate(config)


def test_variant_is_refused_naming_the_weighting():
  config = tiny.get_config()
  config.variant = "ranking_d"
  with pytest.raises(
      config_checks.ConfigError, match="'variant' was replaced by " "train.weighting"
  ):
    families.validate(config)
  with pytest.raises(ValueError, match="variant=ranking_d was replaced by weighting="):
    joint.get_config("variant=ranking_d")


def test_upgrade_reads_an_older_config_json_in_todays_names():
  old = {
      "variant": "ranking_em",
      "train": {"weighting": "softmax", "num_steps": 5},
      "corpus": {"data_dir": "/d"},
      "eval": {"data_root": "/r"},
  }
  assert config_checks.upgrade(old) == {
      "model_family": "less_is_more",
      "train": {"weighting": "ranking_em", "num_steps": 5},
      "data_dir": "/d",
      "data_root": "/r",
  }
  tao = {"model_family": "taohighlight", "train": {"eval_every": 100}, "scorer": {"x": 1}}
  assert config_checks.upgrade(tao) == {
      "model_family": "taohighlight",
      "eval": {"every_steps": 100},
  }


def _check(tmp_path, config, family=LIM):
  return config_checks.check_resume(
      json.loads((tmp_path / "config.json").read_text()),
      config,
      workdir=str(tmp_path),
      resumable=tuple(config_checks.COMMON_RESUMABLE) + tuple(family.resumable),
      added=family.added,
      irrelevant=family.irrelevant,
  )


def _saved(tmp_path, config):
  (tmp_path / "config.json").write_text(config.to_json_best_effort(indent=1))


def test_check_resume_names_keys_and_changes_nothing(tmp_path):
  _saved(tmp_path, tiny.get_config())
  before = (tmp_path / "config.json").read_text()
  config = tiny.get_config()
  config.model.scorer_hidden = (64,)
  config.input.num_workers = 2
  config.corpus.builder_config = "synthetic"
  with pytest.raises(config_checks.ConfigError) as info:
    _check(tmp_path, config)
  message = str(info.value)
  for words in (
      "model.scorer_hidden: [32] -> [64]",
      "input.num_workers: 0 -> 2",
      "corpus.builder_config: 'synthetic_tiny' -> 'synthetic'",
      "allow_changed_config=True",
  ):
    assert words in message
  assert (tmp_path / "config.json").read_text() == before
  # Nothing to protect without checkpoints; allowed changes come back listed.
  assert config_checks.check_resume(None, config, workdir="w", resumable=()) == {}
  config.checkpoint.allow_changed_config = True
  assert set(_check(tmp_path, config)) == {
      "model.scorer_hidden",
      "input.num_workers",
      "corpus.builder_config",
  }


def test_check_resume_lets_length_logging_and_paths_change(tmp_path):
  _saved(tmp_path, tiny.get_config())
  config = tiny.get_config()
  config.train.num_steps, config.train.log_every = 500, 50
  config.checkpoint.every_steps, config.data_dir = 100, "/elsewhere"
  config.eval.every_steps, config.eval.benchmarks = 100, ("tvsum",)
  assert _check(tmp_path, config) == {}
  old = json.loads((tmp_path / "config.json").read_text())
  del old["checkpoint"]["allow_changed_config"]  # A config.json of an older version.
  (tmp_path / "config.json").write_text(json.dumps(old))
  assert _check(tmp_path, config) == {}


def test_taohighlight_resume_lets_the_cadence_change(tmp_path):
  tao = families.get("taohighlight")
  _saved(tmp_path, taohighlight.get_config())
  config = taohighlight.get_config()
  config.eval.every_steps, config.train.sync_every, config.data_root = 7, 3, "/r"
  assert _check(tmp_path, config, tao) == {}
  config.train.learning_rate = 0.5
  with pytest.raises(config_checks.ConfigError, match="train.learning_rate: 0.001 -> 0.5"):
    _check(tmp_path, config, tao)


def _launch(workdir, *args, config="configs/tiny.py"):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "launch.py", f"--config={config}", f"--workdir={workdir}", *args],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )


def test_launch_refuses_a_bad_config_in_one_line_and_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  proc = _launch(workdir, "--config.train.num_steps=-5", "--config.train.learning_rate=nan")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last == (
      "launch.py: error: bad config: train.num_steps=-5 must be an integer >= 1; "
      "train.learning_rate=nan must be a finite number > 0"
  )
  assert "Traceback" not in proc.stderr
  assert not workdir.exists()


@pytest.mark.parametrize(
    "config, args, line",
    [
        (
            "configs/tiny.py",
            ["--config.train.num_step=5"],
            "--config.train.num_step: configs/tiny.py has no key train.num_step "
            "(did you mean train.num_steps?)",
        ),
        (
            "configs/taohighlight.py",
            ["--config.train.num_step=5"],
            "--config.train.num_step: configs/taohighlight.py has no key train.num_step "
            "(did you mean train.num_steps?)",
        ),
        (
            "configs/taohighlight.py:benchmark=nope",
            [],
            "--config=configs/taohighlight.py:benchmark=nope: benchmark='nope' must be one of "
            "('tvsum', 'youtube_highlights')",
        ),
        (
            "configs/taohighlight.py",
            ["--config.train.eval_every=5"],
            "config key train.eval_every was renamed eval.every_steps (--config.eval.every_steps=...)",
        ),
        (
            "configs/tiny.py",
            ["--config.corpus.data_dir=/x"],
            "config key corpus.data_dir was renamed data_dir (--config.data_dir=...)",
        ),
        (
            "configs/taohighlight.py",
            ["--config.train.learning_rate=nan"],
            "bad config: train.learning_rate=nan must be a finite number > 0",
        ),
        (
            "configs/tiny.py:nope=1",
            [],
            "--config=configs/tiny.py:nope=1: unknown config argument 'nope' in "
            "configs/joint.py:nope=1; known: corpus, domain, variant, weighting",
        ),
    ],
)
def test_launch_says_what_is_wrong_with_the_command_in_one_line(tmp_path, config, args, line):
  proc = _launch(tmp_path / "run", *args, config=config)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == f"launch.py: error: {line}"
  assert not (tmp_path / "run").exists()


def test_launch_refuses_a_workdir_of_another_model(tmp_path):
  workdir = tmp_path / "run"
  data_dir = f"--config.data_dir={tmp_path / 'tfds'}"
  assert (
      _launch(
          workdir, data_dir, "--config.train.num_steps=5", "--config.checkpoint.every_steps=5"
      ).returncode
      == 0
  )
  files = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file() and p.name != ".lock"}
  proc = _launch(
      workdir, data_dir, "--config.train.num_steps=10", "--config.model.scorer_hidden=(8,)"
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert (
      proc.stderr.strip()
      .splitlines()[-1]
      .startswith(
          f"launch.py: error: workdir {workdir} holds checkpoints of another config "
          "(model.scorer_hidden: [32] -> [8])"
      )
  )
  assert {
      p: p.read_bytes() for p in workdir.rglob("*") if p.is_file() and p.name != ".lock"
  } == files


def test_a_config_saved_before_keys_were_added_still_resumes():
  def changed(old, new):
    return config_checks.changed_keys(
        config_checks.upgrade(old),
        new,
        config_checks.COMMON_RESUMABLE + LIM.resumable,
        LIM.added,
        LIM.irrelevant,
    )

  new = json.loads(joint.get_config().to_json_best_effort())
  old = json.loads(joint.get_config().to_json_best_effort())
  for section, key in (
      ("train", "weighting"),
      ("train", "weight_schedule_steps"),
      ("train", "valid_fraction"),
      ("input", "pair_within"),
      ("corpus", "holdout_fraction"),
  ):
    del old[section][key]
  del old["model_family"]
  assert not changed(old, new)
  new["train"]["weighting"] = "capped_simplex"
  new["corpus"]["holdout_fraction"] = 0.15
  assert set(changed(old, new)) == {"train.weighting", "corpus.holdout_fraction"}
  # Under softmax weights the schedule keys change nothing.
  old = json.loads(joint.get_config().to_json_best_effort())
  new = json.loads(joint.get_config().to_json_best_effort())
  new["train"]["weight_schedule_steps"] = 7
  assert not changed(old, new)
  old["train"]["weighting"] = new["train"]["weighting"] = "tempered"
  assert set(changed(old, new)) == {"train.weight_schedule_steps"}
