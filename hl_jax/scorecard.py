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
TVSum val). --manual_dir may hold our staged copy, UMT's data release or
lighthouse's (--layout=auto detects which; README "Get the data"); lighthouse's
builds --feature_set=clip or clip_slowfast. Bad input ends in one line, `hl_jax.scorecard: error: ...`,
naming the file, line and video (hl_jax/core/cli.py).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

from absl import flags

from hl_jax.core import cli
from hl_jax.data import benchmarks
from hl_jax.highlights import scorecard

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module (tests,
  # the trainer) cannot clash with flags of the same name such as --workdir.
  flags.DEFINE_enum("benchmark", None, benchmarks.BENCHMARKS, "Benchmark to score.")
  flags.DEFINE_enum("split", "val", benchmarks.SPLITS, "Split to score.")
  benchmarks.define_source_flags()
  flags.DEFINE_enum(
      "feature_set",
      "i3d_rgb",
      benchmarks.FEATURE_SETS,
      "Builder config (features handed to --workdir's model).",
  )
  flags.DEFINE_string("predictions", None, "JSONL file of per-clip scores.")
  flags.DEFINE_string("workdir", None, "Evaluate the checkpoint of this training workdir.")
  flags.DEFINE_integer("random_seeds", 0, "Evaluate random scores averaged over N seeds.")
  flags.DEFINE_string("output", None, "Report path (.json); .md and .png go next to it.")
  flags.mark_flags_as_required(["benchmark", "output"])
  cli.check("random_seeds", "an integer >= 0 (0: no random baseline)", lambda n: n >= 0)


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses arguments that are not flags
  scorecard.run(
      FLAGS.benchmark,
      FLAGS.split,
      FLAGS.output,
      feature_set=FLAGS.feature_set,
      **benchmarks.source_from_flags(),
      predictions=FLAGS.predictions,
      workdir=FLAGS.workdir,
      random_seeds=FLAGS.random_seeds,
  )
  print(pathlib.Path(FLAGS.output).with_suffix(".md").read_text())


if __name__ == "__main__":
  _define_flags()
  cli.run(main, "hl_jax.scorecard")
