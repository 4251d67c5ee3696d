"""hl_jax/taohighlight/trainer.py: TaoHighlight's training loop on tiny synthetic benchmarks."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from configs import taohighlight as tao_config
from hl_jax.core import checkpointing
from hl_jax.core import config_checks
from hl_jax.core import families
from hl_jax.core import parallel
from hl_jax.core import run_loop
from hl_jax.data import benchmarks
from hl_jax.data import features_file
from hl_jax.eval import protocols
from hl_jax.highlights import predict
from hl_jax.taohighlight import inputs
from hl_jax.taohighlight import targets
from hl_jax.taohighlight import trainer

DV, DA, DT = 8, 4, 6  # Visual and audio columns of the features; title token width.


@dataclasses.dataclass(frozen=True, eq=False)
class _TextVideo(benchmarks.Video):
  """datasets.Video with a `text` field, whether or not datasets has it yet."""

  text: np.ndarray | None = None


def make_video(video_id, group, num_clips, rng, benchmark="tvsum"):
  features = rng.normal(size=(num_clips, DV + DA)).astype(np.float32)
  if benchmark == "tvsum":
    labels = rng.integers(1, 6, size=(num_clips, 20)).astype(np.float32)
    text = rng.normal(size=(int(rng.integers(2, 6)), DT)).astype(np.float32)
  else:
    labels, text = rng.choice([-1, 0, 1], size=num_clips), None
  return _TextVideo(video_id, group, features, labels, text=text)


def fake_benchmark(benchmark="tvsum", nan=False):
  """A load_benchmark stand-in: groups A (a0..a3) and B (b0..b2) train, 2 val videos."""
  rng = np.random.default_rng(0)
  split_ids = {"train": ["a0", "a1", "a2", "a3", "b0", "b1", "b2"], "val": ["av", "bv"]}
  videos = {
      s: [make_video(v, v[0].upper(), int(rng.integers(5, 14)), rng, benchmark) for v in ids]
      for s, ids in split_ids.items()
  }
  if nan:
    for v in videos["train"]:
      v.features[0, 0] = np.nan

  def load(name, split, *, manual_dir, data_dir=None, feature_set="i3d_rgb"):
    del manual_dir, data_dir, feature_set
    assert name == benchmark
    return videos[split]

  return load


def tiny_config(arg="tiny", **train_overrides):
  config = tao_config.get_config(arg)
  config.model.visual_dim = DV
  config.train.update(train_overrides)
  return config


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


# ------------------------------------------------------------ end to end


def test_train_writes_results_and_resumes_exactly(tmp_path, monkeypatch):
  monkeypatch.setattr(benchmarks, "load_benchmark", fake_benchmark())
  full = run_loop.train_and_evaluate(tiny_config(), str(tmp_path / "full"))
  saved = json.loads((tmp_path / "full" / "results.json").read_text())
  assert 0.0 <= saved["mAP"] <= 1.0 and saved["step"] == 4
  assert set(saved["iou"]) == {"mean_iou", "share_iou_0.5", "share_iou_0.7"}
  assert saved["num_train_videos"] == 7 and saved["num_eval_videos"] == 2
  assert saved["text_videos"] == 9 and saved["config"]["benchmark"] == "tvsum"
  assert [h["step"] for h in saved["history"]] == [4]
  rows = [r for r in read_jsonl(tmp_path / "full" / "metrics.jsonl") if "train/total" in r]
  assert [r["step"] for r in rows] == [2, 4]
  assert {"train/reg", "train/ag", "train/saliency", "train/steps_per_second"} <= set(rows[0])

  split = str(tmp_path / "split")
  run_loop.train_and_evaluate(tiny_config(num_steps=2), split)
  resumed = run_loop.train_and_evaluate(tiny_config(), split)
  assert resumed["mAP"] == full["mAP"] and resumed["iou"] == full["iou"]
  _, a = checkpointing.restore_workdir(str(tmp_path / "full"))
  _, b = checkpointing.restore_workdir(split)
  assert int(b["step"]) == 4
  jax.tree.map(np.testing.assert_array_equal, a["params"], b["params"])
  jax.tree.map(np.testing.assert_array_equal, a["opt_state"], b["opt_state"])

  # A changed trajectory key is refused before anything is written; a longer run is not.
  with pytest.raises(config_checks.ConfigError, match=r"train.learning_rate: 0.001 -> 0.01"):
    run_loop.train_and_evaluate(tiny_config(learning_rate=1e-2), split)
  longer = run_loop.train_and_evaluate(tiny_config(num_steps=6), split)
  assert longer["step"] == 6

  # hl_jax.predict's scorer of a TaoHighlight workdir reproduces the run's evaluation.
  scorer = families.load_scorer(str(tmp_path / "full"))
  assert (scorer.feature_dim, scorer.step) == (4096, 4)  # feature_set i3d_rgb_flow_audio.
  assert scorer.family == "taohighlight" and scorer.score_segments is None
  record = json.loads((tmp_path / "full" / "config.json").read_text())["scorer"]
  assert record == {
      "family": "taohighlight",
      "feature_dim": 4096,
      "feature_set": "i3d_rgb_flow_audio",
      "feature_space": features_file.staged_feature_space("i3d_rgb_flow_audio"),
      "benchmark": "tvsum",
  }
  val = benchmarks.load_benchmark("tvsum", "val", manual_dir="")
  again = protocols.evaluate(
      "tvsum", val, dict(zip([v.video_id for v in val], scorer.score_videos(val))), split="val"
  )
  assert again["mAP"] == pytest.approx(full["mAP"], abs=1e-6)
  with pytest.raises(ValueError, match="is a taohighlight workdir: it scores whole videos"):
    families.load_segment_scorer(str(tmp_path / "full"))


def test_nonfinite_loss_stops_before_any_checkpoint(tmp_path, monkeypatch):
  monkeypatch.setattr(benchmarks, "load_benchmark", fake_benchmark(nan=True))
  workdir = str(tmp_path / "nan")
  with pytest.raises(run_loop.NonFiniteError, match="non-finite loss .* at step 0"):
    run_loop.train_and_evaluate(tiny_config(log_every=1), workdir)
  assert not checkpointing.has_checkpoints(workdir)
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_batch_size_must_divide_devices(tmp_path):
  if jax.device_count() == 1:
    pytest.skip("every batch size divides one device")
  size = jax.device_count() + 1
  with pytest.raises(
      ValueError,
      match=f"batch_size={size} is not a multiple of the " f"{jax.device_count()} devices",
  ):
    run_loop.train_and_evaluate(tiny_config(batch_size=size), str(tmp_path / "w"))
  assert not (tmp_path / "w" / "config.json").exists()


# ------------------------------------------------------------ padding invariance


@pytest.mark.parametrize("benchmark", ["tvsum", "youtube_highlights"])
def test_scores_do_not_depend_on_padding_or_batch(benchmark):
  config = tiny_config(f"tiny,benchmark={benchmark}")
  rng = np.random.default_rng(1)
  videos = [make_video(f"v{i}", "A", t, rng, benchmark) for i, t in enumerate([7, 30, 19, 11])]
  examples = inputs.make_examples(videos, config)
  mesh = parallel.make_mesh()
  steps = trainer.steps_of(config, mesh)
  alone_shapes = inputs.padded_lengths(examples[:1])
  batch_shapes = inputs.padded_lengths(examples)
  assert alone_shapes[0] == 8 and batch_shapes[0] == 32
  state = trainer.init_state(0, steps, inputs.collate(examples[:1], *alone_shapes))
  predict_fn = steps.predict
  alone = trainer.predict_examples(predict_fn, state.params, examples[:1], 4, *alone_shapes, mesh)
  batched = trainer.predict_examples(predict_fn, state.params, examples, 4, *batch_shapes, mesh)
  assert alone[0][0].shape == (7,) and [len(s) for s in batched[0]] == [7, 30, 19, 11]
  np.testing.assert_allclose(alone[0][0], batched[0][0], rtol=1e-5, atol=1e-5)
  assert alone[1][0] == batched[1][0]


# ------------------------------------------------------------ which videos


def test_num_labelled_and_cv_fold_select_by_sha1_within_group(monkeypatch):
  # sha1 prefixes: a3 252b, a0 40b2, a2 b9f8, a1 f29b | b2 32f2, b0 4388, b1 7e83.
  monkeypatch.setattr(benchmarks, "load_benchmark", fake_benchmark())
  ids = lambda vs: sorted(v.video_id for v in vs)
  config = tiny_config()
  config.num_labelled = 2
  train_videos, eval_videos, split = inputs.load_videos(config)
  assert (ids(train_videos), ids(eval_videos), split) == (
      ["a0", "a3", "b0", "b2"],
      ["av", "bv"],
      "val",
  )
  config.num_labelled, config.cv_folds, config.cv_fold = 0, 2, 1
  train_videos, eval_videos, split = inputs.load_videos(config)
  assert (ids(train_videos), ids(eval_videos), split) == (
      ["a2", "a3", "b1", "b2"],
      ["a0", "a1", "b0"],
      "train_cv1of2",
  )
  config.num_labelled, config.group = 1, "B"
  train_videos, eval_videos, _ = inputs.load_videos(config)
  assert (ids(train_videos), ids(eval_videos)) == (["b2"], ["b0"])
  config.group = "C"
  with pytest.raises(ValueError, match="group='C' has no tvsum videos"):
    inputs.load_videos(config)


def test_batch_indices_cover_each_epoch_and_repeat():
  drawn = np.concatenate([inputs.batch_indices(7, 4, 0, s) for s in range(7)])
  for epoch in range(4):
    assert sorted(drawn[7 * epoch : 7 * epoch + 7]) == list(range(7))
  np.testing.assert_array_equal(inputs.batch_indices(7, 4, 0, 5), drawn[20:24])
  assert not np.array_equal(inputs.batch_indices(7, 4, 1, 0), drawn[:4])


def test_targets_by_hand():
  scores = np.array([[1.0] * 20, [5.0] * 20, [3.0] * 20])
  saliency, segment = targets.targets(scores, "tvsum", 2)
  np.testing.assert_allclose(saliency, [0.0, 1.0, 0.5])
  assert segment == (1, 3)
  saliency, segment = targets.targets(np.array([0, 1, 1, -1, 1]), "youtube_highlights", 4)
  np.testing.assert_array_equal(saliency, [0, 1, 1, 0, 1])
  assert segment == (1, 3)


def test_weak_channel_is_fed_z_normalised(monkeypatch):
  def load_segment_scorer(workdir):
    assert workdir == "/weak"
    return families.Scorer("less_is_more", 7, DV, None, lambda x: x[:, 0] * 3.0 + 1.0, {})

  monkeypatch.setattr(families, "load_segment_scorer", load_segment_scorer)
  rng = np.random.default_rng(2)
  videos = [make_video(f"v{i}", "A", 6 + i, rng) for i in range(2)]
  weak = inputs.weak_channel("/weak", videos)
  examples = inputs.make_examples(videos, tiny_config(), weak)
  for v, e in zip(videos, examples):
    assert e.visual.shape == (v.num_clips, DV + 1)
    np.testing.assert_allclose(e.visual[:, :DV], v.features[:, :DV])
    z = (v.features[:, 0] - v.features[:, 0].mean()) / v.features[:, 0].std()
    np.testing.assert_allclose(e.visual[:, DV], z, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ real data


@pytest.mark.slow
def test_tvsum_smoke_on_real_data(shared_data, tmp_path):
  config = tao_config.get_config("benchmark=tvsum")
  config.data_root = str(shared_data)
  config.data_dir = os.environ.get("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config.train.num_steps, config.train.log_every = 5, 5
  config.train.batch_size = jax.device_count() * 2
  config.model.hidden = 32
  results = run_loop.train_and_evaluate(config, str(tmp_path / "tvsum"))
  assert results["num_train_videos"] == 40 and results["num_eval_videos"] == 10
  assert 0.0 <= results["mAP"] <= 1.0 and 0.0 <= results["iou"]["mean_iou"] <= 1.0
  # hl_jax.predict on the workdir: the val split's scores, with the titles, give the
  # same mAP as the training run's evaluation.
  out = predict.run(
      str(tmp_path / "tvsum"),
      str(tmp_path / "pred" / "val.json"),
      benchmark="tvsum",
      split="val",
      manual_dir=str(shared_data / "tvsum"),
      data_dir=config.data_dir,
      max_plots=1,
  )
  assert out["source"]["feature_set"] == "i3d_rgb_flow_audio" and len(out["videos"]) == 10
  videos = benchmarks.load_benchmark(
      "tvsum",
      "val",
      manual_dir=str(shared_data / "tvsum"),
      data_dir=config.data_dir,
      feature_set=config.feature_set,
  )
  scores = {r["video_id"]: np.asarray(r["scores"]) for r in out["videos"]}
  again = protocols.evaluate("tvsum", videos, scores, split="val")
  assert again["mAP"] == pytest.approx(results["mAP"], abs=1e-6)
