"""hl_jax.eval.protocols: hand-computed metrics, one meaning per key, real-data baselines."""

import numpy as np
import pytest

from hl_jax.data import benchmarks
from hl_jax.data import corpora
from hl_jax.eval import evaluators
from hl_jax.eval import protocols


def test_evaluate_scores_hand_computed():
  videos = [
      benchmarks.Video("a1", "a", np.zeros((3, 2)), np.array([1, -1, 0])),
      benchmarks.Video("a2", "a", np.zeros((2, 2)), np.array([1, 1])),
      benchmarks.Video("b1", "b", np.zeros((2, 2)), np.array([0, 1])),
  ]
  scores = {"a1": [0.1, 0.9, 0.5], "a2": [0.0, 0.0], "b1": [1.0, 0.0]}
  result = protocols.evaluate("youtube_highlights", videos, scores, split="val")
  # a1 ranks clips 1, 2, 0: labels 0, 0, 1 -> 1 * (0 + 1/3) / 2 = 1/6; a2: all positive -> 1;
  # b1 ranks 0, 1: labels 0, 1 -> 1 * (0 + 1/2) / 2 = 1/4.
  assert result["per_video"] == pytest.approx({"a1": 1 / 6, "a2": 1.0, "b1": 1 / 4})
  assert result["per_group"] == pytest.approx({"a": 7 / 12, "b": 1 / 4})
  assert result["mAP"] == pytest.approx(5 / 12)  # mean over groups, not videos
  assert result["video_mAP"] == pytest.approx(17 / 36)
  assert result["per_group_hit1"] == {"a": 0.5, "b": 0.0}
  assert result["hit1"] == 0.25
  assert result["num_videos"] == 3 and result["videos_per_group"] == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(zz=[1.0]), "not in the split"),
        (lambda s: s.pop("a2"), "no scores for 1"),
        (lambda s: s.update(a2=[1.0, 2.0, 3.0]), "video a2: scores of shape"),
        (lambda s: s.update(a2=[1.0, np.nan]), "video a2: non-finite score at clip 1"),
    ],
)
def test_check_scores_errors(change, message):
  videos = [
      benchmarks.Video("a1", "a", np.zeros((1, 2)), np.array([1])),
      benchmarks.Video("a2", "a", np.zeros((2, 2)), np.array([1, 0])),
  ]
  scores = {"a1": [0.5], "a2": [0.1, 0.2]}
  change(scores)
  with pytest.raises(ValueError, match=message):
    protocols.evaluate("youtube_highlights", videos, scores, split="val")


# Random scores, mean over 100 seeds (measured: YTH val 51.18, TVSum val 42.40; the
# expectation from 1000 seeds is 51.03 and 42.50, standard error of a 100-seed mean
# 0.15 and 0.48). Bands = published "about 51 / 42" +- (0.5 rounding + ~3 SE). Protocol
# slips land outside them (measured, 100 seeds): YTH mean over videos instead of domains
# 54.3, match >= 0 as positive 61.2, step-wise AP 54.7; TVSum AP over the full list 35.3,
# ">=" median 74.5, num_pos over all shots 2.1, labels from the mean annotator 56.2.
@pytest.mark.parametrize(
    "benchmark, num_videos, low, high",
    [
        ("youtube_highlights", 157, 50.0, 52.0),
        ("tvsum", 10, 40.0, 44.0),
    ],
)
def test_random_scores_on_real_data(shared_data, tmp_path, benchmark, num_videos, low, high):
  videos = benchmarks.load_benchmark(
      benchmark, "val", manual_dir=shared_data / benchmark, data_dir=tmp_path
  )
  result = protocols.random_baseline(benchmark, videos, seeds=100, split="val")
  assert result["num_videos"] == num_videos
  assert len(result["per_group"]) == (6 if benchmark == "youtube_highlights" else 10)
  assert low <= 100 * result["mAP"] <= high, result["mAP"]


METRICS = (
    "mAP",
    "per_group",
    "hit1",
    "per_group_hit1",
    "video_mAP",
    "video_hit1",
    "per_video",
    "per_video_hit1",
    "num_videos",
    "videos_per_group",
)


def _binary_videos(seed=0):
  rng = np.random.default_rng(seed)
  return [
      benchmarks.Video(
          f"v{i}",
          "abc"[i % 3],
          np.zeros((n, 2), np.float32),
          (rng.random(n) < 0.4).astype(np.int32),
      )
      for i, n in enumerate([5, 7, 3, 9, 4, 6, 8])
  ]


def test_corpus_and_youtube_highlights_keys_mean_the_same():
  # 0/1 labels are valid for both protocols; every metric key must agree.
  videos = _binary_videos()
  scores = protocols.random_scores(videos, seed=7)
  corpus = protocols.evaluate("corpus", videos, scores)
  yth = protocols.evaluate("youtube_highlights", videos, scores)
  for key in METRICS:
    assert corpus[key] == yth[key], key
  randoms = [
      protocols.random_baseline(p, videos, seeds=3) for p in ("corpus", "youtube_highlights")
  ]
  for key in METRICS + ("mAP_std",):
    assert randoms[0][key] == randoms[1][key], key


