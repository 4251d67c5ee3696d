"""The trainer learns: short real runs on the synthetic corpus, against measured margins.

Every run is `train.train_and_evaluate` for 200 steps of 128 groups x 8 pairs
with the full-width model of configs/joint.py, on one device, seed 0
(~20-35 s a run on the 2-core CPU machine). The generator's ground truth of
the training videos (which training never reads) says which pairs the pair
weights trust. Margins were measured on 2026-12-01 at seeds 0, 1 and 2 (the
numbers in the comments, in mAP points, val split); each test asserts well
below the smallest measured one, since a run's trajectory can differ from
host to host (RESULTS.md).
"""

import warnings

import numpy as np
import pytest

from configs import joint
from experiments import pair_weights
from hl_jax.core import checkpointing
from hl_jax.core import run_loop
from hl_jax.less_is_more import models
from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb
from tfds_builders.duration_corpus import synthetic

# 60% of the short videos (and 30% of the rest) junk, against 25% (10%) in
# `synthetic`; 1500 training videos and 10 val videos per domain.
HEAVY_JUNK = dcb.DurationCorpusConfig(
    name="synthetic_junk60",
    feature_dim=128,
    synthetic=synthetic.SyntheticParams(
        num_train=1500, num_val_per_domain=10, junk_video_fraction=(0.6, 0.0, 0.3)
    ),
    description="The synthetic corpus with heavy junk, for tests/test_learning.py.",
)
CORPORA = {"synthetic": dcb.Builder.builder_configs["synthetic"], HEAVY_JUNK.name: HEAVY_JUNK}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """run(corpus, weighting) -> (workdir, results), each trained once per module."""
  root = tmp_path_factory.mktemp("learning")
  data_dir = str(root / "tfds")
  dcb.get_builder(HEAVY_JUNK, data_dir=data_dir)
  done = {}

  def run_once(corpus: str, weighting: str):
    if (corpus, weighting) not in done:
      config = joint.get_config()
      config.data_dir = data_dir
      config.corpus.builder_config = corpus
      config.train.weighting = weighting
      config.num_devices = 1
      config.train.num_steps = config.checkpoint.every_steps = 200
      config.train.num_groups = 128
      config.train.log_every = 50
      config.eval.every_steps = 0
      workdir = str(root / f"{corpus}_{weighting}")
      done[corpus, weighting] = workdir, run_loop.train_and_evaluate(config, workdir)
    return done[corpus, weighting]

  return run_once


def map_points(results, which="model"):
  return 100 * results["corpus"][which]["mAP"]


def training_segments(corpus: str):
  """The generator's training split: (short, long) segments and their truth."""
  config = CORPORA[corpus]
  _, splits = synthetic.generate(
      config.synthetic, config.feature_dim, config.short_max_s, config.long_min_s
  )
  split = splits["train"]
  bucket = split.bucket[split.segment_video]
  return [
      (
          split.features[bucket == side],
          split.highlight[bucket == side],
          split.junk_segment[bucket == side],
      )
      for side in (synthetic.SHORT, synthetic.LONG)
  ]


def weight_on(workdir: str, short_labels, long_labels, short, long) -> dict[str, float]:
  """pair_weights.pair_weight_stats on pairs labelled by the given truth."""
  pools = {"all": ((short[0], short_labels), (long[0], long_labels))}
  with warnings.catch_warnings():  # f_acc_wrong of a pool without wrong pairs: nan.
    warnings.simplefilter("ignore", RuntimeWarning)
    return pair_weights.pair_weight_stats(workdir, pools, groups=2048)


def junk_preference(workdir: str, short, long) -> float:
  """f's mean score of junk segments minus that of the others (training split)."""
  config, state = checkpointing.restore_workdir(workdir)
  scorer, _ = models.build(config)
  features = np.concatenate([short[0], long[0]])
  junk = np.concatenate([short[2], long[2]])
  scores = np.asarray(scorer.apply({"params": state["params"]["f"]}, features))
  return float(scores[junk].mean() - scores[~junk].mean())


