"""The real trainer, unchanged, on weak-signal corpora (a CTR column, per-segment files)."""

import json
import os
import pathlib

import numpy as np
import pytest

from configs import tiny
from hl_jax.core import run_loop


def _write_manifest(manual: pathlib.Path, rows: list[dict]) -> None:
  """manifest.csv of `rows`, their columns in order of first appearance."""
  columns = list(dict.fromkeys(k for row in rows for k in row))
  lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
  (manual / "manifest.csv").write_text("\n".join(lines) + "\n")


def _weak_signal_corpus(manual: pathlib.Path, num_videos: int = 24) -> None:
  """Videos whose high-CTR ones (and high-viewer segments) hold highlights, D = 1024."""
  rng = np.random.default_rng(0)
  direction = rng.normal(size=1024)
  direction /= np.linalg.norm(direction)
  manual.mkdir()
  rows = []
  for i in range(num_videos):
    t = int(rng.integers(3, 9))
    highlight = rng.random(t) < (0.8 if i % 2 else 0.2)
    features = rng.normal(size=(t, 1024)) + 3 * np.outer(highlight, direction)
    np.save(manual / f"v{i}.npy", features.astype(np.float32))
    viewers = 100 * highlight + rng.integers(0, 50, t)
    np.save(manual / f"v{i}_viewers.npy", viewers)
    rows.append(
        {
            "video_id": f"v{i}",
            "duration_s": 30.0,
            "domain": ("cooking", "games")[i % 3 == 0],
            "feature_path": f"v{i}.npy",
            "ctr": round(0.05 * (i % 2) + 0.001 * i, 4),
            "segment_signal": f"v{i}_viewers.npy",
        }
    )
  _write_manifest(manual, rows)


@pytest.mark.parametrize("corpus", ["manifest_ctr", "manifest_segment_signal"])
def test_trainer_runs_unchanged_on_a_weak_signal_corpus(tmp_path, corpus):
  _weak_signal_corpus(tmp_path / "manual")
  config = tiny.get_config()
  config.corpus.builder_config = corpus
  config.data_dir = str(tmp_path / "data")
  config.corpus.manual_dir = str(tmp_path / "manual")
  config.corpus.eval_split = ""
  config.num_devices = 1  # Multi-device training is tests/test_train.py's job.
  config.train.num_steps = config.checkpoint.every_steps = 4
  config.train.log_every = config.train.sync_every = 2
  workdir = str(tmp_path / "workdir")
  results = run_loop.train_and_evaluate(config, workdir)
  assert results["step"] == 4
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    losses = [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]
  assert losses and np.all(np.isfinite(losses))


def test_a_segment_signal_corpus_of_another_width_keeps_its_pair_groups(tmp_path):
  # Built as manifest_segment_signal_d8 and opened from its folder, without the
  # registered config that says `segment_signal`: the sides of each video must
  # still stay together (one item per video), so that pairs are drawn within it.
  from hl_jax.data import corpora  # pylint: disable=g-import-not-at-top
  from tfds_builders import build  # pylint: disable=g-import-not-at-top

  manual = tmp_path / "manual"
  manual.mkdir()
  rng = np.random.default_rng(0)
  rows = []
  for i in range(4):
    np.save(manual / f"v{i}.npy", rng.normal(size=(6, 8)).astype(np.float32))
    np.save(manual / f"v{i}_s.npy", np.arange(6) * (1 if i % 2 else -1))
    rows.append(
        {
            "video_id": f"v{i}",
            "duration_s": 12.0,
            "domain": "d",
            "feature_path": f"v{i}.npy",
            "segment_signal": f"v{i}_s.npy",
        }
    )
  _write_manifest(manual, rows)
  build.build(
      "duration_corpus/manifest_segment_signal", str(manual), str(tmp_path / "data"), feature_dim=8
  )
  config = tiny.get_config()
  config.corpus.builder_config = "manifest_segment_signal_d8"
  config.data_dir = str(tmp_path / "data")
  config.corpus.manual_dir = str(manual)
  config.corpus.eval_split = ""
  corpus = corpora.load_corpus(config)
  assert corpus.feature_dim == 8 and len(corpus.train_source) == 4
  items = sorted(
      sorted(ex["video_id"].decode() for ex in corpus.train_source[index]) for index in range(4)
  )
  assert items == [[f"v{i}#hi", f"v{i}#lo"] for i in range(4)]
