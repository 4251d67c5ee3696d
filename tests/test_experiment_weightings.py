"""experiments/weightings.py end to end on the tiny config: outputs, reuse, baselines,
recipes, last vs selected evaluations, the held-out ranking, runs made before
config.variant became train.weighting."""

import json
import os
import pathlib
import warnings

import numpy as np
import pytest

from configs import tiny
from experiments import pair_weights
from experiments import weightings
from experiments import weightings_data
from experiments import weightings_report
from hl_jax.core import families
from hl_jax.core import run_loop
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import corpora

METHODS = ("ranking_d", "joint", "joint_capped")
# A tiny-corpus domain has 2-6 videos per bucket: 0.2 holds out one of each.
RUN_FLAGS = dict(holdout_fraction=0.2, eval_every=2)
# The module's ablation (the `ablation` fixture), which a second invocation reuses.
ABLATION = dict(
    seeds=1, methods=METHODS, domains=("dog",), steps=6, steps_s=4, command="test", **RUN_FLAGS
)


def hand_trapezoid_ap(scores, labels):
  """The lighthouse evaluation loop (its training/evaluate.py), ranks by score, ties by clip index."""
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
  config.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.num_devices = 1  # Compiles faster than the 4 forced devices.
  return config


@pytest.fixture(scope="module")
def ablation(base, tmp_path_factory):
  out = tmp_path_factory.mktemp("ablation")
  return out, weightings.run_ablation(base, str(out), **ABLATION)


@pytest.mark.slow
def test_writes_the_table_json_and_plot(ablation):
  out, report = ablation
  md = (out / "ablation.md").read_text()
  for row in (
      "| Ranking-D | Ours-A |",
      "| Joint (f+h) | Ours-A |",
      "| Ranking-D | Ours-S |",
      "| Joint (f+h) | Ours-S |",
      "| random scores (1 seed) | - |",
      "| feature L2 norm | - |",
  ):
    assert row in md
  assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  saved = json.loads((out / "ablation.json").read_text())
  assert sorted(saved["runs"]) == sorted(f"{m}_{s}_seed0" for m in METHODS for s in ("A", "S-dog"))
  assert saved["settings"]["num_trained"] == 6
  for name in saved["runs"]:
    assert (out / "runs" / name / "results.json").exists()
  rows = {(r["label"], r["model"]): r["values"] for r in saved["tables"]["corpus"]["rows"]}
  # Ours-S is evaluated on its own domain only; its avg is that domain's mAP.
  ours_s = rows[("Ranking-D", "Ours-S")]
  assert set(ours_s) == {"dog", "avg", *weightings_report.HELDOUT}
  assert ours_s["avg"]["mean"] == ours_s["dog"]["mean"]
  assert set(rows[("Joint (f+h)", "Ours-A")]) == set(
      saved["tables"]["corpus"]["columns"] + list(weightings_report.HELDOUT)
  )
  assert report["tables"] == saved["tables"]


@pytest.mark.slow
def test_second_invocation_reuses_finished_runs(ablation, base, monkeypatch):
  out, first = ablation

  def must_not_train(*args, **kwargs):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(run_loop, "train_and_evaluate", must_not_train)
  second = weightings.run_ablation(base, str(out), **ABLATION)
  assert second["settings"]["num_reused"] == 6
  assert second["settings"]["num_trained"] == 0
  assert second["tables"] == first["tables"]
  assert second["tables_selected"] == first["tables_selected"]


@pytest.mark.slow
def test_l2_norm_baseline_matches_a_hand_computation(ablation, base):
  _, report = ablation
  video = corpora.load_corpus(base).eval_videos[0]
  norms = np.sqrt(np.sum(video.features.astype(np.float64) ** 2, axis=1))
  expected = hand_trapezoid_ap(list(norms), [int(y) for y in video.labels])
  l2 = report["baselines"]["i3d_rgb"]["corpus"]["l2_norm"]
  assert l2["per_video"][video.video_id] == pytest.approx(expected, abs=1e-12)
  assert 0 < expected < 1


