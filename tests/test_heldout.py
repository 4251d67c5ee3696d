"""Label-free model selection: the held-out split, its metrics, the selected step."""

import json
import os

import numpy as np
import pytest

from configs import tiny
from hl_jax.core import config_checks
from hl_jax.core import families
from hl_jax.core import files
from hl_jax.core import run_loop
from hl_jax.core import workdir as workdir_lib
from hl_jax.data import corpora
from hl_jax.eval import evaluators
from hl_jax.eval import heldout
from hl_jax.eval import reports

SHORT, LONG, REST = 0, 1, 2


def brute_force(short, long, margin):
  """(AUC with ties 1/2, mean hinge) over every pair, a float64 double loop."""
  wins = hinge = 0.0
  for s in np.asarray(short, np.float64):
    for l in np.asarray(long, np.float64):
      wins += 1.0 if s > l else 0.5 if s == l else 0.0
      hinge += max(0.0, margin - s + l)
  return wins / (len(short) * len(long)), hinge / (len(short) * len(long))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
def test_pair_metrics_match_the_double_loop(seed, margin):
  rng = np.random.default_rng(seed)
  # Half-integer scores: many ties, within and across buckets, and at f_s - margin.
  short = rng.integers(-4, 5, size=rng.integers(1, 40)) / 2
  long = rng.integers(-4, 5, size=rng.integers(1, 40)) / 2
  auc, hinge = brute_force(short, long, margin)
  assert heldout.pair_accuracy(short, long) == pytest.approx(auc, abs=1e-12)
  assert heldout.mean_hinge(short, long, margin) == pytest.approx(hinge, abs=1e-12)


def test_pair_metrics_of_continuous_scores_and_edge_cases():
  rng = np.random.default_rng(7)
  short, long = rng.normal(0.3, 1, 300).astype(np.float32), rng.normal(0, 1, 200)
  auc, hinge = brute_force(short, long, 1.0)
  assert heldout.pair_accuracy(short, long) == pytest.approx(auc, abs=1e-12)
  assert heldout.mean_hinge(short, long, 1.0) == pytest.approx(hinge, abs=1e-9)
  assert heldout.pair_accuracy([1.0, 1.0], [1.0]) == 0.5
  assert heldout.pair_accuracy([2.0], [1.0, 0.0]) == 1.0
  assert heldout.mean_hinge([3.0], [1.0], 1.0) == 0.0
  with pytest.raises(ValueError, match="need short and long scores, got 0 and 1"):
    heldout.pair_accuracy([], [1.0])


def test_between_within_by_hand():
  # Means 2 and 5, grand mean 3: between (2 * 1 + 1 * 4) / 3 = 2, within
  # (1 + 1 + 0) / 3 = 2/3, total var of [1, 3, 5] = 8/3.
  got = heldout.between_within([np.array([1.0, 3.0]), np.array([5.0])])
  assert got["between_var"] == pytest.approx(2.0)
  assert got["within_var"] == pytest.approx(2 / 3)
  assert got["total_var"] == pytest.approx(np.var([1.0, 3.0, 5.0]))
  assert got["between_share"] == pytest.approx(0.75)
  assert (got["num_videos"], got["num_segments"]) == (2, 3)
  offsets = heldout.between_within([np.full(4, 1.0), np.full(2, -3.0), np.full(5, 0.5)])
  assert offsets["between_share"] == 1.0 and offsets["within_var"] == 0.0
  centred = heldout.between_within([np.array([1.0, -1.0]), np.array([2.0, 0.0, -2.0])])
  assert centred["between_share"] == 0.0 and centred["between_var"] == 0.0
  assert heldout.between_within([np.zeros(3), np.zeros(2)])["between_share"] == 0.0
  with pytest.raises(ValueError, match="at least one video"):
    heldout.between_within([np.zeros(2), np.zeros(0)])


