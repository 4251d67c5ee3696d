r"""A benchmark split's scorecard: from a predictions file, a checkpoint or random scores.

  python -m hl_jax.scorecard --benchmark=youtube_highlights --split=val \
    --manual_dir=../shared/data/youtube_highlights --predictions=preds.jsonl \
    --output=out/yth_val.json

writes out/yth_val.json, out/yth_val.md (per-group table) and out/yth_val.png
(bar chart). A predictions file holds one JSON object per line,
{"video_id": str, "scores": [one float per clip]}, for every video of the split
and no other. Instead of --predictions, --workdir scores the split with a
trained checkpoint (hl_jax.predict) and --random_seeds=N averages N seeds of
uniform random scores (the chance baseline: ~51% YouTube Highlights val, ~42%
TVSum val). Bad input ends in one line, `hl_jax.scorecard: error: ...`,
naming the file, line and video (hl_jax/cli.py).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from hl_jax import cli
from hl_jax import datasets
from hl_jax import evaluation
from hl_jax import rendering

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module (tests,
  # the trainer) cannot clash with flags of the same name such as --workdir.
  flags.DEFINE_enum("benchmark", None, datasets.BENCHMARKS, "Benchmark to score.")
  flags.DEFINE_enum("split", "val", datasets.SPLITS, "Split to score.")
  flags.DEFINE_string("manual_dir", None,
                      "Raw data (like ../shared/data/<benchmark>); needed to build the "
                      "TFDS dataset the first time.")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's).")
  flags.DEFINE_enum("feature_set", "i3d_rgb", datasets.FEATURE_SETS,
                    "Builder config (features handed to --workdir's model).")
  flags.DEFINE_string("predictions", None, "JSONL file of per-clip scores.")
  flags.DEFINE_string("workdir", None, "Evaluate the checkpoint of this training workdir.")
  flags.DEFINE_integer("random_seeds", 0, "Evaluate random scores averaged over N seeds.")
  flags.DEFINE_string("output", None, "Report path (.json); .md and .png go next to it.")
  flags.mark_flags_as_required(["benchmark", "output"])
  cli.check("random_seeds", "an integer >= 0 (0: no random baseline)", lambda n: n >= 0)


def read_predictions(path: str | os.PathLike[str],
                     videos: Sequence[datasets.Video]) -> dict[str, np.ndarray]:
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
      raise ValueError(f"{where}: unknown video id, not one of the split's "
                       f"{len(num_clips)} videos")
    if len(values) != num_clips[vid]:
      raise ValueError(f"{where}: {len(values)} scores but the video has "
                       f"{num_clips[vid]} clips")
    if not np.isfinite(values).all():
      raise ValueError(f"{where}: non-finite score at clip "
                       f"{int(np.argmin(np.isfinite(values)))}")
    scores[vid], lines[vid] = values, n
  missing = sorted(set(num_clips) - set(scores))
  if missing:
    raise ValueError(f"{path}: no predictions for {len(missing)} of the split's "
                     f"{len(num_clips)} videos: {missing[:10]}")
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
      isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
    raise ValueError(f"{where} (video {record['video_id']}): 'scores' must be a list of numbers")
  return record["video_id"], np.asarray(values, np.float64)


def write_predictions(path: str | os.PathLike[str], scores: Mapping[str, Any]) -> None:
  """Writes {video_id: [T] scores} in the format `read_predictions` reads."""
  with open(path, "w") as f:
    for vid, values in scores.items():
      f.write(json.dumps({"video_id": vid, "scores": np.asarray(values).tolist()}) + "\n")


def scores_from_workdir(workdir: str, videos: Sequence[datasets.Video]) -> dict[str, np.ndarray]:
  """Scores the videos with the checkpoint in `workdir` (hl_jax.predict).

  Raises:
    ValueError: the workdir has checkpoints but none restores
      (checkpointing.CheckpointError, a user error here).
  """
  # pylint: disable=g-import-not-at-top  # pulls in orbax and the model
  from hl_jax import checkpointing
  from hl_jax import predict
  try:
    return predict.scores_from_workdir(workdir, videos)
  except checkpointing.CheckpointError as e:
    raise ValueError(str(e)) from e


def run(benchmark: str, split: str, output: str | os.PathLike[str], *,
        manual_dir: str | None = None, data_dir: str | None = None,
        feature_set: str = "i3d_rgb", predictions: str | None = None,
        workdir: str | None = None, random_seeds: int = 0) -> dict[str, Any]:
  """Evaluates one source of scores and writes the report; see the module doc.

  Exactly one of `predictions`, `workdir` and `random_seeds` (> 0) is given;
  `output` ends in .json.

  Returns:
    The result written to `output` (see `evaluation.evaluate`), plus
    "source" and "feature_set".
  """
  if random_seeds < 0:
    raise ValueError(f"random_seeds={random_seeds} must be >= 0 (0: no random baseline)")
  if pathlib.Path(output).suffix != ".json":
    raise ValueError(f"report path {output} must end in .json (the .md and .png go "
                     "next to it)")
  sources = {"predictions": predictions, "workdir": workdir,
             "random_seeds": random_seeds if random_seeds > 0 else None}
  given = [k for k, v in sources.items() if v is not None]
  if len(given) != 1:
    raise app.UsageError("give exactly one of --predictions, --workdir and "
                         f"--random_seeds=N (N > 0); got {given or 'none'}")
  videos = datasets.load_benchmark(benchmark, split, manual_dir=manual_dir,
                                     data_dir=data_dir, feature_set=feature_set)
  if not videos:
    raise ValueError(f"{benchmark} split {split!r} has no videos")
  if random_seeds:
    result = evaluation.random_baseline(benchmark, videos, random_seeds, split=split)
  else:
    scores = (read_predictions(predictions, videos) if predictions
              else scores_from_workdir(workdir, videos))
    result = evaluation.evaluate(benchmark, videos, scores, split=split)
  result["source"] = {given[0]: sources[given[0]]}
  result["feature_set"] = feature_set
  paths = rendering.write_report(result, output)
  logging.info("%s %s: mAP %.2f%%, HIT@1 %.2f%% over %d videos; wrote %s",
               benchmark, split, 100 * result["mAP"], 100 * result["hit1"],
               result["num_videos"], ", ".join(str(p) for p in paths.values()))
  return result


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; flags take the form --name=value")
  run(FLAGS.benchmark, FLAGS.split, FLAGS.output, manual_dir=FLAGS.manual_dir,
      data_dir=FLAGS.data_dir, feature_set=FLAGS.feature_set,
      predictions=FLAGS.predictions, workdir=FLAGS.workdir,
      random_seeds=FLAGS.random_seeds)
  print(pathlib.Path(FLAGS.output).with_suffix(".md").read_text())


if __name__ == "__main__":
  _define_flags()
  cli.run(main, "hl_jax.scorecard")
