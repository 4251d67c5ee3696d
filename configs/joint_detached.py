r"""Joint training with detached pair weights and label-free checkpoint selection.

  python launch.py --config=configs/joint_detached.py:corpus=youtube_highlights \
      --workdir=/tmp/hl_jax/joint_detached

Derived from configs/joint.py (the paper's objective, unchanged). Of the four
pair weightings that cannot collapse (hl_jax/less_is_more/weightings.py), "detached" is the one
the label-free criterion prefers: in RESULTS.md's weighting ablation its
held-out pair accuracy, f(short) > f(long) on training videos kept out of
training, is the highest (76.1 ± 1.3% over 3 seeds; capped simplex 76.0,
self-paced 75.6, tempered 73.9; the paper's softmax weights 55.4). f trains on
h's weights with gradients detached, satisfied pairs (zero hinge) get no
weight, and h learns which unsatisfied pairs to trust.

Which to use: on YouTube Highlights and TVSum this config fits the duration
signal of unseen videos far better than configs/joint.py but detects
highlights worse (YTH val 54.6 vs 61.8 mAP, TVSum 34.8 vs 48.8, selected
evaluations), because duration is only weakly tied to highlights in that
corpus (RESULTS.md). Use it where the weak signal itself is what should be
learnt; configs/joint.py stays the default.

Every run holds out 15% of the training videos (stable hash, per domain and
bucket) and records in results.json the evaluation with the best held-out pair
accuracy ("selected"); checkpoints are kept at every evaluation so that the
selected step's parameters stay in the workdir.
"""

from configs import joint


def get_config(arg=None):
  config = joint.get_config(arg)
  config.train.weighting = "detached"
  config.corpus.holdout_fraction = 0.15
  config.checkpoint.every_steps = config.eval.every_steps
  config.checkpoint.max_to_keep = 20
  return config
