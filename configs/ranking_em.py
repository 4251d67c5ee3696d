r"""Ranking-EM: pair weights from an EM estimate of which pairs are valid (no h).

  python launch.py --config=configs/ranking_em.py --workdir=/tmp/hl_jax/ranking_em

The model is stated in hl_jax/less_is_more/weightings.py and WORKSPACE.md.
"""

from configs import joint


def get_config(arg=None):
  config = joint.get_config(arg)
  config.train.weighting = "ranking_em"
  return config
