r"""The online detector on benchmark videos replayed as live streams.

  python -m benchmarks.streaming --data_dir=/tmp/tfds_real \
      --output=/tmp/hl_jax_bench/streaming.json [--workdir=W] \
      [--stream=smooth_segments=3,enter_z=2.0]

Without --workdir it first trains a small model on the real corpus
(configs/joint.py:corpus=youtube_highlights, --num_steps steps, into
<output dir>/streaming_model; about a minute on 2 CPU cores). Each val video of
YouTube Highlights and TVSum is fed to `streaming.StreamingScorer` one segment
at a time, and again in chunks of --chunk segments (the events must be the
same). Reported per benchmark:
- wall time per segment, p50 / p99 in microseconds, of the detector alone
  (scores in), of f + detector one segment at a time, and of f + detector
  per segment when fed in chunks;
- event latency: segments (and seconds) between the segment an event refers
  to and the one whose arrival emitted it;
- agreement of the streamed highlights with the offline top-k moments of
  `moments.select_moments` on the whole video's scores: per video precision,
  recall, F1 and IoU of the two segment sets, averaged over videos, beside
  the precision a random segment set would get (the offline coverage);
- YouTube Highlights only: the fraction of streamed and of offline segments
  that are ground-truth highlights (match > 0), beside the base rate.
Writes the JSON, a markdown table next to it (.md) and prints the table.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from benchmarks import harness
from configs import joint
from hl_jax.core import families
from hl_jax.core import files
from hl_jax.core import run_loop
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import benchmarks
from hl_jax.eval import evaluators
from hl_jax.highlights import moments
from hl_jax.highlights import predict
from hl_jax.highlights import streaming

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir (default: train one).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 200, "Steps when training a model here.")
_CONFIG_OVERRIDES = flags.DEFINE_list(
    "config_overrides",
    [],
    "section.key=value changes to the training config, e.g. "
    "model.dropout_masks=flax (the masks of the figures in BENCHMARKS.md).",
)
_DATA_ROOT = flags.DEFINE_string("data_root", joint.DATA_ROOT, "Real data (../shared/data).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's).")
_BENCHMARKS = flags.DEFINE_list("benchmarks", ["youtube_highlights", "tvsum"], "Benchmarks.")
_SPLIT = flags.DEFINE_string("split", "val", "Split replayed.")
_STREAM = flags.DEFINE_string("stream", "", "StreamConfig overrides: key=value,...")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Offline moments per video.")
_MAX_MOMENT = flags.DEFINE_float("max_moment_seconds", 10.0, "Offline longest moment.")
_CHUNK = flags.DEFINE_integer("chunk", 8, "Segments per push in the chunked replay.")
_OUTPUT = flags.DEFINE_string("output", "/tmp/hl_jax_bench/streaming.json", "JSON path.")


def stream_config(overrides: str, starts: np.ndarray, ends: np.ndarray) -> streaming.StreamConfig:
  """StreamConfig with a video's segment length and stride and `k=v,...` overrides."""
  kwargs: dict[str, Any] = {
      "segment_seconds": float(ends[0] - starts[0]),
      "stride_seconds": float(starts[1] - starts[0]) if len(starts) > 1 else None,
  }
  types = {f.name: f.type for f in dataclasses.fields(streaming.StreamConfig)}
  for item in filter(None, overrides.split(",")):
    key, _, value = item.partition("=")
    if key not in types:
      raise ValueError(f"unknown StreamConfig field {key!r}; one of {sorted(types)}")
    kwargs[key] = float(value) if "float" in str(types[key]) else int(value)
  return streaming.StreamConfig(**kwargs)


def agreement(stream: np.ndarray, offline: np.ndarray) -> dict[str, float]:
  """Agreement of boolean segment masks [T], streamed vs offline.

  Returns:
    {"precision" (None without streamed segments), "recall", "f1", "iou",
    and the counts "both", "stream", "offline"}.
  """
  both = float(np.sum(stream & offline))
  precision = both / stream.sum() if stream.any() else None
  recall = both / offline.sum() if offline.any() else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
  union = float(np.sum(stream | offline))
  return {
      "precision": precision,
      "recall": recall,
      "f1": f1,
      "iou": both / union if union else 0.0,
      "both": both,
      "stream": float(stream.sum()),
      "offline": float(offline.sum()),
  }


def _mask(spans: Sequence[tuple[int, int]], num: int) -> np.ndarray:
  mask = np.zeros(num, bool)
  for a, b in spans:
    mask[a:b] = True
  return mask


def _timed_pushes(push, items) -> tuple[list[Any], np.ndarray]:
  outs, times = [], []
  for item in items:
    begin = time.perf_counter_ns()
    outs.append(push(item))
    times.append(time.perf_counter_ns() - begin)
  return outs, np.asarray(times, np.float64) / 1e3


def _key(event: streaming.Event) -> tuple[str, int, int, int]:
  return event.kind, event.segment, event.emitted_segment, event.start_segment


