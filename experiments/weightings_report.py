"""Tables, markdown and the plot of the pair-weighting ablation, from its run summaries.

experiments/weightings.py trains the runs and calls these. A method is a recipe
(RECIPES): the config keys it sets on the base config, its pair weighting
(`train.weighting`, hl_jax/less_is_more/weightings.py) among them. A summary
is {"method", "domain" ("" for Ours-A), "feature_set", "seed", "last" and
"selected": {"step", "eval": {benchmark: {"mAP", "per_group"}}, "heldout":
{"pair_accuracy", "hinge", "between_share"} or {}}, "selected_by", "train":
{diagnostic: last logged value}, "wall_s"}; "selected" is the evaluation with
the best held-out pair accuracy (results.json's "selected"), or the last one
for runs without held-out videos.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Scale:
  """A recipe value relative to the base config: its value times `factor`."""

  factor: float


# method -> (display name, config keys set on the base config). Every recipe
# names its train.weighting. The method names are those of the run directories
# of earlier runs (they stay). "joint" is the paper's (softmax(h)); the other
# joint_* cannot collapse (hl_jax/less_is_more/weightings.py); *_domain pair
# short and long segments of one domain only.
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "ranking_d": ("Ranking-D", {"train.weighting": "ranking_d"}),
    "ranking_em": ("Ranking-EM", {"train.weighting": "ranking_em"}),
    "joint": ("Joint (f+h)", {"train.weighting": "softmax"}),
    "joint_detached": ("Joint, detached", {"train.weighting": "detached"}),
    "joint_tempered": ("Joint, tempered", {"train.weighting": "tempered"}),
    "joint_capped": ("Joint, capped simplex", {"train.weighting": "capped_simplex"}),
    "joint_self_paced": ("Joint, self-paced (no h)", {"train.weighting": "self_paced"}),
    "joint_capped_domain": (
        "Joint capped, pairs within domain",
        {"train.weighting": "capped_simplex", "input.pair_within": "domain"},
    ),
    "joint_capped_wd": (
        "Joint capped, 10x weight decay",
        {"train.weighting": "capped_simplex", "train.weight_decay": Scale(10.0)},
    ),
    "ranking_d_domain": (
        "Ranking-D, pairs within domain",
        {"train.weighting": "ranking_d", "input.pair_within": "domain"},
    ),
}
METHODS = {name: label for name, (label, _) in RECIPES.items()}  # Display names.
# The paper's weightings (the joint model's softmax(h), Ranking-D, Ranking-EM);
# every other weighting cannot collapse.
PAPER_WEIGHTINGS = ("softmax", "ranking_d", "ranking_em")
DEFAULT_FEATURES = "i3d_rgb"
TITLES = {
    "youtube_highlights": "YouTube Highlights val mAP (%)",
    "tvsum": "TVSum val top-5 mAP (%), Ours-A only",
    "corpus": "corpus val mAP (%)",
}
SELECTIONS = {
    "last": "last evaluation",
    "selected": "evaluation selected by held-out pair accuracy",
}
HELDOUT = {"pair_accuracy": "held-out pair acc", "between_share": "between share"}
DIAGNOSTICS = (
    "pair_accuracy",
    "max_weight",
    "weight_entropy",
    "effective_pairs",
    "weight_satisfied",
    "loss",
    "pair_loss_unweighted",
)


def weighting(method: str) -> str:
  """The recipe's train.weighting."""
  return RECIPES[method][1]["train.weighting"]


def collapse_proof(method: str) -> bool:
  """A recipe whose weights cannot collapse (a weighting that is not the paper's)."""
  return weighting(method) not in PAPER_WEIGHTINGS


def label(method: str, feature_set: str = DEFAULT_FEATURES) -> str:
  """The display name, with the feature set when it is not the default."""
  return METHODS[method] + ("" if feature_set == DEFAULT_FEATURES else f" [{feature_set}]")


def recipe_of(run_name: str) -> str | None:
  """The method of a weightings.py run directory name (<method>_<A|S-domain>...)."""
  for method in sorted(RECIPES, key=len, reverse=True):  # joint_capped_wd before joint.
    if run_name.startswith((f"{method}_A_", f"{method}_S-")):
      return method
  return None


