r"""Highlights from a trained workdir: per-segment scores and top-k moments.

  python -m hl_jax.predict --workdir=W --features=video.npz --output=out/video.json
  python -m hl_jax.predict --workdir=W --benchmark=tvsum --split=val \
    --manual_dir=../shared/data/tvsum --output=out/tvsum_val.json

A training run writes `<workdir>/config.json`; with it and the newest
checkpoint, any features of the same dimension are scored by f in one batched
pass (`evaluation.score_videos`), and `select_moments` turns each video's
scores into at most `top_k` non-overlapping moments (time ranges in seconds).
The JSON holds, per video, the scores, the segments' time ranges and the
moments; a timeline PNG per video (the first `--max_plots` of a split) shows
the scores with the moments shaded: `out/video.png` for one features file,
`out/<stem>_timelines/<video_id>.png` otherwise.

Features files: `.npy` [T, D], or `.npz` with key `features` [T, D] and
optionally `segment_seconds`, `stride_seconds` and `duration_seconds` scalars
(as `hl_jax.video_features` writes them). Segment i spans
[i * stride, i * stride + segment_seconds] seconds, cut at the duration.
Benchmark segments: TVSum shots are 2 s; YouTube Highlights clips are the
annotated 100-frame windows at stride 50 (times from the annotation file's
frames and fps in --manual_dir).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from hl_jax import evaluation
from hl_jax import models

FLAGS = flags.FLAGS
_YTH_ANNOTATION = os.path.join("labels", "umt_youtube_anno.json")
_TVSUM_SHOT_SECONDS = 2.0


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a training workdir")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_scorer(workdir: str, chunk: int | None = None
                ) -> tuple[evaluation.ScoreFn, int, int]:
  """f of the newest checkpoint in `workdir`.

  Args:
    workdir: a training workdir.
    chunk: segments per compiled call (None: the config's
      eval.chunk_segments); inputs are padded to a multiple of it, so a
      streaming scorer fed one segment at a time wants a small chunk.

  Returns:
    (score_fn mapping [S, D] features to [S] scores, D, checkpoint step).
  """
  config = load_config(workdir)
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  manager = ocp.CheckpointManager(directory, item_names=("state", "input"))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {directory}")
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))
  params_f = jax.tree.map(np.asarray, restored["state"]["params"]["f"])
  scorer, _ = models.build(config)
  feature_dim = int(params_f["mlp"]["Dense_0"]["kernel"].shape[0])
  score_fn = evaluation.make_score_fn(scorer, params_f,
                                      chunk=chunk or config.eval.chunk_segments)
  return score_fn, feature_dim, step


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
  score_fn, feature_dim, _ = load_scorer(workdir)
  _check_dims(videos, feature_dim, workdir)
  scores = evaluation.score_videos(score_fn, [v.features for v in videos])
  return {v.video_id: s for v, s in zip(videos, scores)}


# ----------------------------------------------------------------------------
# Moment selection: pure functions of one video's scores.


@dataclasses.dataclass(frozen=True)
class MomentRule:
  """How `select_moments` turns scores into moments (see its docstring).

  Attributes:
    top_k: at most this many moments per video.
    min_moment_seconds: shortest moment (cut to the video's length).
    max_moment_seconds: longest moment; a single segment is always allowed.
    merge_quantile: segments scoring at or above this quantile of the video's
      scores are "high" and merge into a neighbouring moment.
    min_gap_seconds: moments are at least this far apart in time (0: they
      may touch but never overlap).
  """
  top_k: int = 5
  min_moment_seconds: float = 0.0
  max_moment_seconds: float = 10.0
  merge_quantile: float = 0.75
  min_gap_seconds: float = 2.0

  def __post_init__(self):
    if self.top_k < 1:
      raise ValueError(f"top_k={self.top_k} must be >= 1")
    if not 0 <= self.min_moment_seconds <= self.max_moment_seconds:
      raise ValueError(f"need 0 <= min_moment_seconds ({self.min_moment_seconds}) <= "
                       f"max_moment_seconds ({self.max_moment_seconds})")
    if not 0 <= self.merge_quantile <= 1:
      raise ValueError(f"merge_quantile={self.merge_quantile} must be in [0, 1]")
    if self.min_gap_seconds < 0:
      raise ValueError(f"min_gap_seconds={self.min_gap_seconds} must be >= 0")


@dataclasses.dataclass(frozen=True)
class Moment:
  """Segments [start, end) of a video, start_s..end_s seconds, mean score."""
  start: int
  end: int
  start_s: float
  end_s: float
  score: float

  def to_json(self) -> dict[str, Any]:
    return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
            "score": self.score, "start_segment": self.start,
            "end_segment": self.end}


def segment_times(num_segments: int, segment_seconds: float,
                  stride_seconds: float | None = None,
                  duration_seconds: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Start and end times of a regular grid of segments.

  Returns:
    ([T] starts i * stride, [T] ends start + segment_seconds, cut at the
    duration when it is given), in seconds.
  """
  if segment_seconds <= 0:
    raise ValueError(f"segment_seconds={segment_seconds} must be > 0")
  stride = segment_seconds if stride_seconds is None else stride_seconds
  starts = np.arange(num_segments, dtype=np.float64) * stride
  ends = starts + segment_seconds
  if duration_seconds is not None:
    ends = np.maximum(np.minimum(ends, duration_seconds), starts)
  return starts, ends


def select_moments(scores: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   rule: MomentRule) -> list[Moment]:
  """The top-k moments of one video, greedily by score; the exact rule.

  A moment is a run of segments [a, b) lasting ends[b-1] - starts[a] seconds.
  "High" segments score >= q, the `rule.merge_quantile` quantile of `scores`
  (numpy's linear interpolation). Seeds are taken in order of decreasing
  score (ties: lower index first), skipping segments that are not free,
  until `rule.top_k` moments are chosen. A segment is free while its time
  span stays `rule.min_gap_seconds` or more away from every chosen moment's
  (so moments never overlap in time, not even where segments overlap, as
  YouTube Highlights clips do). From a free seed i, the run [i, i+1):
    1. merges high free neighbours: of the segments a-1 and b that are free,
       high, and keep the run within max_moment_seconds, the higher-scoring
       one joins (the left one on a tie); repeat until none qualifies;
    2. if it lasts less than m = min(min_moment_seconds, the whole video's
       span), extends the same way to any free neighbour, high or not, within
       max_moment_seconds, until it lasts m or cannot grow;
    3. is kept if it lasts >= m; otherwise (boxed in by earlier moments or
       by the length cap) the seed is skipped and its segments stay free.
  A single segment is a run even if longer than max_moment_seconds.
  Moments come in the order chosen; a moment's score is its mean segment
  score.

  Args:
    scores: [T] segment scores.
    starts: [T] segment start times, seconds, non-decreasing.
    ends: [T] segment end times, seconds.
    rule: top_k, min/max length and merge quantile.

  Returns:
    At most `rule.top_k` moments.
  """
  scores = np.asarray(scores, np.float64)
  num = len(scores)
  if num == 0:
    return []
  if starts.shape != (num,) or ends.shape != (num,):
    raise ValueError(f"scores [{num}] but starts {starts.shape} and ends {ends.shape}")
  high = scores >= np.quantile(scores, rule.merge_quantile)
  min_len = min(rule.min_moment_seconds, float(ends.max() - starts[0]))
  free = np.ones(num, bool)
  moments = []
  for seed in np.lexsort((np.arange(num), -scores)):
    if len(moments) == rule.top_k:
      break
    if not free[seed]:
      continue
    a, b = _grow(seed, seed + 1, scores, starts, ends, free & high,
                 rule.max_moment_seconds, until=math.inf)
    a, b = _grow(a, b, scores, starts, ends, free, rule.max_moment_seconds,
                 until=min_len)
    if ends[b - 1] - starts[a] < min_len - 1e-9:
      continue
    gap = rule.min_gap_seconds - 1e-9
    free &= (starts >= ends[b - 1] + gap) | (ends <= starts[a] - gap)
    moments.append(Moment(int(a), int(b), float(starts[a]), float(ends[b - 1]),
                          float(scores[a:b].mean())))
  return moments


def _grow(a: int, b: int, scores: np.ndarray, starts: np.ndarray,
               ends: np.ndarray, allowed: np.ndarray, max_len: float,
               until: float) -> tuple[int, int]:
  """Extends [a, b) by the better allowed neighbour while it lasts < `until`."""
  num = len(scores)
  while ends[b - 1] - starts[a] < until - 1e-9:
    options = []
    if a > 0 and allowed[a - 1] and ends[b - 1] - starts[a - 1] <= max_len + 1e-9:
      options.append((-scores[a - 1], 0, a - 1, b))
    if b < num and allowed[b] and ends[b] - starts[a] <= max_len + 1e-9:
      options.append((-scores[b], 1, a, b + 1))
    if not options:
      break
    _, _, a, b = min(options)
  return a, b


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
  """
  video_id: str
  features: np.ndarray
  starts: np.ndarray
  ends: np.ndarray


def load_features_file(path: str | os.PathLike[str],
                       segment_seconds: float | None = None) -> TimedVideo:
  """Reads a .npy / .npz features file (see the module docstring).

  Args:
    path: the file.
    segment_seconds: segment length; None takes the file's own
      `segment_seconds` (.npz) or 2.0. Raises ValueError if both are given
      and disagree.
  """
  path = pathlib.Path(path)
  meta = {}
  if path.suffix == ".npy":
    features = np.load(path)
  elif path.suffix == ".npz":
    with np.load(path) as data:
      if "features" not in data:
        raise ValueError(f"{path} has no 'features' array (keys: {sorted(data)})")
      features = data["features"]
      meta = {k: float(data[k]) for k in ("segment_seconds", "stride_seconds",
                                          "duration_seconds") if k in data}
  else:
    raise ValueError(f"{path}: features must be a .npy or .npz file")
  if features.ndim != 2 or not len(features):
    raise ValueError(f"{path}: features of shape {features.shape}, expected [T, D], T > 0")
  if not np.isfinite(features).all():
    raise ValueError(f"{path}: non-finite feature in segment "
                     f"{int(np.argmin(np.isfinite(features).all(axis=1)))}")
  file_seconds = meta.get("segment_seconds")
  if segment_seconds is not None and file_seconds is not None and not math.isclose(
      segment_seconds, file_seconds):
    raise ValueError(f"{path} was made with segment_seconds={file_seconds}, "
                     f"not {segment_seconds}")
  length = segment_seconds or file_seconds or 2.0
  starts, ends = segment_times(len(features), length, meta.get("stride_seconds"),
                               meta.get("duration_seconds"))
  return TimedVideo(path.stem, features.astype(np.float32), starts, ends)


def benchmark_videos(benchmark: str, split: str, *, manual_dir: str | None,
                     data_dir: str | None, feature_set: str) -> list[TimedVideo]:
  """A benchmark split's videos with their segments' time ranges."""
  from hl_jax import benchmarks  # pylint: disable=g-import-not-at-top  # TFDS
  videos = benchmarks.load_benchmark(benchmark, split, manual_dir=manual_dir,
                                     data_dir=data_dir, feature_set=feature_set)
  if not videos:
    raise ValueError(f"{benchmark} split {split!r} has no videos")
  clips = {}
  if benchmark == "youtube_highlights":
    anno = os.path.join(manual_dir or "", _YTH_ANNOTATION)
    if not manual_dir or not os.path.exists(anno):
      raise FileNotFoundError(f"{anno} not found: YouTube Highlights clip times come from "
                              "its annotation file; pass --manual_dir")
    with open(anno) as f:
      clips = {vid: np.asarray(a["clip"], np.float64) / float(a["fps"])
               for vid, a in json.load(f).items()}
  timed = []
  for v in videos:
    if benchmark == "youtube_highlights":
      starts, ends = clips[v.video_id][:, 0], clips[v.video_id][:, 1]
    else:
      starts, ends = segment_times(v.num_clips, _TVSUM_SHOT_SECONDS)
    if len(starts) != len(v.features):
      raise ValueError(f"video {v.video_id}: {len(starts)} clip times for "
                       f"{len(v.features)} feature rows")
    timed.append(TimedVideo(v.video_id, v.features, starts, ends))
  return timed


# ----------------------------------------------------------------------------
# Prediction, JSON and timelines.


def predict(workdir: str, videos: Sequence[TimedVideo],
            rule: MomentRule) -> dict[str, Any]:
  """Scores `videos` with the workdir's f in one batched pass and picks moments.

  Returns:
    {"workdir", "checkpoint_step", "rule", "videos": [{"video_id",
    "num_segments", "segments_s": [[start, end]] , "scores": [T],
    "moments": [{"start_s", "end_s", "score", "start_segment",
    "end_segment"}]}]}.
  """
  score_fn, feature_dim, step = load_scorer(workdir)
  _check_dims(videos, feature_dim, workdir)
  all_scores = evaluation.score_videos(score_fn, [v.features for v in videos])
  records = []
  for video, scores in zip(videos, all_scores):
    moments = select_moments(scores, video.starts, video.ends, rule)
    records.append({
        "video_id": video.video_id,
        "num_segments": len(scores),
        "segments_s": np.round(np.stack([video.starts, video.ends], 1), 3).tolist(),
        "scores": [float(s) for s in scores],
        "moments": [m.to_json() for m in moments],
    })
  return {"workdir": os.path.abspath(workdir), "checkpoint_step": int(step),
          "rule": dataclasses.asdict(rule), "videos": records}


def plot_timeline(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
  """A PNG of one video's scores over time with its moments shaded and ranked."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  times = np.asarray(record["segments_s"])
  centers = times.mean(axis=1)
  fig = figure.Figure(figsize=(10, 2.8), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  ax.plot(centers, record["scores"], color="tab:blue", marker=".", linewidth=1)
  for rank, moment in enumerate(record["moments"], start=1):
    ax.axvspan(moment["start_s"], moment["end_s"], color="tab:orange", alpha=0.3)
    # Alternate heights so the labels of neighbouring moments do not collide.
    ax.text((moment["start_s"] + moment["end_s"]) / 2, 1.0 + 0.07 * (rank % 2), str(rank),
            transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
  ax.set_xlim(times[:, 0].min(), times[:, 1].max())
  ax.set_xlabel("time (s)")
  ax.set_ylabel("score f(x)")
  ax.set_title(f"{record['video_id']}: {len(record['moments'])} moments, by rank",
               pad=20)
  fig.tight_layout()
  fig.savefig(path, format="png")


def run(workdir: str, output: str | os.PathLike[str], *,
        features: Sequence[str] = (), segment_seconds: float | None = None,
        benchmark: str | None = None, split: str = "val",
        manual_dir: str | None = None, data_dir: str | None = None,
        feature_set: str | None = None, rule: MomentRule = MomentRule(),
        max_plots: int = 8) -> dict[str, Any]:
  """Predicts for features files or a benchmark split; writes JSON and PNGs.

  Exactly one of `features` and `benchmark` is given. `feature_set` None takes
  the one the workdir was evaluated with (config.eval.feature_set).

  Returns:
    The JSON written to `output` (see `predict`), plus "source" and
    "timeline_png" per plotted video.
  """
  if bool(features) == bool(benchmark):
    raise app.UsageError("give exactly one of --features and --benchmark")
  output = pathlib.Path(output)
  if output.suffix != ".json":
    raise ValueError(f"output {output} must end in .json")
  if features:
    videos = [load_features_file(p, segment_seconds) for p in features]
    ids = [v.video_id for v in videos]
    if len(set(ids)) != len(ids):
      raise ValueError(f"features files with the same stem: {sorted(ids)}")
    source = {"features": [os.path.abspath(p) for p in features]}
  else:
    feature_set = feature_set or load_config(workdir).eval.feature_set
    videos = benchmark_videos(benchmark, split, manual_dir=manual_dir,
                              data_dir=data_dir, feature_set=feature_set)
    source = {"benchmark": benchmark, "split": split, "feature_set": feature_set}
  result = predict(workdir, videos, rule)
  result["source"] = source
  output.parent.mkdir(parents=True, exist_ok=True)
  if len(videos) == 1:
    pngs = [output.with_suffix(".png")]
  else:
    folder = output.with_name(output.stem + "_timelines")
    folder.mkdir(exist_ok=True)
    pngs = [folder / f"{r['video_id']}.png" for r in result["videos"][:max_plots]]
  for record, png in zip(result["videos"], pngs):
    plot_timeline(png, record)
    record["timeline_png"] = str(png)
  output.write_text(json.dumps(result, indent=1) + "\n")
  logging.info("%d videos, %d moments; wrote %s and %d timelines", len(videos),
               sum(len(r["moments"]) for r in result["videos"]), output, len(pngs))
  return result


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module cannot
  # clash with flags of the same name (--workdir of launch.py).
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints).")
  flags.DEFINE_list("features", [], ".npy / .npz features files, comma-separated.")
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


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    rule = MomentRule(FLAGS.top_k, FLAGS.min_moment_seconds,
                      FLAGS.max_moment_seconds, FLAGS.merge_quantile,
                      FLAGS.min_gap_seconds)
    result = run(FLAGS.workdir, FLAGS.output, features=FLAGS.features,
                 segment_seconds=FLAGS.segment_seconds, benchmark=FLAGS.benchmark,
                 split=FLAGS.split, manual_dir=FLAGS.manual_dir,
                 data_dir=FLAGS.data_dir, feature_set=FLAGS.feature_set,
                 rule=rule, max_plots=FLAGS.max_plots)
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise SystemExit(f"hl_jax.predict: error: {e}") from e
  for record in result["videos"][:10]:
    spans = ", ".join(f"{m['start_s']:.1f}-{m['end_s']:.1f}s ({m['score']:.2f})"
                      for m in record["moments"])
    print(f"{record['video_id']}: {spans}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
