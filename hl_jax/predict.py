"""Scores from a trained workdir: the model is rebuilt from its saved config.

A training run writes `<workdir>/config.json`; with it and the newest
checkpoint, any features of the same dimension can be scored by f.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from hl_jax import evaluation
from hl_jax import models


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a training workdir")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_scorer(workdir: str) -> tuple[evaluation.ScoreFn, int, int]:
  """f of the newest checkpoint in `workdir`.

  Returns:
    (score_fn mapping [S, D] features to [S] scores, D, checkpoint step).
  """
  config = load_config(workdir)
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  manager = ocp.CheckpointManager(directory, item_names=("state", "input"))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {directory}")
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))
  params_f = jax.tree.map(np.asarray, restored["state"]["params"]["f"])
  scorer, _ = models.build(config)
  feature_dim = int(params_f["mlp"]["Dense_0"]["kernel"].shape[0])
  score_fn = evaluation.make_score_fn(scorer, params_f,
                                      chunk=config.eval.chunk_segments)
  return score_fn, feature_dim, step


def scores_from_workdir(workdir: str, videos: Sequence[Any]) -> dict[str, np.ndarray]:
  """{video_id: [T] scores} for objects with .video_id and .features [T, D]."""
  score_fn, feature_dim, _ = load_scorer(workdir)
  for video in videos:
    if video.features.shape[1] != feature_dim:
      raise ValueError(
          f"video {video.video_id} has {video.features.shape[1]}-d features but the "
          f"model in {workdir} takes {feature_dim}-d; pick the matching feature set")
  scores = evaluation.score_videos(score_fn, [v.features for v in videos])
  return {v.video_id: s for v, s in zip(videos, scores)}
