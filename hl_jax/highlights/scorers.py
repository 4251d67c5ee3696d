"""Scores of whole videos from any family's training workdir (`families.load_scorer`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hl_jax.core import families
from hl_jax.core import workdir as workdir_lib


def check_dims(videos: Sequence[Any], scorer: families.Scorer, workdir: str) -> None:
  """Raises a one-line ValueError for a video whose features the scorer cannot take."""
  for video in videos:
    if video.features.ndim != 2:
      raise ValueError(
          f"video {video.video_id} has features of shape "
          f"{video.features.shape}, expected [T, {scorer.feature_dim}]"
      )
    if video.features.shape[1] != scorer.feature_dim:
      raise ValueError(
          f"video {video.video_id} has {video.features.shape[1]}-d features but the "
          f"model in {workdir} takes {scorer.feature_dim}-d; pick the matching feature set"
      )


def scores_from_workdir(workdir: str, videos: Sequence[Any]) -> dict[str, np.ndarray]:
  """{video_id: [T] scores} for objects with .video_id and .features [T, D] (.text)."""
  scorer = families.load_scorer(workdir)
  check_dims(videos, scorer, workdir)
  return {v.video_id: s for v, s in zip(videos, scorer.score_videos(videos))}


def feature_set(workdir: str) -> str:
  """The benchmark feature set a workdir's model was trained or evaluated with."""
  config, record = workdir_lib.load_config(workdir)
  return record.get("feature_set") or config.get("feature_set") or config.eval.feature_set