@pytest.mark.parametrize("protocol", ["corpus", "youtube_highlights", "tvsum"])
def test_hit1_is_averaged_per_group_then_over_groups(protocol):
  # Hits: a1 yes, a2 no (group a: 0.5), b1 yes (group b: 1.0).
  # hit1 = (0.5 + 1.0) / 2 = 0.75; video_hit1 = 2 / 3.
  if protocol == "tvsum":
    best = lambda i, t: np.where(np.arange(t)[:, None] == i, 5.0, 1.0) * np.ones((1, 20))
    labels = [best(0, 3), best(2, 3), best(1, 2)]
  else:
    labels = [np.array([1, 0, 0]), np.array([0, 0, 1]), np.array([0, 1])]
  videos = [
      benchmarks.Video(v, g, np.zeros((len(y), 2)), y)
      for v, g, y in zip(["a1", "a2", "b1"], "aab", labels)
  ]
  scores = {"a1": [0.9, 0.1, 0.0], "a2": [0.9, 0.1, 0.0], "b1": [0.0, 0.5]}
  result = protocols.evaluate(protocol, videos, scores)
  assert result["per_video_hit1"] == {"a1": 1.0, "a2": 0.0, "b1": 1.0}
  assert result["per_group_hit1"] == {"a": 0.5, "b": 1.0}
  assert result["hit1"] == 0.75
  assert result["video_hit1"] == pytest.approx(2 / 3)


def test_random_baseline_is_the_mean_of_random_scores_over_seeds():
  videos = _binary_videos(1)
  runs = [
      protocols.evaluate("corpus", videos, protocols.random_scores(videos, s)) for s in range(4)
  ]
  result = protocols.random_baseline("corpus", videos, seeds=4)
  assert result["mAP"] == pytest.approx(np.mean([r["mAP"] for r in runs]))
  assert result["hit1"] == pytest.approx(np.mean([r["hit1"] for r in runs]))
  assert result["mAP_std"] == pytest.approx(np.std([r["mAP"] for r in runs]))
  assert result["seeds"] == 4
  with pytest.raises(ValueError, match="seeds must be >= 1"):
    protocols.random_baseline("corpus", videos, seeds=0)
  with pytest.raises(ValueError, match="unknown protocol 'yth'"):
    protocols.evaluate("yth", videos, {})


def test_evaluator_scores_every_video_once_and_reuses_its_baseline():
  videos = _binary_videos(2)
  calls = []

  def score_fn(features):  # One batched call for all videos.
    calls.append(len(features))
    return np.arange(len(features), dtype=np.float32)

  evaluator = evaluators.Evaluator("corpus", "corpus", "val", "title", videos, 2)
  first = evaluator.run(score_fn)
  assert calls == [sum(v.num_clips for v in videos)]
  second = evaluator.run(score_fn)
  assert second["random"] is first["random"]
  assert first["model"] == second["model"] and first["title"] == "title"
  assert evaluators.scalars({"step": 3, "corpus": first}) == {
      "eval/corpus_mAP": first["model"]["mAP"],
      "eval/corpus_hit1": first["model"]["hit1"],
      "eval/corpus_random_mAP": first["random"]["mAP"],
  }


def test_make_evaluators_corpus_then_benchmarks(tmp_path):
  import pathlib  # pylint: disable=g-import-not-at-top

  from configs import tiny  # pylint: disable=g-import-not-at-top

  repo = pathlib.Path(__file__).resolve().parents[1]
  (tmp_path / "root").mkdir()
  (tmp_path / "root" / "tvsum").symlink_to(repo / "tfds_builders" / "tvsum" / "dummy_data")
  config = tiny.get_config()
  config.data_dir = str(tmp_path / "tfds")
  config.data_root = str(tmp_path / "root")
  corpus = corpora.load_corpus(config)
  config.eval.benchmarks = ("tvsum", "yth")  # (A string is refused by ml_collections.)
  with pytest.raises(ValueError, match="must be a tuple of names from"):
    evaluators.make_evaluators(config, corpus)
  config.eval.benchmarks = ("tvsum",)
  # synthetic_tiny is 16-d; the TVSum dummy features are 1024-d.
  with pytest.raises(
      ValueError,
      match="eval.feature_set='i3d_rgb' gives 1024-d tvsum "
      "features but the corpus 'synthetic_tiny' is 16-d",
  ):
    evaluators.make_evaluators(config, corpus)
  wide = corpora.Corpus(corpus.name, corpus.train_source, 1024, corpus.eval_videos)
  evals = evaluators.make_evaluators(config, wide)
  assert [(e.name, e.protocol, e.split) for e in evals] == [
      ("corpus", "corpus", "val"),
      ("tvsum", "tvsum", "val"),
  ]
  assert evals[0].title == "synthetic_tiny corpus, split val"
  assert [v.group for v in evals[1].videos] == ["BK", "VT"]
  config.corpus.domain = "BK"  # Ours-S: only its own domain is evaluated.
  evals = evaluators.make_evaluators(config, wide)
  assert [v.video_id for v in evals[-1].videos] == ["dummyBK_val"]