def replay(
    video: predict.TimedVideo, offline_scores: np.ndarray, stream_fn, chunk_fn, overrides: str
) -> dict[str, Any]:
  """Streams one video three ways; returns its masks, events and timings."""
  config = stream_config(overrides, video.starts, video.ends)
  detector = streaming.OnlineDetector(config)
  _, detector_us = _timed_pushes(detector.push, offline_scores)
  single = streaming.StreamingScorer(stream_fn, config)
  outs, single_us = _timed_pushes(single.push, video.features)
  events = [e for _, evs in outs for e in evs] + single.finish()
  scores = np.concatenate([s for s, _ in outs])
  chunked = streaming.StreamingScorer(chunk_fn, config)
  pieces = [
      video.features[i : i + _CHUNK.value] for i in range(0, len(video.features), _CHUNK.value)
  ]
  outs, chunk_us = _timed_pushes(chunked.push, pieces)
  chunk_events = [e for _, evs in outs for e in evs] + chunked.finish()
  # f's float rounding may differ with the batch shape; the decisions may not.
  if [_key(e) for e in chunk_events] != [_key(e) for e in events]:
    raise AssertionError(f"{video.video_id}: chunked events differ from one-at-a-time")
  np.testing.assert_allclose(scores, offline_scores, rtol=1e-4, atol=1e-4)
  sizes = np.asarray([len(p) for p in pieces], np.float64)
  return {
      "events": events,
      "config": config,
      "stream_mask": _mask(streaming.highlights(events), len(scores)),
      "detector_us": detector_us,
      "single_us": single_us,
      "chunk_us_per_segment": np.repeat(chunk_us / sizes, sizes.astype(int)),
  }


def run_benchmark(name: str, workdir: str) -> dict[str, Any]:
  """Replays one benchmark split; returns its summary."""
  manual_dir = os.path.join(_DATA_ROOT.value, name)
  config, _ = workdir_lib.load_config(workdir)
  feature_set = config.eval.feature_set
  videos = predict.benchmark_videos(
      name, _SPLIT.value, manual_dir=manual_dir, data_dir=_DATA_DIR.value, feature_set=feature_set
  )
  labels = {
      v.video_id: v.labels
      for v in benchmarks.load_benchmark(
          name,
          _SPLIT.value,
          manual_dir=manual_dir,
          data_dir=_DATA_DIR.value,
          feature_set=feature_set,
      )
  }
  offline_fn = families.load_segment_scorer(workdir).score_segments
  stream_fn = families.load_segment_scorer(workdir, chunk=1).score_segments
  chunk_fn = families.load_segment_scorer(workdir, chunk=_CHUNK.value).score_segments
  for fn in (stream_fn, chunk_fn):  # compile outside the timed pushes
    fn(videos[0].features[:1])
  all_scores = evaluators.score_videos(offline_fn, [v.features for v in videos])
  rule = moments.MomentRule(top_k=_TOP_K.value, max_moment_seconds=_MAX_MOMENT.value)
  rows, timings, latencies = [], {"detector": [], "single": [], "chunked": []}, []
  for video, scores in zip(videos, all_scores):
    out = replay(video, scores, stream_fn, chunk_fn, _STREAM.value)
    chosen = moments.select_moments(scores, video.starts, video.ends, rule)
    offline = _mask([(m.start, m.end) for m in chosen], len(scores))
    row = agreement(out["stream_mask"], offline)
    row.update(
        video_id=video.video_id,
        num_segments=len(scores),
        stream_coverage=float(out["stream_mask"].mean()),
        offline_coverage=float(offline.mean()),
        highlights=len(streaming.highlights(out["events"])),
    )
    if name == "youtube_highlights":
      positive = labels[video.video_id] > 0
      row.update(
          gt_base_rate=float(positive.mean()),
          gt_precision_stream=_precision(positive, out["stream_mask"]),
          gt_precision_offline=_precision(positive, offline),
      )
    rows.append(row)
    timings["detector"].append(out["detector_us"])
    timings["single"].append(out["single_us"])
    timings["chunked"].append(out["chunk_us_per_segment"])
    latencies += [
        (e.latency_segments, e.latency_segments * out["config"].stride) for e in out["events"]
    ]
  return _summary(name, rows, timings, np.asarray(latencies), out["config"])


def _precision(positive: np.ndarray, mask: np.ndarray) -> float | None:
  return float(positive[mask].mean()) if mask.any() else None


