"""experiments/supervised.py: run lists, CV choice, report, reuse of finished runs."""

import json
import os

import numpy as np
import pytest

from experiments import supervised as tha
from hl_jax.core import run_loop
from hl_jax.data import benchmarks

import test_tao_train  # tests/test_tao_train.py: its tiny synthetic benchmark.

BENCHMARKS = ("tvsum", "youtube_highlights")
CHOICE = {
    "tvsum": {"learning_rate": 1e-3, "w_ag": 0.5},
    "youtube_highlights": {"learning_rate": 3e-4, "w_ag": 1.0},
}
WEAK = {"tvsum": "/lim_tvsum"}


def fake_finished(output_dir, run, mAP, iou=0.5, per_group=None, **config_overrides):
  """Writes the results.json that training would write for `run`."""
  config = tha.run_config(run, "", WEAK)
  for key, value in config_overrides.items():
    section, name = key.split(".")
    config[section][name] = value
  workdir = os.path.join(output_dir, "runs", run.name)
  os.makedirs(workdir, exist_ok=True)
  results = {
      "step": config.train.num_steps,
      "mAP": mAP,
      "random_mAP": 0.4,
      "per_group": per_group or {},
      "iou": {
          "mean_iou": iou,
          "share_iou_0.5": float(iou >= 0.5),
          "share_iou_0.7": float(iou >= 0.7),
      },
      "history": [],
      "evaluation": {},
      "wall_s": 12.0,
      "config": json.loads(config.to_json_best_effort()),
  }
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f)


def configs_of(runs, **kwargs):
  return {r.name: tha.run_config(r, "", **kwargs) for r in runs}


# ------------------------------------------------------------ run lists


def test_run_lists_are_unique_and_share_only_the_full_runs():
  cv = tha.cv_runs(BENCHMARKS, {"tvsum": 4, "youtube_highlights": 3})
  ablation = tha.ablation_runs(BENCHMARKS, 3, CHOICE)
  strong = tha.weak_to_strong_runs(BENCHMARKS, 3, CHOICE, weak=())
  both = tha.weak_to_strong_runs(BENCHMARKS, 3, CHOICE, weak=["tvsum"])
  assert (len(cv), len(ablation), len(strong), len(both)) == (28, 24, 15, 24)
  for runs in (cv, ablation, strong, both):
    assert len({r.name for r in runs}) == len(runs)
  assert {r.stage for r in cv} == {"cv"} and {r.variant for r in ablation} == set(tha.VARIANTS)
  assert {(r.benchmark, r.variant) for r in both} == {
      ("tvsum", "labels"),
      ("tvsum", "weak"),
      ("youtube_highlights", "labels"),
  }
  # All labels without weak start: the ablation's full run, trained once.
  assert {r.name for r in both} & {r.name for r in ablation} == {
      r.name for r in ablation if r.variant == "full"
  }
  assert len({r.name for r in cv + ablation + both}) == 28 + 24 + 24 - 6
  assert cv[0].name == "cv_tvsum_full_lr0.0003_ag0.1_fold0of4_seed0"
  assert ablation[-1].name == "ablation_youtube_highlights_no_ag_lr0.0003_ag1_seed2"
  assert both[0].name == "weak_to_strong_tvsum_labels_lr0.001_ag0.5_n1_seed0"
  assert {
      r.benchmark
      for r in tha.ablation_runs(BENCHMARKS, 1, {"tvsum": {"learning_rate": 1e-3, "w_ag": 0.5}})
  } == {
      "tvsum"
  }  # No CV choice, no runs.


