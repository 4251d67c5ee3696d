"""Reports of evaluations for people: markdown tables and bar charts, and their files.

Nothing here computes a metric; every function takes what hl_jax.eval.protocols
or a trainer's evaluation returned. Figures use a Figure with an Agg canvas
directly (`figure`): no pyplot, no global backend switch.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping


def comparison_table(title: str, model: Mapping[str, Any], random: Mapping[str, Any]) -> str:
  """A per-group table of model vs random mAP, in percent."""
  lines = [f"### {title}", "", "| group | model mAP | random mAP |", "|---|---:|---:|"]
  for group, value in model["per_group"].items():
    lines.append(
        f"| {group} | {100 * value:.2f} | "
        f"{100 * random['per_group'].get(group, float('nan')):.2f} |"
    )
  lines.append(
      f"| **average** | **{100 * model['mAP']:.2f}** | " f"**{100 * random['mAP']:.2f}** |"
  )
  return "\n".join(lines) + "\n"


def _result_title(result: Mapping[str, Any]) -> str:
  title = f"{result['protocol']} {result['split']}"
  if "seeds" in result:
    title += f", random scores averaged over {result['seeds']} seeds"
  return title


def result_table(result: Mapping[str, Any]) -> str:
  """A per-group table of one `evaluation.evaluate` result, in percent."""
  lines = [
      f"## {_result_title(result)}",
      "",
      f"Protocol: {result['definition']}.",
      "",
      "| group | videos | mAP (%) | HIT@1 (%) |",
      "|---|---:|---:|---:|",
  ]
  for group, value in result["per_group"].items():
    lines.append(
        f"| {group} | {result['videos_per_group'][group]} | {100 * value:.2f} | "
        f"{100 * result['per_group_hit1'][group]:.2f} |"
    )
  lines.append(
      f"| **average** | {result['num_videos']} | **{100 * result['mAP']:.2f}** | "
      f"**{100 * result['hit1']:.2f}** |"
  )
  return "\n".join(lines) + "\n"


def figure(width: float, height: float) -> Any:
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(width, height), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  return fig


def bar_chart(result: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
  """A PNG of per-group mAP with the headline as a dashed line."""
  groups = list(result["per_group"])
  values = [100 * result["per_group"][g] for g in groups]
  fig = figure(max(4.0, 0.8 * len(groups) + 2), 3.5)
  ax = fig.add_subplot()
  ax.bar(groups, values, color="tab:blue")
  ax.axhline(
      100 * result["mAP"],
      color="tab:red",
      linestyle="--",
      label=f"average {100 * result['mAP']:.1f}",
  )
  ax.set_ylim(0, 100)
  ax.set_ylabel("mAP (%)")
  ax.set_title(_result_title(result))
  ax.tick_params(axis="x", labelrotation=30)
  ax.legend(loc="upper right")
  fig.tight_layout()
  fig.savefig(path, format="png")


def write_report(
    result: Mapping[str, Any], output_json_path: str | os.PathLike[str]
) -> dict[str, pathlib.Path]:
  """Writes one result as JSON, a markdown table (.md) and a bar chart (.png).

  Args:
    result: output of `evaluation.evaluate` or `evaluation.random_baseline`.
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
  paths["md"].write_text(result_table(result))
  bar_chart(result, paths["png"])
  return paths


def heldout_table(title: str, held: Mapping[str, Any]) -> str:
  """A per-domain table of `heldout.evaluate`'s result (no random column).

  Random scores have a pair accuracy of 50% by construction; the table says so.
  """
  lines = [
      f"### {title}",
      "",
      f"Label-free: {held['definition']}; random scores: 50.00.",
      "",
      "| domain | videos (short/long) | pair accuracy (%) | hinge | between share |",
      "|---|---:|---:|---:|---:|",
  ]
  rows = list(held["per_group"].items()) + [("**average**", held), ("pooled", held["pooled"])]
  for label, m in rows:
    counts = held["pooled"] if m is held else m  # Video counts of the row.
    pair = f"{100 * m['pair_accuracy']:.2f}" if "pair_accuracy" in m else "-"
    hinge = f"{m['hinge']:.4f}" if "hinge" in m else "-"
    share = f"{m['between_share']:.3f}"
    if m is held:  # The headline row.
      pair, hinge, share = (f"**{v}**" for v in (pair, hinge, share))
    lines.append(
        f"| {label} | {counts['num_videos']} ({counts['num_short_videos']}/"
        f"{counts['num_long_videos']}) | {pair} | {hinge} | {share} |"
    )
  return "\n".join(lines) + "\n"


def history_table(history: list[Mapping[str, Any]], selected_step: int | None) -> str:
  """The headline of every evaluation, in percent, marking the selected one.

  mAP of each labelled evaluator, pair accuracy of the held-out one.
  """
  names = list(dict.fromkeys(n for e in history for n, r in e.items() if isinstance(r, Mapping)))
  heldout = {n for e in history for n, r in e.items() if isinstance(r, Mapping) and "heldout" in r}
  heads = [f"{n} pair acc" if n in heldout else f"{n} mAP" for n in names]
  lines = [
      "## Evaluations",
      "",
      "| step | " + " | ".join(heads) + " |",
      "|---:|" + "---:|" * len(names),
  ]
  for entry in history:
    values = [
        entry[n]["heldout"]["pair_accuracy"]
        if "heldout" in entry.get(n, {})
        else entry.get(n, {}).get("model", {}).get("mAP", float("nan"))
        for n in names
    ]
    mark = " (selected)" if entry["step"] == selected_step else ""
    lines.append(
        f"| {entry['step']}{mark} | " + " | ".join(f"{100 * v:.2f}" for v in values) + " |"
    )
  return "\n".join(lines) + "\n"


def _evaluation_tables(results: Mapping[str, Any]) -> list[str]:
  """One table per evaluator of one evaluation ({"step", name: results})."""
  tables = []
  for name, result in results.items():
    if name in ("history", "selected") or not isinstance(result, Mapping):
      continue
    if "model" in result:
      tables.append(comparison_table(result["title"], result["model"], result["random"]))
    elif "heldout" in result:
      tables.append(heldout_table(result["title"], result["heldout"]))
  return tables


def results_markdown(title: str, results: Mapping[str, Any]) -> str:
  """A run's results as markdown, headed "Results: {title}".

  One table per evaluator (model vs random, or the held-out metrics), then,
  when present, the evaluation history and the selected step's tables.
  """
  text = [f"# Results: {title}, step {results['step']}", ""]
  text += _evaluation_tables(results)
  selected = results.get("selected")
  if results.get("history"):
    text.append(history_table(results["history"], selected and selected["step"]))
  if selected:
    text += [
        f"## Selected: step {selected['step']} (by {selected['selected_by']}: "
        "the highest, earliest on ties)",
        "",
    ]
    text += _evaluation_tables(selected)
  return "\n".join(text)