@pytest.mark.slow
def test_changed_steps_are_refused_not_mixed(ablation, base):
  out, _ = ablation
  with pytest.raises(ValueError, match="holds a run of 6 steps, not 7"):
    weightings.run_ablation(
        base, str(out), seeds=1, methods=("ranking_d",), models=("A",), steps=7, **RUN_FLAGS
    )


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
          pytest.approx(right, abs=1e-5),
          pytest.approx(wrong, abs=1e-5),
      ), run
  # The capped run's weights (train.weighting) leave satisfied pairs out; a
  # group whose pairs are all satisfied has no weight at all, and the weight
  # statistics are over the groups that have some.
  capped = pair_weight_stats(str(out / "runs" / "joint_capped_A_seed0"), pools, groups=256)
  assert 0 < capped["weighted_groups"] <= 1
  assert (capped["satisfied"], capped["right"]) == (0.0, 0.0)
  assert capped["wrong"] == pytest.approx(1.0)
  assert 1 <= capped["effective_pairs"] <= base.train.group_size
  assert uniform["effective_pairs"] == pytest.approx(base.train.group_size)
  assert uniform["weighted_groups"] == 1.0
  assert np.isnan(uniform["between_share"])  # No video ids in hand-made pools.
  # Pools with each clip's video (labelled_pools(with_videos=True)): the
  # between-video share of f's variance; 1 when every clip is its own video.
  assert weightings_data.labelled_pools(base, with_videos=True) is None  # No YTH labels.
  run = str(out / "runs" / "joint_A_seed0")
  for videos, low, high in ((np.repeat(np.arange(8), 5), 0.0, 1.0), (np.arange(40), 1.0, 1.0)):
    pools = {
        name: ((features, labels, videos), (features, labels, videos + 40))
        for name in ("all", "dog")
    }
    share = pair_weight_stats(run, pools, groups=64)["between_share"]
    assert low - 1e-9 <= share <= high + 1e-9


def test_config_overrides_are_typed_and_checked():
  from benchmarks import harness  # pylint: disable=g-import-not-at-top

  config = tiny.get_config()
  harness.apply_overrides(
      config,
      [
          "model.dropout_masks=flax",
          "train.num_steps=7",
          "model.dropout=0.25",
          "model.scorer_hidden=8:4",
      ],
  )
  assert config.model.dropout_masks == "flax"
  assert config.train.num_steps == 7 and config.model.dropout == 0.25
  assert tuple(config.model.scorer_hidden) == (8, 4)
  with pytest.raises(ValueError, match="config override 'model.no_such_key=1'"):
    harness.apply_overrides(config, ["model.no_such_key=1"])


@pytest.mark.slow
def test_last_and_selected_evaluations_are_both_reported(ablation):
  out, report = ablation
  md = (out / "ablation.md").read_text()
  for heading in (
      "## corpus val mAP (%): last evaluation",
      "## corpus val mAP (%): evaluation selected by held-out pair accuracy",
      "## Ours-A avg mAP (%) per feature set",
      "held-out pair acc (%)",
      "## Collapse-proof variants by held-out pair accuracy",
  ):
    assert heading in md
  for name, summary in report["runs"].items():
    results = json.loads((out / "runs" / name / "results.json").read_text())
    history = results["history"]
    assert [e["step"] for e in history] == ([2, 4] if summary["domain"] else [2, 4, 6])
    accuracies = [e["heldout"]["heldout"]["pair_accuracy"] for e in history]
    chosen = history[int(np.argmax(accuracies))]  # The earliest best.
    assert summary["last"]["step"] == history[-1]["step"]
    assert summary["selected"]["step"] == chosen["step"]
    assert summary["selected"]["eval"]["corpus"]["mAP"] == chosen["corpus"]["model"]["mAP"]
    assert summary["selected"]["heldout"]["pair_accuracy"] == max(accuracies)
    assert summary["last"]["heldout"]["between_share"] == (
        results["heldout"]["heldout"]["between_share"]
    )
  for key, which in (("tables", "last"), ("tables_selected", "selected")):
    rows = {(r["label"], r["model"]): r["values"] for r in report[key]["corpus"]["rows"]}
    run = report["runs"]["joint_capped_A_seed0"][which]
    values = rows[("Joint, capped simplex", "Ours-A")]
    assert values["avg"]["mean"] == run["eval"]["corpus"]["mAP"]
    assert values["pair_accuracy"]["mean"] == run["heldout"]["pair_accuracy"]
  assert [r["method"] for r in report["heldout_ranking"]] == ["joint_capped"]
  assert weightings.best_method(str(out), seeds=1) == "joint_capped"
  diagnostics = {(r["method"], r["model"]): r for r in report["diagnostics"]}
  assert 0 <= diagnostics[("joint_capped", "A")]["weight_satisfied"] <= 1
  assert 0 <= diagnostics[("joint", "S")]["heldout_between_share"] <= 1


