"""experiments/protocols.py, the baseline networks and UMT's soft targets, on tiny data."""

import json
import os

import jax
import numpy as np
import pytest

from configs import saliency_baseline
from experiments import protocols
from hl_jax.data import benchmarks
from hl_jax.taohighlight import inputs
from hl_jax.taohighlight import network
from hl_jax.taohighlight import targets
from hl_jax.taohighlight import trainer

import test_tao_train  # tests/test_tao_train.py: its tiny synthetic benchmark.

# ------------------------------------------------------------ targets


def test_tvsum_soft_targets_are_umts():
  # UMT: (sum of the 20 annotator scores - 20) / 80, computed here by hand.
  scores = np.array([[1] * 20, [5] * 20, [2] * 10 + [4] * 10, [1] * 19 + [5]], np.float32)
  expected = [(20 - 20) / 80, (100 - 20) / 80, (20 + 40 - 20) / 80, (19 + 5 - 20) / 80]
  saliency, _ = targets.targets(scores, "tvsum", 2)
  np.testing.assert_allclose(saliency, expected, rtol=1e-6)
  random = np.random.default_rng(0).integers(1, 6, size=(37, 20)).astype(np.float32)
  np.testing.assert_allclose(
      targets.targets(random, "tvsum", 8)[0], (random.sum(1) - 20) / 80, rtol=1e-6
  )
  # YouTube Highlights: BCE targets are match > 0.
  saliency, _ = targets.targets(np.array([-1, 0, 1, 2]), "youtube_highlights", 4)
  np.testing.assert_array_equal(saliency, [0, 0, 1, 1])


# ------------------------------------------------------------ baselines


def baseline_config(kind):
  config = saliency_baseline.get_config(f"tiny,kind={kind}")
  config.model.visual_dim = test_tao_train.DV + test_tao_train.DA
  return config


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_baseline_shapes_masks_and_padding(kind):
  config = baseline_config(kind)
  model = trainer.build_model(config)
  assert type(model).__name__ == {"mlp": "SaliencyMLP", "transformer": "SaliencyTransformer"}[kind]
  rng = np.random.default_rng(0)
  d = config.model.visual_dim
  visual = rng.normal(size=(2, 16, d)).astype(np.float32)
  mask = np.arange(16)[None, :] < np.array([[16], [3]])  # Fewer valid clips than k (4).
  params = model.init(jax.random.PRNGKey(0), visual, mask)["params"]
  out = model.apply({"params": params}, visual, mask)
  assert out["saliency"].shape == (2, 16) and out["features"].shape[:2] == (2, 16)
  assert out["top_idx"].shape == (2, config.model.k)
  np.testing.assert_array_equal(np.asarray(out["saliency"])[1, 3:], network.NEG)
  np.testing.assert_array_equal(np.asarray(out["features"])[1, 3:], 0.0)
  assert not np.asarray(out["top_valid"])[1].all() and np.asarray(out["top_valid"])[0].all()
  # What lies in the padding changes no valid clip's score, nor does the padded length.
  noisy = visual.copy()
  noisy[1, 3:] = 100.0
  again = model.apply({"params": params}, noisy, mask)
  np.testing.assert_allclose(again["saliency"][1, :3], out["saliency"][1, :3], rtol=1e-5, atol=1e-5)
  short = model.apply({"params": params}, visual[1:, :8], mask[1:, :8])
  np.testing.assert_allclose(short["saliency"][0, :3], out["saliency"][1, :3], rtol=1e-5, atol=1e-5)
  # Clips see each other in the transformer only.
  moved = visual.copy()
  moved[0, 3] += rng.normal(size=d)  # Not a constant: LayerNorm would remove it.
  third = model.apply({"params": params}, moved, mask)["saliency"][0]
  changed = np.flatnonzero(~np.isclose(third, out["saliency"][0], rtol=1e-6, atol=1e-6))
  assert list(changed) == [3] if kind == "mlp" else len(changed) == 16


def test_baselines_train_the_saliency_loss_alone():
  config = baseline_config("mlp")
  config.loss.w_reg = 1.0
  with pytest.raises(Exception, match="no segment head"):
    from hl_jax.core import families  # pylint: disable=g-import-not-at-top

    families.validate(config)
  with pytest.raises(ValueError, match="kind='gru'"):
    saliency_baseline.get_config("kind=gru")


def test_bucket_length():
  got = [inputs.bucket_length(n, 480) for n in (1, 32, 33, 100, 200, 300, 476)]
  assert got == [32, 32, 64, 128, 256, 480, 480]
  assert inputs.bucket_length(20, 24) == 24


# ------------------------------------------------------------ selection rules


def test_plateau_picks_the_earliest_evaluation_near_the_best():
  curve = [(5, 0.50), (10, 0.60), (15, 0.604), (20, 0.58), (25, 0.59)]
  assert protocols.plateau(curve) == (10, True)  # 0.604 is within half a point of 0.60.
  assert protocols.plateau(curve[:3]) == (10, False)  # Not yet as long again.
  rising = [(5, 0.5), (10, 0.6), (20, 0.7)]
  assert protocols.plateau(rising) == (20, False)
  with pytest.raises(ValueError, match="no CV evaluation"):
    protocols.plateau([])


