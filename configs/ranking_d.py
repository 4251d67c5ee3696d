r"""Ranking-D: duration ranking with every pair of a group weighted 1/n (no h).

python launch.py --config=configs/ranking_d.py --workdir=/tmp/hl_jax/ranking_d
"""

from configs import joint


def get_config(arg=None):
  config = joint.get_config(arg)
  config.train.weighting = "ranking_d"
  return config
