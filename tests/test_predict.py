"""hl_jax.predict: moment selection on hand-made scores, inputs, JSON, timelines, CLI."""

import json
import os
import pathlib
import subprocess
import sys

from absl import app
import numpy as np
import pytest

from configs import tiny
from hl_jax import predict
from hl_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
YTH_DUMMY = REPO / "tfds_builders" / "youtube_highlights" / "dummy_data"


def _grid(num):
  return predict.segment_times(num, 1.0)


def _spans(scores, rule, starts=None, ends=None):
  if starts is None:
    starts, ends = _grid(len(scores))
  return [(m.start, m.end) for m in predict.select_moments(
      np.asarray(scores, float), np.asarray(starts, float), np.asarray(ends, float), rule)]


@pytest.mark.parametrize("scores, rule, expected", [
    # q(0.75) = 3.25: 5, 6 and 4 are high. Seed 3 merges its high neighbour 2;
    # seed 2 is taken; seed 7 has no high neighbour; then seed 1 (ties: lower index).
    ([0, 1, 5, 6, 1, 0, 0, 4, 0, 0], dict(top_k=3, min_gap_seconds=0), [(2, 4), (7, 8), (1, 2)]),
    # The same with a 2 s gap: everything within 2 s of (2, 4) and (7, 8) is taken.
    ([0, 1, 5, 6, 1, 0, 0, 4, 0, 0], dict(top_k=3), [(2, 4), (7, 8)]),
    # All high (q = 0), at most 3 s: the tie between 3 and 5 goes left, then 5 joins.
    ([1, 2, 3, 4, 5, 4, 3, 2, 1, 0], dict(top_k=1, merge_quantile=0.0, max_moment_seconds=3),
     [(3, 6)]),
    # Too short: padded to 3 s by the better neighbour, the left one on ties.
    ([0, 0, 9, 0, 0, 0], dict(top_k=1, merge_quantile=0.9, min_moment_seconds=3), [(0, 3)]),
    # Seed 0 is boxed in by (1, 3) and cannot reach 2 s: skipped; then seed 3.
    ([5, 0, 9, 0, 0], dict(top_k=2, merge_quantile=1.0, min_moment_seconds=2,
                           min_gap_seconds=0), [(1, 3), (3, 5)]),
    # A video shorter than the minimum is one moment.
    ([1, 2], dict(min_moment_seconds=10), [(0, 2)]),
    # Equal scores: seeds in index order; the run grows right over the high segments.
    ([1, 1, 1], dict(top_k=1, merge_quantile=1.0), [(0, 3)]),
    ([], dict(), []),
])
def test_select_moments_hand_made(scores, rule, expected):
  assert _spans(scores, predict.MomentRule(**rule)) == expected


def test_select_moments_overlapping_clips_never_overlap_in_time():
  # YouTube Highlights-like clips: 2 s windows at a 1 s stride. q(0.8) = 4.2: only 5 is high.
  starts, ends = np.arange(5.0), np.arange(5.0) + 2
  rule = predict.MomentRule(top_k=3, merge_quantile=0.8, min_gap_seconds=0)
  moments = predict.select_moments(np.array([0, 5, 0, 0, 4.0]), starts, ends, rule)
  # (1, 2) spans 1-3 s, so clips 0 (0-2 s) and 2 (2-4 s) overlap it and are not free;
  # (4, 5) spans 4-6 s and takes clip 3 (3-5 s): no third moment.
  assert [(m.start, m.end, m.start_s, m.end_s, m.score) for m in moments] == [
      (1, 2, 1.0, 3.0, 5.0), (4, 5, 4.0, 6.0, 4.0)]


def test_moment_score_is_the_mean_and_json_has_seconds():
  starts, ends = predict.segment_times(4, 2.0, duration_seconds=7.0)
  np.testing.assert_array_equal(ends, [2, 4, 6, 7])
  moment, = predict.select_moments(np.array([0, 0, 3, 1.0]), starts, ends,
                                   predict.MomentRule(top_k=1, merge_quantile=0.5))
  assert moment.to_json() == {"start_s": 4.0, "end_s": 7.0, "score": 2.0,
                              "start_segment": 2, "end_segment": 4}


@pytest.mark.parametrize("rule, message", [
    (dict(top_k=0), "top_k=0"),
    (dict(min_moment_seconds=5, max_moment_seconds=4), "min_moment_seconds"),
    (dict(merge_quantile=1.5), "merge_quantile=1.5"),
    (dict(min_gap_seconds=-1), "min_gap_seconds=-1"),
])
def test_moment_rule_errors(rule, message):
  with pytest.raises(ValueError, match=message):
    predict.MomentRule(**rule)