def _videos():
  rng = np.random.default_rng(0)
  spec = [
      ("a", "dog", SHORT, 3),
      ("b", "dog", LONG, 4),
      ("c", "dog", REST, 2),
      ("d", "ski", SHORT, 2),
      ("e", "ski", LONG, 5),
      ("f", "surf", LONG, 3),
  ]
  return [
      corpora.HeldoutVideo(vid, domain, bucket, rng.normal(size=(t, 2)).astype(np.float32))
      for vid, domain, bucket, t in spec
  ]


def test_evaluate_averages_domains_and_pools():
  videos = _videos()
  scores = [v.features[:, 0].astype(np.float64) for v in videos]
  result = heldout.evaluate(videos, scores, margin=0.5)
  by_domain = {}
  for domain in ("dog", "ski"):
    short = np.concatenate(
        [s for v, s in zip(videos, scores) if v.domain == domain and v.bucket == SHORT]
    )
    long = np.concatenate(
        [s for v, s in zip(videos, scores) if v.domain == domain and v.bucket == LONG]
    )
    by_domain[domain] = brute_force(short, long, 0.5)
    assert result["per_group"][domain]["pair_accuracy"] == pytest.approx(by_domain[domain][0])
    assert result["per_group"][domain]["num_pairs"] == len(short) * len(long)
  assert "pair_accuracy" not in result["per_group"]["surf"]  # Long videos only.
  assert result["pair_accuracy"] == pytest.approx(np.mean([a for a, _ in by_domain.values()]))
  assert result["hinge"] == pytest.approx(np.mean([h for _, h in by_domain.values()]))
  shares = [result["per_group"][d]["between_share"] for d in ("dog", "ski", "surf")]
  assert result["between_share"] == pytest.approx(np.mean(shares))
  pooled = heldout.between_within(scores)
  assert result["pooled"]["between_share"] == pytest.approx(pooled["between_share"])
  short = np.concatenate([s for v, s in zip(videos, scores) if v.bucket == SHORT])
  long = np.concatenate([s for v, s in zip(videos, scores) if v.bucket == LONG])
  assert result["pooled"]["pair_accuracy"] == pytest.approx(brute_force(short, long, 0.5)[0])
  assert (result["num_videos"], result["num_segments"]) == (6, 19)
  json.dumps(result, allow_nan=False)  # Plain JSON: no numpy scalars, no NaN.
  with pytest.raises(ValueError, match="held-out video b: scores of shape \\(3,\\)"):
    heldout.evaluate(videos, [s[:3] for s in scores], margin=0.5)
  with pytest.raises(ValueError, match="no domain of the 1 held-out videos has both"):
    heldout.evaluate(videos[-1:], scores[-1:], margin=0.5)


def test_evaluator_scores_once_and_reports_scalars():
  videos, calls = _videos(), []

  def score_fn(features):
    calls.append(len(features))
    return features[:, 0]

  result = heldout.HeldoutEvaluator(videos, 1.0, "held out").run(score_fn)
  assert calls == [19]
  assert result["title"] == "held out" and result["split"] == "train"
  held = result["heldout"]
  assert evaluators.scalars({"step": 1, "heldout": result}) == {
      "eval/heldout_pair_accuracy": held["pair_accuracy"],
      "eval/heldout_hinge": held["hinge"],
      "eval/heldout_between_share": held["between_share"],
  }
  assert "pair accuracy" in evaluators.summary(result)
  table = reports.heldout_table("held out", held).splitlines()
  assert table[0] == "### held out" and table[2].endswith("; random scores: 50.00.")
  assert table[-3].startswith("| surf | 1 (0/1) | - | - | ")  # No short video: no pairs.
  assert table[-2] == (
      f"| **average** | 6 (2/3) | **{100 * held['pair_accuracy']:.2f}** | "
      f"**{held['hinge']:.4f}** | **{held['between_share']:.3f}** |"
  )


