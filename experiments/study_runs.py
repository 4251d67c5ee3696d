"""What the study drivers share about their runs: reading a run's files, and
knowing whether a run dir holds a finished run of the settings asked for, and
the statistics over seeds that their reports print.

  results = study_runs.finished(workdir, config, CHECKED_KEYS)
  if results is None:
    run_loop.train_and_evaluate(config, workdir)  # Trains, or resumes.
  row["mAP"] = study_runs.seed_stats([r["mAP"] for r in finished_seeds])
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np

from hl_jax.core import config_checks
from hl_jax.core import workdir as workdir_lib


def read_json(path: str) -> Any:
  """The file's JSON, or None when it is absent or cut short."""
  with contextlib.suppress(OSError, ValueError), open(path) as f:
    return json.load(f)
  return None


def finished(
    workdir: str,
    config: ml_collections.ConfigDict,
    checked_keys: Sequence[str],
    defaults: Mapping[str, Any] | None = None,
) -> dict | None:
  """The run dir's results.json if it reached config's steps, else None.

  Args:
    workdir: the run dir.
    config: the settings the study asks of it.
    checked_keys: flat config keys ("train.num_steps") whose saved value must
      equal config's.
    defaults: the value of a key that a config.json written before it existed
      lacks.

  Raises:
    ValueError: the run dir holds a run of other settings (naming the key).
  """
  results = read_json(os.path.join(workdir, workdir_lib.RESULTS_NAME))
  saved = read_json(os.path.join(workdir, workdir_lib.CONFIG_NAME))
  if saved:
    old = config_checks.flatten(config_checks.upgrade(saved))
    new = config_checks.flatten(json.loads(config.to_json_best_effort()))
    for key in checked_keys:
      if old.get(key, (defaults or {}).get(key)) != new[key]:
        raise ValueError(
            f"{workdir} holds a run with {key}={old.get(key)!r}, not {new[key]!r}; use "
            "another --output_dir"
        )
  return results if results and results["step"] >= config.train.num_steps else None


def seed_stats(values: Sequence[float]) -> dict[str, Any]:
  """mean, std (ddof=1; 0 for one value), n and the values over seeds; {} without values."""
  if not values:
    return {}
  return {
      "mean": float(np.mean(values)),
      "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
      "n": len(values),
      "values": [float(v) for v in values],
  }