def test_run_configs():
  by_variant = {
      r.variant: tha.run_config(r, "/tfds", {"tvsum": "/lim"})
      for r in tha.ablation_runs(["tvsum"], 1, CHOICE)
  }
  assert by_variant["full"].train.learning_rate == 1e-3 and by_variant["full"].loss.w_ag == 0.5
  assert by_variant["full"].data_dir == "/tfds" and by_variant["full"].weak.workdir == ""
  assert not by_variant["no_text"].model.use_text and not by_variant["no_graph"].model.use_graph
  assert by_variant["no_ag"].loss.w_ag == 0.0
  cv = tha.run_config(tha.cv_runs(["youtube_highlights"], {"youtube_highlights": 4})[6], "")
  assert (cv.cv_folds, cv.cv_fold, cv.model.context) == (4, 2, "audio")
  weak = [
      r
      for r in tha.weak_to_strong_runs(["tvsum"], 1, CHOICE, ["tvsum"])
      if r.variant == "weak" and r.num_labelled == 2
  ][0]
  config = tha.run_config(weak, "", {"tvsum": "/lim"})
  assert (config.weak.workdir, config.num_labelled) == ("/lim", 2)


@pytest.mark.parametrize("sizes,folds", [((4, 4), 4), ((3, 10), 3), ((21, 68), 4), ((1, 9), 2)])
def test_num_folds_from_the_split_file(tmp_path, monkeypatch, sizes, folds):
  monkeypatch.setattr(tha, "MAX_FOLDS", 4)
  (tmp_path / "tvsum" / "splits").mkdir(parents=True)
  split = {g: {"train": [f"{g}{i}" for i in range(n)], "val": []} for g, n in zip("AB", sizes)}
  (tmp_path / "tvsum" / "splits" / tha.SPLIT_FILES["tvsum"]).write_text(json.dumps(split))
  assert tha.num_folds("tvsum", str(tmp_path)) == folds


# ------------------------------------------------------------ CV choice


def test_cv_choice_by_hand(tmp_path):
  out = str(tmp_path)
  cv = tha.cv_runs(["tvsum"], {"tvsum": 2})
  configs = configs_of(cv)
  # Fold mAPs per GRID point: means 0.6, 0.6, 0.7, 0.7; the tie goes to GRID's first.
  fold_maps = [0.5, 0.7, 0.6, 0.6, 0.9, 0.5, 0.8, 0.6]
  for run, value in zip(cv[:-1], fold_maps):
    fake_finished(out, run, value)
  tables, choice = tha.update_choice(["tvsum"], cv, configs, out)
  assert tables["tvsum"]["chosen"] is None and choice == {}
  assert [p["folds"] for p in tables["tvsum"]["grid"]] == [2, 2, 2, 1]
  fake_finished(out, cv[-1], fold_maps[-1])
  tables, choice = tha.update_choice(["tvsum"], cv, configs, out)
  assert choice == {"tvsum": {"learning_rate": 1e-3, "w_ag": 0.1}}
  assert json.loads((tmp_path / "cv_choice.json").read_text()) == choice
  means = [p["mAP"]["mean"] for p in tables["tvsum"]["grid"]]
  np.testing.assert_allclose(means, [0.6, 0.6, 0.7, 0.7])
  assert tables["tvsum"]["grid"][2]["mAP"]["std"] == pytest.approx(0.2)