@pytest.mark.slow
def test_a_changed_recipe_or_holdout_refuses_the_run_dir(ablation, base, monkeypatch):
  out, _ = ablation
  monkeypatch.setattr(run_loop, "train_and_evaluate", None)  # Refused before any training.
  monkeypatch.setitem(
      weightings_report.RECIPES, "joint", ("Joint (f+h)", {"train.weighting": "detached"})
  )
  with pytest.raises(
      ValueError,
      match=r"joint_A_seed0 holds a run with train.weighting="
      r"'softmax', not 'detached' .*--output_dir",
  ):
    weightings.run_ablation(
        base, str(out), seeds=1, methods=("joint",), models=("A",), steps=6, **RUN_FLAGS
    )
  with pytest.raises(ValueError, match="corpus.holdout_fraction=0.2, not 0.25"):
    weightings.run_ablation(
        base,
        str(out),
        seeds=1,
        methods=("ranking_d",),
        models=("A",),
        steps=6,
        holdout_fraction=0.25,
        eval_every=2,
    )


def test_recipes_set_their_config_keys():
  config = tiny.get_config()
  expected = {  # method: train.weighting, input.pair_within, weight decay factor.
      "ranking_d": ("ranking_d", "", 1),
      "ranking_em": ("ranking_em", "", 1),
      "joint": ("softmax", "", 1),
      "joint_detached": ("detached", "", 1),
      "joint_tempered": ("tempered", "", 1),
      "joint_capped": ("capped_simplex", "", 1),
      "joint_self_paced": ("self_paced", "", 1),
      "joint_capped_domain": ("capped_simplex", "domain", 1),
      "joint_capped_wd": ("capped_simplex", "", 10),
      "ranking_d_domain": ("ranking_d", "domain", 1),
  }
  assert list(expected) == list(weightings_report.RECIPES)
  for method, (weighting, within, decay) in expected.items():
    got = weightings.run_config(
        config, weightings.Run(method, "", 2), 0, 8, 0, holdout_fraction=0.2
    )
    families.validate(got)
    assert (got.train.weighting, got.input.pair_within) == (weighting, within)
    assert weightings_report.weighting(method) == weighting
    assert weightings_report.collapse_proof(method) == (
        weighting not in ("softmax", "ranking_d", "ranking_em")
    )
    assert got.train.weight_decay == pytest.approx(decay * config.train.weight_decay)
    assert got.model.dropout == config.model.dropout
    assert (got.seed, got.input.shuffle_seed, got.corpus.holdout_fraction) == (2, 2, 0.2)
    assert got.eval.every_steps == config.checkpoint.every_steps  # The default.
    ours_s = weightings.run_config(config, weightings.Run(method, "dog", 0), 0, 8, 0, eval_every=3)
    assert (ours_s.corpus.domain, ours_s.train.num_steps, ours_s.eval.every_steps) == ("dog", 8, 3)
  assert config.train.weighting == "softmax" and "variant" not in config  # Unchanged.
  assert (
      weightings.run_config(config, weightings.Run("joint", "dog", 0), 0, 8, 0).eval.every_steps
      == 2
  )  # Ours-S default: steps_s // 4.
  assert weightings.Run("joint", "dog", 1).name == "joint_S-dog_seed1"
  assert weightings.Run("joint_capped", "", 0, "i3d_rgb_flow").name == (
      "joint_capped_A_rgbflow_seed0"
  )
  with pytest.raises(ValueError, match="on the youtube_highlights corpus"):
    weightings.feature_base(config, "i3d_rgb_flow")
  from configs import joint  # pylint: disable=g-import-not-at-top

  yth = joint.get_config("corpus=youtube_highlights")
  audio = weightings.feature_base(yth, "i3d_rgb_flow_audio")
  assert (audio.corpus.builder_config, audio.eval.feature_set) == (
      "youtube_highlights_rgb_flow_audio",
      "i3d_rgb_flow_audio",
  )
  assert joint.get_config("corpus=youtube_highlights_rgb_flow_audio").eval.feature_set == (
      "i3d_rgb_flow_audio"
  )
  # The weights' schedule keeps its share of a run: 300 of 600 steps, 100 of 200.
  for domain, schedule, every in (("", 300, 200), ("dog", 100, 50)):
    got = weightings.run_config(yth, weightings.Run("joint_capped", domain, 0), 0, 200, 64)
    assert (got.train.weight_schedule_steps, got.eval.every_steps) == (schedule, every)
  with pytest.raises(
      ValueError, match=r"\['train.weighting'\] would be replaced by " r"\['recipe ranking_d'\]"
  ):
    weightings.run_ablation(
        config,
        "/nonexistent",
        seeds=1,
        methods=("ranking_d", "joint"),
        overridden=["train.weighting"],
    )
  with pytest.raises(ValueError, match="--holdout_fraction"):
    weightings.run_ablation(
        config,
        "/nonexistent",
        seeds=1,
        methods=("joint_capped_wd",),
        overridden=["train.weight_decay", "corpus.holdout_fraction"],
    )