def heldout_ranking(summaries: dict, feature_set: str = DEFAULT_FEATURES) -> list[dict]:
  """Collapse-proof methods of Ours-A by held-out pair accuracy, best first.

  Each method's score is the mean over seeds of the held-out pair accuracy
  of its SELECTED evaluations: label-free, no evaluation split is read.

  Returns:
    [{"method", "mean", "std" (ddof=1; 0 for one seed), "n"}], best first;
    methods without held-out results are left out.
  """
  rows = []
  for method in RECIPES:
    values = [
        s["selected"]["heldout"]["pair_accuracy"]
        for s in summaries.values()
        if s["method"] == method
        and not s["domain"]
        and collapse_proof(method)
        and s.get("feature_set", DEFAULT_FEATURES) == feature_set
        and "pair_accuracy" in s["selected"]["heldout"]
    ]
    if values:
      rows.append(
          {
              "method": method,
              "mean": float(np.mean(values)),
              "n": len(values),
              "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
          }
      )
  return sorted(rows, key=lambda r: -r["mean"])


def ranking_line(ranking: list[dict]) -> str:
  """The line weightings.py prints last: `heldout_ranking` and its best method."""
  if not ranking:
    return (
        f"Held-out ranking: no Ours-A {DEFAULT_FEATURES} run of a collapse-proof "
        "method with held-out results in this invocation."
    )
  return (
      "Collapse-proof methods by held-out pair accuracy of their selected evaluations "
      f"(Ours-A, {DEFAULT_FEATURES}, no labels): "
      + ", ".join(
          f"{r['method']} {100 * r['mean']:.2f}% ({r['n']} seed{'s' * (r['n'] > 1)})"
          for r in ranking
      )
      + f". Best: {ranking[0]['method']}"
  )


NOISE = ("short_positive", "long_positive", "right", "wrong", "tie", "norm_highlight", "norm_other")


def pair_noise(pools: dict[str, tuple] | None) -> dict[str, dict] | None:
  """How often a random (short, long) pair of each pool is right, wrong or a tie,
  and the mean feature L2 norm of its highlight and other clips."""
  out = {}
  for pool, ((x_short, short, *_), (x_long, long, *_)) in (pools or {}).items():
    ps, pl = float(short.mean()), float(long.mean())
    norm = np.linalg.norm(np.concatenate([x_short, x_long]), axis=1)
    positive = np.concatenate([short, long])
    out[pool] = {
        "short_clips": len(short),
        "long_clips": len(long),
        "short_positive": ps,
        "long_positive": pl,
        "right": ps * (1 - pl),
        "wrong": (1 - ps) * pl,
        "tie": ps * pl + (1 - ps) * (1 - pl),
        "norm_highlight": float(norm[positive].mean()),
        "norm_other": float(norm[~positive].mean()),
    }
  return out or None


def _stats(per_seed: list[dict[str, float]], columns: Sequence[str]) -> dict:
  """{column: {"mean", "std" (ddof=1; 0 for one value), "n", "per_seed"}}."""
  out = {}
  for col in columns:
    values = [s[col] for s in per_seed if col in s]
    if values:
      out[col] = {
          "mean": float(np.mean(values)),
          "n": len(values),
          "per_seed": values,
          "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
      }
  return out


def _row(per_group: Sequence[dict[str, float]], mean_ap: float | None = None) -> dict:
  """Per-group values merged over models, plus "avg" (mean over groups by default)."""
  merged = {k: v for groups in per_group for k, v in groups.items()}
  avg = float(np.mean(list(merged.values()))) if mean_ap is None else mean_ap
  return dict(merged, avg=avg)


def _of(
    summaries: dict, method: str, model: str, feature_set: str = DEFAULT_FEATURES
) -> list[dict]:
  return [
      s
      for s in summaries.values()
      if s["method"] == method
      and bool(s["domain"]) == (model == "S")
      and s.get("feature_set", DEFAULT_FEATURES) == feature_set
  ]


