"""A benchmark split's scorecard from a predictions file, a workdir or random scores.

  result = scorecard.run("tvsum", "val", "out/tvsum.json", predictions="preds.jsonl")

The library behind `python -m hl_jax.scorecard` (whose docstring describes the
files). A predictions file holds one JSON object per line, {"video_id": str,
"scores": [one float per clip]}, for every video of the split and no other
(`read_predictions`, `write_predictions`).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping, Sequence

from absl import app
from absl import logging
import numpy as np

from hl_jax.data import benchmarks
from hl_jax.eval import protocols
from hl_jax.eval import reports


def read_predictions(
    path: str | os.PathLike[str], videos: Sequence[benchmarks.Video]
) -> dict[str, np.ndarray]:
  """Reads and checks a predictions file against the split's videos.

  Args:
    path: JSONL, one {"video_id": str, "scores": [float, ...]} per line (blank
      lines are ignored).
    videos: the split's videos.

  Returns:
    {video_id: [T] float64 scores} for every video.

  Raises:
    ValueError: naming the line and video, for a malformed line, a duplicate
      or unknown video id, a wrong number of scores or a non-finite score, and
      naming the missing ids when split videos have no line.
  """
  num_clips = {v.video_id: v.num_clips for v in videos}
  scores, lines = {}, {}
  for n, line in _lines(path):
    where = f"{path}, line {n}"
    vid, values = _parse_line(line, where)
    where += f" (video {vid})"
    if vid in lines:
      raise ValueError(f"{where}: already given on line {lines[vid]}")
    if vid not in num_clips:
      raise ValueError(
          f"{where}: unknown video id, not one of the split's " f"{len(num_clips)} videos"
      )
    if len(values) != num_clips[vid]:
      raise ValueError(
          f"{where}: {len(values)} scores but the video has " f"{num_clips[vid]} clips"
      )
    if not np.isfinite(values).all():
      raise ValueError(
          f"{where}: non-finite score at clip " f"{int(np.argmin(np.isfinite(values)))}"
      )
    scores[vid], lines[vid] = values, n
  missing = sorted(set(num_clips) - set(scores))
  if missing:
    raise ValueError(
        f"{path}: no predictions for {len(missing)} of the split's "
        f"{len(num_clips)} videos: {missing[:10]}"
    )
  return scores


def _lines(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
  """(line number, line) of the non-blank lines of a UTF-8 text file."""
  try:
    with open(path, encoding="utf-8") as f:
      return [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not a UTF-8 JSONL file ({e})") from e
  except IsADirectoryError as e:
    raise ValueError(f"{path} is a folder, not a JSONL predictions file") from e


def _parse_line(line: str, where: str) -> tuple[str, np.ndarray]:
  """Parses one prediction line into (video_id, [T] float64 scores)."""
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f"{where}: not valid JSON ({e})") from e
  if not isinstance(record, dict) or not isinstance(record.get("video_id"), str):
    raise ValueError(f'{where}: expected {{"video_id": str, "scores": [float, ...]}}')
  values = record.get("scores")
  if not isinstance(values, list) or not all(
      isinstance(x, (int, float)) and not isinstance(x, bool) for x in values
  ):
    raise ValueError(f"{where} (video {record['video_id']}): 'scores' must be a list of numbers")
  return record["video_id"], np.asarray(values, np.float64)


def write_predictions(path: str | os.PathLike[str], scores: Mapping[str, Any]) -> None:
  """Writes {video_id: [T] scores} in the format `read_predictions` reads."""
  with open(path, "w") as f:
    for vid, values in scores.items():
      f.write(json.dumps({"video_id": vid, "scores": np.asarray(values).tolist()}) + "\n")


def scores_from_workdir(workdir: str, videos: Sequence[benchmarks.Video]) -> dict[str, np.ndarray]:
  """Scores the videos with the checkpoint in `workdir` (hl_jax.predict).

  Raises:
    ValueError: the workdir has checkpoints but none restores
      (checkpointing.CheckpointError, a user error here).
  """
  # pylint: disable=g-import-not-at-top  # pulls in orbax and the model
  from hl_jax.core import checkpointing
  from hl_jax.highlights import scorers

  try:
    return scorers.scores_from_workdir(workdir, videos)
  except checkpointing.CheckpointError as e:
    raise ValueError(str(e)) from e


def run(
    benchmark: str,
    split: str,
    output: str | os.PathLike[str],
    *,
    manual_dir: str | None = None,
    data_dir: str | None = None,
    feature_set: str = "i3d_rgb",
    layout: str = "auto",
    predictions: str | None = None,
    workdir: str | None = None,
    random_seeds: int = 0,
) -> dict[str, Any]:
  """Evaluates one source of scores and writes the report; see the module doc.

  Exactly one of `predictions`, `workdir` and `random_seeds` (> 0) is given;
  `output` ends in .json. `manual_dir` holds the benchmark in `layout`
  (`benchmarks.load_benchmark`).

  Returns:
    The result written to `output` (see `evaluation.evaluate`), plus
    "source", "feature_set" and "layout" (the release the dataset was built
    from).
  """
  if random_seeds < 0:
    raise ValueError(f"random_seeds={random_seeds} must be >= 0 (0: no random baseline)")
  if pathlib.Path(output).suffix != ".json":
    raise ValueError(f"report path {output} must end in .json (the .md and .png go " "next to it)")
  sources = {
      "predictions": predictions,
      "workdir": workdir,
      "random_seeds": random_seeds if random_seeds > 0 else None,
  }
  given = [k for k, v in sources.items() if v is not None]
  if len(given) != 1:
    raise app.UsageError(
        "give exactly one of --predictions, --workdir and "
        f"--random_seeds=N (N > 0); got {given or 'none'}"
    )
  videos = benchmarks.load_split(
      benchmark,
      split,
      manual_dir=manual_dir,
      data_dir=data_dir,
      feature_set=feature_set,
      layout=layout,
  )
  if random_seeds:
    result = protocols.random_baseline(benchmark, videos, random_seeds, split=split)
  else:
    scores = (
        read_predictions(predictions, videos)
        if predictions
        else scores_from_workdir(workdir, videos)
    )
    result = protocols.evaluate(benchmark, videos, scores, split=split)
  result["source"] = {given[0]: sources[given[0]]}
  result["feature_set"] = feature_set
  result["layout"] = benchmarks.built_layout(benchmark, data_dir=data_dir, feature_set=feature_set)
  paths = reports.write_report(result, output)
  logging.info(
      "%s %s: mAP %.2f%%, HIT@1 %.2f%% over %d videos; wrote %s",
      benchmark,
      split,
      100 * result["mAP"],
      100 * result["hit1"],
      result["num_videos"],
      ", ".join(str(p) for p in paths.values()),
  )
  return result