def test_load_features_file(tmp_path):
  features = np.ones((5, 3), np.float32)
  np.save(tmp_path / "a.npy", features)
  video = predict.load_features_file(tmp_path / "a.npy", 1.5)
  assert video.video_id == "a" and video.ends[-1] == 7.5
  np.savez(tmp_path / "b.npz", features=features, segment_seconds=2.0, duration_seconds=9.0)
  video = predict.load_features_file(tmp_path / "b.npz")
  np.testing.assert_array_equal(video.starts, [0, 2, 4, 6, 8])
  np.testing.assert_array_equal(video.ends, [2, 4, 6, 8, 9])
  with pytest.raises(ValueError, match="made with segment_seconds=2.0, not 1.0"):
    predict.load_features_file(tmp_path / "b.npz", 1.0)
  np.savez(tmp_path / "c.npz", feats=features)
  with pytest.raises(ValueError, match="no 'features' array"):
    predict.load_features_file(tmp_path / "c.npz")
  np.save(tmp_path / "d.npy", np.ones(4))
  with pytest.raises(ValueError, match=r"shape \(4,\), expected \[T, D\]"):
    predict.load_features_file(tmp_path / "d.npy")


def test_yth_clip_times_come_from_the_annotation(tmp_path):
  videos = predict.benchmark_videos("youtube_highlights", "val", manual_dir=str(YTH_DUMMY),
                                    data_dir=str(tmp_path), feature_set="i3d_rgb")
  anno = json.loads((YTH_DUMMY / "labels" / "umt_youtube_anno.json").read_text())
  for video in videos:
    clips = np.asarray(anno[video.video_id]["clip"]) / anno[video.video_id]["fps"]
    np.testing.assert_allclose(video.starts, clips[:, 0])
    np.testing.assert_allclose(video.ends, clips[:, 1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny model (D = 16) trained on synthetic_tiny for 10 steps."""
  config = tiny.get_config()
  config.corpus.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.train.num_steps = 10
  path = str(tmp_path_factory.mktemp("workdir"))
  train.train_and_evaluate(config, path)
  return path


def test_run_features_files(workdir, tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "one.npz", features=rng.normal(size=(30, 16)).astype(np.float32),
           segment_seconds=2.0, duration_seconds=59.0)
  np.save(tmp_path / "two.npy", rng.normal(size=(7, 16)).astype(np.float32))
  out = tmp_path / "out" / "pred.json"
  rule = predict.MomentRule(top_k=3, max_moment_seconds=6)
  result = predict.run(workdir, out, features=[str(tmp_path / "one.npz"),
                                               str(tmp_path / "two.npy")], rule=rule)
  assert json.loads(out.read_text()) == result
  one, two = result["videos"]
  assert one["video_id"] == "one" and len(one["scores"]) == 30
  assert one["segments_s"][-1] == [58.0, 59.0] and two["segments_s"][-1] == [12.0, 14.0]
  # The scores are f's, in one batched pass: the same as scoring each video alone.
  score_fn, _, _ = predict.load_scorer(workdir)
  np.testing.assert_allclose(one["scores"], score_fn(np.load(tmp_path / "one.npz")["features"]),
                             rtol=1e-5, atol=1e-6)
  for record in (one, two):
    expected = predict.select_moments(np.asarray(record["scores"]),
                                      *np.asarray(record["segments_s"]).T, rule)
    assert record["moments"] == [m.to_json() for m in expected]
    assert 1 <= len(record["moments"]) <= 3
    assert all(m["end_s"] - m["start_s"] <= 6 for m in record["moments"])
    assert pathlib.Path(record["timeline_png"]).read_bytes()[:4] == b"\x89PNG"
  assert pathlib.Path(one["timeline_png"]).parent.name == "pred_timelines"


def test_run_errors(workdir, tmp_path):
  np.save(tmp_path / "wide.npy", np.zeros((3, 32), np.float32))
  with pytest.raises(ValueError, match="video wide has 32-d features"):
    predict.run(workdir, tmp_path / "x.json", features=[str(tmp_path / "wide.npy")])
  with pytest.raises(app.UsageError, match="exactly one of --features and --benchmark"):
    predict.run(workdir, tmp_path / "x.json")


def test_cli_one_features_file(workdir, tmp_path):
  np.savez(tmp_path / "clip.npz", features=np.random.default_rng(1).normal(
      size=(12, 16)).astype(np.float32), segment_seconds=2.5)
  out = tmp_path / "clip.json"
  proc = subprocess.run(
      [sys.executable, "-m", "hl_jax.predict", f"--workdir={workdir}",
       f"--features={tmp_path / 'clip.npz'}", f"--output={out}", "--top_k=2",
       "--min_moment_seconds=5", "--max_moment_seconds=7.5"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 0, proc.stderr
  record, = json.loads(out.read_text())["videos"]
  assert record["segments_s"][1] == [2.5, 5.0]
  assert all(5 <= m["end_s"] - m["start_s"] <= 7.5 for m in record["moments"])
  assert out.with_suffix(".png").is_file() and record["video_id"] in proc.stdout
