"""A video's score timeline as a PNG: the scores over time, the moments shaded and ranked."""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from hl_jax.eval import reports


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
  fig = reports.figure(10, 2.8)
  ax = fig.add_subplot()
  ax.plot(centers, record["scores"], color="tab:blue", marker=".", linewidth=1)
  for rank, moment in enumerate(record["moments"], start=1):
    ax.axvspan(moment["start_s"], moment["end_s"], color="tab:orange", alpha=0.3)
    # Alternate heights so the labels of neighbouring moments do not collide.
    ax.text(
        (moment["start_s"] + moment["end_s"]) / 2,
        1.0 + 0.07 * (rank % 2),
        str(rank),
        transform=ax.get_xaxis_transform(),
        ha="center",
        va="bottom",
        fontsize=8,
    )
  ax.set_xlim(times[:, 0].min(), times[:, 1].max())
  ax.set_xlabel("time (s)")
  ax.set_ylabel("score f(x)")
  ax.set_title(f"{record['video_id']}: {len(record['moments'])} moments, by rank", pad=20)
  fig.tight_layout()
  fig.savefig(path, format="png")