def test_a_run_dir_of_another_recipe_or_setting_is_refused(tmp_path):
  config = tiny.get_config()
  workdir = str(tmp_path / "joint_A_seed0")
  old = weightings.run_config(
      config, weightings.Run("joint", "", 0), 0, 4, 0, holdout_fraction=0.0, eval_every=0
  )
  workdir_lib.save_config(workdir, old, {"family": "less_is_more"})
  # A run from before the weighting, hold-out and pairing keys: absent = default.
  saved = json.loads(open(os.path.join(workdir, "config.json")).read())
  del saved["train"]["weighting"], saved["corpus"]["holdout_fraction"]
  del saved["input"]["pair_within"]
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(saved, f)
  weightings.check_reusable(workdir, old)
  for method, run_flags, message in (
      ("joint_capped", {}, "train.weighting='softmax', not 'capped_simplex'"),
      ("joint_capped_wd", {}, "train.weighting="),
      ("ranking_d_domain", {}, "train.weighting='softmax', not 'ranking_d'"),
      ("joint", {"holdout_fraction": 0.15}, "corpus.holdout_fraction=0.0, not 0.15"),
      ("joint", {"eval_every": 2}, "eval.every_steps=0, not 2"),
  ):
    new = weightings.run_config(
        config,
        weightings.Run(method, "", 0),
        0,
        4,
        0,
        **dict(dict(holdout_fraction=0.0, eval_every=0), **run_flags),
    )
    with pytest.raises(ValueError, match=f"{workdir} holds a run with {message}.*--output_dir"):
      weightings.check_reusable(workdir, new)


def test_summary_of_a_run_without_heldout_counts_its_last_evaluation(tmp_path):
  rows = [{"step": 5, "train/loss": 0.5, "train/pair_accuracy": 0.9}]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  old = {"step": 5, "corpus": {"model": {"mAP": 0.4, "per_group": {"dog": 0.4}}}}
  summary = weightings.run_summary(old, str(tmp_path))
  assert (
      summary["last"]
      == summary["selected"]
      == {"step": 5, "eval": {"corpus": {"mAP": 0.4, "per_group": {"dog": 0.4}}}, "heldout": {}}
  )
  assert summary["selected_by"] == "last evaluation"
  assert summary["train"]["weight_entropy"] is None  # Not logged then: a blank cell.
  summaries = {"joint_A_seed0": dict(summary, method="joint", domain="", seed=0)}
  (row,) = weightings_report.diagnostics(summaries, ["joint"])
  assert row["weight_entropy"] is None and row["pair_accuracy"] == 0.9
  assert row["heldout_between_share"] is None
  assert weightings_report.heldout_ranking(summaries) == []