def history(values, every=10):
  return [
      {"step": every * (i + 1), "mAP": v, "per_group": {"A": v, "B": v}}
      for i, v in enumerate(values)
  ]


def test_protocol_b_picks_the_best_val_evaluation_and_a_the_last():
  results = {"step": 50, "mAP": 0.5, "history": history([0.4, 0.7, 0.7, 0.6, 0.5])}
  assert protocols.select_published(results)["step"] == 20  # Best, first on ties.
  assert protocols.select_last(results)["step"] == 50


def test_cv_curve_refuses_val_and_keeps_the_chunk():
  results = {"split": "val", "history": history([0.5])}
  with pytest.raises(ValueError, match="CV folds of the train split only"):
    protocols.cv_curve(results, 20, 1, 100)
  results = {"split": "train_cv0of2", "history": history([0.5, 0.6, 0.7])}
  assert protocols.cv_curve(results, 20, 2, 20) == [(1.0, 0.5), (2.0, 0.6)]


def test_training_length_follows_cv_never_val(monkeypatch, tmp_path):
  # CV peaks at epoch 20 then falls; val (which it must not read) would keep rising.
  monkeypatch.setattr(
      protocols, "PUBLISHED", {"tvsum": protocols.Recipe(500, 1, 10, 5)}, raising=True
  )
  cv_map = lambda epoch: 0.6 - abs(epoch - 20) / 200
  trained = []

  def fake_train(workdir, config, label, enabled):
    del workdir, label, enabled
    trained.append((config.cv_folds, config.train.num_steps))
    assert config.cv_folds == 2, "the length stage evaluated something other than a CV fold"
    n = 10  # counts["tvsum"]["cv"] below; batch 1, so a step is 1/10 epoch.
    every = config.eval.every_steps
    steps = range(every, config.train.num_steps + 1, every)
    return {
        "step": config.train.num_steps,
        "split": "train_cv0of2",
        "wall_s": 1.0,
        "history": [{"step": s, "mAP": cv_map(s / n)} for s in steps],
    }

  monkeypatch.setattr(protocols, "train", fake_train)
  counts = {"tvsum": {"": 20, "cv": 10, "A": 10, "B": 10}}
  chosen = protocols.choose_length("mlp", "tvsum", "", str(tmp_path), counts, True)
  assert (chosen["epochs"], chosen["rule"]) == (20, "CV plateau")
  assert [s for _, s in trained] == [100, 200, 400]  # Chunks of 10, 20, 40 epochs.
  assert chosen["cv_epochs_trained"] == 40


def test_protocol_rows_per_group_tables_and_differences():
  runs = [protocols.Run("all", "mlp", "tvsum", 10, k) for k in range(3)] + [
      protocols.Run("group", "mlp", "tvsum", 10, k, g) for g in ("A", "B") for k in range(3)
  ]
  results = {}
  for k in range(3):
    all_history = history([0.9, 0.5 + 0.01 * k])  # (a) reads the last, not the better 0.9.
    results[runs[k].name] = {"history": all_history}
  for r in runs[3:]:
    bump = 0.1 if r.group == "A" else 0.0
    results[r.name] = {"history": history([0.6 + bump, 0.8 + bump + 0.01 * r.seed, 0.7])}
  (row,) = protocols.protocol_rows(runs, results, 3)
  assert row["groups"] == ["A", "B"]
  np.testing.assert_allclose(row["a"]["values"], [0.5, 0.51, 0.52])
  np.testing.assert_allclose(row["group_last"]["values"], [0.7, 0.7, 0.7])
  np.testing.assert_allclose(row["b"]["values"], [0.85, 0.86, 0.87])
  np.testing.assert_allclose(row["b_best_seed"], 0.87)
  np.testing.assert_allclose(row["b_minus_a"], 0.86 - 0.51)
  np.testing.assert_allclose(row["group_minus_a"] + row["b_minus_group"], row["b_minus_a"])
  np.testing.assert_allclose(row["per_group"]["b"]["A"]["values"], [0.9, 0.91, 0.92])
  assert not row["b_long"] and "b_long_minus_a" not in row
  # Stage long: (b) again, over its own runs (every epoch evaluated).
  long = [protocols.Run("long", "mlp", "tvsum", 500, k, g) for g in ("A", "B") for k in range(3)]
  for r in long:
    results[r.name] = {"history": history([0.6, 0.95 - 0.01 * r.seed, 0.7, 0.65])}
  (row,) = protocols.protocol_rows(runs + long, results, 3)
  np.testing.assert_allclose(row["b_long"]["values"], [0.95, 0.94, 0.93])
  np.testing.assert_allclose(row["b_long_best_seed"], 0.95)
  np.testing.assert_allclose(row["b_long_minus_a"], 0.94 - 0.51)
  assert row["long_epochs"] == 500 and row["b"]["n"] == 3
  (alone,) = protocols.protocol_rows(long, results, 3)  # --stage=long by itself.
  assert alone["groups"] == ["A", "B"] and alone["b_long"] == row["b_long"]
  assert "at the published length (500 epochs" in protocols.markdown(
      {
          "date": "",
          "command": "",
          "machine": "",
          "num_finished": 0,
          "num_planned": 0,
          "total_wall_s": 0.0,
          "lengths": {},
          "rows": [row],
          "cost": [],
      }
  )
  # A seed whose groups have not all finished does not count for (b).
  del results[runs[-1].name]
  (row,) = protocols.protocol_rows(runs, results, 3)
  assert row["b"]["n"] == 2


