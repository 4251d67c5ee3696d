"""hl_jax.predict: inputs, JSON, timelines and the CLI (moments: test_moments.py)."""

import json
import pathlib
import shutil

from absl import app
import numpy as np
import pytest

from hl_jax.core import families
from hl_jax.highlights import moments
from hl_jax.highlights import predict
from hl_jax.highlights import scorers

import programs

REPO = pathlib.Path(__file__).resolve().parents[1]
YTH_DUMMY = REPO / "tfds_builders" / "youtube_highlights" / "dummy_data"
TVSUM_DUMMY = REPO / "tfds_builders" / "tvsum" / "dummy_data"


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


_GOOD = np.ones((6, 3), np.float32)


def _write(path, content):
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif path.suffix == ".npy":
    np.save(path, content)
  else:
    np.savez(path, **content)


@pytest.mark.parametrize(
    "name, content, words",
    [
        # Time scalars of a .npz: finite and > 0, else an error naming file and key.
        *[
            (
                "t.npz",
                {"features": _GOOD, key: value},
                ("t.npz", f"'{key}' is {float(value)}", "finite number of seconds > 0"),
            )
            for key in ("segment_seconds", "stride_seconds", "duration_seconds")
            for value in (0.0, -2.0, np.nan, np.inf)
        ],
        (
            "t.npz",
            {"features": _GOOD, "stride_seconds": np.array([1.0, 2.0])},
            ("t.npz", "'stride_seconds' is a float64 array of shape (2,)"),
        ),
        (
            "t.npz",
            {"features": _GOOD, "segment_seconds": np.str_("2")},
            ("t.npz", "'segment_seconds' is a <U1 array"),
        ),
        (
            "t.npz",
            {"features": _GOOD, "segment_seconds": 2.0, "duration_seconds": 10.0},
            ("t.npz", "'duration_seconds' is 10.0 but segment 5 of 6 starts at 10.0 s"),
        ),
        ("t.npz", {"features": np.full((6, 3), "x")}, ("t.npz", "dtype <U1, expected numbers")),
        ("t.npz", {"features": np.zeros((6, 0))}, ("t.npz", "shape (6, 0)")),
        ("t.npy", np.array([[1.0, np.nan]]), ("t.npy", "non-finite feature in segment 0")),
        ("t.npy", b"\x93NUMPY\x01\x00torn", ("t.npy", "not a readable .npy file", "truncated")),
        ("t.npz", b"PK\x03\x04torn", ("t.npz", "not a readable .npz file", "numpy.savez")),
        ("t.npz", b"", ("t.npz", "not a readable .npz file")),
        (
            "t.npz",
            {"features": np.array([{}, {}], dtype=object)},
            ("t.npz", "not a readable .npz file", "Object arrays"),
        ),
        ("t.txt", b"1 2 3", ("t.txt", "must be a .npy or .npz file")),
    ],
)
def test_load_features_file_refuses(tmp_path, name, content, words):
  path = tmp_path / name
  _write(path, content)
  with pytest.raises(ValueError) as info:
    predict.load_features_file(path)
  for word in words:
    assert word in str(info.value)


