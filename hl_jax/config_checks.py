"""Config checks made before a run writes anything: values, and resuming a workdir.

`validate` range-checks every numeric key (finite, in range) and every choice
of a config, and raises one `ConfigError` naming every bad key with what is
allowed. `check_resume` compares the config with the one a workdir with
checkpoints was trained with (`<workdir>/config.json`) and refuses a change
that would break exact resume, naming the differing keys, before anything in
the workdir changes.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from hl_jax import losses

VARIANTS = ("joint", "ranking_d", "ranking_em")
TAG_PAIRS = ("tag", "tag_duration")  # corpus.tag_pairs; see tags.TagPairs.
_DTYPES = ("float32", "bfloat16", "float16")
# Keys that may change when a run resumes: they change when and how much is
# logged, evaluated or kept, where data is read from, or how long the run is,
# but not the trajectory of the state. Everything else must match.
RESUMABLE_KEYS = (
    "train.num_steps", "train.log_every", "train.sync_every",
    "checkpoint.every_steps", "checkpoint.max_to_keep", "checkpoint.allow_changed_config",
    "corpus.data_dir", "corpus.manual_dir", "eval.", "distributed.", "num_devices",
)


# Keys added after runs were made, with the value that means what those runs
# did: a workdir's config.json without one of them resumes if the new config
# has this value.
ADDED_KEYS = {
    "train.weighting": "softmax",
    "train.weight_schedule_steps": None, "train.weight_temperature_start": None,
    "train.weight_entropy_bonus": None, "train.valid_fraction": None,
    "input.pair_within": "",
    "corpus.holdout_fraction": 0.0,
    "corpus.tag": "", "corpus.tag_pairs": "tag", "train.pair_groups": "random",
    "model.streams": [],  # As config.json has it.
}


class ConfigError(ValueError):
  """A config value is out of range, or does not fit the workdir."""


def _int(low: int, high: float = math.inf) -> Callable[[Any], bool]:
  return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _real(low: float, high: float = math.inf, *, open_low: bool = False,
          open_high: bool = False) -> Callable[[Any], bool]:
  def check(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return (low < v if open_low else low <= v) and (v < high if open_high else v <= high)
  return check


def _widths(v: Any) -> bool:
  return isinstance(v, (tuple, list)) and len(v) > 0 and all(_int(1)(w) for w in v)


# key: (check, what is allowed)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "variant": (lambda v: v in VARIANTS, f"one of {VARIANTS}"),
    "num_devices": (_int(0), "an integer >= 0 (0: all devices)"),
    "distributed.num_processes": (_int(0), "an integer >= 0"),
    "distributed.process_id": (_int(-1), "an integer >= -1"),
    "corpus.holdout_fraction": (_real(0, 0.5, open_high=True), "a number in [0, 0.5)"),
    "input.table_segments": (_int(1), "an integer >= 1"),
    "input.window_videos": (_int(0), "an integer >= 0 (0: as many as fit)"),
    "input.refill_every_steps": (_int(0), "an integer >= 0"),
    "input.max_segments_per_video": (_int(1), "an integer >= 1"),
    "input.table_dtype": (lambda v: v in _DTYPES, f"one of {_DTYPES}"),
    "input.num_workers": (_int(0), "an integer >= 0"),
    "input.pair_within": (lambda v: v in ("", "domain"), "'' or 'domain'"),
    "input.num_shards": (_int(0), "an integer >= 0 (0: one per host)"),
    "model.scorer_hidden": (_widths, "a non-empty tuple of integers >= 1"),
    "model.weigher_hidden": (_widths, "a non-empty tuple of integers >= 1"),
    "model.dropout": (_real(0, 1, open_high=True), "a number in [0, 1)"),
    "model.dropout_masks": (lambda v: v in ("bytes", "flax"), "'bytes' or 'flax'"),
    "model.dtype": (lambda v: v in _DTYPES, f"one of {_DTYPES}"),
    "train.num_groups": (_int(1), "an integer >= 1"),
    "train.group_size": (_int(1), "an integer >= 1"),
    "train.num_steps": (_int(1), "an integer >= 1"),
    "train.margin": (_real(0), "a finite number >= 0"),
    "train.pair_loss": (lambda v: v in losses.PAIR_LOSSES, f"one of {losses.PAIR_LOSSES}"),
    "train.weighting": (lambda v: v in losses.WEIGHTINGS, f"one of {losses.WEIGHTINGS}"),
    "train.weight_schedule_steps": (_int(0), "an integer >= 0"),
    "train.weight_temperature_start": (_real(1), "a finite number >= 1"),
    "train.weight_entropy_bonus": (_real(0), "a finite number >= 0"),
    "train.valid_fraction": (_real(0, 1, open_low=True), "a number in (0, 1]"),
    "train.optimizer": (lambda v: v in ("adamw", "sgd"), "'adamw' or 'sgd'"),
    "train.learning_rate": (_real(0, open_low=True), "a finite number > 0"),
    "train.momentum": (_real(0, 1, open_high=True), "a number in [0, 1)"),
    "train.weight_decay": (_real(0), "a finite number >= 0"),
    "train.on_nonfinite": (lambda v: v in ("stop", "skip"), "'stop' or 'skip'"),
    "train.log_every": (_int(1), "an integer >= 1"),
    "train.sync_every": (_int(1), "an integer >= 1"),
    "em.prior_init": (_real(0, 1, open_low=True, open_high=True), "a number in (0, 1)"),
    "em.prior_rate": (_real(0, 1), "a number in [0, 1]"),
    "checkpoint.every_steps": (_int(1), "an integer >= 1"),
    "checkpoint.max_to_keep": (_int(1), "an integer >= 1"),
    "eval.every_steps": (_int(0), "an integer >= 0 (0: only at the end)"),
    "eval.random_seeds": (_int(1), "an integer >= 1"),
    "eval.chunk_segments": (_int(1), "an integer >= 1"),
}


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  value = config
  for part in key.split("."):
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError listing every out-of-range or unknown value of `config`."""
  from hl_jax import datasets  # pylint: disable=g-import-not-at-top
  rules = dict(_RULES)
  rules["eval.benchmark_split"] = (lambda v: v in datasets.SPLITS, f"one of {datasets.SPLITS}")
  rules["eval.feature_set"] = (lambda v: v in datasets.FEATURE_SETS,
                               f"one of {datasets.FEATURE_SETS}")
  rules["eval.benchmarks"] = (
      lambda v: isinstance(v, (tuple, list)) and all(b in datasets.BENCHMARKS for b in v),
      f"a tuple of names from {datasets.BENCHMARKS}, e.g. ('tvsum',)")
  rules["corpus.builder_config"] = (lambda v: isinstance(v, str) and bool(v),
                                    "a duration_corpus builder config name")
  problems = []
  for key, (check, allowed) in rules.items():
    value = _get(config, key)
    if not check(value):
      problems.append(f"{key}={value!r} must be {allowed}")
  tag = config.corpus.get("tag", "")
  if config.train.get("pair_groups", "random") not in ("random", "video"):
    problems.append(f"train.pair_groups={config.train.pair_groups!r} must be 'random' "
                    "or 'video'")
  if config.corpus.get("tag_pairs", "tag") not in TAG_PAIRS:
    problems.append(f"corpus.tag_pairs={config.corpus.tag_pairs!r} must be one of "
                    f"{TAG_PAIRS}")
  if tag and config.corpus.domain:
    problems.append(f"corpus.tag={tag!r} and corpus.domain={config.corpus.domain!r}: "
                    "a tag model trains on every domain's videos; set one of them")
  if tag and config.input.pair_within:
    problems.append(f"corpus.tag={tag!r} pairs videos across domains; "
                    f"input.pair_within={config.input.pair_within!r} would leave no pair")
  if problems:
    raise ConfigError("bad config: " + "; ".join(problems))


