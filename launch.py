r"""Trains and evaluates a highlight detector of any model family.

  python launch.py --config=configs/joint.py --workdir=/tmp/hl_jax/joint

The config's model_family says what trains (configs/joint.py: Less-is-More;
configs/taohighlight.py: TaoHighlight); hl_jax.core.run_loop runs it.
Rerunning the same command resumes from the newest checkpoint in --workdir.
A user error (a bad config argument, key or value, a workdir of another
config, bad data) ends in one line, `launch.py: error: ...`, and exit status
1; --verbosity=1 shows its traceback too.

--workdir and --config.data_dir may be gs:// URLs (pip install -e '.[gcs]'),
shared by every host of a pod. A SIGTERM (a spot VM's or a scheduler's
preemption notice) saves a checkpoint of the current step before the run
stops, with one line and exit status 143 (128 + SIGTERM: the run did not
finish); rerunning the same command resumes from it.
"""

import os
import sys

# gs:// through gcsfs on every host, whether or not TensorFlow is installed
# (etils.epath would otherwise pick tf.io.gfile, and decides at its first use).
os.environ.setdefault("EPATH_USE_TF", "false")

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import tensorflow_datasets as tfds

from hl_jax.core import checkpointing
from hl_jax.core import config_checks
from hl_jax.core import parallel
from hl_jax.core import run_loop
from hl_jax.core import workdir
from hl_jax.core import writers

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])

PREEMPTED_EXIT_STATUS = 128 + 15  # As if ended by SIGTERM, after saving the step.

# What a user can fix: config values and workdirs (ConfigError is a ValueError),
# data files (the builders name the file, line and video), a stopped run.
_USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    workdir.WorkdirLockedError,
    checkpointing.CheckpointError,
    run_loop.NonFiniteError,
)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad --config argument, key or value in one line."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
    sys.exit(f"launch.py: error: {config_checks.explain_override(argv, e)}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  writers.quiet_libraries(logging.get_verbosity())
  tfds.disable_progress_bar()
  parallel.initialize_distributed(_CONFIG.value)
  logging.info(
      "JAX process %d/%d, local devices %s",
      jax.process_index(),
      jax.process_count(),
      jax.local_devices(),
  )
  try:
    run_loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except run_loop.Preempted as e:
    print(f"launch.py: {e}", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_STATUS)
  except _USER_ERRORS as e:
    if logging.get_verbosity() >= 1:
      raise
    raise SystemExit(f"launch.py: error: {config_checks.one_line(e)}") from None


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
