"""TaoHighlight's config keys: what each may hold, what a resume may change.

configs/taohighlight.py is its config; `SCHEMA` names every key it has
(`config_checks.COMMON_SCHEMA` plus this family's), `CHECKS` what involves
several keys. A config is checked before a run writes anything
(`families.validate`).
"""

from __future__ import annotations

from typing import Any

from hl_jax.core import config_checks as cc
from hl_jax.data import benchmarks
from hl_jax.taohighlight import baselines
from hl_jax.taohighlight import losses
from hl_jax.taohighlight import network

SCHEMA: dict[str, cc.Rule] = {
    **cc.COMMON_SCHEMA,
    "benchmark": cc.choice(benchmarks.BENCHMARKS),
    "feature_set": cc.choice(benchmarks.FEATURE_SETS),
    "group": cc.text("a category / domain ('' for all groups at once)"),
    "num_labelled": cc.integer(0, note="0: every train video of each group"),
    "cv_folds": cc.integer(0, note="0: off; else >= 2"),
    "cv_fold": cc.integer(0),
    "model.kind": cc.choice(baselines.KINDS),
    "model.layers": cc.integer(1, note="transformer encoder blocks (model.kind transformer)"),
    "model.hidden": cc.integer(1),
    "model.heads": cc.integer(1),
    "model.k": cc.integer(1),
    "model.use_text": cc.boolean(),
    "model.use_graph": cc.boolean(),
    "model.dropout": cc.real(0, 1, open_high=True),
    "model.temperature": cc.real(0, open_low=True),
    "model.context": cc.choice(network.CONTEXTS),
    "model.visual_dim": cc.integer(1),
    "loss.segment_length": cc.integer(1),
    "loss.thetas": cc.Rule(
        lambda v: isinstance(v, (tuple, list))
        and len(v) == 3
        and all(cc.real(-1e9).check(t) for t in v),
        "three finite numbers (theta_r, theta_d, theta_s)",
    ),
    "loss.w_ag": cc.real(0),
    "loss.w_sal": cc.real(0),
    "loss.w_reg": cc.real(0),
    "loss.reg_scale": cc.choice(losses.REG_SCALES),
    "train.batch_size": cc.integer(1),
    "train.pad_per_batch": cc.boolean(),
    "weak.workdir": cc.text("a training workdir whose f feeds a channel ('' for none)"),
}


def _folds(config: Any) -> list[str]:
  if config.cv_folds == 1:
    return ["cv_folds=1 must be 0 (off) or >= 2"]
  if config.cv_folds and config.cv_fold >= config.cv_folds:
    return [f"cv_fold={config.cv_fold} must be < cv_folds={config.cv_folds}"]
  return []


def _visual_dim(config: Any) -> list[str]:
  width = benchmarks.FEATURE_DIMS[config.feature_set]
  if config.model.visual_dim > width:
    return [
        f"model.visual_dim={config.model.visual_dim} is wider than the "
        f"{width}-d features of feature_set={config.feature_set!r}"
    ]
  return []


def _baseline_losses(config: Any) -> list[str]:
  if config.model.kind in baselines.BUILDERS and (config.loss.w_ag or config.loss.w_reg):
    return [
        f"model.kind={config.model.kind!r} has no segment head: it trains the saliency "
        f"loss alone (loss.w_ag={config.loss.w_ag}, loss.w_reg={config.loss.w_reg} must be 0)"
    ]
  return []


CHECKS = (
    _folds,
    _visual_dim,
    _baseline_losses,
    cc.divides_over_devices("train.batch_size", "a multiple of"),
)
# Keys a resume may change beside the common ones (config_checks.COMMON_RESUMABLE).
RESUMABLE = ()
# Keys added after runs were made, with the value that means what those runs did.
ADDED = {
    "train.sync_every": 10,
    "num_devices": 0,
    "model_family": "taohighlight",
    "model.kind": "taohighlight",
    "model.layers": None,  # Read by model.kind transformer only.
    "train.pad_per_batch": False,
}
