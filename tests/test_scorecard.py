"""The hl_jax.scorecard CLI and rendering, on the builders' dummy data."""

import json
import pathlib

from absl import app
import numpy as np
import pytest

from hl_jax.data import benchmarks
from hl_jax.eval import protocols
from hl_jax.eval import reports
from hl_jax.highlights import scorecard
from hl_jax.highlights import scorers

import programs

REPO = pathlib.Path(__file__).resolve().parents[1]
YTH_DUMMY = REPO / "tfds_builders" / "youtube_highlights" / "dummy_data"
TVSUM_DUMMY = REPO / "tfds_builders" / "tvsum" / "dummy_data"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def yth_val(data_dir):
  return benchmarks.load_benchmark(
      "youtube_highlights", "val", manual_dir=YTH_DUMMY, data_dir=data_dir
  )


def _perfect(videos):
  return {v.video_id: v.labels.astype(float) for v in videos}


def test_write_report(tmp_path, yth_val):
  result = protocols.evaluate("youtube_highlights", yth_val, _perfect(yth_val), split="val")
  paths = reports.write_report(result, tmp_path / "sub" / "report.json")
  assert json.loads(paths["json"].read_text())["per_group"] == {"dog": 1.0, "surfing": 0.5}
  table = paths["md"].read_text()
  assert "| dog | 1 | 100.00 | 100.00 |" in table
  assert "| surfing | 2 | 50.00 | 50.00 |" in table
  assert "| **average** | 3 | **75.00** | **75.00** |" in table
  assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="must end in .json"):
    reports.write_report(result, tmp_path / "report.md")


def _lines(*records):
  return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


GOOD = (
    {"video_id": "dummyDog_03", "scores": [5, 4, 3, 2, 1]},
    {"video_id": "dummySurf02", "scores": [0.1, 0.2, 0.3]},
    {"video_id": "dummySurf03", "scores": [0.0, 0.0, 0.0, 0.0]},
)


@pytest.mark.parametrize(
    "content, words",
    [
        (_lines(GOOD[0], "{not json", *GOOD[1:]), ("line 2", "not valid JSON")),
        (_lines(GOOD[0], "[1, 2]", *GOOD[1:]), ("line 2", '"video_id": str')),
        (
            _lines(GOOD[0], {"video_id": "dummySurf02", "scores": "high"}, GOOD[2]),
            ("line 2", "dummySurf02", "list of numbers"),
        ),
        (_lines(*GOOD, GOOD[1]), ("line 4", "dummySurf02", "already given on line 2")),
        (
            _lines(*GOOD, {"video_id": "dummyDog_01", "scores": [1, 2, 3, 4]}),
            ("line 4", "dummyDog_01", "unknown video id"),
        ),
        (
            _lines(GOOD[0], {"video_id": "dummySurf02", "scores": [1, 2]}, GOOD[2]),
            ("line 2", "dummySurf02", "2 scores but the video has 3 clips"),
        ),
        (
            _lines(GOOD[0], '{"video_id": "dummySurf02", "scores": [1, NaN, 2]}', GOOD[2]),
            ("line 2", "dummySurf02", "non-finite score at clip 1"),
        ),
        (_lines(GOOD[0], GOOD[2]), ("no predictions for 1", "dummySurf02")),
    ],
)
def test_read_predictions_errors(tmp_path, yth_val, content, words):
  path = tmp_path / "preds.jsonl"
  path.write_text(content)
  with pytest.raises(ValueError) as info:
    scorecard.read_predictions(path, yth_val)
  for word in words:
    assert word in str(info.value)


def test_read_predictions_not_text(tmp_path, yth_val):
  path = tmp_path / "preds.jsonl"
  path.write_bytes(b"\xff\xfe\x00binary")
  with pytest.raises(ValueError, match="preds.jsonl: not a UTF-8 JSONL file"):
    scorecard.read_predictions(path, yth_val)
  with pytest.raises(ValueError, match="is a folder, not a JSONL predictions file"):
    scorecard.read_predictions(tmp_path, yth_val)


def test_read_predictions_roundtrip(tmp_path, yth_val):
  path = tmp_path / "preds.jsonl"
  scorecard.write_predictions(path, _perfect(yth_val))
  scores = scorecard.read_predictions(path, yth_val)
  np.testing.assert_array_equal(scores["dummyDog_03"], [1, 0, -1, -1, 1])


def _cli(*args):
  return programs.run("hl_jax.scorecard", *args, timeout=120)


