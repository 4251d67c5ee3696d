r"""Highlights from a trained workdir: per-segment scores and top-k moments.

  python -m hl_jax.predict --workdir=W --video=clip.mp4 --output=out/clip.json
  python -m hl_jax.predict --workdir=W --features=video.npz --output=out/video.json
  python -m hl_jax.predict --workdir=W --benchmark=tvsum --split=val \
    --manual_dir=../shared/data/tvsum --output=out/tvsum_val.json

A training run writes `<workdir>/config.json`; with it and the newest
checkpoint, any features of the same dimension are scored by f in one batched
pass (`evaluation.score_videos`), and `moments.select_moments` turns each video's
scores into at most `top_k` non-overlapping moments (time ranges in seconds).
The JSON holds, per video, the scores, the segments' time ranges and the
moments; a timeline PNG per video (the first `--max_plots` of a split) shows
the scores with the moments shaded: `out/video.png` for one features file,
`out/<stem>_timelines/<video_id>.png` otherwise.

Video files (--video): features are extracted on the fly with --extractor
(default i3d: Kinetics-400 I3D RGB, 1024-d per 2-s segment, the width and kind
of the benchmarks' i3d_rgb features, though not their checkpoint: BENCHMARKS.md
section 6 measures the gap) and cached next
to the output as `<stem>.<extractor>.npz` (`feature_cache`: reused while the
extractor is the same). Each video also gets a highlight reel (`reel`): its
best moments, best first until --reel_seconds (default 30), cut from the video
and played in time order as `out/clip.reel.mp4` (H.264, with its sound).

Features files: `.npy` [T, D], or `.npz` with key `features` [T, D] and
optionally `segment_seconds`, `stride_seconds` and `duration_seconds` scalars
(as `hl_jax.video_features` writes them). Segment i spans
[i * stride, i * stride + segment_seconds] seconds, cut at the duration.
Benchmark segments: TVSum shots are 2 s; YouTube Highlights clips are the
annotated 100-frame windows at stride 50 (times from the annotation file's
frames and fps in --manual_dir).

Bad input (a flag out of range, an unreadable features file, a workdir with
no whole checkpoint) ends in one line, `hl_jax.predict: error: ...`
(hl_jax/cli.py); a torn newest checkpoint is skipped for the one before.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Callable, Sequence
import zipfile

from absl import app
from absl import flags
from absl import logging
import numpy as np

from hl_jax import checkpointing
from hl_jax import cli
from hl_jax import datasets
from hl_jax import evaluation
from hl_jax import feature_cache
from hl_jax import models
from hl_jax import moments
from hl_jax import reel
from hl_jax import rendering
from hl_jax import video_features

FLAGS = flags.FLAGS
_YTH_ANNOTATION = os.path.join("labels", "umt_youtube_anno.json")
_TVSUM_SHOT_SECONDS = 2.0
# Objects with .video_id, .features [T_i, D] (and .text) -> their [T_i] scores.
VideosFn = Callable[[Sequence[Any]], list[np.ndarray]]


def load_scorer(workdir: str, chunk: int | None = None
                ) -> tuple[evaluation.ScoreFn, int, int]:
  """f of the newest whole checkpoint in `workdir` (`checkpointing.restore_workdir`).

  Args:
    workdir: a training workdir.
    chunk: segments per compiled call (None: the config's
      eval.chunk_segments); inputs are padded to a multiple of it, so a
      streaming scorer fed one segment at a time wants a small chunk.

  Returns:
    (score_fn mapping [S, D] features to [S] scores, D, checkpoint step).
  """
  if chunk is not None and chunk < 1:
    raise ValueError(f"chunk={chunk} must be >= 1 (None: the config's)")
  config, state = checkpointing.restore_workdir(workdir)
  if config.get("model_family") == "taohighlight":
    raise ValueError(f"{workdir} is a TaoHighlight workdir: it scores whole videos, not "
                     "segments one by one (load_video_scorer); streaming and weak.workdir "
                     "need a Less-is-More workdir")
  params, step = state["params"], int(state["step"])
  scorer, _ = models.build(config)
  feature_dim = int(params["f"]["mlp"]["Dense_0"]["kernel"].shape[0])
  chunk = config.eval.chunk_segments if chunk is None else chunk
  score_fn = evaluation.make_score_fn(scorer, params["f"], chunk=chunk)
  return score_fn, feature_dim, step


def load_video_scorer(workdir: str) -> tuple[VideosFn, int, int]:
  """Any workdir's scorer of whole videos: (fn, D, checkpoint step).

  fn maps objects with .video_id and .features [T_i, D] (and, optionally, .text:
  title tokens) to their [T_i] scores. A Less-is-More f scores all segments in one
  batched pass (`load_scorer`); a TaoHighlight workdir (config.model_family
  "taohighlight") scores each video as a sequence (`tao_train.load_video_scorer`),
  with its title tokens where the video has them.
  """
  if checkpointing.load_config(workdir).get("model_family") == "taohighlight":
    from hl_jax import tao_train  # pylint: disable=g-import-not-at-top (imports this module)
    return tao_train.load_video_scorer(workdir)
  score_fn, feature_dim, step = load_scorer(workdir)
  return (lambda videos: evaluation.score_videos(score_fn, [v.features for v in videos]),
          feature_dim, step)


def _check_dims(videos: Sequence[Any], feature_dim: int, workdir: str) -> None:
  for video in videos:
    if video.features.ndim != 2:
      raise ValueError(f"video {video.video_id} has features of shape "
                       f"{video.features.shape}, expected [T, {feature_dim}]")
    if video.features.shape[1] != feature_dim:
      raise ValueError(
          f"video {video.video_id} has {video.features.shape[1]}-d features but the "
          f"model in {workdir} takes {feature_dim}-d; pick the matching feature set")


def scores_from_workdir(workdir: str, videos: Sequence[Any]) -> dict[str, np.ndarray]:
  """{video_id: [T] scores} for objects with .video_id and .features [T, D]."""
  score_videos, feature_dim, _ = load_video_scorer(workdir)
  _check_dims(videos, feature_dim, workdir)
  scores = score_videos(videos)
  return {v.video_id: s for v, s in zip(videos, scores)}


# ----------------------------------------------------------------------------
# Inputs: features files and benchmark splits, with segment times.


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


_FILE_META = ("segment_seconds", "stride_seconds", "duration_seconds")


def _read_features_file(path: pathlib.Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """(features, {meta key: array}) of a .npy / .npz file; errors name the file."""
  if path.suffix not in (".npy", ".npz"):
    raise ValueError(f"{path}: features must be a .npy or .npz file")
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such features file")
  try:
    if path.suffix == ".npy":
      return np.load(path, allow_pickle=False), {}
    with np.load(path, allow_pickle=False) as data:
      keys = sorted(data.files)
      arrays = {k: data[k] for k in ("features",) + _FILE_META if k in keys}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    writer = "numpy.save" if path.suffix == ".npy" else "numpy.savez"
    raise ValueError(f"{path}: not a readable {path.suffix} file ({cli.message(e)}); "
                     f"is it truncated, or not written by {writer}?") from e
  if "features" not in arrays:
    raise ValueError(f"{path} has no 'features' array (keys: {keys})")
  return arrays.pop("features"), arrays


def _file_seconds(path: pathlib.Path, key: str, value: np.ndarray) -> float:
  """A time scalar of a .npz (segment_seconds, ...): a finite number > 0."""
  if value.size != 1 or value.dtype.kind not in "iuf":
    raise ValueError(f"{path}: {key!r} is a {value.dtype} array of shape {value.shape}, "
                     "expected one number of seconds")
  seconds = float(value.reshape(()))
  if not cli.positive(seconds):
    raise ValueError(f"{path}: {key!r} is {seconds}, expected a finite number of "
                     "seconds > 0; fix or remove that key")
  return seconds


def load_features_file(path: str | os.PathLike[str],
                       segment_seconds: float | None = None) -> TimedVideo:
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
  features, raw_meta = _read_features_file(path)
  meta = {k: _file_seconds(path, k, v) for k, v in raw_meta.items()}
  if features.ndim != 2 or not len(features) or not features.shape[1]:
    raise ValueError(f"{path}: features of shape {features.shape}, expected [T, D], "
                     "T > 0, D > 0")
  if features.dtype.kind not in "iuf":
    raise ValueError(f"{path}: features of dtype {features.dtype}, expected numbers")
  if not np.isfinite(features).all():
    raise ValueError(f"{path}: non-finite feature in segment "
                     f"{int(np.argmin(np.isfinite(features).all(axis=1)))}")
  file_seconds = meta.get("segment_seconds")
  if segment_seconds is not None and file_seconds is not None and not math.isclose(
      segment_seconds, file_seconds):
    raise ValueError(f"{path} was made with segment_seconds={file_seconds}, "
                     f"not {segment_seconds}")
  length = next(s for s in (segment_seconds, file_seconds, 2.0) if s is not None)
  duration = meta.get("duration_seconds")
  starts, ends = moments.segment_times(len(features), length, meta.get("stride_seconds"),
                                       duration)
  if duration is not None and starts[-1] >= duration:
    raise ValueError(f"{path}: 'duration_seconds' is {duration} but segment "
                     f"{len(starts) - 1} of {len(starts)} starts at {starts[-1]} s; fix "
                     "duration_seconds or stride_seconds")
  return TimedVideo(path.stem, features.astype(np.float32), starts, ends)


def benchmark_videos(benchmark: str, split: str, *, manual_dir: str | None,
                     data_dir: str | None, feature_set: str) -> list[TimedVideo]:
  """A benchmark split's videos with their segments' time ranges."""
  videos = datasets.load_benchmark(benchmark, split, manual_dir=manual_dir,
                                     data_dir=data_dir, feature_set=feature_set)
  if not videos:
    raise ValueError(f"{benchmark} split {split!r} has no videos")
  clips = {}
  if benchmark == "youtube_highlights":
    anno = os.path.join(manual_dir or "", _YTH_ANNOTATION)
    if not manual_dir or not os.path.exists(anno):
      raise FileNotFoundError(f"{anno} not found: YouTube Highlights clip times come from "
                              "its annotation file; pass --manual_dir")
    try:
      with open(anno) as f:
        clips = {vid: np.asarray(a["clip"], np.float64) / float(a["fps"])
                 for vid, a in json.load(f).items()}
    except (KeyError, TypeError, ValueError) as e:
      raise ValueError(f"{anno}: not a UMT annotation file ({cli.message(e)}); pass "
                       "the --manual_dir the dataset was built from") from e
  timed = []
  for v in videos:
    if benchmark == "youtube_highlights":
      if v.video_id not in clips:
        raise ValueError(f"video {v.video_id} is not in {anno}; pass the --manual_dir "
                         "the dataset was built from")
      starts, ends = clips[v.video_id][:, 0], clips[v.video_id][:, 1]
    else:
      starts, ends = moments.segment_times(v.num_clips, _TVSUM_SHOT_SECONDS)
    if len(starts) != len(v.features):
      raise ValueError(f"video {v.video_id}: {len(starts)} clip times for "
                       f"{len(v.features)} feature rows")
    timed.append(TimedVideo(v.video_id, v.features, starts, ends, v.text))
  return timed


# ----------------------------------------------------------------------------
# Prediction, JSON and timelines.


def predict(workdir: str, videos: Sequence[TimedVideo],
            rule: moments.MomentRule) -> dict[str, Any]:
  """Scores `videos` with the workdir's f in one batched pass and picks moments.

  Returns:
    {"workdir", "checkpoint_step", "rule", "videos": [{"video_id",
    "num_segments", "segments_s": [[start, end]] , "scores": [T],
    "moments": [{"start_s", "end_s", "score", "start_segment",
    "end_segment"}]}]}.
  """
  score_videos, feature_dim, step = load_video_scorer(workdir)
  _check_dims(videos, feature_dim, workdir)
  all_scores = score_videos(videos)
  records = []
  for video, scores in zip(videos, all_scores):
    chosen = moments.select_moments(scores, video.starts, video.ends, rule)
    records.append({
        "video_id": video.video_id,
        "num_segments": len(scores),
        "segments_s": np.round(np.stack([video.starts, video.ends], 1), 3).tolist(),
        "scores": [float(s) for s in scores],
        "moments": [m.to_json() for m in chosen],
    })
  return {"workdir": os.path.abspath(workdir), "checkpoint_step": int(step),
          "rule": dataclasses.asdict(rule), "videos": records}


def run(workdir: str, output: str | os.PathLike[str], *,
        features: Sequence[str] = (), videos: Sequence[str] = (),
        extractor: str = video_features.DEFAULT_EXTRACTOR,
        reel_seconds: float = 0.0,
        extractor_options: dict[str, Any] | None = None,
        segment_seconds: float | None = None,
        benchmark: str | None = None, split: str = "val",
        manual_dir: str | None = None, data_dir: str | None = None,
        feature_set: str | None = None, rule: moments.MomentRule = moments.MomentRule(),
        max_plots: int = 8) -> dict[str, Any]:
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
    features = [str(p) for p in feature_cache.features_for_videos(
        videos, output.parent, extractor=extractor, segment_seconds=segment_seconds,
        extractor_options=extractor_options)]
    segment_seconds = None
  if features:
    inputs = [load_features_file(p, segment_seconds) for p in features]
    ids = [v.video_id for v in inputs]
    if len(set(ids)) != len(ids):
      raise ValueError(f"features files with the same stem: {sorted(ids)}")
    source = {"features": [os.path.abspath(p) for p in features]}
    if videos:   # named by the video, not by its cache '<stem>.<extractor>.npz'
      inputs = [dataclasses.replace(v, video_id=pathlib.Path(path).stem)
                for v, path in zip(inputs, videos)]
      source["videos"] = [os.path.abspath(v) for v in videos]
      source["extractor"] = str(video_features.read_signature(features[0])["extractor"])
  else:
    if feature_set is None:
      config = checkpointing.load_config(workdir)  # TaoHighlight: a top-level key.
      feature_set = config.get("feature_set") or config.eval.feature_set
    inputs = benchmark_videos(benchmark, split, manual_dir=manual_dir,
                              data_dir=data_dir, feature_set=feature_set)
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
    rendering.timeline(png, record)
    record["timeline_png"] = str(png)
  if videos and reel_seconds > 0:
    for record, video in zip(result["videos"], videos):
      target = (output.with_suffix(".reel.mp4") if len(videos) == 1 else
                output.with_name(f"{output.stem}_{record['video_id']}.reel.mp4"))
      spans = reel.reel_spans(record["moments"], reel_seconds)
      record["reel"] = reel.write_reel(video, spans, target) if spans else None
  output.write_text(json.dumps(result, indent=1) + "\n")
  logging.info("%d videos, %d moments; wrote %s and %d timelines", len(inputs),
               sum(len(r["moments"]) for r in result["videos"]), output, len(pngs))
  return result


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module cannot
  # clash with flags of the same name (--workdir of launch.py).
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints).")
  flags.DEFINE_list("features", [], ".npy / .npz features files, comma-separated.")
  flags.DEFINE_list("video", [], "Video files, comma-separated: features are extracted "
                    "(--extractor) and cached next to --output as <stem>.<extractor>.npz.")
  flags.DEFINE_enum("extractor", video_features.DEFAULT_EXTRACTOR,
                    video_features.EXTRACTORS,
                    "Extractor for --video (i3d: the benchmarks' kind of features).")
  flags.DEFINE_float("reel_seconds", 30.0,
                     "--video: a highlight reel of the best moments, at most this long "
                     "(0: none), written as <output stem>.reel.mp4.")
  flags.DEFINE_float("segment_seconds", None,
                     "Segment length of --features (default: the file's, else 2.0).")
  flags.DEFINE_enum("benchmark", None, ("youtube_highlights", "tvsum"),
                    "Predict for a benchmark split instead of --features.")
  flags.DEFINE_enum("split", "val", ("train", "val", "other", "all"), "Benchmark split.")
  flags.DEFINE_string("manual_dir", None, "Raw benchmark data (../shared/data/<name>).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's).")
  flags.DEFINE_string("feature_set", None, "Benchmark features (default: the workdir's).")
  flags.DEFINE_string("output", None, "JSON path; timeline PNGs go next to it.")
  flags.DEFINE_integer("top_k", 5, "Moments per video (at most).")
  flags.DEFINE_float("min_moment_seconds", 0.0, "Shortest moment.")
  flags.DEFINE_float("max_moment_seconds", 10.0, "Longest moment (>= one segment).")
  flags.DEFINE_float("merge_quantile", 0.75,
                     "Neighbours scoring above this quantile of the video merge.")
  flags.DEFINE_float("min_gap_seconds", 2.0, "Least time between two moments.")
  flags.DEFINE_integer("max_plots", 8, "Timeline PNGs for the first N videos.")
  flags.mark_flags_as_required(["workdir", "output"])
  cli.check("segment_seconds", "a finite number of seconds > 0", cli.positive)
  cli.check("top_k", "an integer >= 1", lambda k: k >= 1)
  for name in ("min_moment_seconds", "min_gap_seconds"):
    cli.check(name, "a finite number of seconds >= 0", cli.non_negative)
  cli.check("max_moment_seconds", "a finite number of seconds > 0", cli.positive)
  cli.check("merge_quantile", "a number in [0, 1]", lambda q: 0 <= q <= 1)
  cli.check("max_plots", "an integer >= 0", lambda n: n >= 0)
  cli.check("reel_seconds", "a finite number of seconds >= 0", cli.non_negative)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; flags take the form --name=value")
  rule = moments.MomentRule(FLAGS.top_k, FLAGS.min_moment_seconds,
                            FLAGS.max_moment_seconds, FLAGS.merge_quantile,
                            FLAGS.min_gap_seconds)
  result = run(FLAGS.workdir, FLAGS.output, features=FLAGS.features, videos=FLAGS.video,
               extractor=FLAGS.extractor, reel_seconds=FLAGS.reel_seconds,
               segment_seconds=FLAGS.segment_seconds, benchmark=FLAGS.benchmark,
               split=FLAGS.split, manual_dir=FLAGS.manual_dir,
               data_dir=FLAGS.data_dir, feature_set=FLAGS.feature_set,
               rule=rule, max_plots=FLAGS.max_plots)
  for record in result["videos"][:10]:
    spans = ", ".join(f"{m['start_s']:.1f}-{m['end_s']:.1f}s ({m['score']:.2f})"
                      for m in record["moments"])
    print(f"{record['video_id']}: {spans}")
    if record.get("reel"):
      print(f"  reel: {record['reel']['reel']} ({record['reel']['duration_s']:.1f} s)")


if __name__ == "__main__":
  _define_flags()
  # A workdir whose checkpoints all fail to restore is the user's to fix.
  cli.run(main, "hl_jax.predict", (checkpointing.CheckpointError,))
