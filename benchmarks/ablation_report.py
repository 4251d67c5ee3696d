"""Tables, markdown and the plot of benchmarks/ablate.py, from its run summaries.

A summary is {"method", "domain" ("" for Ours-A), "seed", "eval": {benchmark:
{"mAP", "per_group"}}, "train": {diagnostic: last logged value}, "wall_s"}.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

METHODS = {"ranking_d": "Ranking-D", "ranking_em": "Ranking-EM", "joint": "Joint (f+h)"}
TITLES = {"youtube_highlights": "YouTube Highlights val mAP (%)",
          "tvsum": "TVSum val top-5 mAP (%), Ours-A only",
          "corpus": "corpus val mAP (%)"}
DIAGNOSTICS = ("pair_accuracy", "max_weight", "loss", "pair_loss_unweighted")
NOISE = ("short_positive", "long_positive", "right", "wrong", "tie", "norm_highlight",
         "norm_other")


def pair_noise(pools: dict[str, tuple] | None) -> dict[str, dict] | None:
  """How often a random (short, long) pair of each pool is right, wrong or a tie,
  and the mean feature L2 norm of its highlight and other clips."""
  out = {}
  for pool, ((x_short, short), (x_long, long)) in (pools or {}).items():
    ps, pl = float(short.mean()), float(long.mean())
    norm = np.linalg.norm(np.concatenate([x_short, x_long]), axis=1)
    positive = np.concatenate([short, long])
    out[pool] = {"short_clips": len(short), "long_clips": len(long),
                 "short_positive": ps, "long_positive": pl, "right": ps * (1 - pl),
                 "wrong": (1 - ps) * pl, "tie": ps * pl + (1 - ps) * (1 - pl),
                 "norm_highlight": float(norm[positive].mean()),
                 "norm_other": float(norm[~positive].mean())}
  return out or None


def _stats(per_seed: list[dict[str, float]], columns: Sequence[str]) -> dict:
  """{column: {"mean", "std" (ddof=1; 0 for one value), "n", "per_seed"}}."""
  out = {}
  for col in columns:
    values = [s[col] for s in per_seed if col in s]
    if values:
      out[col] = {"mean": float(np.mean(values)), "n": len(values), "per_seed": values,
                  "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
  return out


def _row(per_group: Sequence[dict[str, float]], mean_ap: float | None = None) -> dict:
  """Per-group values merged over models, plus "avg" (mean over groups by default)."""
  merged = {k: v for groups in per_group for k, v in groups.items()}
  avg = float(np.mean(list(merged.values()))) if mean_ap is None else mean_ap
  return dict(merged, avg=avg)


def _of(summaries: dict, method: str, model: str) -> list[dict]:
  return [s for s in summaries.values()
          if s["method"] == method and bool(s["domain"]) == (model == "S")]


def make_tables(summaries: dict, baselines: dict, methods: Sequence[str],
                seeds: int) -> dict[str, dict]:
  """Per benchmark: {"columns": groups + ["avg"], "rows": [{label, model, values}]}.

  An Ours-S seed merges its per-domain models: each contributes its domain's
  mAP, and its avg is their mean (as the paper averages LIM-S over domains).
  """
  tables = {}
  for bench, base in baselines.items():
    columns = list(base["random"][0]["per_group"]) + ["avg"]
    rows = []
    for model in ("A", "S"):
      for method in methods:
        per_seed = []
        for seed in range(seeds):
          found = [s["eval"][bench] for s in _of(summaries, method, model)
                   if s["seed"] == seed and bench in s["eval"]]
          if found:
            per_seed.append(_row([f["per_group"] for f in found],
                                 found[0]["mAP"] if model == "A" else None))
        if per_seed:
          rows.append({"label": METHODS[method], "model": f"Ours-{model}",
                       "values": _stats(per_seed, columns)})
    randoms = [_row([r["per_group"]], r["mAP"]) for r in base["random"]]
    seeds_text = f"{len(randoms)} seed{'s' if len(randoms) > 1 else ''}"
    rows.append({"label": f"random scores ({seeds_text})", "model": "-",
                 "values": _stats(randoms, columns)})
    norm = base["l2_norm"]
    rows.append({"label": "feature L2 norm", "model": "-",
                 "values": _stats([_row([norm["per_group"]], norm["mAP"])], columns)})
    tables[bench] = {"columns": columns, "rows": rows}
  return tables


def diagnostics(summaries: dict, methods: Sequence[str]) -> list[dict]:
  """Last logged train metrics and wall time, mean over seeds (and domains)."""
  rows = []
  for model in ("A", "S"):
    for method in methods:
      runs = _of(summaries, method, model)
      if runs:
        row = {k: float(np.nanmean([np.nan if r["train"].get(k) is None else r["train"][k]
                                    for r in runs])) for k in DIAGNOSTICS}
        walls = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
        row.update(method=method, model=model, runs=len(runs),
                   wall_s=float(np.mean(walls)) if walls else float("nan"))
        rows.append(row)
  return rows


def _cell(value: dict | None) -> str:
  if value is None:
    return "-"
  text = f"{100 * value['mean']:.1f}"
  return text + (f" ± {100 * value['std']:.1f}" if value["n"] > 1 else "")


def _wall_sum(summaries: dict) -> float:
  return float(sum(s.get("wall_s") or 0.0 for s in summaries.values()))


def markdown(report: dict[str, Any]) -> str:
  """ablation.md: settings, one table per benchmark, diagnostics, pair noise."""
  s = report["settings"]
  lines = [f"# Ablation on the {s['corpus']} corpus", "", f"`{report['command']}`", "",
           f"{report['date']}; {report['machine']}. This invocation: "
           f"{report['total_wall_s'] / 60:.1f} min, {s['num_trained']} runs trained and "
           f"{s['num_reused']} reused; the runs' own training wall times sum to "
           f"{_wall_sum(report['runs']) / 60:.1f} min.", "",
           f"Settings: seeds 0..{s['seeds'] - 1}; methods {', '.join(s['methods'])}; "
           + (f"Ours-A {s['steps_a']} steps of {s['groups_a']} groups x "
              f"{s['group_size']} pairs; " if s["steps_a"] else "Ours-A not run; ")
           + (f"Ours-S (one model per domain: {', '.join(s['domains'])}) {s['steps_s']} "
              f"steps of {s['groups_s']} groups x {s['group_size']} pairs. "
              if s["domains"] else "Ours-S not run. ")
           + "Evaluated once, after the last step. Cells: mean ± std (ddof=1) over "
           "seeds; Ours-S avg = mean of its per-domain models.", ""]
  for bench, table in report["tables"].items():
    cols = table["columns"]
    lines += [f"## {TITLES[bench]}", "", "| method | model | " + " | ".join(cols) + " |",
              "|---|---|" + "---:|" * len(cols)]
    lines += [f"| {r['label']} | {r['model']} | " + " | ".join(
        _cell(r["values"].get(c)) for c in cols) + " |" for r in table["rows"]]
    lines.append("")
  lines += ["## Training diagnostics (last log interval; mean over seeds and domains)", "",
            "| method | model | runs | " + " | ".join(DIAGNOSTICS) + " | wall s / run |",
            "|---|---|---:|" + "---:|" * (len(DIAGNOSTICS) + 1)]
  lines += [f"| {METHODS[r['method']]} | Ours-{r['model']} | {r['runs']} | "
            + " | ".join(f"{r[k]:.3f}" for k in DIAGNOSTICS) + f" | {r['wall_s']:.0f} |"
            for r in report["diagnostics"]]
  if report.get("pair_noise"):
    lines += ["", "## Training-pair noise (YTH train-split labels, which no run sees)", "",
              "Random (short clip, long clip) pairs of the training table (the pool "
              "'all' is what Ours-A samples from; a domain's is Ours-S's): right = short "
              "clip a highlight and long clip not, wrong = the reverse, tie = same label; "
              "norm_*: mean feature L2 norm of the pool's highlight / other clips.",
              "", "| pool | short clips | long clips | " + " | ".join(NOISE) + " |",
              "|---|---:|---:|" + "---:|" * len(NOISE)]
    lines += [f"| {d} | {n['short_clips']} | {n['long_clips']} | "
              + " | ".join(f"{n[k]:.3f}" if k in n else "-" for k in NOISE) + " |"
              for d, n in report["pair_noise"].items()]
  return "\n".join(lines) + "\n"


def plot(tables: dict, path: str) -> None:
  """Grouped bars, one group per domain/category and avg, std error bars."""
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(13, 4.2 * len(tables)), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  keys = list(dict.fromkeys((r["label"], r["model"]) for t in tables.values()
                            for r in t["rows"]))  # One colour per row in every panel.
  for i, (bench, table) in enumerate(tables.items()):
    ax = fig.add_subplot(len(tables), 1, i + 1)
    cols, rows = table["columns"], table["rows"]
    width = 0.85 / len(rows)
    for j, row in enumerate(rows):
      vals = [row["values"].get(c, {"mean": np.nan, "std": 0.0}) for c in cols]
      ax.bar(np.arange(len(cols)) + (j - (len(rows) - 1) / 2) * width,
             [100 * v["mean"] for v in vals], width, yerr=[100 * v["std"] for v in vals],
             capsize=2, color=f"C{keys.index((row['label'], row['model'])) % 10}",
             label=row["label"] + ("" if row["model"] == "-" else f" {row['model']}"))
    ax.set_xticks(np.arange(len(cols)), cols)
    ax.set_ylim(0, 118)  # Room for the legend above 100.
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("mAP (%)")
    ax.set_title(TITLES[bench])
    ax.legend(fontsize=7, ncol=4, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, format="png")