def test_later_stages_wait_for_the_cv_choice(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(tha, "num_folds", lambda benchmark, root: 2)
  monkeypatch.setattr(tha, "_split", lambda benchmark, root: {"A": {}, "B": {}})
  out = str(tmp_path)
  args = (["tvsum"], list(tha.STAGES), 1, "", out, {})
  planned, _, skipped = tha.run_stages(*args, train_now=False)
  assert len(planned["cv"]) == 8 and planned["ablation"] == planned["weak_to_strong"] == []
  assert skipped == [
      "weak_to_strong tvsum: no --weak_workdir_tvsum, so no weak-start rows",
      "ablation tvsum: no CV choice yet (run --stage=cv first)",
      "weak_to_strong tvsum: no CV choice yet (run --stage=cv first)",
      "per_group tvsum: no CV choice yet (run --stage=cv first)",
  ]
  assert "no --weak_workdir_tvsum" in capsys.readouterr().out
  (tmp_path / "cv_choice.json").write_text(json.dumps({"tvsum": CHOICE["tvsum"]}))
  planned, configs, skipped = tha.run_stages(*args, train_now=False)
  assert len(planned["ablation"]) == 4 and len(planned["weak_to_strong"]) == 3
  assert [r.group for r in planned["per_group"]] == ["A", "B"]
  assert configs[planned["ablation"][0].name].train.learning_rate == 1e-3


# ------------------------------------------------------------ report


def test_report_aggregates_over_seeds(tmp_path):
  out = str(tmp_path)
  runs = tha.ablation_runs(["tvsum"], 3, CHOICE, variants=("full", "no_ag"))
  for run, value, iou in zip(runs, [0.5, 0.6, 0.7, 0.3, 0.5], [0.4, 0.6, 0.8, 0.5, 0.5]):
    fake_finished(out, run, value, iou)  # The last no_ag seed has not finished.
  report = tha.make_report(
      {"ablation": runs}, configs_of(runs), [], out, {"benchmarks": ["tvsum"], "seeds": 3}
  )
  full, no_ag = report["ablation"]
  assert (full["finished"], full["planned"], no_ag["finished"]) == (3, 3, 2)
  assert full["mAP"]["mean"] == pytest.approx(0.6)
  assert full["mAP"]["std"] == pytest.approx(0.1 * np.sqrt(2 / 3))
  assert full["mean_iou"] == pytest.approx(0.6)
  assert (full["share_iou_0.5"], full["share_iou_0.7"]) == pytest.approx((2 / 3, 1 / 3))
  assert no_ag["mAP"] == {
      "mean": pytest.approx(0.4),
      "std": pytest.approx(0.1),
      "values": [0.3, 0.5],
  }
  assert report["missing"] == [runs[-1].name]
  md = (tmp_path / "taohighlight.md").read_text()
  assert "| tvsum | TaoHighlight (full) | 60.0 ± 8.2 (3/3) | 0.600 | 0.667 | 0.333 |" in md
  assert "| tvsum | w/o L_ag | 40.0 ± 10.0 (2/3) |" in md
  assert "*UMT (CVPR'22)" in md and "*83.1*" in md and "| tvsum | random scores | 40.0 |" in md
  assert json.loads((tmp_path / "taohighlight.json").read_text())["settings"]["seeds"] == 3
  assert report["plot"] == "no finished weak_to_strong run: no plot"


def test_weak_to_strong_table_and_plot(tmp_path):
  pytest.importorskip("matplotlib")
  out = str(tmp_path)
  runs = tha.weak_to_strong_runs(["tvsum"], 1, CHOICE, ["tvsum"])
  for k, run in enumerate(runs):
    fake_finished(out, run, 0.4 + 0.05 * k)
  report = tha.make_report(
      {"weak_to_strong": runs},
      configs_of(runs, weak=WEAK),
      [],
      out,
      {"benchmarks": ["tvsum"], "seeds": 1},
  )
  md = (tmp_path / "taohighlight.md").read_text()
  assert "| tvsum | 1 | 40.0 ± 0.0 (1/1) | 55.0 ± 0.0 (1/1) |" in md
  assert "| tvsum | all | 50.0 ± 0.0 (1/1) | 65.0 ± 0.0 (1/1) |" in md
  assert report["plot"].startswith("wrote") and (tmp_path / "weak_to_strong.png").exists()


def test_per_group_runs_configs_and_table(tmp_path):
  root = tmp_path / "data"
  for b, groups in (("tvsum", "AB"), ("youtube_highlights", "C")):
    (root / b / "splits").mkdir(parents=True)
    (root / b / "splits" / tha.SPLIT_FILES[b]).write_text(
        json.dumps({g: {"train": ["x"], "val": ["y"]} for g in groups})
    )
  runs = tha.per_group_runs(BENCHMARKS, 2, CHOICE, str(root))
  assert [r.name for r in runs[:2]] == [
      "per_group_tvsum_full_A_lr0.001_ag0.5_seed0",
      "per_group_tvsum_full_A_lr0.001_ag0.5_seed1",
  ]
  assert [(r.benchmark, r.group) for r in runs[::2]] == [
      ("tvsum", "A"),
      ("tvsum", "B"),
      ("youtube_highlights", "C"),
  ]
  config = tha.run_config(runs[2], "/tfds")
  assert (config.group, config.train.num_steps) == ("B", tha.PER_GROUP_STEPS)
  assert tha.run_config(tha.ablation_runs(["tvsum"], 1, CHOICE)[0], "").group == ""
  out = str(tmp_path / "out")
  tvsum = runs[:4]
  for run, value in zip(tvsum, (0.5, 0.7, 0.8, 0.8)):
    fake_finished(out, run, value)
  ablation = [r for r in tha.ablation_runs(["tvsum"], 2, CHOICE) if r.variant == "full"]
  for run, value in zip(ablation, (0.4, 0.6)):
    fake_finished(out, run, 0.5, per_group={"A": value, "B": 0.9})
  report = tha.make_report(
      {"ablation": ablation, "per_group": tvsum},
      configs_of(ablation + tvsum),
      [],
      out,
      {"benchmarks": ["tvsum"], "seeds": 2},
  )
  assert report["per_group"][0]["mAP"]["mean"] == pytest.approx(0.6)
  md = (tmp_path / "out" / "taohighlight.md").read_text()
  assert "| tvsum | A | 60.0 ± 10.0 (2/2) | 50.0 ± 10.0 |" in md
  assert "| tvsum | B | 80.0 ± 0.0 (2/2) | 90.0 ± 0.0 |" in md


def test_a_run_of_other_settings_is_refused(tmp_path):
  run = tha.ablation_runs(["tvsum"], 1, CHOICE)[0]
  fake_finished(str(tmp_path), run, 0.5, **{"train.num_steps": 7})
  with pytest.raises(ValueError, match="train.num_steps=7, not 300"):
    tha.train_runs([run], configs_of([run]), str(tmp_path))


# ------------------------------------------------------------ end to end


def test_train_runs_then_reuses_them(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(benchmarks, "load_benchmark", test_tao_train.fake_benchmark())
  runs = tha.ablation_runs(["tvsum"], 1, CHOICE, variants=("full", "no_text"))
  configs = configs_of(runs, words="tiny")
  for config in configs.values():
    config.model.visual_dim = test_tao_train.DV
  first = tha.train_runs(runs, configs, str(tmp_path))
  assert capsys.readouterr().out.count("training 4 steps") == 2
  assert set(first) == {r.name for r in runs}
  for run in runs:
    saved = json.loads((tmp_path / "runs" / run.name / "results.json").read_text())
    assert 0.0 <= saved["mAP"] <= 1.0 and saved["config"]["model"]["use_text"] == (
        run.variant == "full"
    )

  def no_training(config, workdir):
    raise AssertionError(f"{workdir} was trained again")

  monkeypatch.setattr(run_loop, "train_and_evaluate", no_training)
  again = tha.train_runs(runs, configs, str(tmp_path))
  assert capsys.readouterr().out.count("reused") == 2 and again == first


def test_a_run_made_before_the_config_renames_is_reused(tmp_path):
  # Its results.json's config has the old names (train.eval_every, no data_root
  # at the top); the checked keys are compared in today's names.
  run = tha.ablation_runs(["tvsum"], 1, CHOICE)[0]
  fake_finished(str(tmp_path), run, 0.5)
  path = tmp_path / "runs" / run.name / "results.json"
  results = json.loads(path.read_text())
  del results["wall_s"]  # Not written then.
  results["config"]["train"]["eval_every"] = results["config"]["eval"].pop("every_steps")
  path.write_text(json.dumps(results))
  summaries = tha.train_runs([run], configs_of([run]), str(tmp_path), train=False)
  assert summaries[run.name]["mAP"] == 0.5
  assert set(summaries[run.name]).isdisjoint(tha.SUMMARY_LEAVES_OUT)