def _seed_row(found: list[dict], bench: str, model: str) -> dict:
  """One seed's row from its evaluations (one per Ours-S domain model)."""
  row = _row(
      [f["eval"][bench]["per_group"] for f in found],
      found[0]["eval"][bench]["mAP"] if model == "A" else None,
  )
  for key in HELDOUT:  # Ours-S: the mean over its domain models.
    held = [f["heldout"][key] for f in found if key in f["heldout"]]
    if held:
      row[key] = float(np.mean(held))
  return row


def make_tables(
    summaries: dict,
    baselines: dict,
    methods: Sequence[str],
    seeds: int,
    which: str = "last",
    feature_sets: Sequence[str] = (DEFAULT_FEATURES,),
) -> dict[str, dict]:
  """Per benchmark: {"columns": groups + ["avg"], "heldout_columns", "rows"}.

  A row is {label, model, method, feature_set, values}; values has the
  columns and the held-out ones (HELDOUT) of the same evaluations. `which`
  ("last" or "selected") picks each run's evaluation. An Ours-S seed merges
  its per-domain models: each contributes its domain's mAP, and its avg is
  their mean (as the paper averages LIM-S over domains). `baselines` is
  {feature set: {benchmark: {"random", "l2_norm"}}}; random scores do not
  depend on features (one row), the L2 norm does (one row per feature set).
  """
  tables, first = {}, baselines[feature_sets[0]]
  for bench, base in first.items():
    columns = list(base["random"][0]["per_group"]) + ["avg"]
    rows = []
    for fs in feature_sets:
      for model in ("A", "S"):
        for method in methods:
          per_seed = []
          for seed in range(seeds):
            found = [
                s[which]
                for s in _of(summaries, method, model, fs)
                if s["seed"] == seed and bench in s[which]["eval"]
            ]
            if found:
              per_seed.append(_seed_row(found, bench, model))
          if per_seed:
            rows.append(
                {
                    "label": label(method, fs),
                    "model": f"Ours-{model}",
                    "method": method,
                    "feature_set": fs,
                    "values": _stats(per_seed, columns + list(HELDOUT)),
                }
            )
    randoms = [_row([r["per_group"]], r["mAP"]) for r in base["random"]]
    seeds_text = f"{len(randoms)} seed{'s' if len(randoms) > 1 else ''}"
    rows.append(
        {
            "label": f"random scores ({seeds_text})",
            "model": "-",
            "method": "random",
            "feature_set": "-",
            "values": _stats(randoms, columns),
        }
    )
    for fs in feature_sets:
      norm = baselines[fs][bench]["l2_norm"]
      rows.append(
          {
              "label": "feature L2 norm" + ("" if fs == DEFAULT_FEATURES else f" [{fs}]"),
              "model": "-",
              "method": "l2_norm",
              "feature_set": fs,
              "values": _stats([_row([norm["per_group"]], norm["mAP"])], columns),
          }
      )
    tables[bench] = {"columns": columns, "heldout_columns": list(HELDOUT), "rows": rows}
  return tables


def feature_table(tables: dict[str, dict[str, dict]]) -> dict:
  """Ours-A and baseline avg per benchmark and selection, one row per method
  and feature set: {"columns": ["<bench> <which>", ...], "rows"}.

  Args:
    tables: {which: make_tables(..., which)}.
  """
  columns, rows = [], {}
  for bench in next(iter(tables.values())):
    for which, by_bench in tables.items():
      columns.append(f"{bench} {which}")
      for r in by_bench[bench]["rows"]:
        if r["model"] != "Ours-S":
          rows.setdefault(
              r["label"], {k: r[k] for k in ("label", "model", "method", "feature_set")}
          )
          rows[r["label"]].setdefault("values", {})[columns[-1]] = r["values"]["avg"]
  return {"columns": columns, "rows": list(rows.values())}


def _mean(values: Sequence[float | None]) -> float | None:
  """The mean of the values that are not None; None if there are none."""
  present = [v for v in values if v is not None]
  return float(np.mean(present)) if present else None


