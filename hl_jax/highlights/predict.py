"""Highlights of videos from a trained workdir: scores, moments, timelines, reels (`run`).

  result = predict.run(workdir, "out/clip.json", videos=["clip.mp4"], reel_seconds=30)

The library behind `python -m hl_jax.predict` (whose docstring describes the
inputs, outputs and files): features files (`load_features_file`), video files
(extracted and cached by hl_jax/video/cache.py) or a benchmark split
(`benchmark_videos`) are scored by any family's scorer (`families.load_scorer`)
and turned into moments (hl_jax/highlights/moments.py), a timeline PNG per
video, a page per video (hl_jax/highlights/page.py) and, for video files, a
reel (hl_jax/highlights/reel.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any, Sequence

from absl import app
from absl import logging
import numpy as np

from hl_jax.core import cli
from hl_jax.core import families
from hl_jax.core import files
from hl_jax.data import benchmarks
from hl_jax.data import features_file
from hl_jax.highlights import moments
from hl_jax.highlights import page
from hl_jax.highlights import reel
from hl_jax.highlights import scorers
from hl_jax.highlights import timelines
from hl_jax.video import cache
from hl_jax.video import extractors


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
    benchmark: str,
    split: str,
    manual_dir: str | None,
    data_dir: str | None,
    feature_set: str,
    layout: str = "auto",
) -> list[TimedVideo]:
  """A benchmark split's videos with their segments' time ranges.

  The times come with the TFDS examples (`benchmarks.Video.segments_s`), so
  any release the builders read works, and a built dataset needs no
  manual_dir.
  """
  videos = benchmarks.load_split(
      benchmark,
      split,
      manual_dir=manual_dir,
      data_dir=data_dir,
      feature_set=feature_set,
      layout=layout,
  )
  timed = []
  for v in videos:
    if v.segments_s is None or len(v.segments_s) != len(v.features):
      raise ValueError(
          f"video {v.video_id}: clip times of shape "
          f"{None if v.segments_s is None else v.segments_s.shape} for "
          f"{len(v.features)} feature rows"
      )
    if not np.isfinite(v.segments_s).all():
      raise ValueError(
          f"video {v.video_id}: non-finite clip times (an fps of "
          f"{benchmark} in {manual_dir} that is 0 or missing)"
      )
    starts, ends = v.segments_s[:, 0], v.segments_s[:, 1]
    timed.append(TimedVideo(v.video_id, v.features, starts, ends, v.text))
  return timed


def extractor_signature(features: Sequence[str]) -> dict[str, Any] | None:
  """The extractor signature the features files share (None: none carries one).

  Raises:
    ValueError: files written by different extractors (one model cannot
      score both feature spaces).
  """
  signatures = {}
  for path in features:
    signature = features_file.read_signature(path)
    if signature is not None:
      signatures.setdefault(signature["extractor"], (path, signature))
  if len(signatures) > 1:
    (a, _), (b, _) = list(signatures.values())[:2]
    raise ValueError(
        f"features files of different extractors: {a} and {b}; score each "
        "extractor's features with a model trained on them"
    )
  return next(iter(signatures.values()))[1] if signatures else None


def predict(workdir: str, videos: Sequence[TimedVideo], rule: moments.MomentRule) -> dict[str, Any]:
  """Scores `videos` with the workdir's f in one batched pass and picks moments.

  Returns:
    {"workdir", "checkpoint_step", "model_family", "scorer", "rule",
    "videos": [{"video_id", "num_segments", "segments_s": [[start, end]],
    "scores": [T], "moments": [{"start_s", "end_s", "score",
    "start_segment", "end_segment"}], "moments_note": why fewer than top_k
    moments came back (`moments.shortfall_note`), or None}]}.
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
            "moments_note": moments.shortfall_note(scores, video.starts, video.ends, rule, chosen),
        }
    )
  return {
      "workdir": workdir if files.is_remote(workdir) else os.path.abspath(workdir),
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
    layout: str = "auto",
    rule: moments.MomentRule = moments.MomentRule(),
    max_plots: int = 8,
    allow_feature_space_mismatch: bool = False,
) -> dict[str, Any]:
  """Predicts for videos, features files or a benchmark split; writes JSON, PNGs, pages.

  One source: `videos` (extracted with `extractor`, cached next to `output`:
  `cache.features_for_videos`), `features`, or `benchmark` (read from
  `manual_dir` in `layout`). `videos` may also come with `features`, one per
  features file in the same order: then they are not extracted, only played
  on the pages and cut into reels. Where videos are known, each gets a
  highlight reel of its best moments with `reel_seconds` > 0
  (`reel.write_reel`) and a page (`page.write_page`: player, timeline,
  moments, reel); otherwise the first `max_plots` videos get a page without
  a player. `feature_set` None takes the one the workdir was evaluated with
  (config.eval.feature_set). Files are named after `output`, whose path is
  made absolute, and so are the paths the JSON records. Features of another
  feature space than the model's are refused in one line
  (`scorers.check_feature_space`) unless `allow_feature_space_mismatch`.

  Returns:
    The JSON written to `output` (see `predict`), plus "source", "extractor"
    (the features files' extractor signature: which network and preprocessing,
    or None), "feature_space" (`scorers.check_feature_space`'s record), and per video
    "timeline_png" (plotted videos), "reel" (videos with a reel: write_reel's
    record plus "asked_s", the reel_seconds asked) and "page".
  """
  if bool(benchmark) == bool(features or videos):
    raise app.UsageError(
        "give exactly one of --features, --video and --benchmark (or --features "
        "with --video: the videos to play)"
    )
  output = pathlib.Path(os.path.abspath(output))
  if output.suffix != ".json":
    raise ValueError(f"output {output} must end in .json")
  if max_plots < 0:
    raise ValueError(f"max_plots={max_plots} must be >= 0")
  if not (math.isfinite(reel_seconds) and reel_seconds >= 0):
    raise ValueError(f"reel_seconds={reel_seconds} must be a finite number >= 0")
  extracted = bool(videos) and not features
  if features and videos:
    if len(features) != len(videos):
      raise ValueError(
          f"{len(features)} features files but {len(videos)} videos: give one "
          "--video per --features file, in the same order, to play them"
      )
    for video in videos:
      if not os.path.isfile(video):
        raise FileNotFoundError(f"--video={video}: no such file")
  elif videos:
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
  signature = None
  if features:
    inputs = [load_features_file(p, segment_seconds) for p in features]
    if extracted:  # named by the video, not by its cache '<stem>.<extractor>.npz'
      inputs = [
          dataclasses.replace(v, video_id=pathlib.Path(path).stem)
          for v, path in zip(inputs, videos)
      ]
    ids = [v.video_id for v in inputs]
    if len(set(ids)) != len(ids):
      raise ValueError(f"features files with the same stem: {sorted(ids)}")
    source = {"features": [os.path.abspath(p) for p in features]}
    if videos:
      source["videos"] = [os.path.abspath(v) for v in videos]
    signature = extractor_signature(features)
    if signature is not None:
      source["extractor"] = signature["extractor"]
    space = features_file.read_feature_space(features[0])
    named = f"--video={videos[0]}" if extracted else f"--features={features[0]}"
  else:
    if feature_set is None:
      feature_set = scorers.feature_set(workdir)
    inputs = benchmark_videos(benchmark, split, manual_dir, data_dir, feature_set, layout)
    source = {
        "benchmark": benchmark,
        "split": split,
        "feature_set": feature_set,
        "layout": benchmarks.built_layout(benchmark, data_dir=data_dir, feature_set=feature_set),
    }
    space = features_file.staged_feature_space(feature_set)
    named = f"--benchmark={benchmark} ({feature_set})"
  checked = scorers.check_feature_space(
      workdir, space, source=named, override=allow_feature_space_mismatch
  )
  result = predict(workdir, inputs, rule)
  result["source"] = source
  result["extractor"] = signature
  result["feature_space"] = checked
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
      # Only the moments: a reel shorter than asked, not padded with the rest.
      spans = reel.reel_spans(record["moments"], reel_seconds)
      record["reel"] = (
          dict(reel.write_reel(video, spans, target), asked_s=reel_seconds) if spans else None
      )
  num_pages = len(inputs) if videos else min(max_plots, len(inputs))
  for i, record in enumerate(result["videos"][:num_pages]):
    path = page.page_path(output, record["video_id"], len(inputs))
    record["page"] = str(page.write_page(path, result, i))
  files.write_json(output, result)
  logging.info(
      "%d videos, %d moments; wrote %s, %d timelines and %d pages",
      len(inputs),
      sum(len(r["moments"]) for r in result["videos"]),
      output,
      len(pngs),
      num_pages,
  )
  return result