def test_cli_end_to_end(tmp_path, data_dir, yth_val):
  preds = tmp_path / "preds.jsonl"
  scorecard.write_predictions(preds, _perfect(yth_val))
  out = tmp_path / "out" / "yth_val.json"
  common = [
      "--benchmark=youtube_highlights",
      "--split=val",
      f"--manual_dir={YTH_DUMMY}",
      f"--data_dir={data_dir}",
  ]
  proc = _cli(*common, f"--predictions={preds}", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(out.read_text())
  assert result["layout"] == "staged"
  # dummySurf03 has no positive clip: AP 0, so surfing is 0.5 even with perfect scores.
  assert result["per_group"] == {"dog": 1.0, "surfing": 0.5} and result["mAP"] == 0.75
  assert result["source"] == {"predictions": str(preds)}
  assert "**75.00**" in out.with_suffix(".md").read_text() and out.with_suffix(".png").is_file()

  lines = preds.read_text().splitlines()
  lines[1] = json.dumps({"video_id": "dummySurf02", "scores": [0.5]})
  preds.write_text("\n".join(lines) + "\n")
  proc = _cli(*common, f"--predictions={preds}", f"--output={tmp_path / 'bad.json'}")
  assert proc.returncode == 1
  assert "line 2 (video dummySurf02): 1 scores but the video has 3 clips" in proc.stderr
  assert not (tmp_path / "bad.json").exists()


def test_cli_reads_lighthouse_release(tmp_path, yth_val):
  """lighthouse's YouTube Highlights (jsonl + CLIP npz), named by --layout."""
  preds = tmp_path / "preds.jsonl"
  scorecard.write_predictions(preds, _perfect(yth_val))  # the same videos and labels
  out = tmp_path / "lh.json"
  common = [
      "--benchmark=youtube_highlights",
      f"--manual_dir={YTH_DUMMY / 'lighthouse'}",
      f"--data_dir={tmp_path / 'tfds'}",
      f"--predictions={preds}",
  ]
  proc = _cli(*common, "--layout=lighthouse", "--feature_set=clip", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(out.read_text())
  assert result["mAP"] == 0.75 and (result["feature_set"], result["layout"]) == (
      "clip",
      "lighthouse",
  )
  # The I3D feature sets are not in lighthouse's YouTube Highlights: one line.
  proc = _cli(*common, "--feature_set=i3d_rgb", f"--output={tmp_path / 'x.json'}")
  assert proc.returncode == 1
  (line,) = [l for l in proc.stderr.splitlines() if l.startswith("hl_jax.scorecard: error:")]
  assert "youtube_highlights/i3d_rgb cannot be built from the lighthouse layout" in line


def test_run_random_seeds(tmp_path, data_dir):
  kwargs = dict(manual_dir=TVSUM_DUMMY, data_dir=data_dir, random_seeds=3)
  first = scorecard.run("tvsum", "val", tmp_path / "a.json", **kwargs)
  second = scorecard.run("tvsum", "val", tmp_path / "b.json", **kwargs)
  assert first["seeds"] == 3 and first["source"] == {"random_seeds": 3}
  assert first["mAP"] == second["mAP"] and 0.0 < first["mAP"] <= 1.0
  assert sorted(first["per_group"]) == ["BK", "VT"]


def test_run_workdir_calls_predict(tmp_path, data_dir, monkeypatch):
  calls = []

  def scores_from_workdir(workdir, videos):
    calls.append((workdir, [v.video_id for v in videos]))
    return _perfect(videos)

  monkeypatch.setattr(scorers, "scores_from_workdir", scores_from_workdir)
  result = scorecard.run(
      "youtube_highlights",
      "val",
      tmp_path / "w.json",
      manual_dir=YTH_DUMMY,
      data_dir=data_dir,
      workdir="/some/workdir",
  )
  assert calls == [("/some/workdir", ["dummyDog_03", "dummySurf02", "dummySurf03"])]
  assert result["mAP"] == 0.75 and result["source"] == {"workdir": "/some/workdir"}


@pytest.mark.parametrize("sources", [{}, dict(predictions="p.jsonl", random_seeds=2)])
def test_run_needs_exactly_one_source(tmp_path, sources):
  with pytest.raises(app.UsageError, match="exactly one"):
    scorecard.run("tvsum", "val", tmp_path / "x.json", **sources)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(random_seeds=-1), "random_seeds=-1 must be >= 0"),
        (dict(random_seeds=2, output_name="x.txt"), "x.txt must end in .json"),
    ],
)
def test_run_refuses_before_reading_data(tmp_path, kwargs, words):
  # manual_dir and data_dir do not exist: the error comes first.
  output = tmp_path / "out" / kwargs.pop("output_name", "x.json")
  with pytest.raises(ValueError, match=words):
    scorecard.run(
        "tvsum", "val", output, manual_dir=tmp_path / "none", data_dir=tmp_path / "none", **kwargs
    )
  assert not (tmp_path / "out").exists()


def test_workdir_without_a_restorable_checkpoint_is_a_value_error(tmp_path, monkeypatch, yth_val):
  from hl_jax.core import checkpointing  # pylint: disable=g-import-not-at-top

  def scores_from_workdir(workdir, videos):
    raise checkpointing.CheckpointError(f"no checkpoint in {workdir} can be restored")

  monkeypatch.setattr(scorers, "scores_from_workdir", scores_from_workdir)
  with pytest.raises(ValueError, match="no checkpoint in /w can be restored"):
    scorecard.scores_from_workdir("/w", yth_val)