def test_heldout_ranking_orders_collapse_proof_methods_by_heldout_accuracy():
  def summary(method, seed, accuracy, domain="", feature_set="i3d_rgb"):
    def evaluation(acc, val):  # Val mAP that disagrees with the held-out accuracy.
      return {
          "step": 4,
          "eval": {"corpus": {"mAP": val, "per_group": {}}},
          "heldout": {} if acc is None else {"pair_accuracy": acc},
      }

    last = evaluation(None if accuracy is None else 0.99, 0.99)
    return {
        "method": method,
        "domain": domain,
        "feature_set": feature_set,
        "seed": seed,
        "last": last,
        "selected": evaluation(accuracy, 0.5)
        if accuracy is None
        else evaluation(accuracy, 1 - accuracy),
    }

  runs = [
      summary("joint_capped", 0, 0.70),
      summary("joint_capped", 1, 0.60),
      summary("joint_tempered", 0, 0.66),
      summary("joint_tempered", 1, 0.66),
      summary("joint_detached", 0, 0.64),
      summary("joint", 0, 0.95),
      summary("ranking_d", 0, 0.95),  # Not collapse-proof.
      summary("joint_self_paced", 0, 0.90, domain="dog"),  # Ours-S.
      summary("joint_self_paced", 0, 0.90, feature_set="i3d_rgb_flow"),
      summary("joint_capped_wd", 0, None),
  ]  # No held-out videos.
  ranking = weightings_report.heldout_ranking({str(k): s for k, s in enumerate(runs)})
  assert [r["method"] for r in ranking] == ["joint_tempered", "joint_capped", "joint_detached"]
  assert (ranking[1]["mean"], ranking[1]["n"]) == (pytest.approx(0.65), 2)
  assert ranking[1]["std"] == pytest.approx(np.std([0.7, 0.6], ddof=1))
  assert weightings_report.ranking_line(ranking).endswith("Best: joint_tempered")


def test_runs_made_with_a_config_variant_are_reused_as_their_weighting(tmp_path):
  # Before train.weighting named them, Ranking-D and Ranking-EM were config.variant
  # (their train.weighting key held the unused default); the joint recipes had
  # variant "joint". Their run dirs keep their names and are reused as such.
  config = tiny.get_config()
  for method, variant in (
      ("ranking_d", "ranking_d"),
      ("ranking_em", "ranking_em"),
      ("joint_capped", "joint"),
  ):
    new = weightings.run_config(config, weightings.Run(method, "", 0), 0, 4, 0)
    workdir = str(tmp_path / weightings.Run(method, "", 0).name)
    saved = json.loads(new.to_json_best_effort())
    saved["variant"] = variant
    if variant != "joint":
      saved["train"]["weighting"] = "softmax"
    saved["corpus"]["data_dir"] = saved.pop("data_dir")  # Its old name.
    os.makedirs(workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(saved, f)
    weightings.check_reusable(workdir, new)
    other = "joint" if method != "joint" else "ranking_d"
    with pytest.raises(ValueError, match="holds a run with train.weighting="):
      weightings.check_reusable(
          workdir, weightings.run_config(config, weightings.Run(other, "", 0), 0, 4, 0)
      )
  assert weightings_report.recipe_of("joint_capped_wd_A_seed0") == "joint_capped_wd"
  assert weightings_report.recipe_of("ranking_d_S-dog_seed2") == "ranking_d"


def test_wall_seconds_from_results_or_the_old_wall_file(tmp_path):
  assert weightings.wall_seconds({"step": 4, "wall_s": 12.5}, str(tmp_path)) == 12.5
  assert weightings.wall_seconds({"step": 4}, str(tmp_path)) is None
  (tmp_path / "wall.json").write_text(json.dumps({"wall_s": 7.0}))  # Runs made before.
  assert weightings.wall_seconds({"step": 4}, str(tmp_path)) == 7.0
  # run_summary reads the evaluations only: a results.json's wall_s and history
  # change nothing in the tables.
  (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 4, "train/loss": 1.0}) + "\n")
  results = {"step": 4, "corpus": {"model": {"mAP": 0.5, "per_group": {"dog": 0.5}}}}
  assert weightings.run_summary(
      dict(results, wall_s=3.0, history=[results]), str(tmp_path)
  ) == weightings.run_summary(results, str(tmp_path))


