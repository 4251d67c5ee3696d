"""Weak signals and streams: video-level tags (corpora.TagPairs), late fusion
(model.streams), and the runs and aggregation of experiments/weak_signals.py."""

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import tiny
from experiments import weak_signals
from hl_jax.core import config_checks
from hl_jax.core import families
from hl_jax.core import run_loop
from hl_jax.data import corpora
from hl_jax.less_is_more import models

SHORT, LONG, REST = 0, 1, 2


def _source(rows):
  """A list source of examples (video_id, domain, bucket, features)."""
  return [
      {"video_id": v, "domain": d, "bucket": np.int64(b), "features": np.zeros((2, 3), np.float32)}
      for v, d, b in rows
  ]


def test_tags_of_splits_on_bars():
  assert corpora.tags_of(b"dog|pets") == ["dog", "pets"]
  assert corpora.tags_of("dog") == ["dog"]
  assert corpora.tags_of(" a | |b ") == ["a", "b"]


def test_tag_pairs_prefer_tagged_videos():
  source = _source(
      [("a", "dog", LONG), ("b", "cat", SHORT), ("c", "dog|pets", REST), ("d", "surf", REST)]
  )
  tagged = corpora.TagPairs(source, "dog", "tag", "corpus")
  assert [(e["video_id"], int(e["bucket"])) for e in tagged] == [
      ("a", SHORT),
      ("b", LONG),
      ("c", SHORT),
      ("d", LONG),
  ]
  pets = corpora.TagPairs(source, "pets", "tag", "corpus")
  assert [int(e["bucket"]) for e in pets] == [LONG, LONG, SHORT, LONG]
  assert int(source[0]["bucket"]) == LONG  # The source is not changed.


def test_tag_duration_keeps_short_tagged_and_long_untagged_only():
  source = _source(
      [
          ("a", "dog", SHORT),
          ("b", "dog", LONG),
          ("c", "cat", LONG),
          ("d", "cat", SHORT),
          ("e", "cat", REST),
      ]
  )
  kept = corpora.TagPairs(source, "dog", "tag_duration", "corpus")
  assert [(e["video_id"], int(e["bucket"])) for e in kept] == [("a", SHORT), ("c", LONG)]


def test_tag_pairs_need_both_sides():
  source = _source([("a", "dog", SHORT), ("b", "dog", LONG)])
  with pytest.raises(ValueError, match="corpus.tag='dog'.*0 untagged"):
    corpora.TagPairs(source, "dog", "tag", "my corpus")
  with pytest.raises(ValueError, match="tag_pairs"):
    corpora.TagPairs(source, "dog", "bags", "my corpus")


def test_config_checks_refuse_tag_with_domain_or_pair_within():
  config = tiny.get_config()
  config.corpus.tag_pairs = "bags"
  with pytest.raises(config_checks.ConfigError, match="corpus.tag_pairs='bags'"):
    families.validate(config)
  # Keys that are each valid but do not go together (checked once every key is).
  config.corpus.tag_pairs = "tag"
  config.corpus.tag, config.corpus.domain = "dog", "dog"
  config.input.pair_within = "domain"
  with pytest.raises(config_checks.ConfigError) as error:
    families.validate(config)
  for text in ("corpus.domain='dog'", "input.pair_within"):
    assert text in str(error.value)


def test_scorer_streams_sum_one_mlp_per_column_range():
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 6))
  fused = models.Scorer((4,), streams=((0, 2), (2, 6)))
  params = fused.init(jax.random.PRNGKey(1), x)["params"]
  assert sorted(params) == ["mlp_0", "mlp_1"]
  single = models.MLP((4,))
  expected = single.apply({"params": params["mlp_0"]}, x[:, :2], train=False) + single.apply(
      {"params": params["mlp_1"]}, x[:, 2:], train=False
  )
  np.testing.assert_allclose(fused.apply({"params": params}, x), expected, rtol=1e-6)
  audio = models.Scorer((4,), streams=((2, 6),))
  p_audio = audio.init(jax.random.PRNGKey(1), x)["params"]
  changed = x.at[:, :2].set(100.0)  # Columns outside the stream do not count.
  np.testing.assert_array_equal(
      audio.apply({"params": p_audio}, x), audio.apply({"params": p_audio}, changed)
  )
  with pytest.raises(ValueError, match="reach beyond"):
    models.Scorer((4,), streams=((0, 9),)).init(jax.random.PRNGKey(1), x)