@pytest.mark.parametrize("segment_seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_load_features_file_refuses_segment_seconds(tmp_path, segment_seconds):
  np.save(tmp_path / "a.npy", _GOOD)
  with pytest.raises(ValueError, match=f"segment_seconds={segment_seconds} must be a finite"):
    predict.load_features_file(tmp_path / "a.npy", segment_seconds)


def test_load_features_file_missing(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.npy: no such features file"):
    predict.load_features_file(tmp_path / "nope.npy")


def test_yth_clip_times_come_from_the_examples(tmp_path, monkeypatch):
  """UMT's release (no labels/umt_youtube_anno.json) at 20 fps: times are frames / fps."""
  from tfds_builders import layouts  # pylint: disable=g-import-not-at-top
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as ytb  # pylint: disable=g-import-not-at-top

  release = tmp_path / "UMT"
  shutil.copytree(YTH_DUMMY / "umt", release)
  anno_path = release / "data" / "youtube" / "youtube_anno.json"
  anno = json.loads(anno_path.read_text())
  for entry in anno.values():
    entry["fps"] = 20.0
  anno_path.write_text(json.dumps(anno))
  # UMT's split is its code and lists none of the dummy ids: the dummy's split.
  split = {
      "surfing": {"train": [], "val": ["dummySurf02"]},
      "dog": {"train": ["dummyDog_02"], "val": []},
  }
  monkeypatch.setitem(ytb.LAYOUTS, "umt", layouts.umt("youtube", split))
  (video,) = predict.benchmark_videos(
      "youtube_highlights",
      "val",
      manual_dir=str(release),
      data_dir=str(tmp_path / "tfds"),
      feature_set="i3d_rgb",
      layout="umt",
  )
  clips = np.asarray(anno["dummySurf02"]["clip"])  # frames [0, 100], [50, 150], [100, 200]
  np.testing.assert_allclose(video.starts, clips[:, 0] / 20)
  np.testing.assert_allclose(video.ends, clips[:, 1] / 20)
  np.testing.assert_allclose(video.ends, [5.0, 7.5, 10.0])
  # Built, the dataset needs no manual_dir.
  (again,) = predict.benchmark_videos(
      "youtube_highlights",
      "val",
      manual_dir=None,
      data_dir=str(tmp_path / "tfds"),
      feature_set="i3d_rgb",
  )
  np.testing.assert_array_equal(again.starts, video.starts)


def test_tvsum_shots_are_two_seconds(tmp_path):
  videos = predict.benchmark_videos(
      "tvsum",
      "val",
      manual_dir=str(TVSUM_DUMMY / "lighthouse"),  # lighthouse's TVSum rows have no fps
      data_dir=str(tmp_path),
      feature_set="i3d_rgb",
  )
  (video,) = videos
  np.testing.assert_array_equal(video.starts, [0, 2, 4, 6, 8, 10])
  np.testing.assert_array_equal(video.ends, [2, 4, 6, 8, 10, 12])


def test_run_features_files(tiny_workdir, tmp_path):
  rng = np.random.default_rng(0)
  np.savez(
      tmp_path / "one.npz",
      features=rng.normal(size=(30, 16)).astype(np.float32),
      segment_seconds=2.0,
      duration_seconds=59.0,
  )
  np.save(tmp_path / "two.npy", rng.normal(size=(7, 16)).astype(np.float32))
  out = tmp_path / "out" / "pred.json"
  rule = moments.MomentRule(top_k=3, max_moment_seconds=6)
  result = predict.run(
      tiny_workdir, out, features=[str(tmp_path / "one.npz"), str(tmp_path / "two.npy")], rule=rule
  )
  assert json.loads(out.read_text()) == result
  one, two = result["videos"]
  assert one["video_id"] == "one" and len(one["scores"]) == 30
  assert one["segments_s"][-1] == [58.0, 59.0] and two["segments_s"][-1] == [12.0, 14.0]
  # The scores are f's, in one batched pass: the same as scoring each video alone.
  score_fn = families.load_segment_scorer(tiny_workdir).score_segments
  np.testing.assert_allclose(
      one["scores"], score_fn(np.load(tmp_path / "one.npz")["features"]), rtol=1e-5, atol=1e-6
  )
  for record in (one, two):
    expected = moments.select_moments(
        np.asarray(record["scores"]), *np.asarray(record["segments_s"]).T, rule
    )
    assert record["moments"] == [m.to_json() for m in expected]
    assert 1 <= len(record["moments"]) <= 3
    assert all(m["end_s"] - m["start_s"] <= 6 for m in record["moments"])
    assert record["moments_note"] == moments.shortfall_note(
        np.asarray(record["scores"]), *np.asarray(record["segments_s"]).T, rule, expected
    )
    assert (record["moments_note"] is None) == (len(record["moments"]) == 3)
    assert pathlib.Path(record["timeline_png"]).read_bytes()[:4] == b"\x89PNG"
    # A page per video, without a player (no video file), named like the reels.
    assert record["page"] == str(out.parent / f"pred_{record['video_id']}.html")
    text = pathlib.Path(record["page"]).read_text()
    assert '<video id="video"' not in text and text.count('class="moment"') == len(
        record["moments"]
    )
  assert pathlib.Path(one["timeline_png"]).parent.name == "pred_timelines"
  assert result["extractor"] is None and "extractor" not in result["source"]


def test_run_errors(tiny_workdir, tmp_path):
  np.save(tmp_path / "wide.npy", np.zeros((3, 32), np.float32))
  with pytest.raises(ValueError, match="video wide has 32-d features"):
    predict.run(tiny_workdir, tmp_path / "x.json", features=[str(tmp_path / "wide.npy")])
  with pytest.raises(app.UsageError, match="exactly one of --features, --video and --benchmark"):
    predict.run(tiny_workdir, tmp_path / "x.json")
  np.save(tmp_path / "ok.npy", np.zeros((3, 16), np.float32))
  with pytest.raises(app.UsageError, match="exactly one of --features, --video and --benchmark"):
    predict.run(
        tiny_workdir, tmp_path / "x.json", features=[str(tmp_path / "ok.npy")], benchmark="tvsum"
    )
  with pytest.raises(ValueError, match="1 features files but 2 videos: give one --video per"):
    predict.run(
        tiny_workdir,
        tmp_path / "x.json",
        features=[str(tmp_path / "ok.npy")],
        videos=["a.mp4", "b.mp4"],
    )
  with pytest.raises(FileNotFoundError, match="--video=nope.mp4: no such file"):
    predict.run(
        tiny_workdir, tmp_path / "x.json", features=[str(tmp_path / "ok.npy")], videos=["nope.mp4"]
    )
  with pytest.raises(ValueError, match="max_plots=-1 must be >= 0"):
    predict.run(
        tiny_workdir, tmp_path / "x.json", features=[str(tmp_path / "ok.npy")], max_plots=-1
    )
  assert not (tmp_path / "x.json").exists()


def test_cli_one_features_file(tiny_workdir, tmp_path):
  np.savez(
      tmp_path / "clip.npz",
      features=np.random.default_rng(1).normal(size=(12, 16)).astype(np.float32),
      segment_seconds=2.5,
  )
  out = tmp_path / "clip.json"
  proc = programs.run(
      "hl_jax.predict",
      f"--workdir={tiny_workdir}",
      f"--features={tmp_path / 'clip.npz'}",
      f"--output={out}",
      "--top_k=2",
      "--min_moment_seconds=5",
      "--max_moment_seconds=7.5",
      timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  (record,) = json.loads(out.read_text())["videos"]
  assert record["segments_s"][1] == [2.5, 5.0]
  assert 1 <= len(record["moments"]) <= 2
  assert all(5 <= m["end_s"] - m["start_s"] <= 7.5 for m in record["moments"])
  assert out.with_suffix(".png").is_file() and record["video_id"] in proc.stdout


def test_run_videos_extracts_caches_and_cuts_reels(tiny_workdir, tmp_path):
  av = pytest.importorskip("av")
  del av
  import videos  # pylint: disable=g-import-not-at-top  # tests/videos.py

  clips = [
      str(videos.make_video(tmp_path / "a.mp4", seconds=10, fps=10, audio=True)),
      str(videos.make_video(tmp_path / "b.mp4", seconds=6, fps=10)),
  ]
  out = tmp_path / "out" / "pred.json"
  options = {"feature_dim": 16, "frame_size": 16}
  rule = moments.MomentRule(top_k=2, max_moment_seconds=4, min_gap_seconds=0)

  def run(**kwargs):
    return predict.run(
        tiny_workdir,
        out,
        videos=clips,
        extractor="untrained",
        extractor_options=options,
        reel_seconds=3,
        rule=rule,
        **kwargs,
    )

  result = run()
  caches = [out.parent / "a.untrained.npz", out.parent / "b.untrained.npz"]
  assert [r["video_id"] for r in result["videos"]] == ["a", "b"]
  assert result["source"]["features"] == [str(c) for c in caches]
  score_fn = families.load_segment_scorer(tiny_workdir).score_segments
  for record, cache in zip(result["videos"], caches):
    features = np.load(cache)["features"]
    np.testing.assert_allclose(record["scores"], score_fn(features), rtol=1e-5, atol=1e-6)
    reel = record["reel"]
    assert pathlib.Path(reel["reel"]).name == f"pred_{record['video_id']}.reel.mp4"
    assert 1.9 <= reel["duration_s"] <= 3.01  # the best moments, cut at 3 s
    best = max(record["moments"], key=lambda m: m["score"])
    assert any(a <= best["start_s"] + 1e-6 < b for a, b in reel["spans_s"])
  assert result["videos"][0]["reel"]["audio"] and not result["videos"][1]["reel"]["audio"]
  assert [len(r["scores"]) for r in result["videos"]] == [5, 3]
  # b's 3 segments: q(0.75) lies between the best two, so only the best is high:
  # one 2-s moment, and a 2-s reel rather than one padded to the 3 s asked.
  b = result["videos"][1]
  assert len(b["moments"]) == 1 and b["moments"][0]["end_s"] - b["moments"][0]["start_s"] == 2
  assert b["reel"]["asked_s"] == 3 and b["reel"]["duration_s"] == pytest.approx(2, abs=0.05)
  assert b["moments_note"].startswith("1 of top_k = 2 moments: a moment starts only at a high")
  # A page per video beside the JSON, playing the video by a relative path.
  for record, clip in zip(result["videos"], clips):
    assert record["page"] == str(out.parent / f"pred_{record['video_id']}.html")
    text = pathlib.Path(record["page"]).read_text()
    assert f'<video id="video" controls preload="auto" src="../{pathlib.Path(clip).name}">' in text
    assert pathlib.Path(record["reel"]["reel"]).name in text
  assert result["extractor"]["extractor"] == result["source"]["extractor"]
  assert result["extractor"]["feature_dim"] == 16
  # A second run reuses the caches; another extractor setting replaces them.
  stamps = [c.stat().st_mtime_ns for c in caches]
  assert run() == result and [c.stat().st_mtime_ns for c in caches] == stamps
  options["seed"] = 1
  other = run()
  assert [c.stat().st_mtime_ns for c in caches] != stamps
  assert other["videos"][0]["scores"] != result["videos"][0]["scores"]


def test_run_features_with_videos_to_play(tiny_workdir, tmp_path):
  """--features with --video: the videos are played and cut, not extracted."""
  pytest.importorskip("av")
  import videos  # pylint: disable=g-import-not-at-top  # tests/videos.py

  clip = videos.make_video(tmp_path / "ride.mp4", seconds=8, fps=10)
  np.savez(
      tmp_path / "ride.npz",
      features=np.random.default_rng(2).normal(size=(4, 16)).astype(np.float32),
      segment_seconds=2.0,
      duration_seconds=8.0,
  )
  out = tmp_path / "out" / "ride.json"
  result = predict.run(
      tiny_workdir,
      out,
      features=[str(tmp_path / "ride.npz")],
      videos=[clip],
      reel_seconds=4,
      rule=moments.MomentRule(top_k=2, merge_quantile=0.5, max_moment_seconds=2),
  )
  (record,) = result["videos"]
  assert result["source"]["videos"] == [clip] and record["video_id"] == "ride"
  assert sorted(p.name for p in out.parent.iterdir()) == [
      "ride.html",
      "ride.json",
      "ride.png",
      "ride.reel.mp4",
  ]  # no features extracted
  assert '<video id="video" controls preload="auto" src="../ride.mp4">' in (
      pathlib.Path(record["page"]).read_text()
  )
  assert record["reel"]["spans_s"] == sorted([m["start_s"], m["end_s"]] for m in record["moments"])


def test_features_of_another_space_are_refused_unless_overridden(
    tiny_workdir, tmp_path, monkeypatch
):
  av = pytest.importorskip("av")
  del av
  import videos  # pylint: disable=g-import-not-at-top  # tests/videos.py

  clip = str(videos.make_video(tmp_path / "a.mp4", seconds=4, fps=10))
  out = tmp_path / "out" / "a.json"
  options = {"feature_dim": 16, "frame_size": 16}
  # As if the model had been trained on the staged benchmark features.
  monkeypatch.setattr(
      scorers, "model_feature_space", lambda workdir: "video_features/i3d_rgb_imagenet"
  )
  with pytest.raises(
      ValueError,
      match=r"--video=.*a.mp4 has hl_jax/untrained seed 0 features "
      r"but the model in .* was trained on video_features/i3d_rgb_imagenet "
      r"features; extract with --extractor=i3d_imagenet",
  ):
    predict.run(tiny_workdir, out, videos=[clip], extractor="untrained", extractor_options=options)
  assert not out.exists()
  result = predict.run(
      tiny_workdir,
      out,
      videos=[clip],
      extractor="untrained",
      extractor_options=options,
      allow_feature_space_mismatch=True,
  )
  assert result["feature_space"]["status"] == "override"
  assert json.loads(out.read_text())["feature_space"]["model"] == "video_features/i3d_rgb_imagenet"
  assert result["extractor"]["extractor"].startswith("SegmentEmbedder")
