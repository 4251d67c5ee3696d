"""Highlights of videos from a trained workdir: scores, moments, timelines, reels (`run`).

  result = predict.run(workdir, "out/clip.json", videos=["clip.mp4"], reel_seconds=30)

The library behind `python -m hl_jax.predict` (whose docstring describes the
inputs, outputs and files): features files (`load_features_file`), video files
(extracted and cached by hl_jax/video/cache.py) or a benchmark split
(`benchmark_videos`) are scored by any family's scorer (`families.load_scorer`)
and turned into moments (hl_jax/highlights/moments.py), a timeline PNG per video
and, for video files, a reel (hl_jax/highlights/reel.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Sequence

from absl import app
from absl import logging
import numpy as np

from hl_jax.core import cli
from hl_jax.core import families
from hl_jax.data import benchmarks
from hl_jax.data import features_file
from hl_jax.highlights import moments
from hl_jax.highlights import reel
from hl_jax.highlights import scorers
from hl_jax.highlights import timelines
from hl_jax.video import cache
from hl_jax.video import extractors

_YTH_ANNOTATION = os.path.join("labels", "umt_youtube_anno.json")


_TVSUM_SHOT_SECONDS = 2.0


@dataclasses.dataclass(frozen=True, eq=False)
class TimedVideo:
  """Features of one video and the time range of each segment.

  Attributes:
    video_id: name (a features file's stem, or a benchmark id).
    features: [T, D] float32.
    starts: [T] segment start times, seconds.
    ends: [T] segment end times, seconds.
    text: [L, Dt] title tokens (TVSum; used by TaoHighlight only), or None.
  """

  video_id: str
  features: np.ndarray
  starts: np.ndarray
  ends: np.ndarray
  text: np.ndarray | None = None


def load_features_file(
    path: str | os.PathLike[str], segment_seconds: float | None = None
) -> TimedVideo:
  """Reads a .npy / .npz features file (see the module docstring).

  Args:
    path: the file.
    segment_seconds: segment length (finite, > 0); None takes the file's own
      `segment_seconds` (.npz) or 2.0.

  Raises:
    ValueError: naming the file and key, for an unreadable file, features
      that are not a finite [T, D] array of numbers, a time scalar that is
      not a finite number > 0, a duration that ends before the last segment
      starts, or a `segment_seconds` that disagrees with the file's.
  """
  path = pathlib.Path(path)
  if segment_seconds is not None and not cli.positive(segment_seconds):
    raise ValueError(f"segment_seconds={segment_seconds} must be a finite number > 0")
  features, meta = features_file.read(path)
  file_seconds = meta.get("segment_seconds")
  if (
      segment_seconds is not None
      and file_seconds is not None
      and not math.isclose(segment_seconds, file_seconds)
  ):
    raise ValueError(
        f"{path} was made with segment_seconds={file_seconds}, " f"not {segment_seconds}"
    )
  length = next(s for s in (segment_seconds, file_seconds, 2.0) if s is not None)
  duration = meta.get("duration_seconds")
  starts, ends = moments.segment_times(len(features), length, meta.get("stride_seconds"), duration)
  if duration is not None and starts[-1] >= duration:
    raise ValueError(
        f"{path}: 'duration_seconds' is {duration} but segment "
        f"{len(starts) - 1} of {len(starts)} starts at {starts[-1]} s; fix "
        "duration_seconds or stride_seconds"
    )
  return TimedVideo(path.stem, features, starts, ends)


def benchmark_videos(
    benchmark: str, split: str, *, manual_dir: str | None, data_dir: str | None, feature_set: str
) -> list[TimedVideo]:
  """A benchmark split's videos with their segments' time ranges."""
  videos = benchmarks.load_benchmark(
      benchmark, split, manual_dir=manual_dir, data_dir=data_dir, feature_set=feature_set
  )
  if not videos:
    raise ValueError(f"{benchmark} split {split!r} has no videos")
  clips = {}
  if benchmark == "youtube_highlights":
    anno = os.path.join(manual_dir or "", _YTH_ANNOTATION)
    if not manual_dir or not os.path.exists(anno):
      raise FileNotFoundError(
          f"{anno} not found: YouTube Highlights clip times come from "
          "its annotation file; pass --manual_dir"
      )
    try:
      with open(anno) as f:
        clips = {
            vid: np.asarray(a["clip"], np.float64) / float(a["fps"])
            for vid, a in json.load(f).items()
        }
    except (KeyError, TypeError, ValueError) as e:
      raise ValueError(
          f"{anno}: not a UMT annotation file ({cli.message(e)}); pass "
          "the --manual_dir the dataset was built from"
      ) from e
  timed = []
  for v in videos:
    if benchmark == "youtube_highlights":
      if v.video_id not in clips:
        raise ValueError(
            f"video {v.video_id} is not in {anno}; pass the --manual_dir "
            "the dataset was built from"
        )
      starts, ends = clips[v.video_id][:, 0], clips[v.video_id][:, 1]
    else:
      starts, ends = moments.segment_times(v.num_clips, _TVSUM_SHOT_SECONDS)
    if len(starts) != len(v.features):
      raise ValueError(
          f"video {v.video_id}: {len(starts)} clip times for " f"{len(v.features)} feature rows"
      )
    timed.append(TimedVideo(v.video_id, v.features, starts, ends, v.text))
  return timed


def predict(workdir: str, videos: Sequence[TimedVideo], rule: moments.MomentRule) -> dict[str, Any]:
  """Scores `videos` with the workdir's f in one batched pass and picks moments.

  Returns:
    {"workdir", "checkpoint_step", "rule", "videos": [{"video_id",
    "num_segments", "segments_s": [[start, end]] , "scores": [T],
    "moments": [{"start_s", "end_s", "score", "start_segment",
    "end_segment"}]}]}.
  """
  scorer = families.load_scorer(workdir)
  scorers.check_dims(videos, scorer, workdir)
  all_scores = scorer.score_videos(videos)
  records = []
  for video, scores in zip(videos, all_scores):
    chosen = moments.select_moments(scores, video.starts, video.ends, rule)
    records.append(
        {
            "video_id": video.video_id,
            "num_segments": len(scores),
            "segments_s": np.round(np.stack([video.starts, video.ends], 1), 3).tolist(),
            "scores": [float(s) for s in scores],
            "moments": [m.to_json() for m in chosen],
        }
    )
  return {
      "workdir": os.path.abspath(workdir),
      "checkpoint_step": scorer.step,
      "model_family": scorer.family,
      "scorer": dict(scorer.record),
      "rule": dataclasses.asdict(rule),
      "videos": records,
  }


def run(
    workdir: str,
    output: str | os.PathLike[str],
    *,
    features: Sequence[str] = (),
    videos: Sequence[str] = (),
    extractor: str = extractors.DEFAULT_EXTRACTOR,
    reel_seconds: float = 0.0,
    extractor_options: dict[str, Any] | None = None,
    segment_seconds: float | None = None,
    benchmark: str | None = None,
    split: str = "val",
    manual_dir: str | None = None,
    data_dir: str | None = None,
    feature_set: str | None = None,
    rule: moments.MomentRule = moments.MomentRule(),
    max_plots: int = 8,
) -> dict[str, Any]:
  """Predicts for features files or a benchmark split; writes JSON and PNGs.

  Exactly one of `features`, `videos` and `benchmark` is given. `videos`
  are extracted with `extractor` (cached next to `output`: `feature_cache`)
  and, with `reel_seconds` > 0, each gets a highlight reel of its best moments
  (`reel.write_reel`). `feature_set` None takes the one the workdir was
  evaluated with (config.eval.feature_set).

  Returns:
    The JSON written to `output` (see `predict`), plus "source",
    "timeline_png" per plotted video and "reel" per video with a reel.
  """
  if (bool(features) + bool(videos) + bool(benchmark)) != 1:
    raise app.UsageError("give exactly one of --features, --video and --benchmark")
  output = pathlib.Path(output)
  if output.suffix != ".json":
    raise ValueError(f"output {output} must end in .json")
  if max_plots < 0:
    raise ValueError(f"max_plots={max_plots} must be >= 0")
  if not (math.isfinite(reel_seconds) and reel_seconds >= 0):
    raise ValueError(f"reel_seconds={reel_seconds} must be a finite number >= 0")
  if videos:
    output.parent.mkdir(parents=True, exist_ok=True)
    features = [
        str(p)
        for p in cache.features_for_videos(
            videos,
            output.parent,
            extractor=extractor,
            segment_seconds=segment_seconds,
            extractor_options=extractor_options,
        )
    ]
    segment_seconds = None
  if features:
    inputs = [load_features_file(p, segment_seconds) for p in features]
    ids = [v.video_id for v in inputs]
    if len(set(ids)) != len(ids):
      raise ValueError(f"features files with the same stem: {sorted(ids)}")
    source = {"features": [os.path.abspath(p) for p in features]}
    if videos:  # named by the video, not by its cache '<stem>.<extractor>.npz'
      inputs = [
          dataclasses.replace(v, video_id=pathlib.Path(path).stem)
          for v, path in zip(inputs, videos)
      ]
      source["videos"] = [os.path.abspath(v) for v in videos]
      source["extractor"] = str(features_file.read_signature(features[0])["extractor"])
  else:
    if feature_set is None:
      feature_set = scorers.feature_set(workdir)
    inputs = benchmark_videos(
        benchmark, split, manual_dir=manual_dir, data_dir=data_dir, feature_set=feature_set
    )
    source = {"benchmark": benchmark, "split": split, "feature_set": feature_set}
  result = predict(workdir, inputs, rule)
  result["source"] = source
  output.parent.mkdir(parents=True, exist_ok=True)
  if len(inputs) == 1:
    pngs = [output.with_suffix(".png")]
  else:
    folder = output.with_name(output.stem + "_timelines")
    folder.mkdir(exist_ok=True)
    pngs = [folder / f"{r['video_id']}.png" for r in result["videos"][:max_plots]]
  for record, png in zip(result["videos"], pngs):
    timelines.timeline(png, record)
    record["timeline_png"] = str(png)
  if videos and reel_seconds > 0:
    for record, video in zip(result["videos"], videos):
      target = (
          output.with_suffix(".reel.mp4")
          if len(videos) == 1
          else output.with_name(f"{output.stem}_{record['video_id']}.reel.mp4")
      )
      spans = reel.reel_spans(record["moments"], reel_seconds)
      record["reel"] = reel.write_reel(video, spans, target) if spans else None
  output.write_text(json.dumps(result, indent=1) + "\n")
  logging.info(
      "%d videos, %d moments; wrote %s and %d timelines",
      len(inputs),
      sum(len(r["moments"]) for r in result["videos"]),
      output,
      len(pngs),
  )
  return result
