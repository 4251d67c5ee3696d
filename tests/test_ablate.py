"""benchmarks/ablate.py end to end on the tiny config: outputs, reuse, baselines."""

import json
import warnings

import numpy as np
import pytest

from benchmarks import ablate
from benchmarks import pair_weights
from configs import tiny
from hl_jax import datasets
from hl_jax import train

METHODS = ("ranking_d", "joint")


def hand_trapezoid_ap(scores, labels):
  """The lighthouse loop of REFERENCE.md, ranks by score, ties by clip index."""
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
  num_pos = sum(labels)
  if num_pos == 0:
    return 0.0
  hits, ap, rec, prc = 0, 0.0, 0.0, 1.0
  for j, i in enumerate(order, start=1):
    hits += labels[i]
    r, p = hits / num_pos, hits / j
    ap += (r - rec) * (prc + p) / 2
    rec, prc = r, p
  return ap


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  config = tiny.get_config()
  config.corpus.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.num_devices = 1  # Compiles faster than the 4 forced devices.
  return config


@pytest.fixture(scope="module")
def ablation(base, tmp_path_factory):
  out = tmp_path_factory.mktemp("ablation")
  report = ablate.run_ablation(base, str(out), seeds=1, methods=METHODS,
                               domains=("dog",), steps=6, steps_s=4, command="test")
  return out, report


@pytest.mark.slow
def test_writes_the_table_json_and_plot(ablation):
  out, report = ablation
  md = (out / "ablation.md").read_text()
  for row in ("| Ranking-D | Ours-A |", "| Joint (f+h) | Ours-A |",
              "| Ranking-D | Ours-S |", "| Joint (f+h) | Ours-S |",
              "| random scores (1 seed) | - |", "| feature L2 norm | - |"):
    assert row in md
  assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  saved = json.loads((out / "ablation.json").read_text())
  assert sorted(saved["runs"]) == sorted(
      f"{m}_{s}_seed0" for m in METHODS for s in ("A", "S-dog"))
  assert saved["settings"]["num_trained"] == 4
  for name in saved["runs"]:
    assert (out / "runs" / name / "results.json").exists()
  rows = {(r["label"], r["model"]): r["values"] for r in saved["tables"]["corpus"]["rows"]}
  # Ours-S is evaluated on its own domain only; its avg is that domain's mAP.
  ours_s = rows[("Ranking-D", "Ours-S")]
  assert set(ours_s) == {"dog", "avg"}
  assert ours_s["avg"]["mean"] == ours_s["dog"]["mean"]
  assert set(rows[("Joint (f+h)", "Ours-A")]) == set(
      saved["tables"]["corpus"]["columns"])
  assert report["tables"] == saved["tables"]


@pytest.mark.slow
def test_second_invocation_reuses_finished_runs(ablation, base, monkeypatch):
  out, first = ablation

  def must_not_train(*args, **kwargs):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(train, "train_and_evaluate", must_not_train)
  second = ablate.run_ablation(base, str(out), seeds=1, methods=METHODS,
                               domains=("dog",), steps=6, steps_s=4, command="test")
  assert second["settings"]["num_reused"] == 4
  assert second["settings"]["num_trained"] == 0
  assert second["tables"] == first["tables"]


@pytest.mark.slow
def test_l2_norm_baseline_matches_a_hand_computation(ablation, base):
  _, report = ablation
  video = datasets.load_corpus(base).eval_videos[0]
  norms = np.sqrt(np.sum(video.features.astype(np.float64) ** 2, axis=1))
  expected = hand_trapezoid_ap(list(norms), [int(y) for y in video.labels])
  l2 = report["baselines"]["corpus"]["l2_norm"]
  assert l2["per_video"][video.video_id] == pytest.approx(expected, abs=1e-12)
  assert 0 < expected < 1


@pytest.mark.slow
def test_changed_steps_are_refused_not_mixed(ablation, base):
  out, _ = ablation
  with pytest.raises(ValueError, match="holds a run of 6 steps, not 7"):
    ablate.run_ablation(base, str(out), seeds=1, methods=("ranking_d",),
                        models=("A",), steps=7)


@pytest.mark.slow
def test_pair_weights_on_hand_labelled_pools(ablation, base):
  out, _ = ablation
  # Hand labels for the tiny corpus: the first half of each bucket's clips are
  # highlights, so right / wrong pairs are known exactly.
  features = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
  labels = np.arange(40) < 20
  pools = {name: ((features, labels), (features, labels)) for name in ("all", "dog")}
  pair_weight_stats = pair_weights.pair_weight_stats
  uniform = pair_weight_stats(str(out / "runs" / "ranking_d_A_seed0"), pools, groups=512)
  assert uniform["max_weight"] == pytest.approx(1 / base.train.group_size)
  assert uniform["right"] == pytest.approx(0.25, abs=0.03)
  assert uniform["wrong"] == pytest.approx(0.25, abs=0.03)
  joint_run = str(out / "runs" / "joint_S-dog_seed0")
  joint = pair_weight_stats(joint_run, pools, groups=512)
  assert joint["max_weight"] > 1 / base.train.group_size  # Not uniform.
  # Whatever h's weights are, they sum to 1 in each group: with every short
  # clip a highlight and no long clip one, all of it is on right pairs; with
  # the labels swapped, all on wrong pairs.
  yes, no = np.ones(40, bool), np.zeros(40, bool)
  for short, long, right, wrong in ((yes, no, 1, 0), (no, yes, 0, 1)):
    pools = {name: ((features, short), (features, long)) for name in ("all", "dog")}
    for run in (joint_run, str(out / "runs" / "ranking_d_A_seed0")):
      with warnings.catch_warnings():  # f's accuracy on absent wrong / right pairs: nan.
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = pair_weight_stats(run, pools, groups=64)
      assert (stats["right"], stats["wrong"]) == (
          pytest.approx(right, abs=1e-5), pytest.approx(wrong, abs=1e-5)), run


def test_config_overrides_are_typed_and_checked():
  from benchmarks import harness  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  harness.apply_overrides(config, ["model.dropout_masks=flax", "train.num_steps=7",
                                   "model.dropout=0.25", "model.scorer_hidden=8:4"])
  assert config.model.dropout_masks == "flax"
  assert config.train.num_steps == 7 and config.model.dropout == 0.25
  assert tuple(config.model.scorer_hidden) == (8, 4)
  with pytest.raises(ValueError, match="config override 'model.no_such_key=1'"):
    harness.apply_overrides(config, ["model.no_such_key=1"])
