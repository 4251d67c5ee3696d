"""Less-is-More's config keys: what each may hold, what a resume may change.

configs/joint.py is the base config; `SCHEMA` names every key it has
(`config_checks.COMMON_SCHEMA` plus this family's), `CHECKS` what involves
several keys. A config is checked before a run writes anything
(`families.validate`).
"""

from __future__ import annotations

from typing import Any, Mapping

from hl_jax.core import config_checks as cc
from hl_jax.data import benchmarks
from hl_jax.less_is_more import losses
from hl_jax.less_is_more import models
from hl_jax.less_is_more import weightings

TAG_PAIRS = ("tag", "tag_duration")  # corpus.tag_pairs; see hl_jax.data.corpora.TagPairs.
PAIR_GROUPS = ("random", "video")  # train.pair_groups; see segment_table.sample_pairs.
DTYPES = ("float32", "bfloat16", "float16")

SCHEMA: dict[str, cc.Rule] = {
    **cc.COMMON_SCHEMA,
    "corpus.builder_config": cc.nonempty_text("a duration_corpus builder config name"),
    "corpus.manual_dir": cc.text("the corpus's raw data ('' for none)"),
    "corpus.train_split": cc.nonempty_text("a split name"),
    "corpus.eval_split": cc.text("a split name ('' for none)"),
    "corpus.domain": cc.text("a domain ('' for all: Ours-A)"),
    "corpus.tag": cc.text("a tag ('' for none)"),
    "corpus.tag_pairs": cc.choice(TAG_PAIRS),
    "corpus.holdout_fraction": cc.real(0, 0.5, open_high=True),
    "corpus.train_fraction": cc.real(0, 1, open_low=True),
    "input.table_segments": cc.integer(1),
    "input.window_videos": cc.integer(0, note="0: as many as fit"),
    "input.refill_every_steps": cc.integer(0),
    "input.max_segments_per_video": cc.integer(1),
    "input.table_dtype": cc.choice(DTYPES),
    "input.num_workers": cc.integer(0),
    "input.num_shards": cc.integer(0, note="0: one per host"),
    "input.shuffle_seed": cc.integer(0),
    "input.pair_within": cc.choice(("", "domain")),
    "model.scorer_hidden": cc.widths(),
    "model.weigher_hidden": cc.widths(),
    "model.dropout": cc.real(0, 1, open_high=True),
    "model.dropout_masks": cc.choice(models.DROPOUT_MASKS),
    "model.dtype": cc.choice(DTYPES),
    "model.streams": cc.column_ranges(),
    "train.num_groups": cc.integer(1),
    "train.group_size": cc.integer(1),
    "train.pair_groups": cc.choice(PAIR_GROUPS),
    "train.margin": cc.real(0),
    "train.pair_loss": cc.choice(tuple(losses.PAIR_LOSSES)),
    "train.weighting": cc.choice(weightings.NAMES),
    "train.weight_schedule_steps": cc.integer(0),
    "train.weight_temperature_start": cc.real(1),
    "train.weight_entropy_bonus": cc.real(0),
    "train.valid_fraction": cc.real(0, 1, open_low=True),
    "train.optimizer": cc.choice(("adamw", "sgd")),
    "train.momentum": cc.real(0, 1, open_high=True),
    "train.on_nonfinite": cc.choice(("stop", "skip")),
    "em.prior_init": cc.real(0, 1, open_low=True, open_high=True),
    "em.prior_rate": cc.real(0, 1),
    "eval.random_seeds": cc.integer(1),
    "eval.chunk_segments": cc.integer(1),
    "eval.benchmarks": cc.names_from(benchmarks.BENCHMARKS, "('tvsum',)"),
    "eval.benchmark_split": cc.choice(benchmarks.SPLITS),
    "eval.feature_set": cc.choice(benchmarks.FEATURE_SETS),
}


def _tags(config: Any) -> list[str]:
  problems = []
  tag = config.corpus.tag
  if tag and config.corpus.domain:
    problems.append(
        f"corpus.tag={tag!r} and corpus.domain={config.corpus.domain!r}: "
        "a tag model trains on every domain's videos; set one of them"
    )
  if tag and config.input.pair_within:
    problems.append(
        f"corpus.tag={tag!r} pairs videos across domains; "
        f"input.pair_within={config.input.pair_within!r} would leave no pair"
    )
  return problems


CHECKS = (_tags, cc.divides_over_devices("train.num_groups"))

# Keys a resume may change beside the common ones (config_checks.COMMON_RESUMABLE).
RESUMABLE = ("corpus.manual_dir", "eval.")
# Keys added after runs were made, with the value that means what those runs
# did (None: whatever the new config says; they did nothing in those runs).
ADDED = {
    "train.weighting": "softmax",
    "train.weight_schedule_steps": None,
    "train.weight_temperature_start": None,
    "train.weight_entropy_bonus": None,
    "train.valid_fraction": None,
    "input.pair_within": "",
    "corpus.holdout_fraction": 0.0,
    "corpus.train_fraction": 1.0,
    "corpus.tag": "",
    "corpus.tag_pairs": "tag",
    "train.pair_groups": "random",
    "model.streams": [],  # As config.json has it.
    "model_family": "less_is_more",
}


def irrelevant(saved: Mapping[str, Any]) -> list[str]:
  """Keys of a saved (flat) config that its weighting does not read."""
  weighting = weightings.WEIGHTINGS.get(saved.get("train.weighting", "softmax"))
  reads = weighting.keys if weighting else ()
  return [k for k in weightings.ALL_KEYS if k not in reads]
