"""A TaoHighlight checkpoint as a scorer of whole videos (each scored as one sequence)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from hl_jax.core import families
from hl_jax.core import parallel
from hl_jax.data import benchmarks
from hl_jax.taohighlight import inputs
from hl_jax.taohighlight import trainer


def load_scorer(restored: families.Restored) -> families.Scorer:
  """TaoHighlight of a restored checkpoint (`families.load_scorer` calls this).

  Its `score_videos` maps videos (.video_id, .features [T_i, D] of the run's
  feature_set, optional .text: title tokens) to their [T_i] saliency logits,
  all padded to one shape (one compile), on one device. It has no per-segment
  scorer: a video is scored as a sequence.
  """
  config, record, state = restored.config, restored.record, restored.state
  mesh = parallel.make_mesh(jax.devices()[:1])
  predict_fn = trainer.steps_of(config, mesh).predict

  def score_videos(videos: Sequence[Any]) -> list[np.ndarray]:
    weak = inputs.weak_channel(config.weak.workdir, videos) if config.weak.workdir else None
    examples = inputs.make_examples(videos, config, weak)
    scores, _ = trainer.predict_examples(
        predict_fn, state["params"], examples, 1, *inputs.padded_lengths(examples), mesh
    )
    return [s.astype(np.float32) for s in scores]

  dim = record.get("feature_dim") or benchmarks.FEATURE_DIMS[config.feature_set]
  return families.Scorer(
      family="taohighlight",
      step=int(state["step"]),
      feature_dim=int(dim),
      score_videos=score_videos,
      score_segments=None,
      record=dict(record),
  )