def diagnostics(
    summaries: dict, methods: Sequence[str], feature_sets: Sequence[str] = (DEFAULT_FEATURES,)
) -> list[dict]:
  """Last logged train metrics, the last held-out between-video share and the
  wall time, mean over seeds (and domains); None where no run logged it."""
  rows = []
  for fs in feature_sets:
    for model in ("A", "S"):
      for method in methods:
        runs = _of(summaries, method, model, fs)
        if runs:
          row = {k: _mean([r["train"].get(k) for r in runs]) for k in DIAGNOSTICS}
          row["heldout_between_share"] = _mean(
              [r["last"]["heldout"].get("between_share") for r in runs]
          )
          row.update(
              method=method,
              model=model,
              feature_set=fs,
              runs=len(runs),
              wall_s=_mean([r.get("wall_s") for r in runs]),
          )
          rows.append(row)
  return rows


def _cell(value: dict | None) -> str:
  if value is None:
    return "-"
  text = f"{100 * value['mean']:.1f}"
  return text + (f" ± {100 * value['std']:.1f}" if value["n"] > 1 else "")


def _wall_sum(summaries: dict) -> float:
  return float(sum(s.get("wall_s") or 0.0 for s in summaries.values()))


def _fmt(value: float | None, digits: int = 3) -> str:
  return "" if value is None else f"{value:.{digits}f}"


def _table(
    title: str, columns: Sequence[str], rows: list[dict], names: dict[str, str] | None = None
) -> list[str]:
  heads = [(names or {}).get(c, c) for c in columns]
  lines = [
      f"## {title}",
      "",
      "| method | model | " + " | ".join(heads) + " |",
      "|---|---|" + "---:|" * len(columns),
  ]
  lines += [
      f"| {r['label']} | {r['model']} | "
      + " | ".join(_cell(r["values"].get(c)) for c in columns)
      + " |"
      for r in rows
  ]
  return lines + [""]


def _settings(report: dict[str, Any]) -> list[str]:
  s = report["settings"]
  every = ", ".join(
      f"Ours-{m} every {s[f'eval_every_{m.lower()}']} steps"
      for m in ("A", "S")
      if s.get(f"steps_{m.lower()}")
  )
  return (
      [
          f"# Ablation on the {s['corpus']} corpus",
          "",
          f"`{report['command']}`",
          "",
          f"{report['date']}; {report['machine']}. This invocation: "
          f"{report['total_wall_s'] / 60:.1f} min, {s['num_trained']} runs trained and "
          f"{s['num_reused']} reused; the runs' own training wall times sum to "
          f"{_wall_sum(report['runs']) / 60:.1f} min.",
          "",
          f"Settings: seeds 0..{s['seeds'] - 1}; methods {', '.join(s['methods'])}; "
          f"feature sets {', '.join(s.get('feature_sets', [DEFAULT_FEATURES]))}; "
          + (
              f"Ours-A {s['steps_a']} steps of {s['groups_a']} groups x "
              f"{s['group_size']} pairs; "
              if s["steps_a"]
              else "Ours-A not run; "
          )
          + (
              f"Ours-S (one model per domain: {', '.join(s['domains'])}) {s['steps_s']} "
              f"steps of {s['groups_s']} groups x {s['group_size']} pairs. "
              if s["domains"]
              else "Ours-S not run. "
          )
          + f"Each run holds out corpus.holdout_fraction={s.get('holdout_fraction', 0)} "
          f"of its training videos and is evaluated {every or 'once'} and at the end: "
          "'last' tables use the final evaluation, 'selected' ones the evaluation with "
          "the best held-out pair accuracy (label-free: f(short) > f(long) on held-out "
          "training videos; random scores 50%); nothing is selected on an evaluation "
          "split. Runs without held-out videos count their last evaluation as selected. "
          "Cells: mean ± std (ddof=1) over seeds; Ours-S avg = mean of its per-domain "
          "models. Between share: the share of f's score variance on held-out videos "
          "that is a per-video offset.",
          "",
          "| method | weighting | other config keys on the base config |",
          "|---|---|---|",
      ]
      + [
          f"| {m} ({METHODS[m]}) | {weighting(m)} | "
          + (
              ", ".join(
                  f"{k}={'x' + format(v.factor, 'g') if isinstance(v, Scale) else v!r}"
                  for k, v in RECIPES[m][1].items()
                  if k != "train.weighting"
              )
              or "-"
          )
          + " |"
          for m in s["methods"]
      ]
      + [""]
  )