def test_build_checks_streams():
  config = tiny.get_config()
  config.model.streams = ((3, 3),)
  with pytest.raises(ValueError, match="model.streams"):
    models.build(config)
  config.model.streams = [[0, 8], [8, 16]]  # As config.json gives it back.
  scorer, _ = models.build(config)
  assert scorer.streams == ((0, 8), (8, 16))
  kernel = scorer.init(jax.random.PRNGKey(0), jnp.ones((2, 16)))["params"]["mlp_1"]["Dense_0"][
      "kernel"
  ]
  assert jnp.shape(kernel)[0] == 8


def _tagged_manifest(manual: pathlib.Path) -> None:
  """32 videos of D=16 in two domains; 'dog' videos hold a highlight direction."""
  rng = np.random.default_rng(0)
  manual.mkdir()
  rows = ["video_id,duration_s,domain,tags,feature_path"]
  for i in range(32):
    features = rng.normal(size=(int(rng.integers(3, 8)), 16)).astype(np.float32)
    domain = ("dog", "surf")[i % 2]
    if domain == "dog":
      features[0, :4] += 3.0
    np.save(manual / f"v{i}.npy", features)
    rows.append(f"v{i},{10 + 5 * (i // 2)},{domain},{'pets' if i % 4 == 0 else ''},v{i}.npy")
  (manual / "manifest.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("tag_pairs", ["tag", "tag_duration"])
def test_trainer_with_tags_and_late_fusion(tmp_path, tag_pairs):
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top

  _tagged_manifest(tmp_path / "manual")
  dcb.get_builder(
      dcb.DurationCorpusConfig(
          name="tags_d16", source="manifest", feature_dim=16, bucketing="domain_quantile"
      ),
      data_dir=tmp_path / "data",
      manual_dir=tmp_path / "manual",
  )
  config = tiny.get_config()
  config.corpus.builder_config = "tags_d16"
  config.data_dir = str(tmp_path / "data")
  config.corpus.eval_split = ""
  config.corpus.tag, config.corpus.tag_pairs = "dog", tag_pairs
  config.corpus.holdout_fraction = 0.25
  config.model.streams = ((0, 4), (4, 16))
  config.num_devices = 1
  config.train.num_steps = config.checkpoint.every_steps = 4
  config.eval.every_steps = 2
  config.train.log_every = config.train.sync_every = 2
  corpus = corpora.load_corpus(config)
  assert "(tag dog" in corpus.name
  buckets = {
      e["video_id"].decode(): int(e["bucket"])
      for e in (corpus.train_source[i] for i in range(len(corpus.train_source)))
  }
  for vid, bucket in buckets.items():
    assert bucket == (SHORT if int(vid[1:]) % 2 == 0 else LONG)
  assert {v.domain for v in corpus.heldout} == {"tag:dog"}  # One pooled group.
  results = run_loop.train_and_evaluate(config, str(tmp_path / "workdir"))
  assert results["step"] == 4
  assert 0.0 <= results["heldout"]["heldout"]["pair_accuracy"] <= 1.0
  with open(os.path.join(tmp_path, "workdir", "config.json")) as f:
    assert json.load(f)["model"]["streams"] == [[0, 4], [4, 16]]


def _summary(per_group: dict[str, float]) -> dict:
  evaluation = {
      "eval": {"tvsum": {"mAP": float(np.mean(list(per_group.values()))), "per_group": per_group}}
  }
  return {"selected": evaluation, "last": evaluation}


def test_tag_rows_average_each_groups_own_model_then_seeds():
  # Tag models are evaluated on their own group only; a seed's mAP is the
  # mean over groups of those, the row's the mean and std over seeds.
  runs = [weak_signals.Run("tag", "tvsum", "rgb", "m", g, k) for g in ("BK", "VT") for k in (0, 1)]
  values = {("BK", 0): 0.6, ("VT", 0): 0.8, ("BK", 1): 0.4, ("VT", 1): 0.6}
  summaries = {r.name: _summary({r.group: values[r.group, r.seed], "other": 0.0}) for r in runs}
  seeds, per_group = weak_signals.seed_scores(summaries, runs, "tvsum")
  np.testing.assert_allclose(seeds, [0.7, 0.5])
  np.testing.assert_allclose(per_group["BK"], [0.6, 0.4])
  assert "other" not in per_group
  (row,) = weak_signals.rows(
      summaries, runs + [weak_signals.Run("tag", "tvsum", "rgb", "m", "BK", 2)]
  )
  np.testing.assert_allclose([row["tvsum"]["mean"], row["tvsum"]["std"]], [0.6, 0.1])
  assert row["group"] == weak_signals.TAGS and "youtube_highlights" not in row
  assert (row["num_runs"], row["num_planned"]) == (4, 5)  # Seed 2 not finished.
  assert row["heldout_pair_accuracy"] is None
  summaries[runs[0].name]["selected"] = dict(
      summaries[runs[0].name]["selected"], heldout={"pair_accuracy": 0.9}
  )
  (row,) = weak_signals.rows(summaries, runs)
  assert row["heldout_pair_accuracy"] == 0.9


def test_plan_is_three_seeds_of_every_pruned_row(shared_data):
  del shared_data  # The plan reads the domains and categories of the split files.
  runs = weak_signals.plan(3, list(weak_signals.SIGNALS))
  assert len({r.name for r in runs}) == len(runs)
  assert {r.seed for r in runs} == {0, 1, 2}
  tag_yth = {r.group for r in runs if r.signal == "tag" and r.corpus == "yth"}
  assert tag_yth == {"dog", "gymnastics", "parkour", "skating", "skiing", "surfing"}
  assert len({r.group for r in runs if r.corpus == "tvsum" and r.group}) == 10
  assert {(r.stream, r.method) for r in runs if r.signal == "tag"} >= {
      ("rgb", "ranking_d"),
      ("rgb", "joint"),
      ("audio", "ranking_d"),
  }


def test_run_config_of_a_tag_model():
  run = weak_signals.Run("tag_duration", "yth", "late", "joint_detached", "dog", 2)
  config = weak_signals.run_config(run, "/tmp/unused", "/tmp/unused")
  assert isinstance(config, ml_collections.ConfigDict)
  assert (config.corpus.tag, config.corpus.tag_pairs) == ("dog", "tag_duration")
  assert config.corpus.builder_config == "youtube_highlights_rgb_flow_audio"
  assert config.model.streams == ((0, 2048), (2048, 4096))
  assert (config.seed, config.train.weighting, config.train.num_steps) == (2, "detached", 200)
  assert config.train.pair_groups == "random"
  families.validate(config)
  bags = weak_signals.run_config(
      weak_signals.Run("tag", "yth", "rgb", "joint_bags", "dog", 0), "/tmp/u", "/tmp/u"
  )
  assert (bags.train.weighting, bags.train.pair_groups) == ("softmax", "video")
  assert "variant" not in bags
  uniform = weak_signals.run_config(
      weak_signals.Run("tag", "tvsum", "audio", "ranking_d", "BK", 1), "/tmp/u", "/tmp/u"
  )
  assert (uniform.train.weighting, uniform.model.streams) == ("ranking_d", ((2048, 4096),))
  families.validate(uniform)
