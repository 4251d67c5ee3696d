"""The labelled benchmarks, YouTube Highlights and TVSum: loading and scoring.

  videos = benchmarks.load_benchmark("tvsum", "val", manual_dir="../shared/data/tvsum")
  scores = {v.video_id: my_model(v.features) for v in videos}      # [T] each
  result = benchmarks.evaluate_scores("tvsum", "val", videos, scores)
  benchmarks.write_report(result, "out/tvsum_val.json")            # + .md, .png

Protocol (UMT / lighthouse; see hl_jax/metrics.py for the AP itself):
- youtube_highlights: per video, trapezoid AP over all clips, positives
  match > 0; mAP per domain over its videos; headline = mean of the 6 domains.
- tvsum: per video, top-5 AP per annotator (positives above that annotator's
  median) averaged over the 20 annotators; mAP per category; headline = mean
  of the 10 categories (one val video each, so also the mean over videos).
HIT@1 is averaged the same way (per group, then over groups).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from hl_jax import metrics
from tfds_builders.tvsum import tvsum_dataset_builder
from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder

BENCHMARKS = ("youtube_highlights", "tvsum")
FEATURE_SETS = ("i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio")
SPLITS = ("train", "val", "other", "all")
_BUILDERS = {
    "youtube_highlights": youtube_highlights_dataset_builder.Builder,
    "tvsum": tvsum_dataset_builder.Builder,
}
_PROTOCOL = {
    "youtube_highlights": "trapezoid AP over all clips (positives: match > 0), mean over domains",
    "tvsum": "top-5 trapezoid AP per annotator (positives: score > lower median), "
             "mean over 20 annotators, then over categories",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
  """One labelled benchmark video.

  Attributes:
    video_id: YouTube id.
    group: domain (YouTube Highlights) or category (TVSum).
    features: [T, D] float32 clip features.
    labels: youtube_highlights: [T] int match in {-1, 0, 1};
      tvsum: [T, 20] float annotator scores 1..5.
  """
  video_id: str
  group: str
  features: np.ndarray
  labels: np.ndarray

  @property
  def num_clips(self) -> int:
    return len(self.labels)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
  if value not in choices:
    raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")


def load_benchmark(benchmark: str, split: str, *,
                   manual_dir: str | os.PathLike[str] | None,
                   data_dir: str | os.PathLike[str] | None = None,
                   feature_set: str = "i3d_rgb") -> list[Video]:
  """Loads one split of a benchmark, building its TFDS dataset first if needed.

  Args:
    benchmark: "youtube_highlights" or "tvsum".
    split: "train", "val" (the standard split), "other" (annotated videos
      outside it) or "all".
    manual_dir: the raw data, laid out like ../shared/data/<benchmark>; only
      read when the dataset is not built yet (None is fine then).
    data_dir: TFDS data_dir (None: TFDS's default, $TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    feature_set: builder config: "i3d_rgb" (D=1024), "i3d_rgb_flow" (2048) or
      "i3d_rgb_flow_audio" (4096).

  Returns:
    The split's videos, sorted by (group, video_id).
  """
  _check_choice("benchmark", benchmark, BENCHMARKS)
  _check_choice("split", split, SPLITS)
  _check_choice("feature_set", feature_set, FEATURE_SETS)
  if data_dir is not None:
    data_dir = os.path.expanduser(os.fspath(data_dir))
  if manual_dir is not None:
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
  make = functools.partial(_BUILDERS[benchmark], config=feature_set, data_dir=data_dir,
                           file_format="array_record")
  builder = make()
  if not builder.is_prepared():
    if manual_dir is None or not pathlib.Path(manual_dir).is_dir():
      raise FileNotFoundError(
          f"{benchmark}/{feature_set} is not built in {builder.data_dir} and manual_dir "
          f"{manual_dir} is not a directory:{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    try:
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except OSError:
      # Processes building the same data_dir at once (the hosts of one job) race
      # to rename their finished copy into place; the loser reads the winner's.
      builder = make()
      if not builder.is_prepared():
        raise
  if split not in builder.info.splits and split != "all":
    return []  # e.g. "other" of TVSum, where every video is in the split
  group_key, label_key = ("domain", "match") if benchmark == "youtube_highlights" else (
      "category", "scores")
  videos = [
      Video(video_id=ex["video_id"].decode(), group=ex[group_key].decode(),
            features=np.asarray(ex["features"], np.float32),
            labels=np.asarray(ex[label_key]))
      for ex in builder.as_data_source(split=split)
  ]
  return sorted(videos, key=lambda v: (v.group, v.video_id))


def check_scores(videos: Sequence[Video], scores: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Validates one [T] score array per video; returns them as float64 arrays.

  Raises:
    ValueError: naming the video, for an unknown or missing video id, a wrong
      number of scores or a non-finite score.
  """
  expected = {v.video_id: v.num_clips for v in videos}
  unknown = sorted(set(scores) - set(expected))
  if unknown:
    raise ValueError(f"scores for {len(unknown)} video ids not in the split, e.g. {unknown[:5]}")
  missing = sorted(set(expected) - set(scores))
  if missing:
    raise ValueError(f"no scores for {len(missing)} of the split's {len(expected)} videos, "
                     f"e.g. {missing[:5]}")
  checked = {}
  for vid, num_clips in expected.items():
    array = np.asarray(scores[vid], np.float64)
    if array.shape != (num_clips,):
      raise ValueError(f"video {vid}: scores of shape {array.shape}, expected [{num_clips}]")
    if not np.isfinite(array).all():
      first = int(np.argmin(np.isfinite(array)))
      raise ValueError(f"video {vid}: non-finite score at clip {first}")
    checked[vid] = array
  return checked


def evaluate_scores(benchmark: str, split: str, videos: Sequence[Video],
                    scores: Mapping[str, Any]) -> dict[str, Any]:
  """Benchmark metrics of per-clip scores.

  Args:
    benchmark: "youtube_highlights" or "tvsum".
    split: the split's name, recorded in the result.
    videos: the split's videos (from `load_benchmark`).
    scores: {video_id: [T] scores}, higher = more of a highlight, one entry per
      video and no other.

  Returns:
    {"benchmark", "split", "protocol", "mAP" (headline: mean over groups, in
    [0, 1]), "per_group": {group: mAP}, "hit1" (mean over groups),
    "per_group_hit1", "video_mAP" (mean over videos), "per_video": {id: AP},
    "num_videos", "videos_per_group"}.
  """
  _check_choice("benchmark", benchmark, BENCHMARKS)
  if not videos:
    raise ValueError(f"no videos to evaluate for {benchmark} {split}")
  scores = check_scores(videos, scores)
  if benchmark == "youtube_highlights":
    ap_fn, hit_fn = metrics.youtube_highlights_ap, metrics.youtube_highlights_hit1
  else:
    ap_fn, hit_fn = metrics.tvsum_top5_ap, metrics.tvsum_hit1
  per_video = {v.video_id: ap_fn(scores[v.video_id], v.labels) for v in videos}
  hits = {v.video_id: hit_fn(scores[v.video_id], v.labels) for v in videos}
  groups = {v.video_id: v.group for v in videos}
  per_group = metrics.mean_by_group(per_video, groups)
  per_group_hit1 = metrics.mean_by_group(hits, groups)
  return {
      "benchmark": benchmark,
      "split": split,
      "protocol": _PROTOCOL[benchmark],
      "mAP": float(np.mean(list(per_group.values()))),
      "per_group": per_group,
      "hit1": float(np.mean(list(per_group_hit1.values()))),
      "per_group_hit1": per_group_hit1,
      "video_mAP": float(np.mean(list(per_video.values()))),
      "per_video": per_video,
      "num_videos": len(videos),
      "videos_per_group": {g: sum(1 for v in videos if v.group == g) for g in per_group},
  }


def random_baseline(benchmark: str, split: str, videos: Sequence[Video],
                    seeds: int) -> dict[str, Any]:
  """`evaluate_scores` of uniform random scores, averaged over seeds 0..seeds-1.

  Returns:
    The keys of `evaluate_scores` (metrics averaged over seeds) plus "seeds"
    and "mAP_std" (standard deviation of the headline mAP over seeds).
  """
  if seeds < 1:
    raise ValueError(f"seeds must be >= 1, got {seeds}")
  runs = []
  for seed in range(seeds):
    rng = np.random.default_rng(seed)
    runs.append(evaluate_scores(
        benchmark, split, videos, {v.video_id: rng.random(v.num_clips) for v in videos}))
  result = dict(runs[0])
  for key in ("mAP", "hit1", "video_mAP"):
    result[key] = float(np.mean([r[key] for r in runs]))
  for key in ("per_group", "per_group_hit1", "per_video"):
    result[key] = {k: float(np.mean([r[key][k] for r in runs])) for k in runs[0][key]}
  result["seeds"] = seeds
  result["mAP_std"] = float(np.std([r["mAP"] for r in runs]))
  return result


def _title(result: Mapping[str, Any]) -> str:
  title = f"{result['benchmark']} {result['split']}"
  if "seeds" in result:
    title += f", random scores averaged over {result['seeds']} seeds"
  return title


def markdown_table(result: Mapping[str, Any]) -> str:
  """A per-group table of `evaluate_scores` output, in percent."""
  lines = [f"## {_title(result)}", "", f"Protocol: {result['protocol']}.", "",
           "| group | videos | mAP (%) | HIT@1 (%) |", "|---|---:|---:|---:|"]
  for group, value in result["per_group"].items():
    lines.append(f"| {group} | {result['videos_per_group'][group]} | {100 * value:.2f} | "
                 f"{100 * result['per_group_hit1'][group]:.2f} |")
  lines.append(f"| **average** | {result['num_videos']} | **{100 * result['mAP']:.2f}** | "
               f"**{100 * result['hit1']:.2f}** |")
  return "\n".join(lines) + "\n"


def _bar_chart(result: Mapping[str, Any], path: pathlib.Path) -> None:
  # Figure + Agg canvas directly: no pyplot, no global backend switch.
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  groups = list(result["per_group"])
  values = [100 * result["per_group"][g] for g in groups]
  fig = figure.Figure(figsize=(max(4.0, 0.8 * len(groups) + 2), 3.5), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  ax.bar(groups, values, color="tab:blue")
  ax.axhline(100 * result["mAP"], color="tab:red", linestyle="--",
             label=f"average {100 * result['mAP']:.1f}")
  ax.set_ylim(0, 100)
  ax.set_ylabel("mAP (%)")
  ax.set_title(_title(result))
  ax.tick_params(axis="x", labelrotation=30)
  ax.legend(loc="upper right")
  fig.tight_layout()
  fig.savefig(path, format="png")


def write_report(result: Mapping[str, Any],
                 output_json_path: str | os.PathLike[str]) -> dict[str, pathlib.Path]:
  """Writes `result` as JSON, a markdown table (.md) and a bar chart (.png).

  Args:
    result: output of `evaluate_scores` or `random_baseline`.
    output_json_path: where the JSON goes; the .md and .png get the same stem.

  Returns:
    {"json", "md", "png"}: the paths written.
  """
  path = pathlib.Path(output_json_path)
  if path.suffix != ".json":
    raise ValueError(f"report path {path} must end in .json (the .md and .png go next to it)")
  path.parent.mkdir(parents=True, exist_ok=True)
  paths = {"json": path, "md": path.with_suffix(".md"), "png": path.with_suffix(".png")}
  paths["json"].write_text(json.dumps(result, indent=2) + "\n")
  paths["md"].write_text(markdown_table(result))
  _bar_chart(result, paths["png"])
  return paths
