"""Scores of whole videos from any family's training workdir (`families.load_scorer`).

A model scores features of the space it was trained in (features_file's
feature spaces): `check_feature_space` refuses features of another space in
one line, unless the caller overrides it, and returns the record a
prediction's JSON keeps either way.
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections
import numpy as np

from hl_jax.core import families
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import features_file

# The flag by which a program lets a model score features of another space.
OVERRIDE_FLAG = "--allow_feature_space_mismatch"
# Which extractor gives features of a space (for the refusal's hint).
SPACE_EXTRACTORS = {
    features_file.VIDEO_FEATURES_RGB_SPACE: (
        "--extractor=i3d_imagenet with DeepMind's rgb_imagenet weights"
    ),
    "hl_jax/i3d_rgb_scratch": "--extractor=i3d",
    "hl_jax/untrained seed 0": "--extractor=untrained",
}


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


def implied_feature_space(config: ml_collections.ConfigDict) -> str:
  """The feature space a training config implies (workdirs without a recorded one).

  Trained on a corpus (config.corpus): the corpus's
  (`features_file.corpus_feature_space`: the staged space for the
  benchmarks' own videos, "synthetic", a manifest corpus's files' space);
  else on a benchmark's features (config.feature_set): the staged space.
  """
  corpus = config.get("corpus")
  if corpus is not None and corpus.get("builder_config"):
    return features_file.corpus_feature_space(
        corpus.builder_config, corpus.get("manual_dir") or None
    )
  if config.get("feature_set"):
    return features_file.staged_feature_space(config.feature_set)
  return features_file.UNKNOWN_SPACE


def model_feature_space(workdir: str) -> str:
  """The feature space a workdir's model was trained in: its scorer record's
  "feature_space", else what its config implies (`implied_feature_space`)."""
  config, record = workdir_lib.load_config(workdir)
  return record.get("feature_space") or implied_feature_space(config)


def check_feature_space(
    workdir: str, feature_space: str, *, source: str, override: bool = False
) -> dict[str, Any]:
  """Refuses to score features of one space with a model trained in another.

  Args:
    workdir: the model's training workdir.
    feature_space: the space of the features to score (an extractor's
      `feature_space`, `features_file.read_feature_space` of a file,
      `features_file.staged_feature_space` of a benchmark feature set).
    source: what the features are, for the message (e.g. "--video=clip.mp4").
    override: score them anyway (`OVERRIDE_FLAG`); the record says so.

  Returns:
    {"model": the model's space, "features": feature_space, "status":
     "same" | "unchecked" (one space unknown, or a model trained on
     synthetic features, which no extractor's match) | "override", "note":
     why, for people}: what the prediction's JSON records.

  Raises:
    ValueError: one line, when the spaces differ and `override` is False.
  """
  model = model_feature_space(workdir)
  record = {"model": model, "features": feature_space, "status": "same", "note": ""}
  if model == feature_space:
    return record
  if features_file.UNKNOWN_SPACE in (model, feature_space):
    which = "the model's" if model == features_file.UNKNOWN_SPACE else "the features'"
    return {**record, "status": "unchecked", "note": f"{which} feature space is unknown"}
  if model == features_file.SYNTHETIC_SPACE:
    note = "a model trained on synthetic features: plumbing only, no features match it"
    return {**record, "status": "unchecked", "note": note}
  if override:
    note = f"scored despite the mismatch ({OVERRIDE_FLAG}): the scores may mean little"
    return {**record, "status": "override", "note": note}
  hint = SPACE_EXTRACTORS.get(model)
  raise ValueError(
      f"{source} has {feature_space} features but the model in {workdir} was trained on "
      f"{model} features; "
      + (f"extract with {hint}, " if hint else "extract features of that space, ")
      + f"or pass {OVERRIDE_FLAG} to score them anyway"
  )


def clip_grid(workdir: str) -> str:
  """The clips a workdir's model was trained on, as a clip grid (video.clip_stacks.GRIDS).

  "youtube_highlights" (100-frame windows at stride 50) for a model trained on
  YouTube Highlights (TaoHighlight's benchmark, or a Less-is-More corpus of its
  videos), else "tvsum" (2-s shots, like every other extractor's segments): what
  `--extractor=i3d_imagenet` should cut new videos into for this model.
  """
  config, record = workdir_lib.load_config(workdir)
  corpus = config.get("corpus")
  trained_on = corpus.get("builder_config", "") if corpus is not None else ""
  trained_on = trained_on or record.get("benchmark") or config.get("benchmark") or ""
  return "youtube_highlights" if trained_on.startswith("youtube_highlights") else "tvsum"
