"""Config checks made before a run writes anything: every key, renamed keys, resuming.

A model family describes its configs with a schema, {key: Rule} for every key
they have (`COMMON_SCHEMA` holds the keys every family shares).
`validate(config, schema, checks)` refuses, in one `ConfigError`, every key
that is unknown (naming the nearest known key), renamed (naming its new
name), out of range or not one of its choices, plus what the family's
cross-key `checks` find. `check_resume` compares the config with the one a
workdir with checkpoints was trained with (`<workdir>/config.json`, upgraded
to today's names by `upgrade`) and refuses a change that would break exact
resume, naming the differing keys, before anything in the workdir changes.
`explain_override` turns a failed `--config...` command line into one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import ml_collections

from hl_jax.core import trees

# Keys renamed since runs were made: old name -> today's name. A config that
# still sets an old name is refused, naming the new one; a workdir's
# config.json is read with the new names (`upgrade`).
RENAMED = {
    "variant": "train.weighting",
    "corpus.data_dir": "data_dir",
    "eval.data_root": "data_root",
    "train.eval_every": "eval.every_steps",
}
FAMILIES = ("less_is_more", "taohighlight")
DEFAULT_FAMILY = "less_is_more"  # Of workdirs written before config.model_family.
SCORER_KEY = "scorer"  # config.json's record of what the scorer needs (not a config key).


class ConfigError(ValueError):
  """A config value is out of range, or does not fit the workdir."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """What a config key may hold: `check(value)` is True, else "must be {allowed}"."""

  check: Callable[[Any], bool]
  allowed: str


def integer(low: int, high: float = math.inf, note: str = "") -> Rule:
  bound = f"an integer >= {low}" if high == math.inf else f"an integer in [{low}, {high}]"
  return Rule(
      lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
      bound + (f" ({note})" if note else ""),
  )


def real(
    low: float, high: float = math.inf, *, open_low: bool = False, open_high: bool = False
) -> Rule:
  def check(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return (low < v if open_low else low <= v) and (v < high if open_high else v <= high)

  if high == math.inf:
    allowed = f"a finite number {'>' if open_low else '>='} {low:g}"
  else:
    allowed = (
        f"a number in {'(' if open_low else '['}{low:g}, {high:g}" f"{')' if open_high else ']'}"
    )
  return Rule(check, allowed)


def choice(choices: Sequence[Any]) -> Rule:
  return Rule(lambda v: v in tuple(choices), f"one of {tuple(choices)}")


def text(what: str = "a string") -> Rule:
  return Rule(lambda v: isinstance(v, str), what)


def nonempty_text(what: str) -> Rule:
  return Rule(lambda v: isinstance(v, str) and bool(v), what)


def boolean() -> Rule:
  return Rule(lambda v: isinstance(v, bool), "True or False")


def widths() -> Rule:
  return Rule(
      lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(integer(1).check(w) for w in v),
      "a non-empty tuple of integers >= 1",
  )


def names_from(choices: Sequence[str], example: str) -> Rule:
  return Rule(
      lambda v: isinstance(v, (tuple, list)) and all(b in choices for b in v),
      f"a tuple of names from {tuple(choices)}, e.g. {example}",
  )


def column_ranges() -> Rule:
  def check(v):
    return isinstance(v, (tuple, list)) and all(
        isinstance(p, (tuple, list))
        and len(p) == 2
        and all(integer(0).check(b) for b in p)
        and p[0] < p[1]
        for p in v
    )

  return Rule(check, "a tuple of (start, end) column ranges with 0 <= start < end")


# The keys every family has, with one name each.
COMMON_SCHEMA: dict[str, Rule] = {
    "model_family": choice(FAMILIES),
    "seed": integer(0),
    "num_devices": integer(0, note="0: all devices"),
    "data_dir": text("a TFDS data_dir ('' for TFDS's default)"),
    "data_root": text("a folder of the published data (<data_root>/<benchmark>)"),
    "distributed.initialize": boolean(),
    "distributed.coordinator_address": text("'host:port', or '' to detect"),
    "distributed.num_processes": integer(0),
    "distributed.process_id": integer(-1),
    "train.num_steps": integer(1),
    "train.learning_rate": real(0, open_low=True),
    "train.weight_decay": real(0),
    "train.log_every": integer(1),
    "train.sync_every": integer(1),
    "eval.every_steps": integer(0, note="0: only at the end"),
    "checkpoint.every_steps": integer(1),
    "checkpoint.max_to_keep": integer(1),
    "checkpoint.allow_changed_config": boolean(),
}
# Keys that may change when any run resumes: when and how much is logged,
# evaluated or kept, where data is read from, how long the run is, how its
# processes meet; none changes the trajectory of the state.
COMMON_RESUMABLE = (
    "train.num_steps",
    "train.log_every",
    "train.sync_every",
    "checkpoint.",
    "eval.every_steps",
    "data_dir",
    "data_root",
    "distributed.",
    "num_devices",
)


# {"a": {"b": 1}} -> {"a.b": 1}: a config's keys as users write them.
flatten = trees.flatten


def nearest(key: str, known: Iterable[str]) -> str:
  """' (did you mean X?)' for the closest known key, or ''."""
  close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
  return f" (did you mean {close[0]}?)" if close else ""


def renamed_message(old: str) -> str:
  new = RENAMED[old]
  if old == "variant":
    return (
        "config key 'variant' was replaced by train.weighting: Ranking-D and Ranking-EM "
        "are pair weightings now (--config.train.weighting=ranking_d | ranking_em; "
        "the joint model is any weighting with h, e.g. softmax)"
    )
  return f"config key {old} was renamed {new} (--config.{new}=...)"


def validate(
    config: ml_collections.ConfigDict | Mapping[str, Any],
    schema: Mapping[str, Rule],
    checks: Sequence[Callable[[Any], list[str]]] = (),
) -> None:
  """Raises ConfigError naming every unknown, renamed, missing or bad key of `config`.

  Args:
    config: the run's config.
    schema: {key: Rule} of every key the family's configs have.
    checks: functions of the config returning problems that involve several keys.
  """
  tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  flat = flatten(tree)
  problems = []
  for key in sorted(flat):
    if key in RENAMED:
      problems.append(renamed_message(key))
    elif key not in schema:
      problems.append(f"unknown config key {key}{nearest(key, schema)}")
  for key, rule in schema.items():
    if key not in flat:
      problems.append(f"{key} is missing")
    elif not rule.check(flat[key]):
      problems.append(f"{key}={flat[key]!r} must be {rule.allowed}")
  if not problems:
    problems = [p for check in checks for p in check(config)]
  if problems:
    raise ConfigError("bad config: " + "; ".join(problems))


def divides_over_devices(key: str, what: str = "divisible by") -> Callable[[Any], list[str]]:
  """A check: the integer at `key` (e.g. train.num_groups) splits over num_devices."""

  def check(config: Any) -> list[str]:
    value = flatten(config.to_dict() if hasattr(config, "to_dict") else config)[key]
    if config.num_devices and value % config.num_devices:
      return [f"{key}={value} is not {what} num_devices={config.num_devices}"]
    return []

  return check


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
  """Raises a one-line ValueError unless `value` is one of `choices`."""
  if value not in choices:
    raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")


# ----------------------------------------------------------------------------
# Workdirs of earlier versions, and resuming.


def upgrade(saved: Mapping[str, Any]) -> dict[str, Any]:
  """A workdir's saved config (config.json, without its scorer record) in today's names.

  Renamed keys take their new name (`RENAMED`); a config without model_family
  is a Less-is-More one; Ranking-D and Ranking-EM, once `variant`, are
  weightings (`train.weighting`).
  """
  flat = flatten({k: v for k, v in saved.items() if k != SCORER_KEY})
  flat.setdefault("model_family", DEFAULT_FAMILY)
  variant = flat.pop("variant", None)
  for old, new in RENAMED.items():
    if old in flat:
      flat.setdefault(new, flat.pop(old))
  if variant in ("ranking_d", "ranking_em"):
    flat["train.weighting"] = variant
  return trees.unflatten(flat)


def changed_keys(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    resumable: Sequence[str],
    added: Mapping[str, Any] = {},
    irrelevant: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
) -> dict[str, tuple[Any, Any]]:
  """{key: (old, new)} of the keys that differ and are not `resumable`.

  Args:
    old: the workdir's config (`upgrade`d).
    new: this run's config.
    resumable: keys that may change (a key, or a prefix ending in ".").
    added: keys added after runs were made, with the value that means what
      those runs did (None: any value, for keys that do nothing unless
      another key turns them on); a missing old key compares as that value.
    irrelevant: of the flat old config, the keys that did nothing in that run
      (they compare as the new value).
  """
  old, new = flatten(old), flatten(new)
  for key, value in added.items():
    if key not in old and key in new:
      old[key] = new[key] if value is None else value
  for key in (irrelevant(old) if irrelevant else ()):
    if key in new:
      old[key] = new[key]
  return {
      key: (old.get(key, "<absent>"), new.get(key, "<absent>"))
      for key in sorted(set(old) | set(new))
      if old.get(key) != new.get(key)
      and not any(key == k or (k.endswith(".") and key.startswith(k)) for k in resumable)
  }


def check_resume(
    saved: Mapping[str, Any] | None,
    config: ml_collections.ConfigDict,
    *,
    workdir: str,
    resumable: Sequence[str],
    added: Mapping[str, Any] = {},
    irrelevant: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
) -> dict[str, tuple[Any, Any]]:
  """Refuses to resume a workdir with a config that breaks its checkpoints.

  Args:
    saved: the workdir's config.json (None: a workdir without checkpoints,
      nothing to compare).
    config: the config of this run.
    workdir: the workdir, for the message.
    resumable, added, irrelevant: as `changed_keys`, the family's.

  Returns:
    The changed keys that `checkpoint.allow_changed_config` let through.

  Raises:
    ConfigError: the workdir's checkpoints came from a config that differs in
      keys other than the resumable ones (model, optimizer, data, input
      shards and workers, seed, ...), unless checkpoint.allow_changed_config.
  """
  if saved is None:
    return {}
  new = json.loads(config.to_json_best_effort())  # Tuples become lists, as saved.
  changed = changed_keys(upgrade(saved), new, resumable, added, irrelevant)
  if changed and not config.checkpoint.allow_changed_config:
    listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
    raise ConfigError(
        f"workdir {workdir} holds checkpoints of another config ({listed}); resuming "
        "would not continue that run. Use a new --workdir, or set "
        "--config.checkpoint.allow_changed_config=True to resume anyway (shapes "
        "that differ still fail to restore)."
    )
  return changed


# ----------------------------------------------------------------------------
# The command line.

_OVERRIDE = re.compile(r"^--config\.([A-Za-z0-9_.]+)=")


def explain_override(argv: Sequence[str], error: BaseException) -> str:
  """One line for a `--config=FILE[:ARG] --config.key=value` command that failed.

  Names a renamed key with its new name, an unknown key with the nearest known
  one, and otherwise the error of the config file or of the value.
  """
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  keys = [m.group(1) for a in argv if (m := _OVERRIDE.match(a))]
  for key in keys:
    if key in RENAMED:
      return renamed_message(key)
  if spec is not None:
    try:
      config = load_config_file(spec)
    except Exception as e:  # pylint: disable=broad-except
      return f"--config={spec}: {one_line(e)}"
    known = flatten(config.to_dict())
    for key in keys:
      if key not in known and not any(k.startswith(key + ".") for k in known):
        return f"--config.{key}: {spec} has no key {key}{nearest(key, known)}"
  return one_line(error)


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a `path/to/config.py[:arg]` spec, as `--config` loads it."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_hl_jax_config", path)
  if module_spec is None or module_spec.loader is None:
    raise FileNotFoundError(f"{path}: no such config file")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def one_line(error: BaseException | str) -> str:
  """An error's text as one line (a KeyError's or AttributeError's without quotes)."""
  if isinstance(error, (KeyError, AttributeError)) and error.args:
    error = str(error.args[0]).strip("'\"")
  text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
  return text.replace("\\n", " ").replace("\\'", "'") or type(error).__name__