def _fake_source(num=60, groups=False):
  """Examples over 3 domains x 3 buckets; with groups, pairs of #hi/#lo videos."""
  rng = np.random.default_rng(1)
  source = []
  for i in range(num):
    domain = ("dog", "ski", "surf")[i % 3]
    if groups:
      for side, bucket in (("hi", SHORT), ("lo", LONG)):
        source.append(
            {
                "video_id": f"v{i:03d}#{side}".encode(),
                "domain": domain,
                "bucket": bucket,
                "pair_group": f"v{i:03d}".encode(),
                "features": rng.normal(size=(3, 2)),
            }
        )
    else:
      source.append(
          {
              "video_id": f"v{i:03d}".encode(),
              "domain": domain.encode(),
              "bucket": (i // 3) % 3,
              "pair_group": b"",
              "features": rng.normal(size=(3, 2)),
          }
      )
  return source


def _ids(source):
  items = [source[i] for i in range(len(source))]
  return {
      files.as_text(e["video_id"])
      for item in items
      for e in (item if isinstance(item, list) else [item])
  }


def test_split_is_deterministic_disjoint_and_stratified():
  source = _fake_source()
  part = corpora.TrainingPart(source, 0.2)
  held = part.heldout_videos("fake")
  held_ids = {v.video_id for v in held}
  assert len(held) == 9 * round(0.2 * 60 / 9)  # round(1.33) = 1 per (domain, bucket).
  assert {(v.domain, v.bucket) for v in held} == {
      (d, b) for d in ("dog", "ski", "surf") for b in (SHORT, LONG, REST)
  }
  assert not held_ids & _ids(part) and held_ids | _ids(part) == _ids(source)
  assert len(part) == 60 - len(held)
  assert held[0].features.dtype == np.float32
  # The choice depends on the ids only: not on source order or a hash seed.
  again = corpora.TrainingPart(source[::-1], 0.2).heldout_videos("fake")
  assert {v.video_id for v in again} == held_ids
  assert repr(part) == f"TrainingPart({source!r}, holdout_fraction=0.2)"
  bigger = {v.video_id for v in corpora.TrainingPart(source, 0.4).heldout_videos("fake")}
  assert held_ids < bigger  # Hash order: a larger fraction holds out a superset.


def test_pair_groups_are_held_out_whole():
  source = corpora.GroupedSource(_fake_source(30, groups=True))
  part = corpora.TrainingPart(source, 0.2)
  held = part.heldout_videos("grouped")
  assert len(held) == 2 * 3 * 2  # 2 groups of 10 per domain, both videos each.
  groups = {v.video_id.split("#")[0] for v in held}
  assert all(f"{g}#hi" in {v.video_id for v in held} for g in groups)
  assert not {i.split("#")[0] for i in _ids(part)} & groups


def test_split_errors_name_the_corpus_and_counts():
  source = _fake_source(18)  # 2 videos per (domain, bucket): 0.2 rounds to 0.
  with pytest.raises(
      ValueError,
      match=r"^small: corpus.holdout_fraction=0.2 holds out 0 "
      r"short and 0 long videos and leaves 6 short and 6 long for training",
  ):
    corpora.TrainingPart(source, 0.2).heldout_videos("small")
  only_short = [e for e in _fake_source() if e["bucket"] != LONG]
  with pytest.raises(ValueError, match="holds out 6 short and 0 long"):
    corpora.TrainingPart(only_short, 0.3).heldout_videos("no_long")


def test_config_key_is_range_checked_and_not_resumable():
  config = tiny.get_config()
  assert config.corpus.holdout_fraction == 0.0
  for bad in (0.5, -0.1, float("nan")):
    config.corpus.holdout_fraction = bad
    with pytest.raises(
        config_checks.ConfigError,
        match="corpus.holdout_fraction=.* must be " r"a number in \[0, 0.5\)",
    ):
      families.validate(config)
  lim = families.get("less_is_more")
  changed = config_checks.changed_keys(
      {"corpus": {"holdout_fraction": 0.0}},
      {"corpus": {"holdout_fraction": 0.1}},
      config_checks.COMMON_RESUMABLE + lim.resumable,
  )
  assert changed == {"corpus.holdout_fraction": (0.0, 0.1)}


def test_select_reads_only_heldout_and_takes_the_earliest_best():
  def entry(step, accuracy, corpus_map):
    return {
        "step": step,
        "corpus": {"model": {"mAP": corpus_map}},
        "heldout": {"heldout": {"pair_accuracy": accuracy}},
    }

  history = [entry(30, 0.7, 0.1), entry(10, 0.6, 0.9), entry(20, 0.7, 0.2)]
  selected = heldout.select(history)
  assert selected["step"] == 20 and selected["selected_by"] == "heldout pair_accuracy"
  assert selected["corpus"] == history[2]["corpus"]
  assert heldout.select([{"step": 5, "corpus": {}}]) is None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def _config(data_dir, num_steps):
  config = tiny.get_config()
  config.data_dir = data_dir
  config.corpus.holdout_fraction = 0.2
  config.num_devices = 1
  config.train.num_steps = num_steps
  config.eval.every_steps = 5
  return config


def test_load_corpus_holds_out_training_videos(data_dir):
  config = _config(data_dir, 20)
  corpus = corpora.load_corpus(config)
  config.corpus.holdout_fraction = 0.0
  full = corpora.load_corpus(config).train_source
  assert len(corpus.train_source) + len(corpus.heldout) == len(full) == 60
  assert not {v.video_id for v in corpus.heldout} & _ids(corpus.train_source)
  assert {v.bucket for v in corpus.heldout} == {SHORT, LONG, REST}
  assert corpus.heldout[0].features.shape[1] == 16
  config.corpus.holdout_fraction = 0.05
  with pytest.raises(
      ValueError,
      match="synthetic_tiny: corpus.holdout_fraction=0.05 holds " "out 0 short and 0 long videos",
  ):
    corpora.load_corpus(config)


def test_training_selects_a_step_by_heldout_pair_accuracy(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  first = run_loop.train_and_evaluate(_config(data_dir, 10), workdir)  # Evaluates at 5 and 10.
  assert [e["step"] for e in first["history"]] == [5, 10]
  # As if killed after step 10's checkpoint, in the middle of writing its evaluation.
  path = os.path.join(workdir, workdir_lib.HISTORY_NAME)
  lines = open(path).read().splitlines()
  with open(path, "w") as f:
    f.write(lines[0] + "\n" + lines[1][:40])
  results = run_loop.train_and_evaluate(_config(data_dir, 20), workdir)  # Resumes at 10.
  saved = json.load(open(os.path.join(workdir, "results.json")))
  history = saved["history"]
  assert [e["step"] for e in history] == [5, 10, 15, 20]  # Read back across the resume.
  assert history[1]["heldout"] == first["heldout"]  # Step 10, evaluated again on resume.
  accuracies = [e["heldout"]["heldout"]["pair_accuracy"] for e in history]
  assert all(0 <= a <= 1 for a in accuracies)
  best = history[int(np.argmax(accuracies))]
  assert saved["selected"]["step"] == best["step"]
  assert saved["selected"]["selected_by"] == "heldout pair_accuracy"
  assert saved["selected"]["corpus"] == best["corpus"]  # Labelled results of that step.
  assert saved["heldout"]["heldout"]["pair_accuracy"] == accuracies[-1]
  assert results["selected"]["step"] == best["step"]
  scalars = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in scalars if "eval/heldout_pair_accuracy" in r] == [
      5,
      10,
      10,
      15,
      20,
  ]  # Step 10 twice: evaluated at the end of the first run, and again.
  markdown = open(os.path.join(workdir, "results.md")).read()
  assert "## Evaluations" in markdown and f"| {best['step']} (selected) |" in markdown
  assert f"## Selected: step {best['step']} (by heldout pair_accuracy" in markdown
  assert markdown.count("random scores: 50.00") == 2  # Final and selected tables.
  assert reports.results_markdown("weighting softmax", saved) == markdown