def test_run_configs_follow_the_recipe():
  counts = {"tvsum": {"": 40, "cv": 20, "BK": 4}, "youtube_highlights": {"": 234, "dog": 41}}
  config = protocols.run_config(protocols.Run("group", "mlp", "tvsum", 100, 1, "BK"), "", counts)
  assert (config.train.batch_size, config.train.num_steps, config.eval.every_steps) == (1, 400, 8)
  assert (config.group, config.seed, config.model.kind, config.loss.w_reg) == ("BK", 1, "mlp", 0)
  assert (config.train.learning_rate, config.train.weight_decay) == (1e-3, 1e-4)
  config = protocols.run_config(
      protocols.Run("all", "taohighlight", "youtube_highlights", 10), "", counts
  )
  assert (config.train.batch_size, config.train.num_steps, config.eval.every_steps) == (4, 585, 0)
  assert (config.model.kind, config.loss.w_ag, config.cv_folds) == ("taohighlight", 1.0, 0)
  config = protocols.run_config(protocols.Run("cv", "transformer", "tvsum"), "", counts, 20)
  assert (config.cv_folds, config.train.num_steps, config.eval.every_steps) == (2, 400, 100)
  runs = protocols.plan(["mlp"], ["tvsum"], 3, {("mlp", "tvsum"): {"epochs": 5}}, {"tvsum": "AB"})
  assert len(runs) == 3 + 2 * 3 and len({r.name for r in runs}) == len(runs)
  assert runs[0].name == "all_mlp_tvsum_all_e5_seed0" and runs[-1].name.endswith("_B_e5_seed2")
  # Stage long: the published length, evaluated after every epoch.
  runs = protocols.plan(
      ["mlp"], ["tvsum"], 3, {("mlp", "tvsum"): {"epochs": 5}}, {"tvsum": "AB"}, ["mlp/tvsum"]
  )
  assert len(runs) == 3 + 2 * 3 * 2 and runs[-1].name == "long_mlp_tvsum_B_e500_seed2"
  config = protocols.run_config(runs[-1], "", {"tvsum": {"B": 4}})
  assert (config.train.num_steps, config.eval.every_steps) == (2000, 4)


# ------------------------------------------------------------ end to end


def test_end_to_end_trains_reports_and_reuses(monkeypatch, tmp_path):
  monkeypatch.setattr(benchmarks, "load_benchmark", test_tao_train.fake_benchmark())
  monkeypatch.setattr(protocols, "PUBLISHED", {"tvsum": protocols.Recipe(8, 1, 2, 1)})
  real_base = protocols.base_config

  def tiny_base(model, benchmark, data_dir):
    config = real_base(model, benchmark, data_dir)
    config.num_devices = 1
    config.model.hidden, config.model.heads = 16, 2
    config.model.visual_dim = test_tao_train.DV + test_tao_train.DA
    return config

  monkeypatch.setattr(protocols, "base_config", tiny_base)
  out = str(tmp_path / "out")
  report = protocols.run_all(["mlp"], ["tvsum"], protocols.STAGES, 2, "", out)
  (row,) = report["rows"]
  assert row["a"]["n"] == 2 and row["b"]["n"] == 2 and row["groups"] == ["A", "B"]
  assert row["b_long"]["n"] == 2 and row["long_epochs"] == 8
  assert report["num_finished"] == report["num_planned"] == 2 + 2 * 2 + 2 * 2
  with open(os.path.join(out, "cv_length.json")) as f:
    epochs = json.load(f)["mlp/tvsum"]["epochs"]
  assert 1 <= epochs <= 8
  for name, results in report["runs"].items():  # (b) selects among every epoch's evaluation.
    want = {"group": epochs, "long": 8}.get(name.split("_")[0], 1)
    assert len(results["history"]) == want, name
  text = open(os.path.join(out, "protocols.md")).read()
  assert "selection on the test split" in text and "UMT (CVPR'22)" in text
  again = protocols.run_all(["mlp"], ["tvsum"], protocols.STAGES, 2, "", out, enabled=False)
  assert again["rows"] == report["rows"]