def markdown(report: dict[str, Any]) -> str:
  """ablation.md: settings and recipes, per benchmark a table of the last and
  of the selected evaluations, feature sets, the held-out ranking,
  diagnostics, pair noise."""
  lines = _settings(report)
  for which, key in (("last", "tables"), ("selected", "tables_selected")):
    for bench, table in report.get(key, {}).items():
      lines += _table(
          f"{TITLES[bench]}: {SELECTIONS[which]}",
          table["columns"] + table.get("heldout_columns", []),
          table["rows"],
          {k: f"{v} (%)" for k, v in HELDOUT.items()},
      )
  features = report.get("feature_table")
  if features and features["rows"]:
    lines += _table(
        "Ours-A avg mAP (%) per feature set, last and selected evaluations",
        features["columns"],
        features["rows"],
    )
  ranking = report.get("heldout_ranking")
  if ranking:
    lines += [
        "## Collapse-proof variants by held-out pair accuracy (Ours-A, "
        f"{DEFAULT_FEATURES}, selected evaluations; no labels)",
        "",
        "| rank | method | held-out pair acc (%) | seeds |",
        "|---:|---|---:|---:|",
    ]
    lines += [
        f"| {k + 1} | {r['method']} | {_cell(r)} | {r['n']} |" for k, r in enumerate(ranking)
    ] + [""]
  heads = list(DIAGNOSTICS) + ["heldout_between_share"]
  lines += [
      "## Training diagnostics (last log interval; held-out between share of the last "
      "evaluation; mean over seeds and domains; blank: not logged by the run)",
      "",
      "| method | model | runs | " + " | ".join(heads) + " | wall s / run |",
      "|---|---|---:|" + "---:|" * (len(heads) + 1),
  ]
  lines += [
      f"| {label(r['method'], r.get('feature_set', DEFAULT_FEATURES))} | "
      f"Ours-{r['model']} | {r['runs']} | "
      + " | ".join(_fmt(r[k]) for k in heads)
      + f" | {_fmt(r['wall_s'], 0)} |"
      for r in report["diagnostics"]
  ]
  if report.get("pair_noise"):
    lines += [
        "",
        "## Training-pair noise (YTH train-split labels, which no run sees)",
        "",
        "Random (short clip, long clip) pairs of the training table (the pool "
        "'all' is what Ours-A samples from; a domain's is Ours-S's): right = short "
        "clip a highlight and long clip not, wrong = the reverse, tie = same label; "
        "norm_*: mean feature L2 norm of the pool's highlight / other clips.",
        "",
        "| pool | short clips | long clips | " + " | ".join(NOISE) + " |",
        "|---|---:|---:|" + "---:|" * len(NOISE),
    ]
    lines += [
        f"| {d} | {n['short_clips']} | {n['long_clips']} | "
        + " | ".join(f"{n[k]:.3f}" if k in n else "-" for k in NOISE)
        + " |"
        for d, n in report["pair_noise"].items()
    ]
  return "\n".join(lines) + "\n"


def plot(tables: dict, path: str) -> None:
  """Grouped bars, one group per domain/category and avg, std error bars."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(13, 4.2 * len(tables)), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  keys = list(
      dict.fromkeys((r["label"], r["model"]) for t in tables.values() for r in t["rows"])
  )  # One colour per row in every panel.
  for i, (bench, table) in enumerate(tables.items()):
    ax = fig.add_subplot(len(tables), 1, i + 1)
    cols, rows = table["columns"], table["rows"]
    width = 0.85 / len(rows)
    for j, row in enumerate(rows):
      vals = [row["values"].get(c, {"mean": np.nan, "std": 0.0}) for c in cols]
      ax.bar(
          np.arange(len(cols)) + (j - (len(rows) - 1) / 2) * width,
          [100 * v["mean"] for v in vals],
          width,
          yerr=[100 * v["std"] for v in vals],
          capsize=2,
          color=f"C{keys.index((row['label'], row['model'])) % 10}",
          label=row["label"] + ("" if row["model"] == "-" else f" {row['model']}"),
      )
    ax.set_xticks(np.arange(len(cols)), cols)
    ax.set_ylim(0, 118)  # Room for the legend above 100.
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("mAP (%)")
    ax.set_title(TITLES[bench])
    ax.legend(fontsize=7, ncol=4, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, format="png")
