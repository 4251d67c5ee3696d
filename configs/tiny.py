r"""A seconds-long run for tests and CI: tiny corpus, tiny model, few steps.

python launch.py --config=configs/tiny.py --workdir=/tmp/hl_jax/tiny
"""

from configs import joint


def get_config(arg=None):
  config = joint.get_config(arg)
  config.corpus.builder_config = "synthetic_tiny"
  config.input.table_segments = 4096
  config.model.scorer_hidden = (32,)
  config.model.weigher_hidden = (32,)
  config.model.dropout = 0.1
  config.train.num_groups = 16
  config.train.group_size = 4
  config.train.num_steps = 20
  config.train.log_every = 5
  config.train.sync_every = 5
  config.checkpoint.every_steps = 10
  config.eval.every_steps = 0
  config.eval.random_seeds = 2
  config.eval.chunk_segments = 256
  return config
