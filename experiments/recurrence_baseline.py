r"""Recurrence across videos as a label-free highlight score, beside the norm baseline.

  python -m experiments.recurrence_baseline --data_dir=/tmp/hl_jax_ablation/tfds \
      --output=/tmp/hl_jax_bench/recurrence.json \
      --feature_sets=i3d_rgb,i3d_rgb_flow,i3d_rgb_flow_audio

Scores every val clip of YouTube Highlights (YTH) and TVSum with each variant
of `hl_jax.signals.recurrence.recurrence_scores` (`VARIANTS`: centroid, kNN with k in
{5, 10, 20} and per-video best match, each on plain and on centred cosines)
and evaluates them with `hl_jax.eval.protocols.evaluate`, the evaluator behind
RESULTS.md's "feature L2 norm" and "random scores" rows, which are recomputed
here the same way (`experiments/weightings_data.label_free_baselines`: norms of
the float64 features; random seeds 0..2, mean ± std with ddof=1), so the
norm row must read 61.2 / 59.3 on i3d_rgb.

Reference sets (no labels read by any score):
- inductive: the train split's videos of the val video's group (YTH domain,
  TVSum category); val videos are never in it.
- transductive: the other val videos. YTH: of the same domain. TVSum has one
  val video per category, so there the group is the whole val split (the 9
  other videos, all categories).
- inductive_pooled: all train videos, groups ignored (a control: what the
  group buys, and whether TVSum's transductive result is about pooling).
Centring ("centered_l2") subtracts the mean segment of that reference set.

Label-using diagnostics, never used to choose anything:
- YTH *train* pair agreement: within each train video, of the clip pairs
  with one highlight (match > 0) and one other clip and unequal scores, the
  share where the more recurrent clip is the highlight (reference set: the
  other train videos of the domain). RESULTS.md's duration signal: 55% of
  decisive (short, long) pairs.
Label-free diagnostics: per-video Spearman correlation (YTH val) of the
inductive score with the feature norm, and between inductive and
transductive scores.

The variant to use as the default signal is chosen by a rule that reads no
val label: the highest YTH train pair agreement (train labels, stated),
averaged over the feature sets run (`choose_default`); its per-group val
mAPs are tabled beside the norm's.

Writes the JSON (every per-domain / per-category mAP and pair agreement), a
markdown file next to it (.md), and prints the tables. About 13 min for the
three feature sets on the 2-core VM (the 4096-d kNN blocks dominate).
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np
from scipy import stats

from benchmarks import harness
from hl_jax.data import benchmarks
from hl_jax.eval import protocols
from hl_jax.signals import recurrence

FLAGS = flags.FLAGS
SHARED = pathlib.Path(
    os.environ.get("HL_JAX_SHARED_DATA", pathlib.Path(harness.REPO).parent / "shared" / "data")
)
BENCHMARKS = ("youtube_highlights", "tvsum")
RANDOM_SEEDS = 3
SETTINGS = ("inductive", "transductive", "inductive_pooled")
METHODS = {
    "centroid": {"method": "centroid"},
    "knn5": {"method": "knn", "k": 5},
    "knn10": {"method": "knn", "k": 10},
    "knn20": {"method": "knn", "k": 20},
    "video_max": {"method": "video_max"},
}
VARIANTS = {
    f"{name} {norm}": {**kwargs, "normalize": norm}
    for norm in recurrence.NORMALIZATIONS
    for name, kwargs in METHODS.items()
}

flags.DEFINE_string("data_dir", "/tmp/hl_jax_ablation/tfds", "TFDS data_dir of the benchmarks.")
flags.DEFINE_string("output", "/tmp/hl_jax_bench/recurrence.json", "JSON (.md next to it).")
flags.DEFINE_list(
    "feature_sets", ["i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio"], "Feature sets to score."
)


def load(benchmark: str, split: str, feature_set: str) -> list[benchmarks.Video]:
  return benchmarks.load_benchmark(
      benchmark,
      split,
      manual_dir=SHARED / benchmark,
      data_dir=FLAGS.data_dir,
      feature_set=feature_set,
  )


def _brief(result: dict[str, Any]) -> dict[str, Any]:
  return {"mAP": result["mAP"], "per_group": result["per_group"]}


def scores_by_id(videos: Sequence[benchmarks.Video], scores: Sequence[np.ndarray]) -> dict:
  return {v.video_id: s for v, s in zip(videos, scores)}


def variant_scores(
    val: Sequence[benchmarks.Video],
    train: Sequence[benchmarks.Video],
    transductive_groups: Sequence[str],
    kwargs: dict,
) -> dict[str, list]:
  """Per setting (`SETTINGS`): per val video, [T] scores of one variant."""
  feats, train_feats = [v.features for v in val], [v.features for v in train]
  return {
      "inductive": recurrence.recurrence_scores(
          feats,
          [v.group for v in val],
          reference_features=train_feats,
          reference_groups=[v.group for v in train],
          **kwargs,
      ),
      "transductive": recurrence.recurrence_scores(feats, transductive_groups, **kwargs),
      "inductive_pooled": recurrence.recurrence_scores(
          feats,
          ["all"] * len(val),
          reference_features=train_feats,
          reference_groups=["all"] * len(train),
          **kwargs,
      ),
  }


def pair_agreement(videos: Sequence[benchmarks.Video], scores: Sequence[np.ndarray]) -> dict:
  """Within-video clip pairs ordered by the scores, against match > 0 labels.

  Returns:
    {"right", "wrong": shares of all within-video pairs where the higher
    scored clip is the highlight and the other not / the reverse;
    "agreement": right / (right + wrong); "per_group": agreement per group}.
  """
  counts: dict[str, np.ndarray] = {}
  for video, score in zip(videos, scores):
    positive = video.labels > 0
    diff = score[positive][:, None].astype(np.float64) - score[~positive][None, :].astype(
        np.float64
    )
    total = len(score) * (len(score) - 1) / 2
    counts.setdefault(video.group, np.zeros(3))
    counts[video.group] += [(diff > 0).sum(), (diff < 0).sum(), total]
  right, wrong, total = sum(counts.values())
  return {
      "right": right / total,
      "wrong": wrong / total,
      "agreement": right / (right + wrong),
      "per_group": {g: c[0] / (c[0] + c[1]) for g, c in sorted(counts.items())},
  }


def mean_spearman(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
  """Mean over videos (with >= 3 clips) of the Spearman correlation of a and b."""
  rhos = [stats.spearmanr(x, y).statistic for x, y in zip(a, b) if len(x) >= 3]
  return float(np.nanmean(rhos))


def measure(feature_set: str) -> dict[str, Any]:
  """Everything for one feature set (see the module docstring)."""
  out: dict[str, Any] = {}
  yth_train = load("youtube_highlights", "train", feature_set)
  norm = lambda videos: [np.linalg.norm(v.features.astype(np.float64), axis=1) for v in videos]
  val_norms = {}
  for benchmark in BENCHMARKS:
    val, train = load(benchmark, "val", feature_set), load(benchmark, "train", feature_set)
    single = len({v.group for v in val}) == len(val)  # TVSum: one val video per group.
    trans_groups = ["all"] * len(val) if single else [v.group for v in val]
    randoms = [
        protocols.evaluate(benchmark, val, protocols.random_scores(val, s), split="val")["mAP"]
        for s in range(RANDOM_SEEDS)
    ]
    val_norms[benchmark] = norm(val)
    res = {
        "num_val": len(val),
        "num_train": len(train),
        "transductive_groups": "all val videos" if single else "val videos of the group",
        "random": {
            "mAP": float(np.mean(randoms)),
            "std": float(np.std(randoms, ddof=1)),
            "seeds": randoms,
        },
        "l2_norm": _brief(
            protocols.evaluate(benchmark, val, scores_by_id(val, val_norms[benchmark]), split="val")
        ),
        "variants": {},
    }
    for name, kwargs in VARIANTS.items():
      start = time.time()
      scores = variant_scores(val, train, trans_groups, kwargs)
      res["variants"][name] = {
          setting: _brief(protocols.evaluate(benchmark, val, scores_by_id(val, s), split="val"))
          for setting, s in scores.items()
      }
      if benchmark == "youtube_highlights":  # Label-free diagnostics.
        res["variants"][name]["rho_norm"] = mean_spearman(scores["inductive"], val_norms[benchmark])
        res["variants"][name]["rho_inductive_transductive"] = mean_spearman(
            scores["inductive"], scores["transductive"]
        )
      res["variants"][name]["wall_s"] = time.time() - start
      print(
          f"{feature_set} {benchmark} {name}: "
          + ", ".join(f"{s} {100 * res['variants'][name][s]['mAP']:.1f}" for s in scores),
          flush=True,
      )
    out[benchmark] = res
  groups = [v.group for v in yth_train]
  out["train_pairs"] = {"l2_norm": pair_agreement(yth_train, norm(yth_train))}
  for name, kwargs in VARIANTS.items():
    out["train_pairs"][name] = pair_agreement(
        yth_train, recurrence.recurrence_scores([v.features for v in yth_train], groups, **kwargs)
    )
  return out


def _pct(value: float) -> str:
  return f"{100 * value:.1f}"


def table(feature_set: str, res: dict[str, Any]) -> str:
  """The markdown table of one feature set."""
  yth, tvs, pairs = res["youtube_highlights"], res["tvsum"], res["train_pairs"]
  lines = [
      f"#### {feature_set}",
      "",
      "| scores | YTH ind. | YTH trans. | YTH ind. pooled | TVSum ind. | TVSum trans. "
      "| TVSum ind. pooled | YTH train pair agreement | rho(norm) | rho(ind, trans) |",
      "|---|" + "---:|" * 9,
  ]
  for label, key in (
      (f"random scores ({RANDOM_SEEDS} seeds)", "random"),
      ("feature L2 norm", "l2_norm"),
  ):
    cells = []
    for b in (yth, tvs):
      std = f" ± {_pct(b[key]['std'])}" if key == "random" else ""
      cells += [_pct(b[key]["mAP"]) + std] * len(SETTINGS)
    agree = "50" if key == "random" else _pct(pairs[key]["agreement"])
    lines.append(
        f"| {label} | "
        + " | ".join(cells)
        + f" | {agree} | {'-' if key == 'random' else '1'} | - |"
    )
  for name in VARIANTS:
    y, t = yth["variants"][name], tvs["variants"][name]
    cells = [_pct(b[s]["mAP"]) for b in (y, t) for s in SETTINGS]
    lines.append(
        f"| {name} | "
        + " | ".join(cells)
        + f" | {_pct(pairs[name]['agreement'])} | {y['rho_norm']:.2f} | "
        f"{y['rho_inductive_transductive']:.2f} |"
    )
  return "\n".join(lines)


def choose_default(results: dict[str, Any]) -> str:
  """The variant with the highest YTH *train* pair agreement, mean over feature sets."""
  return max(
      VARIANTS,
      key=lambda name: np.mean([r["train_pairs"][name]["agreement"] for r in results.values()]),
  )


def group_table(name: str, results: dict[str, Any]) -> str:
  """Per domain / category mAP of one variant (inductive) and the norm, per feature set."""
  lines = []
  for benchmark in BENCHMARKS:
    groups = sorted(next(iter(results.values()))[benchmark]["l2_norm"]["per_group"])
    lines += [
        "",
        f"#### {benchmark} val per group: {name} (inductive) / feature L2 norm",
        "",
        "| feature set | " + " | ".join(groups) + " | avg |",
        "|---|" + "---:|" * (len(groups) + 1),
    ]
    for fs, res in results.items():
      v, n = res[benchmark]["variants"][name]["inductive"], res[benchmark]["l2_norm"]
      lines.append(
          f"| {fs} | "
          + " | ".join(f"{_pct(v['per_group'][g])} / {_pct(n['per_group'][g])}" for g in groups)
          + f" | {_pct(v['mAP'])} / {_pct(n['mAP'])} |"
      )
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  del argv
  unknown = set(FLAGS.feature_sets) - set(benchmarks.FEATURE_SETS)
  if unknown:
    raise ValueError(f"unknown feature sets {sorted(unknown)}; expected {benchmarks.FEATURE_SETS}")
  start = time.time()
  report: dict[str, Any] = {
      "machine": harness.machine(),
      "variants": VARIANTS,
      "random_seeds": RANDOM_SEEDS,
      "results": {},
  }
  for fs in FLAGS.feature_sets:
    report["results"][fs] = measure(fs)
  report["wall_s"] = time.time() - start
  default = report["default_variant"] = choose_default(report["results"])
  text = "\n\n".join(
      [table(fs, r) for fs, r in report["results"].items()]
      + [group_table(default, report["results"])]
  )
  text += (
      f"\n\nDefault signal by the rule (highest mean YTH train pair agreement): "
      f"{default}.\nWall time: {report['wall_s']:.0f} s.\n"
  )
  print(text)
  output = pathlib.Path(FLAGS.output)
  output.parent.mkdir(parents=True, exist_ok=True)
  output.with_suffix(".md").write_text(text)
  harness.finish(report, str(output))


if __name__ == "__main__":
  app.run(main)
