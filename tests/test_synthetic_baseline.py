"""experiments/synthetic_baseline.py on a small synthetic corpus: the expected ordering."""

from experiments import synthetic_baseline
from tfds_builders.duration_corpus import synthetic


def test_sanity_linear_scorer_beats_random():
  """Plain numpy pairwise hinge on short-vs-long pairs learns the highlights."""
  params = synthetic.SyntheticParams(num_train=600, num_val_per_domain=10)
  lat, splits = synthetic.generate(params, dim=32)
  train, val = splits["train"], splits["val"]
  random_map = synthetic_baseline.random_map(val)
  oracle = synthetic_baseline.val_map(val, synthetic_baseline.oracle_scores(val, lat))
  w_all = synthetic_baseline.train_pairwise_linear(train, steps=300)
  w_clean = synthetic_baseline.train_pairwise_linear(train, steps=300, drop_junk=True)
  linear = synthetic_baseline.val_map(val, val.features @ w_all)
  clean = synthetic_baseline.val_map(val, val.features @ w_clean)
  print(
      f"val mAP random {random_map:.3f} linear {linear:.3f} "
      f"linear-clean {clean:.3f} oracle {oracle:.3f}"
  )
  assert linear > random_map + 0.15
  assert clean > linear + 0.03  # the junk pairs hurt uniform weighting
  assert oracle > clean
