r"""Trains and evaluates a highlight detector.

  python launch.py --config=configs/joint.py --workdir=/tmp/hl_jax/joint

Rerunning the same command resumes from the newest checkpoint in --workdir.
A user error (a bad config value, a workdir of another config, bad data) ends
in one line, `launch.py: error: ...`, and exit status 1; --verbosity=1 shows
its traceback too.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import tensorflow_datasets as tfds

from hl_jax import checkpointing
from hl_jax import parallel
from hl_jax import tao_train
from hl_jax import train
from hl_jax import writers

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, "
                               "logs and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  writers.quiet_libraries(logging.get_verbosity())
  tfds.disable_progress_bar()
  parallel.initialize_distributed(_CONFIG.value)
  logging.info("JAX process %d/%d, local devices %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  try:
    run = (tao_train.train_and_evaluate  # configs/taohighlight.py
           if _CONFIG.value.get("model_family") == "taohighlight"
           else train.train_and_evaluate)
    run(_CONFIG.value, _WORKDIR.value)
  except _USER_ERRORS as e:
    if logging.get_verbosity() >= 1:
      raise
    raise SystemExit(f"launch.py: error: {' '.join(str(e).split())}") from None


# What a user can fix: config values and workdirs (ConfigError is a ValueError),
# data files (the builders name the file, line and video), a stopped run.
_USER_ERRORS = (ValueError, FileNotFoundError, checkpointing.WorkdirLockedError,
                checkpointing.CheckpointError, train.NonFiniteError)


if __name__ == "__main__":
  app.run(main)
