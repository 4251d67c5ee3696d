"""hl_jax.eval.reports and the workdir's results files: the tables people read, to the character."""

import json

import pytest

from hl_jax.core import workdir as workdir_lib
from hl_jax.eval import reports
from hl_jax.highlights import timelines


def _result(per_group, mean):
  return {"per_group": per_group, "mAP": mean}


def test_results_markdown_is_the_trainers_table():
  results = {
      "step": 20,
      "corpus": {
          "split": "val",
          "title": "synthetic corpus, split val",
          "model": _result({"dog": 0.7181, "ski": 0.5}, 0.60905),
          "random": _result({"dog": 0.25}, 0.3),
      },
  }
  assert reports.results_markdown("weighting softmax", results) == (
      "# Results: weighting softmax, step 20\n\n"
      "### synthetic corpus, split val\n\n"
      "| group | model mAP | random mAP |\n"
      "|---|---:|---:|\n"
      "| dog | 71.81 | 25.00 |\n"
      "| ski | 50.00 | nan |\n"
      "| **average** | **60.91** | **30.00** |\n"
  )


def test_write_results_writes_json_and_markdown(tmp_path):
  results = {
      "step": 1,
      "tvsum": {
          "split": "val",
          "title": "t",
          "model": _result({"BK": 0.5}, 0.5),
          "random": _result({"BK": 0.25}, 0.25),
      },
  }
  text = reports.results_markdown("weighting ranking_d", results)
  workdir_lib.write_results(str(tmp_path), results, text)
  assert (tmp_path / "results.md").read_text() == text
  assert text.startswith("# Results: weighting ranking_d, step 1\n")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]
  assert json.loads((tmp_path / "results.json").read_text()) == results


def test_timeline_png_and_bad_times(tmp_path):
  record = {
      "video_id": "v",
      "segments_s": [[0, 2], [2, 4], [4, 6]],
      "scores": [0.1, 0.9, 0.3],
      "moments": [{"start_s": 2.0, "end_s": 4.0}],
  }
  timelines.timeline(tmp_path / "v.png", record)
  assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  record["segments_s"][1][1] = float("nan")
  with pytest.raises(ValueError, match="video v: non-finite segment times"):
    timelines.timeline(tmp_path / "w.png", record)
