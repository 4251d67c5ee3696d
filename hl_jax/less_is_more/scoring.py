"""f as a scorer: per-segment scores from parameters, or from a training workdir.

scorer = families.load_scorer(workdir)       # a Less-is-More workdir comes here
scores = scorer.score_segments(features)     # [S, D] -> [S]
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax.core import families
from hl_jax.data import benchmarks
from hl_jax.eval import evaluators
from hl_jax.less_is_more import models


def make_score_fn(scorer: Any, params_f: Any, *, chunk: int) -> evaluators.ScoreFn:
  """A host function mapping [S, D] features to [S] float32 scores with f.

  Scoring is per segment, so every segment is scored exactly once in
  fixed-size chunks by one compiled function (the last chunk is padded and
  the padding dropped).
  """
  apply = jax.jit(lambda p, x: scorer.apply({"params": p}, x, train=False))

  def score(features: np.ndarray) -> np.ndarray:
    num = len(features)
    padded = -(-max(num, 1) // chunk) * chunk
    x = np.zeros((padded, features.shape[1]), np.float32)
    x[:num] = features
    outs = [apply(params_f, x[i : i + chunk]) for i in range(0, padded, chunk)]
    return np.asarray(jnp.concatenate(outs))[:num]

  return score


def feature_dim(config: ml_collections.ConfigDict, record: Mapping[str, Any], params_f: Any) -> int:
  """D, the width of the features f scores: the workdir's record says it.

  Workdirs written before config.json held the record: the evaluated
  benchmarks' feature set when there is one, else the widest column f reads
  (its first layer's input, or the end of its last stream).
  """
  if record.get("feature_dim"):
    return int(record["feature_dim"])
  if config.eval.get("benchmarks"):
    return benchmarks.FEATURE_DIMS[config.eval.feature_set]
  streams = config.model.get("streams") or ()
  if streams:
    return max(int(end) for _, end in streams)
  return int(params_f["mlp"]["Dense_0"]["kernel"].shape[0])


def load_scorer(restored: families.Restored) -> families.Scorer:
  """f of a restored Less-is-More checkpoint (`families.load_scorer` calls this).

  Its chunk (segments per compiled call) is the config's eval.chunk_segments
  unless `restored.chunk` says otherwise.
  """
  config, record, state, chunk = (restored.config, restored.record, restored.state, restored.chunk)
  params = state["params"]
  scorer, _ = models.build(config)
  chunk = config.eval.chunk_segments if chunk is None else chunk
  score_fn = make_score_fn(scorer, params["f"], chunk=chunk)
  return families.Scorer(
      family="less_is_more",
      step=int(state["step"]),
      feature_dim=feature_dim(config, record, params["f"]),
      score_videos=lambda videos: evaluators.score_videos(score_fn, [v.features for v in videos]),
      score_segments=score_fn,
      record=dict(record),
  )