def check_devices(config: ml_collections.ConfigDict, available: int) -> None:
  """Raises ConfigError unless num_devices exist and the m groups split over them.

  Args:
    config: the run's config.
    available: the devices JAX sees (over all hosts).
  """
  if config.num_devices > available:
    raise ConfigError(f"num_devices={config.num_devices} but JAX sees only {available} "
                      "devices; use 0 for all of them")
  num_devices = config.num_devices or available
  if config.train.num_groups % num_devices:
    raise ConfigError(f"train.num_groups={config.train.num_groups} is not divisible by "
                      f"the {num_devices} devices")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any],
                 resumable: Sequence[str] = RESUMABLE_KEYS) -> dict[str, tuple]:
  """{key: (old, new)} of the keys that differ and are not `resumable` (a key, or a
  prefix ending in ".")."""
  old, new = _flatten(old), _flatten(new)
  if old.get("train.weighting", "softmax") == "softmax":
    # The schedule keys do nothing under the paper's softmax weights.
    old.update({k: new[k] for k, v in ADDED_KEYS.items() if v is None and k in new})
  for key, value in ADDED_KEYS.items():
    if key not in old and key in new and value is not None:
      old[key] = value
  return {key: (old.get(key, "<absent>"), new.get(key, "<absent>"))
          for key in sorted(set(old) | set(new))
          if old.get(key) != new.get(key)
          and not any(key == k or (k.endswith(".") and key.startswith(k))
                      for k in RESUMABLE_KEYS)}


def check_resume(workdir: str, config: ml_collections.ConfigDict, *,
                 has_checkpoints: bool,
                 resumable: Sequence[str] = RESUMABLE_KEYS) -> dict[str, tuple]:
  """Refuses to resume `workdir` with a config that breaks its checkpoints.

  Args:
    workdir: the run's directory.
    config: the config of this run.
    has_checkpoints: whether the workdir holds any checkpoint step.
    resumable: the keys that may change (RESUMABLE_KEYS: Less-is-More's;
      tao_train.RESUMABLE_KEYS: TaoHighlight's).

  Returns:
    The changed keys that `checkpoint.allow_changed_config` let through.

  Raises:
    ConfigError: the workdir's checkpoints came from a config that differs in
      keys other than RESUMABLE_KEYS (model, optimizer, corpus, input shards
      and workers, seed, ...), unless checkpoint.allow_changed_config is set.
  """
  path = os.path.join(workdir, "config.json")
  if not has_checkpoints or not os.path.exists(path):
    return {}
  with open(path) as f:
    old = json.load(f)
  new = json.loads(config.to_json_best_effort())  # Tuples become lists, as saved.
  changed = changed_keys(old, new, resumable)
  if changed and not config.checkpoint.allow_changed_config:
    listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
    raise ConfigError(
        f"workdir {workdir} holds checkpoints of another config ({listed}); resuming "
        "would not continue that run. Use a new --workdir, or set "
        "--config.checkpoint.allow_changed_config=True to resume anyway (shapes "
        "that differ still fail to restore).")
  return changed
