"""Every kind of workdir the trainers write loads as a scorer: predict, streaming, weak feeds.

Each kind is trained for a few steps on synthetic_tiny (16-d) with the real
run loop, then scored through `families.load_scorer` as hl_jax.predict,
hl_jax.highlights.streaming and TaoHighlight's weak feed load it. The scorer
comes from what config.json records (family, feature width, streams), not
from parameter names: late fusion and audio alone have no `mlp` layer.
"""

import json

import numpy as np
import pytest

from configs import tiny
from hl_jax.core import families
from hl_jax.core import run_loop
from hl_jax.data import benchmarks
from hl_jax.highlights import predict
from hl_jax.highlights import streaming
from hl_jax.taohighlight import inputs

import test_tao_train  # tests/test_tao_train.py: its tiny synthetic benchmark.

KINDS = {
    "joint": {},
    "late_fusion": {"model.streams": ((0, 8), (8, 16))},
    "audio_alone": {"model.streams": ((8, 16),)},
    "tags": {"corpus.tag": "dog"},
    "bags": {"corpus.tag": "dog", "train.pair_groups": "video"},
    "ranking_em": {"train.weighting": "ranking_em"},
    "self_paced": {"train.weighting": "self_paced"},
}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("kinds")
  made = {}
  for kind, keys in KINDS.items():
    config = tiny.get_config()
    config.data_dir = str(root / "tfds")
    config.train.num_steps = config.checkpoint.every_steps = 10
    for key, value in keys.items():
      section, name = key.split(".")
      config[section][name] = value
    made[kind] = str(root / kind)
    run_loop.train_and_evaluate(config, made[kind])
  return made


def _features_file(tmp_path, num=12, dim=16):
  features = np.random.default_rng(0).normal(size=(num, dim)).astype(np.float32)
  path = tmp_path / "clip.npy"
  np.save(path, features)
  return path, features


@pytest.mark.parametrize("kind", KINDS)
def test_config_json_records_what_the_scorer_needs(workdirs, kind):
  record = json.load(open(f"{workdirs[kind]}/config.json"))["scorer"]
  streams = [list(s) for s in KINDS[kind].get("model.streams", ())]
  assert record["family"] == "less_is_more" and record["feature_dim"] == 16
  assert record["streams"] == streams


@pytest.mark.parametrize("kind", KINDS)
def test_predict_scores_features_of_every_kind(workdirs, kind, tmp_path):
  path, features = _features_file(tmp_path)
  result = predict.run(workdirs[kind], tmp_path / "out" / "clip.json", features=[str(path)])
  (record,) = result["videos"]
  assert result["model_family"] == "less_is_more" and result["checkpoint_step"] == 10
  scorer = families.load_segment_scorer(workdirs[kind])
  np.testing.assert_allclose(
      record["scores"], scorer.score_segments(features), rtol=1e-6, atol=1e-6
  )
  assert 1 <= len(record["moments"]) <= 5
  if kind == "audio_alone":  # Columns 0-7 are not read at all.
    shifted = features.copy()
    shifted[:, :8] += 100.0
    np.testing.assert_array_equal(scorer.score_segments(shifted), scorer.score_segments(features))


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_scores_segment_by_segment_as_offline(workdirs, kind, tmp_path):
  _, features = _features_file(tmp_path, num=40)
  offline = families.load_segment_scorer(workdirs[kind]).score_segments(features)
  stream = streaming.StreamingScorer(
      families.load_segment_scorer(workdirs[kind], chunk=1).score_segments,
      streaming.StreamConfig(segment_seconds=2.0),
  )
  online = np.concatenate([stream.push(row)[0] for row in features])
  stream.finish()
  np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["joint", "late_fusion", "bags"])
def test_a_workdir_of_every_kind_feeds_taohighlight(workdirs, kind):
  rng = np.random.default_rng(3)
  videos = [
      benchmarks.Video(
          f"v{i}",
          "A",
          rng.normal(size=(6 + i, 20)).astype(np.float32),
          np.ones((6 + i, 20), np.float32),
      )
      for i in range(3)
  ]
  weak = inputs.weak_channel(workdirs[kind], videos)
  scores = families.load_segment_scorer(workdirs[kind]).score_segments
  for video in videos:
    raw = scores(video.features[:, :16])
    np.testing.assert_allclose(
        weak[video.video_id], (raw - raw.mean()) / raw.std(), rtol=1e-4, atol=1e-4
    )


def test_taohighlight_workdir_predicts_whole_videos(tmp_path, monkeypatch):
  monkeypatch.setattr(benchmarks, "load_benchmark", test_tao_train.fake_benchmark())
  workdir = str(tmp_path / "tao")
  run_loop.train_and_evaluate(test_tao_train.tiny_config(), workdir)
  scorer = families.load_scorer(workdir)
  assert scorer.family == "taohighlight" and scorer.score_segments is None
  with pytest.raises(ValueError, match="is a taohighlight workdir"):
    families.load_segment_scorer(workdir)
  # A features file of the run's width, scored as one sequence.
  width = test_tao_train.DV + test_tao_train.DA
  features = np.random.default_rng(1).normal(size=(9, width)).astype(np.float32)
  np.save(tmp_path / "clip.npy", features)
  video = predict.load_features_file(tmp_path / "clip.npy")
  (scores,) = scorer.score_videos([video])
  assert scores.shape == (9,) and np.all(np.isfinite(scores))
