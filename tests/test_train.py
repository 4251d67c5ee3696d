"""The real train_and_evaluate, end to end, on the synthetic_tiny corpus."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from configs import tiny
from hl_jax.core import checkpointing
from hl_jax.core import run_loop
from hl_jax.data import benchmarks
from hl_jax.data import corpora
from hl_jax.less_is_more import models
from hl_jax.less_is_more import segment_table
from hl_jax.less_is_more import trainer
from hl_jax.less_is_more import weightings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def make_config(data_dir, **train_overrides):
  config = tiny.get_config()
  config.data_dir = data_dir
  for key, value in train_overrides.items():
    section, name = key.split("__")
    (config[section] if section else config)[name] = value
  return config


def logged(workdir, name):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [(r["step"], r[name]) for r in rows if name in r]


def final_state(workdir):
  return checkpointing.restore_workdir(workdir)[1]


def final_params(workdir):
  return final_state(workdir)["params"]


def test_two_and_four_devices_give_the_same_loss_as_one(data_dir, tmp_path):
  assert jax.device_count() >= 4, "conftest forces 4 CPU devices"
  results = {}
  for devices in (1, 2, 4):
    config = make_config(data_dir)
    config.num_devices = devices
    workdir = str(tmp_path / f"devices{devices}")
    results[devices] = run_loop.train_and_evaluate(config, workdir)
    results[devices]["loss"] = logged(workdir, "train/loss")
  steps1, loss1 = zip(*results[1]["loss"])
  assert steps1 == (5, 10, 15, 20)
  for devices in (2, 4):
    steps, loss = zip(*results[devices]["loss"])
    assert steps == steps1
    np.testing.assert_allclose(loss, loss1, rtol=2e-5)
    assert results[devices]["corpus"]["model"]["mAP"] == pytest.approx(
        results[1]["corpus"]["model"]["mAP"], abs=1e-6
    )
  # The synthetic val split is labelled, and the random baseline is reported beside it.
  assert 0 < results[1]["corpus"]["random"]["mAP"] < 1
  assert set(results[1]["corpus"]["model"]["per_group"]) == set(
      results[1]["corpus"]["random"]["per_group"]
  )


@pytest.mark.parametrize("weighting", ["softmax", "ranking_em", "ranking_d"])
def test_rerun_resumes_and_matches_an_uninterrupted_run(data_dir, tmp_path, weighting):
  straight = str(tmp_path / "straight")
  run_loop.train_and_evaluate(make_config(data_dir, train__weighting=weighting), straight)
  resumed = str(tmp_path / "resumed")
  run_loop.train_and_evaluate(
      make_config(data_dir, train__weighting=weighting, train__num_steps=10), resumed
  )
  assert [s for s, _ in logged(resumed, "train/loss")] == [5, 10]
  run_loop.train_and_evaluate(make_config(data_dir, train__weighting=weighting), resumed)
  # The second run started at step 10, not from scratch.
  assert [s for s, _ in logged(resumed, "train/loss")] == [5, 10, 15, 20]
  expected, got = final_state(straight), final_state(resumed)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
  if weighting == "ranking_em":  # The EM prior moved and was restored exactly.
    assert got["em_prior"] != 0.5
  # A third run of the finished job trains nothing and re-reports the results.
  results = run_loop.train_and_evaluate(make_config(data_dir, train__weighting=weighting), resumed)
  assert results["step"] == 20
  assert len(logged(resumed, "train/loss")) == 4
  assert os.path.exists(os.path.join(resumed, "results.md"))


@pytest.mark.parametrize(
    "weighting,params",
    [
        ("ranking_d", {"f"}),
        ("ranking_em", {"f"}),
        ("softmax", {"f", "h"}),
        ("capped_simplex", {"f", "h"}),
        ("self_paced", {"f"}),
    ],
)
def test_weightings_train_their_networks(data_dir, tmp_path, weighting, params):
  config = make_config(data_dir, train__weighting=weighting, train__weight_schedule_steps=10)
  run_loop.train_and_evaluate(config, str(tmp_path))
  final = final_params(str(tmp_path))
  assert set(final) == params
  # Every weight matrix of every network moved from its initial values. (Not
  # every bias: f's output bias cancels in f(short) - f(long), h's in the
  # group softmax, so they get no gradient.)
  scorer, weigher = models.build(config)
  initial = trainer.init_state(
      config, scorer, weigher, trainer.make_optimizer(config), feature_dim=16
  ).params
  before, after = (
      {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
      for tree in (initial, final)
  )
  assert set(before) == set(after)
  kernels = [name for name in before if name.endswith("['kernel']")]
  assert {name.split("'")[1] for name in kernels} == params  # "['f']['Dense_0']..."
  for name in kernels:
    assert np.all(np.isfinite(after[name])), name
    assert not np.allclose(after[name], before[name]), name
  # The weights' diagnostics are logged: one pair per group is the paper's
  # collapse; the capped simplex keeps at least half the unsatisfied pairs.
  pairs = [v for _, v in logged(str(tmp_path), "train/effective_pairs")]
  assert len(pairs) == 4 and all(np.isfinite(pairs)), pairs
  if weighting == "capped_simplex":
    assert min(pairs) >= 1.5, pairs


@pytest.mark.parametrize("pair_loss", ["logistic", "softmax"])
def test_rax_pair_losses_train(data_dir, tmp_path, pair_loss):
  config = make_config(data_dir, train__pair_loss=pair_loss, train__num_steps=10)
  run_loop.train_and_evaluate(config, str(tmp_path))
  steps, losses_logged = zip(*logged(str(tmp_path), "train/loss"))
  assert steps == (5, 10) and np.all(np.isfinite(losses_logged)), losses_logged


def test_em_posterior_is_bayes_rule():
  # p = 0.8, gap 0 -> s = 1/2: gamma = 0.4 / (0.4 + 0.1) = 0.8 (the prior).
  np.testing.assert_allclose(weightings.em_posterior(np.float32(0.0), 0.8), 0.8, rtol=1e-6)
  # p = 0.5, gap ln 3 -> s = 3/4: gamma = 0.375 / (0.375 + 0.25) = 0.6.
  np.testing.assert_allclose(weightings.em_posterior(np.log(np.float32(3.0)), 0.5), 0.6, rtol=1e-6)


@pytest.mark.parametrize(
    "section,key,value,message",
    [
        ("train", "num_groups", 6, "train.num_groups=6 is not divisible by num_devices=4"),
        ("train", "group_size", 0, "train.group_size=0 must be an integer >= 1"),
        ("train", "weighting", "ranking_x", "train.weighting='ranking_x' must be one of"),
        ("train", "pair_loss", "l2", "train.pair_loss='l2' must be one of"),
    ],
)
def test_bad_config_is_a_one_line_error(data_dir, tmp_path, section, key, value, message):
  config = make_config(data_dir)
  config.num_devices = 4
  (config[section] if section else config)[key] = value
  with pytest.raises(ValueError, match=message):
    run_loop.train_and_evaluate(config, str(tmp_path))


class NaNLongVideos:
  """A data source whose long videos have NaN features (no builder writes one)."""

  def __init__(self, source):
    self._source = source

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int):
    example = self._source[index]
    if int(example["bucket"]) == segment_table.LONG:
      example = dict(example, features=np.full(np.shape(example["features"]), np.nan, np.float32))
    return example

  def __repr__(self) -> str:
    return f"NaNLongVideos({self._source!r})"


def test_nonfinite_loss_stops_with_the_last_checkpoint_intact(data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path)
  run_loop.train_and_evaluate(make_config(data_dir, train__num_steps=10), workdir)
  # The same run resumed on a corpus gone bad: every pair has a NaN long segment.
  load = corpora.load_corpus

  def load_bad(config):
    data = load(config)
    return dataclasses.replace(data, train_source=NaNLongVideos(data.train_source))

  monkeypatch.setattr(corpora, "load_corpus", load_bad)
  with pytest.raises(
      run_loop.NonFiniteError, match=r"at step 10 \(5 such steps\); its pairs came from videos "
  ):
    run_loop.train_and_evaluate(make_config(data_dir), workdir)
  assert int(final_state(workdir)["step"]) == 10
  for leaf in jax.tree.leaves(final_params(workdir)):
    assert np.all(np.isfinite(leaf))


def test_ours_s_trains_and_evaluates_one_domain(data_dir, tmp_path):
  config = make_config(data_dir, train__num_steps=10)
  config.corpus.domain = "dog"
  results = run_loop.train_and_evaluate(config, str(tmp_path))
  model = results["corpus"]["model"]
  assert set(model["per_group"]) == {"dog"}
  # Exactly the corpus's dog val videos (2 in synthetic_tiny) are evaluated.
  everything = corpora.load_corpus(make_config(data_dir)).eval_videos
  dog = {v.video_id for v in everything if v.group == "dog"}
  assert len(dog) == 2 and len(everything) == 12
  assert set(model["per_video"]) == dog
  assert all(0 <= ap <= 1 for ap in model["per_video"].values())
  assert model["mAP"] == pytest.approx(np.mean(list(model["per_video"].values())))


def test_predict_scores_from_workdir(data_dir, tmp_path):
  from hl_jax.eval import protocols  # pylint: disable=g-import-not-at-top
  from hl_jax.highlights import scorers  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path)
  results = run_loop.train_and_evaluate(make_config(data_dir, train__num_steps=10), workdir)
  config = make_config(data_dir)
  videos = corpora.load_corpus(config).eval_videos
  scores = scorers.scores_from_workdir(workdir, videos)
  # The same numbers as the trainer's own evaluation.
  again = protocols.evaluate("corpus", videos, scores, split="val")
  for key in ("mAP", "hit1", "video_mAP", "video_hit1"):
    assert again[key] == pytest.approx(results["corpus"]["model"][key], abs=1e-6), key
  wide = benchmarks.Video("wide", "dog", np.zeros((3, 32), np.float32), np.zeros(3, np.int32))
  with pytest.raises(ValueError, match="video wide has 32-d features"):
    scorers.scores_from_workdir(workdir, [wide])


def test_empty_long_bucket_is_an_error_before_compiling():
  from hl_jax.core import parallel  # pylint: disable=g-import-not-at-top
  from hl_jax.less_is_more import input_pipeline  # pylint: disable=g-import-not-at-top

  only_short = [
      {"video_id": f"s{i}", "bucket": segment_table.SHORT, "features": np.ones((3, 4), np.float32)}
      for i in range(5)
  ]
  data = corpora.Corpus("only_short", only_short, 4, [])
  config = tiny.get_config()
  feeder = input_pipeline.TableFeeder(config, data, parallel.make_mesh(jax.devices()[:1]))
  with pytest.raises(
      ValueError,
      match="only_short: window 0 of input shard 0 has "
      "15 short-video and 0 long-video segments; pairs need both",
  ):
    feeder.current_table()


def test_custom_corpus_config_is_opened_by_name(tmp_path):
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top
  from tfds_builders.duration_corpus import synthetic  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path / "tfds")
  custom = dcb.DurationCorpusConfig(
      name="synthetic_d8",
      feature_dim=8,
      synthetic=synthetic.SyntheticParams(num_train=24, num_val_per_domain=1),
      description="A custom config for this test.",
  )
  dcb.get_builder(custom, data_dir=data_dir)
  config = make_config(data_dir)
  config.corpus.builder_config = "synthetic_d8"
  data = corpora.load_corpus(config)
  assert data.feature_dim == 8
  assert len(data.train_source) == 24
  assert len(data.eval_videos) == 6  # One per domain.
  config.corpus.builder_config = "not_built"
  with pytest.raises(
      ValueError,
      match=r"corpus.builder_config='not_built' is neither a "
      r"registered duration_corpus config .* nor built in .*not_built",
  ):
    corpora.load_corpus(config)


@pytest.mark.parametrize("weighting", ["softmax", "ranking_d", "ranking_em"])
def test_train_step_compiles_once_over_a_run(data_dir, tmp_path, monkeypatch, weighting):
  # Refills (new windows every 5 steps), evaluations and checkpoints mid-run
  # must reuse the one compiled step: chex fails the run on a second trace.
  import chex  # pylint: disable=g-import-not-at-top

  chex.clear_trace_counter()  # Counts are per function across parametrized cases.
  steps, real_make, real_jit = [], trainer.make_train_step, jax.jit

  def make_counted_step(*args, **kwargs):
    monkeypatch.setattr(
        jax, "jit", lambda fn, **kw: real_jit(chex.assert_max_traces(fn, n=1), **kw)
    )
    try:
      steps.append(real_make(*args, **kwargs))
    finally:
      monkeypatch.setattr(jax, "jit", real_jit)
    return steps[-1]

  monkeypatch.setattr(trainer, "make_train_step", make_counted_step)
  config = make_config(
      data_dir,
      train__num_steps=20,
      eval__every_steps=10,
      input__window_videos=20,
      input__refill_every_steps=5,
  )
  config.train.weighting = weighting
  run_loop.train_and_evaluate(config, str(tmp_path))
  assert len(steps) == 1 and steps[0]._cache_size() == 1  # pylint: disable=protected-access