def test_a_short_run_beats_random_scores(run):
  _, results = run("synthetic", "softmax")
  # Measured at 200 steps: 75.95, 70.79, 63.00 (seeds 0-2; 72.5 at seed 3)
  # against 33.39 for random scores: 29.6 points above at least.
  assert map_points(results) >= map_points(results, "random") + 20


@pytest.mark.slow
def test_joint_beats_ranking_d_on_the_synthetic_corpus(run):
  """The paper's claim where a quarter of the short videos are junk."""
  joint_dir, joint_results = run("synthetic", "softmax")
  uniform_dir, ranking_d = run("synthetic", "ranking_d")
  # Measured: joint 75.95 / 70.79 / 63.00 against Ranking-D 52.88 / 51.60 /
  # 51.75 (seeds 0-2): 23.1, 19.2 and 11.3 points ahead. Both beat random (33.39).
  assert map_points(ranking_d) >= map_points(ranking_d, "random") + 10
  assert map_points(joint_results) >= map_points(ranking_d) + 8
  # Why: h moves weight off the junk pairs and the wrong pairs, onto the right
  # ones (ground truth of the training videos). Measured, seeds 0-2 (uniform):
  # junk 0.15 / 0.17 / 0.23 (0.261), wrong 0.011 / 0.015 / 0.028 (0.084),
  # right 0.68 / 0.65 / 0.55 (0.378).
  short, long = training_segments("synthetic")
  no_junk = np.zeros(len(long[0]), bool)
  # "right" with these labels: the pair's short segment is junk.
  junk = [weight_on(d, short[2], no_junk, short, long)["right"] for d in (joint_dir, uniform_dir)]
  assert junk[0] <= junk[1] - 0.03, junk
  truth = [weight_on(d, short[1], long[1], short, long) for d in (joint_dir, uniform_dir)]
  assert truth[0]["wrong"] <= truth[1]["wrong"] - 0.03, truth
  assert truth[0]["right"] >= truth[1]["right"] + 0.1, truth


@pytest.mark.slow
def test_heavy_junk_misleads_ranking_d(run):
  """With 60% junk short videos, Ranking-D learns the junk look as a highlight.

  The paper's claim that joint training beats Ranking-D does NOT hold reliably
  here: measured at 200 steps, joint 54.03 / 44.99 / 36.05 against Ranking-D
  39.56 / 38.44 / 40.85 (seeds 0-2: +14.5, +6.6, -4.8; at 400 steps +12.1,
  +12.3, -0.9), and h puts 0.55 / 0.61 / 0.67 of its weight on pairs with a
  junk short segment, no less than uniform weights (0.54): h collapses onto
  pairs f already separates (RESULTS.md), and with this much junk those are
  junk pairs. So this test asserts what holds at every seed measured: the
  junk costs Ranking-D val mAP, and its f scores junk segments up.
  """
  synthetic_dir, clean = run("synthetic", "ranking_d")
  junk_dir, junky = run(HEAVY_JUNK.name, "ranking_d")
  # Measured: 39.56 / 38.44 / 40.85 against 52.88 / 51.60 / 51.75 on
  # `synthetic` (seeds 0-2): 10.9 points lower at least, random scores 33.04
  # and 33.39.
  assert map_points(junky) <= map_points(clean) - 6
  # f(junk) - f(other segments), short and long segments of the training
  # split: measured 2.05 / 2.11 / 2.13, against 0.88 / 0.98 / 0.96 on
  # `synthetic`. (Joint's f: 2.28 / 2.59 / 3.05 here, 0.33 / 0.64 / 1.18 there.)
  heavy = junk_preference(junk_dir, *training_segments(HEAVY_JUNK.name))
  quarter = junk_preference(synthetic_dir, *training_segments("synthetic"))
  assert heavy >= 1.5 and heavy >= quarter + 0.6, (heavy, quarter)
