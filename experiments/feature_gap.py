r"""How close our I3D features of raw videos come to the benchmarks' staged I3D features.

  python -m experiments.feature_gap --output=/tmp/hl_jax_bench/feature_gap.json \
      [--workdir=/tmp/hl_jax/yth] [--videos=a.mp4,b.mp4]

An analysis of the extractor, not a speed benchmark (those are in benchmarks/).
Our side: `hl_jax.video_features`' default extractor (Kinetics-400 I3D RGB,
2-s segments at 25 fps, shorter side 256, centre crop 224, Mixed_5c
mean-pooled) on the sample videos of ../shared/data/sample_videos (cached in
<output dir>/features/ by `hl_jax.video.cache`, so a rerun does not extract again).
Staged side: the `i3d_rgb` features that the models are trained and evaluated
on (../shared/data/{youtube_highlights,tvsum}/features_umt_f16/i3d_rgb, UMT's
Kinetics I3D RGB features, float16). For each set, per segment: the L2 norm,
the share of exact zeros and of values < 0.01 (sparsity), the mean value; per
dimension: mean and standard deviation. Between sets: the correlation of the
per-dimension means (and stds) and the mean over our segments of their
largest cosine similarity to any staged segment. YouTube Highlights vs TVSum
(two corpora of the same staged extractor) is the yardstick: a gap to ours
much larger than that one is a difference of extraction, not of content. As
our sample is small, a control draws as many staged TVSum segments from as
many random videos and compares them with YouTube Highlights the same way
(mean ± std over --control_draws draws).

With --workdir (a model trained on i3d_rgb, e.g. README's /tmp/hl_jax/yth),
f's scores of our segments are set beside its scores of the staged val
segments (mean, std, and where our mean falls in the staged distribution):
what applying a benchmark-trained model to new videos meets.
Writes the JSON, a markdown table next to it (.md), and prints the table.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from benchmarks import harness
from hl_jax.core import families
from hl_jax.highlights import predict
from hl_jax.video import cache

FLAGS = flags.FLAGS
SHARED = pathlib.Path(
    os.environ.get("HL_JAX_SHARED_DATA", pathlib.Path(harness.REPO).parent / "shared" / "data")
)
SAMPLE_VIDEOS = (
    "bikes.mp4",
    "bigbuckbunny.mp4",
    "carphone_pristine.mp4",
    "univtg_example/charades.mp4",
)

flags.DEFINE_string("output", "/tmp/hl_jax_bench/feature_gap.json", "JSON (.md next to it).")
flags.DEFINE_list("videos", [], "Video files (default: the sample videos).")
flags.DEFINE_string("workdir", None, "A model trained on i3d_rgb features (optional).")
flags.DEFINE_integer("control_draws", 20, "Draws of the small-sample control.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir of the benchmarks (default: TFDS's).")


def staged(benchmark: str) -> dict[str, np.ndarray]:
  folder = SHARED / benchmark / "features_umt_f16" / "i3d_rgb"
  out = {}
  for path in sorted(folder.glob("*.npz")):
    with np.load(path) as data:
      out[path.stem] = data["features"].astype(np.float32)
  if not out:
    raise FileNotFoundError(f"{folder}: no staged features (set HL_JAX_SHARED_DATA)")
  return out


def describe(rows: np.ndarray) -> dict[str, Any]:
  norms = np.linalg.norm(rows, axis=1)
  return {
      "segments": int(len(rows)),
      "norm_mean": float(norms.mean()),
      "norm_std": float(norms.std()),
      "zeros": float((rows == 0).mean()),
      "below_0.01": float((rows < 0.01).mean()),
      "value_mean": float(rows.mean()),
      "value_max": float(rows.max()),
      "negative": float((rows < 0).mean()),
  }


def compare(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  nearest = (unit(ours) @ unit(theirs).T).max(axis=1)
  return {
      "dim_mean_corr": float(np.corrcoef(ours.mean(0), theirs.mean(0))[0, 1]),
      "dim_std_corr": float(np.corrcoef(ours.std(0), theirs.std(0))[0, 1]),
      "nearest_cosine": float(nearest.mean()),
      "norm_ratio": float(
          np.linalg.norm(ours, axis=1).mean() / np.linalg.norm(theirs, axis=1).mean()
      ),
  }


def main(argv: Sequence[str]) -> None:
  del argv
  videos = FLAGS.videos or [str(SHARED / "sample_videos" / v) for v in SAMPLE_VIDEOS]
  output = pathlib.Path(FLAGS.output)
  files = cache.features_for_videos(videos, output.parent / "features")
  ours = {pathlib.Path(v).stem: np.load(f)["features"] for v, f in zip(videos, files)}
  sets = {
      "ours (sample videos)": np.concatenate(list(ours.values())),
      "youtube_highlights i3d_rgb": np.concatenate(list(staged("youtube_highlights").values())),
      "tvsum i3d_rgb": np.concatenate(list(staged("tvsum").values())),
  }
  rng = np.random.default_rng(0)
  # Nearest-neighbour cosines against a fixed sample of staged segments (memory).
  sample = {k: v[rng.choice(len(v), min(len(v), 20000), replace=False)] for k, v in sets.items()}
  names = list(sets)
  results: dict[str, Any] = {
      "machine": harness.machine(),
      "videos": videos,
      "sets": {k: describe(v) for k, v in sets.items()},
      "pairs": {},
  }
  for a, b in ((names[0], names[1]), (names[0], names[2]), (names[2], names[1])):
    results["pairs"][f"{a} vs {b}"] = compare(sample[a], sample[b])
  # Control for our small sample: as many staged TVSum segments, from as many
  # random videos, against YouTube Highlights (mean and std over draws).
  tvsum = staged("tvsum")
  draws = []
  for _ in range(FLAGS.control_draws):
    ids = rng.choice(sorted(tvsum), len(ours), replace=False)
    rows = np.concatenate([tvsum[i] for i in ids])
    draws.append(
        compare(rows[rng.choice(len(rows), len(sets[names[0]]), replace=False)], sample[names[1]])
    )
  control = f"control: {len(sets[names[0]])} tvsum segments of {len(ours)} videos vs {names[1]}"
  results["pairs"][control] = {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}
  results["control_std"] = {k: float(np.std([d[k] for d in draws])) for k in draws[0]}
  lines = [
      "| set | segments | norm (mean ± std) | zeros | < 0.01 | mean value | max |",
      "|---|---|---|---|---|---|---|",
  ]
  for name, d in results["sets"].items():
    lines.append(
        f"| {name} | {d['segments']} | {d['norm_mean']:.2f} ± {d['norm_std']:.2f} | "
        f"{d['zeros']:.1%} | {d['below_0.01']:.1%} | {d['value_mean']:.3f} | "
        f"{d['value_max']:.2f} |"
    )
  lines += [
      "",
      "| pair | corr. of per-dim means | corr. of per-dim stds | "
      "mean nearest cosine (first to second) | norm ratio |",
      "|---|---|---|---|---|",
  ]
  for name, d in results["pairs"].items():
    spread = results["control_std"] if name.startswith("control") else None
    cell = lambda k, f: f"{d[k]:{f}}" + (f" ± {spread[k]:{f}}" if spread else "")
    lines.append(
        f"| {name} | {cell('dim_mean_corr', '.3f')} | {cell('dim_std_corr', '.3f')} | "
        f"{cell('nearest_cosine', '.3f')} | {cell('norm_ratio', '.2f')} |"
    )
  if FLAGS.workdir:
    scorer = families.load_segment_scorer(FLAGS.workdir)
    score_fn, step = scorer.score_segments, scorer.step
    val = predict.benchmark_videos(
        "youtube_highlights",
        "val",
        manual_dir=str(SHARED / "youtube_highlights"),
        data_dir=FLAGS.data_dir,
        feature_set="i3d_rgb",
    )
    theirs = np.concatenate([score_fn(v.features) for v in val])
    mine = np.concatenate([score_fn(f) for f in ours.values()])
    results["scores"] = {
        "workdir": FLAGS.workdir,
        "step": step,
        "staged_val": {"mean": float(theirs.mean()), "std": float(theirs.std())},
        "ours": {"mean": float(mine.mean()), "std": float(mine.std())},
        "ours_mean_percentile": float((theirs < mine.mean()).mean()),
    }
    s = results["scores"]
    lines += [
        "",
        f"f of {FLAGS.workdir} (step {step}): YouTube Highlights val segments "
        f"{s['staged_val']['mean']:.3f} ± {s['staged_val']['std']:.3f}, ours "
        f"{s['ours']['mean']:.3f} ± {s['ours']['std']:.3f} (our mean at the "
        f"{s['ours_mean_percentile']:.0%} percentile of the staged scores)",
    ]
  table = "\n".join(lines)
  print(table)
  output.parent.mkdir(parents=True, exist_ok=True)
  output.with_suffix(".md").write_text(table + "\n")
  harness.finish(results, str(output))


if __name__ == "__main__":
  app.run(main)
