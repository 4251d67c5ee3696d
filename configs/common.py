"""What every config shares: the common keys, the distributed block, the argument parser.

Every family's config starts from `base(family)`, which holds the keys all
families share under one name (hl_jax.core.config_checks.COMMON_SCHEMA):
where the data lives, the devices and processes, how long and how often.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

import ml_collections

# Where the published data lives (../shared/data in the project's workspace).
DATA_ROOT = os.environ.get("HL_JAX_SHARED_DATA", os.path.join("..", "shared", "data"))


def distributed() -> ml_collections.ConfigDict:
  """Multi-host JAX (hl_jax.core.parallel.initialize_distributed, WORKSPACE.md)."""
  block = ml_collections.ConfigDict()
  block.initialize = False
  block.coordinator_address = ""  # "host:port"; "" auto-detects (TPU pods, SLURM, ...).
  block.num_processes = 0
  block.process_id = -1
  return block


def base(family: str) -> ml_collections.ConfigDict:
  """The keys every family's config has, with their defaults."""
  config = ml_collections.ConfigDict()
  config.model_family = family  # launch.py trains this family (hl_jax.core.families).
  config.seed = 0
  config.num_devices = 0  # 0: all devices; N: the first N (tests, debugging).
  config.data_dir = ""  # TFDS data_dir of every dataset; "" is TFDS's default.
  config.data_root = DATA_ROOT  # The published data: <data_root>/<benchmark>.
  config.distributed = distributed()

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1000
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 0.0
  config.train.log_every = 100
  config.train.sync_every = 10  # Wait for the devices every N steps.

  config.eval = ml_collections.ConfigDict()
  config.eval.every_steps = 1000  # 0: only at the end.

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_steps = 500
  config.checkpoint.max_to_keep = 3
  # Resume a workdir whose checkpoints came from a config that differs in more
  # than when/where/how long (hl_jax/core/config_checks.py); off: such a
  # resume is refused, naming the differing keys.
  config.checkpoint.allow_changed_config = False
  return config


def parse_arg(
    arg: str | None, handlers: Mapping[str, Callable[[str], None]], config_file: str
) -> None:
  """Applies a config argument, comma-separated words `key=value` or `key`.

  Args:
    arg: what follows the ':' of `--config=configs/x.py:arg` (None: nothing).
    handlers: {key: function of the value ('' for a bare word)}.
    config_file: the config's file, for the message.

  Raises:
    ValueError: an unknown key (naming the known ones).
  """
  for item in arg.split(",") if arg else []:
    key, _, value = item.partition("=")
    if key not in handlers:
      raise ValueError(
          f"unknown config argument {key!r} in {config_file}:{arg}; known: "
          f"{', '.join(sorted(handlers))}"
      )
    handlers[key](value)
