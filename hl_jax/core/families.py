"""Model families by name: what the run loop trains and what scorers load.

A family is a folder (hl_jax/less_is_more, hl_jax/taohighlight) whose
`family` module defines `FAMILY`, a `Family`: its config schema and checks,
the keys a resume may change, how to build a `run_loop.Trainer` for a config,
and how to load a `Scorer` from a workdir's checkpoint. `get(name)` imports
that module when first asked (big_vision's way of choosing parts by name), so
this layer names the families without importing them.

  family = families.of_config(config)             # config.model_family
  scorer = families.load_scorer("/tmp/hl_jax/w")   # any family's workdir

Adding a family: a folder with a `family` module (`FAMILY = families.make(...)`),
one line in `MODULES`, its name in `config_checks.FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hl_jax.core import checkpointing
from hl_jax.core import config_checks
from hl_jax.core import workdir as workdir_lib

MODULES = {
    "less_is_more": "hl_jax.less_is_more.family",
    "taohighlight": "hl_jax.taohighlight.family",
}
# Objects with .video_id, .features [T_i, D] (and .text) -> their [T_i] scores.
VideosFn = Callable[[Sequence[Any]], list[np.ndarray]]
# [S, D] features of any segments -> [S] scores.
SegmentsFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Scorer:
  """A trained model as highlight scores.

  Attributes:
    family: the model family's name.
    step: the checkpoint step it was restored from.
    feature_dim: D, the width of the features it scores.
    score_videos: whole videos -> per-clip scores (every family).
    score_segments: segments scored one by one, each on its own (None for a
      family that scores a video as a sequence): what streaming and weak
      feeds need.
    record: the workdir's scorer record (config.json "scorer"): "family",
      "feature_dim", "feature_space" (the space of the features it was trained
      on, hl_jax/data/features_file.py; absent in older workdirs), ...
  """

  family: str
  step: int
  feature_dim: int
  score_videos: VideosFn
  score_segments: SegmentsFn | None
  record: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Restored:
  """A workdir's newest whole checkpoint, as a family's scorer loader gets it.

  Attributes:
    config: the workdir's config (today's key names).
    record: its scorer record (config.json "scorer").
    state: the restored train state (numpy arrays).
    chunk: segments per compiled call of a per-segment scorer (None: the config's).
  """

  config: Any
  record: Mapping[str, Any]
  state: Mapping[str, Any]
  chunk: int | None = None


@dataclasses.dataclass(frozen=True)
class Family:
  """A model family, as the run loop and the scorer loaders see it.

  Attributes:
    name: its config.model_family.
    schema: {key: config_checks.Rule} of every key of its configs.
    checks: functions of a config returning problems across several keys.
    resumable: keys a resume may change (keys, or prefixes ending in ".").
    added: keys added after runs were made, with the value that means what
      those runs did (`config_checks.changed_keys`).
    irrelevant: keys of a saved config that do nothing in that run (a resume
      may change them), as a function of the saved config.
    make_trainer: (config, mesh) -> run_loop.Trainer for one run.
    num_input_shards: config -> S, the mesh's 'shard' axis.
    load_scorer: Restored -> Scorer.
  """

  name: str
  schema: Mapping[str, config_checks.Rule]
  checks: Sequence[Callable[[Any], list[str]]]
  resumable: Sequence[str]
  added: Mapping[str, Any]
  irrelevant: Callable[[Mapping[str, Any]], Sequence[str]]
  make_trainer: Callable[..., Any]
  num_input_shards: Callable[[Any], int]
  load_scorer: Callable[[Restored], Scorer]


def make(
    name: str,
    schema: Any,
    *,
    make_trainer: Callable[..., Any],
    load_scorer: Callable[[Restored], Scorer],
    num_input_shards: Callable[[Any], int] = lambda config: 1,
) -> Family:
  """A Family whose config keys are described by a `schema` module.

  The module defines SCHEMA, CHECKS, RESUMABLE and ADDED (and optionally
  `irrelevant(saved_flat_config)`), as hl_jax/less_is_more/schema.py does.
  """
  return Family(
      name=name,
      schema=schema.SCHEMA,
      checks=schema.CHECKS,
      resumable=schema.RESUMABLE,
      added=schema.ADDED,
      irrelevant=getattr(schema, "irrelevant", lambda saved: ()),
      make_trainer=make_trainer,
      num_input_shards=num_input_shards,
      load_scorer=load_scorer,
  )


def get(name: str) -> Family:
  """The family named `name` (its module is imported on first use)."""
  if name not in MODULES:
    raise ValueError(f"unknown model_family {name!r}; one of {tuple(MODULES)}")
  return importlib.import_module(MODULES[name]).FAMILY


def of_config(config: Any) -> Family:
  """The family of a config (config.model_family; Less-is-More if it has none)."""
  return get(config.get("model_family", config_checks.DEFAULT_FAMILY))


def validate(config: Any) -> Family:
  """Raises ConfigError for anything wrong with `config`; returns its family."""
  name = config.get("model_family", config_checks.DEFAULT_FAMILY)
  if name not in MODULES:
    raise config_checks.ConfigError(
        f"bad config: model_family={name!r} must be one of {tuple(MODULES)}"
    )
  family = get(name)
  config_checks.validate(config, family.schema, family.checks)
  return family


def load_scorer(workdir: str, chunk: int | None = None) -> Scorer:
  """The scorer of the newest whole checkpoint of any family's workdir.

  Args:
    workdir: a training workdir (config.json + checkpoints).
    chunk: segments per compiled call of a per-segment scorer (None: the
      config's); a streaming scorer fed one segment at a time wants 1.

  Raises:
    FileNotFoundError: no config.json or no finished checkpoint.
    checkpointing.CheckpointError: checkpoints exist but none restores.
  """
  if chunk is not None and chunk < 1:
    raise ValueError(f"chunk={chunk} must be >= 1 (None: the config's)")
  config, record = workdir_lib.load_config(workdir)
  state = checkpointing.restore_state(workdir)
  return get(record["family"]).load_scorer(Restored(config, record, state, chunk))


def load_segment_scorer(workdir: str, chunk: int | None = None) -> Scorer:
  """`load_scorer`, refusing a family that cannot score segments one by one."""
  scorer = load_scorer(workdir, chunk)
  if scorer.score_segments is None:
    raise ValueError(
        f"{workdir} is a {scorer.family} workdir: it scores whole videos as "
        "sequences, not segments one by one; streaming and weak feeds need a "
        "per-segment scorer (a less_is_more workdir)"
    )
  return scorer
