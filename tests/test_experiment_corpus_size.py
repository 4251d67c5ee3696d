"""experiments/corpus_size.py and corpus.train_fraction (nested, stratified corpora)."""

import hashlib
import os

import numpy as np
import pytest

from configs import tiny
from experiments import corpus_size
from hl_jax.core import config_checks
from hl_jax.core import families
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import corpora


def fake_source(sizes):
  """Examples of {(domain, bucket): n}, ids d<domain>_b<bucket>_<i>, in a mixed order."""
  items = [
      {"video_id": f"{d}_b{b}_{i}", "domain": d, "bucket": np.int64(b)}
      for (d, b), n in sizes.items()
      for i in range(n)
  ]
  return [items[i] for i in np.random.default_rng(0).permutation(len(items))]


SIZES = {("dog", 0): 20, ("dog", 1): 7, ("dog", 2): 3, ("ski", 0): 11, ("ski", 1): 40}


def ids(view):
  return [view[i]["video_id"] for i in range(len(view))]


def test_nested_fractions_keep_strata_and_nest():
  source = fake_source(SIZES)
  kept = {f: ids(corpora.NestedFraction(source, f)) for f in (0.1, 0.25, 0.5, 1.0)}
  for small, large in zip((0.1, 0.25, 0.5), (0.25, 0.5, 1.0)):
    assert set(kept[small]) <= set(kept[large]), (small, large)
  for f, chosen in kept.items():
    for (d, b), n in SIZES.items():
      got = [v for v in chosen if v.startswith(f"{d}_b{b}_")]
      assert len(got) == max(1, int(f * n + 0.5)), (f, d, b)  # Every stratum, in proportion.
      # The first of the stratum in sha1(video_id) order, computed independently here.
      members = sorted(
          (f"{d}_b{b}_{i}" for i in range(n)), key=lambda s: hashlib.sha1(s.encode()).hexdigest()
      )
      assert sorted(got) == sorted(members[: len(got)])
    assert chosen == [v["video_id"] for v in source if v["video_id"] in set(chosen)]  # Order.
  assert len(kept[1.0]) == len(source)
  assert repr(corpora.NestedFraction(source, 0.25)).endswith("train_fraction=0.25)")
  with pytest.raises(ValueError, match=r"corpus.train_fraction=0 must be in \(0, 1\]"):
    corpora.NestedFraction(source, 0)


def test_train_fraction_opens_a_nested_corpus_and_is_checked(tmp_path):
  config = tiny.get_config()
  config.data_dir = str(tmp_path / "tfds")
  whole = corpora.load_corpus(config).train_source
  config.corpus.train_fraction = 0.25
  part = corpora.load_corpus(config)
  strata, _ = corpora.sha1_strata(whole)
  assert len(part.train_source) == sum(max(1, int(0.25 * len(m) + 0.5)) for m in strata.values())
  assert "0.25 of its training videos" in part.name
  assert set(ids(part.train_source)) <= set(ids(whole))
  families.validate(config)
  config.corpus.train_fraction = 1.5
  with pytest.raises(config_checks.ConfigError, match="corpus.train_fraction=1.5"):
    families.validate(config)


def test_plan_and_configs():
  runs = corpus_size.plan(corpus_size.STAGES, 3)
  assert len({r.name for r in runs}) == len(runs)
  real = [r for r in runs if r.corpus == "real"]
  synthetic = [r for r in runs if r.corpus == "synthetic"]
  assert len(real) == 4 * 2 * 3 and len(synthetic) == (5 + 2) * 2 * 3
  assert {r.steps for r in synthetic if r.fraction < 0.3} == {corpus_size.SYNTHETIC_STEPS}
  assert {r.steps for r in synthetic if r.fraction >= 0.3} == {300, 600}
  config = corpus_size.run_config(synthetic[-1], "/d")
  assert (config.corpus.builder_config, config.corpus.train_fraction) == ("synthetic_n100000", 1.0)
  assert (config.input.refill_every_steps, config.train.num_steps, config.seed) == (30, 600, 2)
  assert (config.train.weighting, config.eval.every_steps) == ("ranking_d", 0)
  config = corpus_size.run_config(real[0], "/d")
  assert (config.corpus.builder_config, config.corpus.train_fraction) == ("youtube_highlights", 0.1)
  assert (config.train.weighting, config.train.num_steps, config.input.shuffle_seed) == (
      "softmax",
      300,
      0,
  )
  families.validate(config)


def test_tiny_study_trains_reports_and_reuses(monkeypatch, tmp_path):
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top
  from tfds_builders.duration_corpus import synthetic  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path / "tfds")
  monkeypatch.setattr(corpus_size, "SYNTHETIC_CORPUS", "synthetic_n90")
  monkeypatch.setattr(corpus_size, "SYNTHETIC_VIDEOS", 90)
  monkeypatch.setattr(corpus_size, "SYNTHETIC_SIZES", (30, 60, 90))
  monkeypatch.setattr(corpus_size, "SYNTHETIC_STEPS", 4)
  monkeypatch.setattr(corpus_size, "LONG_STEPS", 8)
  monkeypatch.setattr(corpus_size, "REFILL_EVERY", 2)
  dcb.get_builder(
      dcb.DurationCorpusConfig(
          name="synthetic_n90",
          feature_dim=16,
          synthetic=synthetic.SyntheticParams(num_train=90, num_val_per_domain=2),
      ),
      data_dir=data_dir,
  )
  corpus_size.build_synthetic(data_dir)  # Built already: nothing to do.
  real_config = corpus_size.run_config

  def tiny_config(run, data_dir):
    config = real_config(run, data_dir)
    config.model.scorer_hidden = config.model.weigher_hidden = (16,)
    config.train.num_groups, config.train.group_size = 8, 4
    config.input.table_segments = 1024  # Less than the largest corpus: windows refill.
    config.train.log_every = config.checkpoint.every_steps = 2
    config.num_devices = 1
    return config

  monkeypatch.setattr(corpus_size, "run_config", tiny_config)
  runs = corpus_size.plan(["synthetic"], 2)
  out = str(tmp_path / "out")
  held = os.path.join(out, "runs", runs[1].name)
  os.makedirs(held)
  with workdir_lib.exclusive(held):  # Another invocation trains it: skipped.
    summaries = corpus_size.train_runs(runs, data_dir, out, train=True)
  assert set(summaries) == {r.name for r in runs} - {runs[1].name}
  summaries = corpus_size.train_runs(runs, data_dir, out, train=True)
  assert len(summaries) == len(runs) == (3 + 2) * 2 * 2
  report = corpus_size.make_report(runs, summaries, out)
  sizes = {r["fraction"]: r["videos"] for r in report["rows"]}
  assert sizes[1.0] == 90 and sizes[1 / 3] < sizes[2 / 3] < 90
  for row in report["rows"]:
    assert row["finished"] == 2 and 0 <= row["mAP"]["corpus"]["mean"] <= 1
    assert row["peak_rss_mib"] > 0 and row["train_pairs_per_s"] > 0
  assert os.path.getsize(os.path.join(out, "corpus_size.png")) > 0
  assert "synthetic corpus" in open(os.path.join(out, "corpus_size.md")).read()
  again = corpus_size.train_runs(runs, data_dir, out, train=False)
  assert set(again) == set(summaries)
