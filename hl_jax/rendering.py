"""Rendering for people and programs: markdown tables, charts, timelines, results files.

Nothing here computes a metric; every function takes what `hl_jax.evaluation`
or `hl_jax.predict` returned. Figures use a Figure with an Agg canvas directly:
no pyplot, no global backend switch.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

import numpy as np


def comparison_table(title: str, model: Mapping[str, Any], random: Mapping[str, Any]) -> str:
  """A per-group table of model vs random mAP, in percent."""
  lines = [f"### {title}", "", "| group | model mAP | random mAP |", "|---|---:|---:|"]
  for group, value in model["per_group"].items():
    lines.append(f"| {group} | {100 * value:.2f} | "
                 f"{100 * random['per_group'].get(group, float('nan')):.2f} |")
  lines.append(f"| **average** | **{100 * model['mAP']:.2f}** | "
               f"**{100 * random['mAP']:.2f}** |")
  return "\n".join(lines) + "\n"


def _result_title(result: Mapping[str, Any]) -> str:
  title = f"{result['protocol']} {result['split']}"
  if "seeds" in result:
    title += f", random scores averaged over {result['seeds']} seeds"
  return title


def result_table(result: Mapping[str, Any]) -> str:
  """A per-group table of one `evaluation.evaluate` result, in percent."""
  lines = [f"## {_result_title(result)}", "", f"Protocol: {result['definition']}.", "",
           "| group | videos | mAP (%) | HIT@1 (%) |", "|---|---:|---:|---:|"]
  for group, value in result["per_group"].items():
    lines.append(f"| {group} | {result['videos_per_group'][group]} | {100 * value:.2f} | "
                 f"{100 * result['per_group_hit1'][group]:.2f} |")
  lines.append(f"| **average** | {result['num_videos']} | **{100 * result['mAP']:.2f}** | "
               f"**{100 * result['hit1']:.2f}** |")
  return "\n".join(lines) + "\n"


def _figure(width: float, height: float) -> Any:
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(width, height), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  return fig


def bar_chart(result: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
  """A PNG of per-group mAP with the headline as a dashed line."""
  groups = list(result["per_group"])
  values = [100 * result["per_group"][g] for g in groups]
  fig = _figure(max(4.0, 0.8 * len(groups) + 2), 3.5)
  ax = fig.add_subplot()
  ax.bar(groups, values, color="tab:blue")
  ax.axhline(100 * result["mAP"], color="tab:red", linestyle="--",
             label=f"average {100 * result['mAP']:.1f}")
  ax.set_ylim(0, 100)
  ax.set_ylabel("mAP (%)")
  ax.set_title(_result_title(result))
  ax.tick_params(axis="x", labelrotation=30)
  ax.legend(loc="upper right")
  fig.tight_layout()
  fig.savefig(path, format="png")


def write_report(result: Mapping[str, Any],
                 output_json_path: str | os.PathLike[str]) -> dict[str, pathlib.Path]:
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


def results_markdown(variant: str, results: Mapping[str, Any]) -> str:
  """The trainer's results: one model-vs-random table per evaluator."""
  text = [f"# Results: variant {variant}, step {results['step']}", ""]
  for result in results.values():
    if isinstance(result, Mapping) and "model" in result:
      text.append(comparison_table(result["title"], result["model"], result["random"]))
  return "\n".join(text)


def write_results(workdir: str, variant: str, results: Mapping[str, Any]) -> str:
  """Writes <workdir>/results.json (programs) and results.md (people).

  Returns:
    The markdown text.
  """
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  text = results_markdown(variant, results)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(text)
  return text


def timeline(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
  """A PNG of one video's scores over time with its moments shaded and ranked.

  Args:
    path: the PNG to write.
    record: one video of `predict.predict`'s output ("video_id",
      "segments_s" [[start, end]], "scores", "moments").
  """
  times = np.asarray(record["segments_s"])
  if not np.isfinite(times).all():
    raise ValueError(f"video {record['video_id']}: non-finite segment times")
  centers = times.mean(axis=1)
  fig = _figure(10, 2.8)
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
  ax.set_title(f"{record['video_id']}: {len(record['moments'])} moments, by rank", pad=20)
  fig.tight_layout()
  fig.savefig(path, format="png")