def _summary(name, rows, timings, latencies, config) -> dict[str, Any]:
  def mean(key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None

  us = {k: np.concatenate(v) for k, v in timings.items()}
  result = {
      "benchmark": name,
      "split": _SPLIT.value,
      "num_videos": len(rows),
      "num_segments": int(sum(r["num_segments"] for r in rows)),
      "us_per_segment": {
          k: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
          for k, v in us.items()
      },
      "chunk": _CHUNK.value,
      "event_latency_segments": {
          "mean": float(latencies[:, 0].mean()),
          "max": int(latencies[:, 0].max()),
      },
      "event_latency_seconds": {
          "mean": float(latencies[:, 1].mean()),
          "max": float(latencies[:, 1].max()),
      },
      "latency_budget_segments": config.latency_budget_segments,
      "stream_config": {
          k: v
          for k, v in dataclasses.asdict(config).items()
          if k not in ("segment_seconds", "stride_seconds")
      },
  }
  for key in (
      "precision",
      "recall",
      "f1",
      "iou",
      "stream_coverage",
      "offline_coverage",
      "highlights",
      "gt_base_rate",
      "gt_precision_stream",
      "gt_precision_offline",
  ):
    result[key] = mean(key)
  # Pooled over all segments of the split (precision is undefined, so None in
  # the per-video mean, for a video without streamed highlights).
  pooled = {k: float(sum(r[k] for r in rows)) for k in ("both", "stream", "offline")}
  result["pooled"] = {
      "precision": pooled["both"] / max(pooled["stream"], 1.0),
      "recall": pooled["both"] / max(pooled["offline"], 1.0),
      "chance_precision": pooled["offline"] / result["num_segments"],
  }
  result["per_video"] = rows
  return result


def markdown(results: Sequence[dict[str, Any]], workdir: str) -> str:
  """Two tables: speed and latency, then agreement with the offline top-k."""
  lines = [
      f"Model: {workdir}",
      "",
      "Wall time per segment (µs) and event latency:",
      "",
      "| benchmark | segments | detector p50 / p99 (µs) | f + detector, 1 at a time "
      "p50 / p99 (µs) | f + detector, chunks of C, per segment p50 / p99 (µs) | "
      "event latency mean / max (segments) | mean / max (s) |",
      "|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in results:
    u = r["us_per_segment"]
    lines.append(
        f"| {r['benchmark']} {r['split']} | {r['num_segments']} | "
        f"{u['detector']['p50']:.1f} / {u['detector']['p99']:.1f} | "
        f"{u['single']['p50']:.1f} / {u['single']['p99']:.1f} | "
        f"{u['chunked']['p50']:.1f} / {u['chunked']['p99']:.1f} (C={r['chunk']}) | "
        f"{r['event_latency_segments']['mean']:.2f} / {r['event_latency_segments']['max']} | "
        f"{r['event_latency_seconds']['mean']:.2f} / {r['event_latency_seconds']['max']:.2f} |"
    )
  lines += [
      "",
      "Streamed highlight segments vs the offline top-k moments' segments, in %: "
      "precision, recall, F1, IoU per video, then averaged (precision over the videos "
      "with a streamed highlight); pooled: over all segments of the split; chance: "
      "the precision of a random segment set (= offline coverage).",
      "",
      "| benchmark | videos | highlights / video | P | R | F1 | IoU | chance P | "
      "pooled P / R | pooled chance P | coverage stream / offline | "
      "GT-positive share: stream / offline / all |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in results:
    gt = (
        "-"
        if r["gt_base_rate"] is None
        else f"{100 * r['gt_precision_stream']:.1f} / {100 * r['gt_precision_offline']:.1f} / "
        f"{100 * r['gt_base_rate']:.1f}"
    )
    pooled = r["pooled"]
    lines.append(
        f"| {r['benchmark']} {r['split']} | {r['num_videos']} | {r['highlights']:.2f} | "
        f"{100 * r['precision']:.1f} | {100 * r['recall']:.1f} | {100 * r['f1']:.1f} | "
        f"{100 * r['iou']:.1f} | {100 * r['offline_coverage']:.1f} | "
        f"{100 * pooled['precision']:.1f} / {100 * pooled['recall']:.1f} | "
        f"{100 * pooled['chance_precision']:.1f} | "
        f"{100 * r['stream_coverage']:.1f} / {100 * r['offline_coverage']:.1f} | {gt} |"
    )
  return "\n".join(lines) + "\n"


def train_model(workdir: str) -> None:
  config = joint.get_config("corpus=youtube_highlights")
  config.corpus.manual_dir = os.path.join(_DATA_ROOT.value, "youtube_highlights")
  config.data_dir = _DATA_DIR.value or ""
  config.data_root = _DATA_ROOT.value
  config.train.num_steps = _NUM_STEPS.value
  harness.apply_overrides(config, _CONFIG_OVERRIDES.value)
  config.eval.every_steps = 0
  config.checkpoint.every_steps = _NUM_STEPS.value
  run_loop.train_and_evaluate(config, workdir)


def main(argv: Sequence[str]) -> None:
  del argv
  output = pathlib.Path(_OUTPUT.value)
  output.parent.mkdir(parents=True, exist_ok=True)
  workdir = _WORKDIR.value
  if workdir is None:
    workdir = str(output.parent / "streaming_model")
    train_model(workdir)
  results = [run_benchmark(name, workdir) for name in _BENCHMARKS.value]
  files.write_json(output, {"workdir": os.path.abspath(workdir), "results": results})
  table = markdown(results, os.path.abspath(workdir))
  files.write_text(output.with_suffix(".md"), table)
  print(table)


if __name__ == "__main__":
  app.run(main)
