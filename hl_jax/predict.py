r"""Highlights from a trained workdir: per-segment scores and top-k moments.

  python -m hl_jax.predict --workdir=W --video=clip.mp4 --output=out/clip.json
  python -m hl_jax.predict --workdir=W --features=video.npz --output=out/video.json
  python -m hl_jax.predict --workdir=W --features=clip.npz --video=clip.mp4 --output=out/clip.json
  python -m hl_jax.predict --workdir=W --benchmark=tvsum --split=val \
    --manual_dir=../shared/data/tvsum --output=out/tvsum_val.json

A training run writes `<workdir>/config.json`; with it and the newest
checkpoint, any features of the same dimension are scored by f in one batched
pass (`evaluation.score_videos`), and `moments.select_moments` turns each video's
scores into at most `top_k` non-overlapping moments (time ranges in seconds).
A moment starts only at a segment scoring at or above the --merge_quantile
quantile of its video's scores (the high-score cut), so a video with few high
segments gets fewer than top_k moments; its "moments_note" says why.
The JSON holds, per video, the scores, the segments' time ranges and the
moments; a timeline PNG per video (the first `--max_plots` of a split) shows
the scores with the moments shaded: `out/video.png` for one features file,
`out/<stem>_timelines/<video_id>.png` otherwise. A self-contained HTML page
per video (`out/clip.html`, or `out/<stem>_<video_id>.html`; the first
`--max_plots` where no video is known) plays the video, draws the timeline,
lists the moments (a click plays one) and shows the reel; the JSON records
each file's path ("timeline_png", "page", "reel").

Video files (--video): features are extracted on the fly with --extractor
(default i3d: Kinetics-400 I3D RGB, 1024-d per 2-s segment, the width and kind
of the benchmarks' i3d_rgb features, though not their checkpoint: BENCHMARKS.md
measures the gap) and cached next
to the output as `<stem>.<extractor>.npz` (`feature_cache`: reused while the
extractor is the same). Each video also gets a highlight reel (`reel`): its
best moments, best first until --reel_seconds (default 30), cut from the video
and played in time order as `out/clip.reel.mp4` (H.264, with its sound); only
moments go in, so the reel is shorter than asked when they are. --video with
--features names the videos those features came from (one per file, same
order): they are not extracted, only played on the pages and cut into reels.

Features files: `.npy` [T, D], or `.npz` with key `features` [T, D] and
optionally `segment_seconds`, `stride_seconds` and `duration_seconds` scalars
(as `hl_jax.video_features` writes them). Segment i spans
[i * stride, i * stride + segment_seconds] seconds, cut at the duration.
Benchmark segments: TVSum shots are 2 s; YouTube Highlights clips are the
annotated 100-frame windows at stride 50 (times from the TFDS examples' clip
frames and fps). --manual_dir may hold our staged copy, UMT's release or
lighthouse's (--layout, default auto: detected).

Bad input (a flag out of range, an unreadable features file, a workdir with
no whole checkpoint) ends in one line, `hl_jax.predict: error: ...`
(hl_jax/core/cli.py); a torn newest checkpoint is skipped for the one before.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from hl_jax.core import checkpointing
from hl_jax.core import cli
from hl_jax.data import benchmarks
from hl_jax.highlights import moments
from hl_jax.highlights import predict
from hl_jax.highlights import scorers
from hl_jax.video import clip_stacks
from hl_jax.video import extractors

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module cannot
  # clash with flags of the same name (--workdir of launch.py).
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints).")
  flags.DEFINE_list("features", [], ".npy / .npz features files, comma-separated.")
  flags.DEFINE_list(
      "video",
      [],
      "Video files, comma-separated: features are extracted "
      "(--extractor) and cached next to --output as <stem>.<extractor>.npz. "
      "With --features: the videos to play and cut reels from, one per file.",
  )
  flags.DEFINE_enum(
      "extractor",
      extractors.DEFAULT_EXTRACTOR,
      extractors.NAMES,
      "Extractor for --video (i3d: the benchmarks' kind of features).",
  )
  flags.DEFINE_string(
      "extractor_weights",
      None,
      "--video: the extractor's weights file (i3d_imagenet: the benchmark network's "
      "i3d_rgb.pt / model_rgb.pth or DeepMind's rgb_imagenet checkpoint; default "
      "$HL_JAX_I3D_IMAGENET_WEIGHTS).",
  )
  flags.DEFINE_enum(
      "clip_grid",
      None,
      tuple(clip_stacks.GRIDS),
      "--video with i3d_imagenet: the clips features are made for (default: the grid the "
      "model was trained on, youtube_highlights or tvsum).",
  )
  flags.DEFINE_bool(
      "allow_feature_space_mismatch",
      False,
      "Score features of another feature space than the model's (recorded in the JSON and "
      "the page; the scores may mean little).",
  )
  flags.DEFINE_float(
      "reel_seconds",
      30.0,
      "--video: a highlight reel of the best moments, at most this long "
      "(0: none), written as <output stem>.reel.mp4.",
  )
  flags.DEFINE_float(
      "segment_seconds", None, "Segment length of --features (default: the file's, else 2.0)."
  )
  flags.DEFINE_enum(
      "benchmark",
      None,
      benchmarks.BENCHMARKS,
      "Predict for a benchmark split instead of --features.",
  )
  flags.DEFINE_enum("split", "val", benchmarks.SPLITS, "Benchmark split.")
  benchmarks.define_source_flags()
  flags.DEFINE_string("feature_set", None, "Benchmark features (default: the workdir's).")
  flags.DEFINE_string("output", None, "JSON path; timeline PNGs, pages and reels go next to it.")
  flags.DEFINE_integer("top_k", 5, "Moments per video (at most).")
  flags.DEFINE_float("min_moment_seconds", 0.0, "Shortest moment.")
  flags.DEFINE_float("max_moment_seconds", 10.0, "Longest moment (>= one segment).")
  flags.DEFINE_float(
      "merge_quantile",
      0.75,
      "High-score cut: segments at or above this quantile of the video's scores "
      "start moments and merge into neighbouring ones.",
  )
  flags.DEFINE_float("min_gap_seconds", 2.0, "Least time between two moments.")
  flags.DEFINE_integer(
      "max_plots", 8, "Timeline PNGs (and pages, where no video is known) for the first N videos."
  )
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
  del argv  # cli.run refuses arguments that are not flags
  rule = moments.MomentRule(
      FLAGS.top_k,
      FLAGS.min_moment_seconds,
      FLAGS.max_moment_seconds,
      FLAGS.merge_quantile,
      FLAGS.min_gap_seconds,
  )
  options = {"weights": FLAGS.extractor_weights} if FLAGS.extractor_weights else {}
  if FLAGS.extractor == "i3d_imagenet":
    options["grid"] = FLAGS.clip_grid or scorers.clip_grid(FLAGS.workdir)
  result = predict.run(
      FLAGS.workdir,
      FLAGS.output,
      features=FLAGS.features,
      videos=FLAGS.video,
      extractor=FLAGS.extractor,
      extractor_options=options,
      allow_feature_space_mismatch=FLAGS.allow_feature_space_mismatch,
      reel_seconds=FLAGS.reel_seconds,
      segment_seconds=FLAGS.segment_seconds,
      benchmark=FLAGS.benchmark,
      split=FLAGS.split,
      feature_set=FLAGS.feature_set,
      **benchmarks.source_from_flags(),
      rule=rule,
      max_plots=FLAGS.max_plots,
  )
  for record in result["videos"][:10]:
    spans = ", ".join(
        f"{m['start_s']:.1f}-{m['end_s']:.1f}s ({m['score']:.2f})" for m in record["moments"]
    )
    print(f"{record['video_id']}: {spans}")
    if record.get("moments_note"):
      print(f"  {record['moments_note']}")
    if record.get("reel"):
      print(f"  reel: {record['reel']['reel']} ({record['reel']['duration_s']:.1f} s)")
    if record.get("page"):
      print(f"  page: {record['page']}")


if __name__ == "__main__":
  _define_flags()
  # A workdir whose checkpoints all fail to restore is the user's to fix.
  cli.run(main, "hl_jax.predict", (checkpointing.CheckpointError,))