def test_all_runs_every_stage_in_order_then_pair_weights(monkeypatch, capsys):
  calls = []

  def fake_run_ablation(base, output_dir, **kwargs):
    calls.append(kwargs)
    return {"heldout_ranking": [], "settings": {}}

  monkeypatch.setattr(weightings, "run_ablation", fake_run_ablation)
  monkeypatch.setattr(weightings_report, "markdown", lambda report: "")
  written = []
  monkeypatch.setattr(
      pair_weights,
      "write_report",
      lambda out, groups: written.append((out, groups)) or "pair table",
  )
  from configs import joint  # pylint: disable=g-import-not-at-top

  yth = joint.get_config("corpus=youtube_highlights")
  weightings.run_all(
      yth, "/out", command="python -m experiments.weightings", seeds=3, pair_weight_groups=64
  )
  assert [c["report_name"] for c in calls] == ["variants", "shortcut", "ours_s", "features"]
  assert [c["models"] for c in calls] == [("A",), ("A",), ("S",), ("A",)]
  assert calls[2]["methods"] == ("ranking_d", "joint", weightings.BEST)
  assert calls[3]["feature_sets"] == ("i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio")
  assert all(c["seeds"] == 3 for c in calls)
  assert calls[0]["command"] == (
      "python -m experiments.weightings --models=A --methods=joint,joint_detached,"
      "joint_tempered,joint_capped,joint_self_paced,ranking_d,ranking_em "
      "--feature_sets=i3d_rgb --report=variants"
  )
  assert written == [("/out", 64)]
  for stage in weightings.ALL:
    assert set(stage.methods) - {weightings.BEST} <= set(weightings_report.RECIPES)
  # On a corpus without the other feature sets and train-split labels, those are skipped.
  calls.clear()
  weightings.run_all(tiny.get_config(), "/out", command="c", seeds=1)
  assert [c["report_name"] for c in calls] == ["variants", "shortcut", "ours_s"]
  assert written == [("/out", 64)]
  assert "pair_weights: skipped" in capsys.readouterr().out


def test_pair_weights_come_from_the_runs_weighting():
  import jax  # pylint: disable=g-import-not-at-top

  from hl_jax.less_is_more import models  # pylint: disable=g-import-not-at-top

  config = tiny.get_config()
  n = config.train.group_size
  rng = np.random.default_rng(0)
  f_short, f_long = rng.normal(size=(2, 3, n)).astype(np.float32)
  state = {"step": np.int32(5), "em_prior": np.float32(0.3), "params": {}}
  unused = (None, None)
  weights_of = pair_weights._weights  # pylint: disable=protected-access
  config.train.weighting = "ranking_d"
  np.testing.assert_allclose(
      weights_of(config, state, None, unused, unused, (f_short, f_long)), np.full((3, n), 1 / n)
  )
  # Ranking-EM: the E-step's posteriors at the run's prior, normalised per group.
  config.train.weighting = "ranking_em"
  s = 1 / (1 + np.exp(-(f_short.astype(np.float64) - f_long)))
  posterior = 0.3 * s / (0.3 * s + 0.7 / 2)
  np.testing.assert_allclose(
      weights_of(config, state, None, unused, unused, (f_short, f_long)),
      posterior / posterior.sum(-1, keepdims=True),
      rtol=1e-5,
  )
  # A weighting with h, from a run made before some of the keys it reads
  # existed: those take configs/joint.py's defaults.
  config.train.weighting = "tempered"
  _, weigher = models.build(config)
  x = rng.normal(size=(20, 16)).astype(np.float32)
  state["params"] = {"h": weigher.init(jax.random.PRNGKey(0), x[:1], x[:1])["params"]}
  ij = (rng.integers(0, 20, (3, n)), rng.integers(0, 20, (3, n)))
  full = weights_of(config, state, weigher, (x, x), ij, (f_short, f_long))
  old = config.copy_and_resolve_references()
  del old.train.weight_entropy_bonus, old.train.weight_temperature_start
  np.testing.assert_allclose(weights_of(old, state, weigher, (x, x), ij, (f_short, f_long)), full)
  assert np.allclose(full.sum(-1)[full.sum(-1) > 0], 1.0)


LEGACY = pathlib.Path(__file__).parent / "legacy_workdirs"


@pytest.mark.skipif(not LEGACY.is_dir(), reason="no tests/legacy_workdirs")
@pytest.mark.parametrize("name", ["less_is_more_ranking_em", "less_is_more_joint"])
def test_pair_weights_of_workdirs_made_before_the_weighting_registry(name):
  # Ranking-EM was config.variant then: its weights are the EM posteriors, not 1/n.
  n = tiny.get_config().train.group_size
  features = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
  yes, no = np.ones(40, bool), np.zeros(40, bool)
  pools = {"all": ((features, yes), (features, no))}
  stats = pair_weights.pair_weight_stats(str(LEGACY / name), pools, groups=64)
  assert stats["max_weight"] > 1 / n + 0.01
  assert 1 <= stats["effective_pairs"] < n
  assert (stats["right"], stats["wrong"]) == (pytest.approx(1.0), 0.0)
