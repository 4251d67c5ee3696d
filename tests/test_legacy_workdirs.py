"""Workdirs written before the code was split into subpackages still resume and score.

tests/legacy_workdirs/ holds three small workdirs written by the main of
2026-12-02 (commit e2485e4, the flat hl_jax package), as its README says how:
Less-is-More (the joint model and Ranking-EM, `variant` in their config.json)
stopped at step 10 of 20 on synthetic_tiny, and TaoHighlight at step 2 of 4 on
tests/test_tao_train.py's synthetic benchmark. Resumed by today's run loop,
each ends bit-identical to a run of today's code that never stopped, and
each loads as a scorer (read-only: the fixtures are not modified).
"""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from configs import tiny
from hl_jax.core import checkpointing
from hl_jax.core import families
from hl_jax.core import run_loop
from hl_jax.data import benchmarks
from hl_jax.highlights import predict

import test_tao_train  # tests/test_tao_train.py: its tiny synthetic benchmark.

LEGACY = pathlib.Path(__file__).resolve().parent / "legacy_workdirs"


def _same_run(resumed: str, straight: str) -> None:
  a, b = checkpointing.restore_state(resumed), checkpointing.restore_state(straight)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  results = [json.loads(pathlib.Path(w, "results.json").read_text()) for w in (resumed, straight)]
  for result in results:
    del result["wall_s"]
    # The resumed run's history also holds the old run's final evaluation.
    result["history"] = result["history"][-1:]
  assert results[0] == results[1]


@pytest.mark.parametrize(
    "name, weighting",
    [("less_is_more_joint", "softmax"), ("less_is_more_ranking_em", "ranking_em")],
)
def test_less_is_more_workdir_resumes_bit_identically(tmp_path, name, weighting):
  config = tiny.get_config()
  config.data_dir = str(tmp_path / "tfds")
  config.train.weighting = weighting
  resumed = shutil.copytree(LEGACY / name, tmp_path / name)
  assert json.loads((resumed / "config.json").read_text())["variant"] in ("joint", "ranking_em")
  run_loop.train_and_evaluate(config, str(resumed))
  history = [json.loads(line) for line in open(resumed / "history.jsonl")]
  assert [e["step"] for e in history] == [10, 20]  # Step 10's came from the old run.
  run_loop.train_and_evaluate(config, str(tmp_path / "straight"))
  _same_run(str(resumed), str(tmp_path / "straight"))


def test_taohighlight_workdir_resumes_bit_identically(tmp_path, monkeypatch):
  monkeypatch.setattr(benchmarks, "load_benchmark", test_tao_train.fake_benchmark())
  resumed = shutil.copytree(LEGACY / "taohighlight", tmp_path / "taohighlight")
  assert "eval_every" in json.loads((resumed / "config.json").read_text())["train"]
  run_loop.train_and_evaluate(test_tao_train.tiny_config(), str(resumed))
  run_loop.train_and_evaluate(test_tao_train.tiny_config(), str(tmp_path / "straight"))
  _same_run(str(resumed), str(tmp_path / "straight"))


@pytest.mark.parametrize(
    "name, family, step, width",
    [
        ("less_is_more_joint", "less_is_more", 10, 16),
        ("less_is_more_ranking_em", "less_is_more", 10, 16),
        ("taohighlight", "taohighlight", 2, 4096),
    ],
)
def test_legacy_workdirs_load_as_scorers(name, family, step, width):
  before = sorted(p.relative_to(LEGACY) for p in (LEGACY / name).rglob("*"))
  scorer = families.load_scorer(str(LEGACY / name))
  assert (scorer.family, scorer.step, scorer.feature_dim) == (family, step, width)
  assert sorted(p.relative_to(LEGACY) for p in (LEGACY / name).rglob("*")) == before


def test_predict_on_a_legacy_workdir(tmp_path):
  features = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
  np.save(tmp_path / "clip.npy", features)
  result = predict.run(
      str(LEGACY / "less_is_more_joint"),
      tmp_path / "out.json",
      features=[str(tmp_path / "clip.npy")],
  )
  assert result["checkpoint_step"] == 10 and len(result["videos"][0]["scores"]) == 8
