"""hl_jax.recurrence_build: recurrence scores as the segment_signal of a manifest corpus.

A tiny corpus made here: 5 videos of 3-9 segments, D = 8, domains dog (3) and
surf (2), .npy and .npz features, one absolute feature_path. Library calls
run in-process, the command line in subprocesses.
"""

import csv
import json
import logging

from absl import app
import numpy as np
import pytest

from hl_jax.signals import recurrence
from hl_jax.signals import recurrence_corpus
from tfds_builders import build
from tfds_builders.duration_corpus import readers

import programs

VIDEOS = {
    "d0": ("dog", 4),
    "d1": ("dog", 6),
    "d2": ("dog", 3),
    "s0": ("surf", 9),
    "s1": ("surf", 5),
}


def _corpus(manual, videos=None, fmt="csv", extra=None):
  """manifest.<fmt> and features of `videos` (id -> (domain, T)); returns id -> features."""
  videos = videos or VIDEOS
  (manual / "features").mkdir(parents=True)
  rng = np.random.default_rng(0)
  features, rows = {}, []
  for i, (vid, (domain, t)) in enumerate(videos.items()):
    features[vid] = rng.normal(size=(t, 8)).astype(np.float32)
    path = manual / "features" / f"v{i}.{'npz' if i % 2 else 'npy'}"
    if i % 2:
      np.savez(path, features=features[vid])
    else:
      np.save(path, features[vid])
    feature_path = str(path) if i == 4 else path.relative_to(manual).as_posix()
    rows.append(
        {
            "video_id": vid,
            "duration_s": 10.0 + i,
            "domain": domain,
            "feature_path": feature_path,
            **(extra or {}),
        }
    )
  if fmt == "csv":
    with open(manual / "manifest.csv", "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)
  else:
    (manual / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return features


def _read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _scores(manual):
  return {p.stem: np.load(p) for p in (manual / "recurrence").glob("*.npy")}


def test_writes_a_score_file_per_video_and_a_manifest_naming_it(tmp_path):
  manual = tmp_path / "corpus"
  features = _corpus(manual)
  built = recurrence_corpus.build(manual)
  assert built.manifest == manual / "recurrence_corpus" / "manifest.csv"
  assert (built.num_videos, built.feature_dim) == (5, 8)
  scores = _scores(manual)
  assert {v: (s.shape, s.dtype) for v, s in scores.items()} == {
      v: ((t,), np.float32) for v, (_, t) in VIDEOS.items()
  }
  rows = _read_csv(built.manifest)
  assert list(rows[0]) == ["video_id", "duration_s", "domain", "feature_path", "segment_signal"]
  assert [r["video_id"] for r in rows] == list(VIDEOS)
  out_dir = built.manifest.parent
  for row in rows:
    assert row["segment_signal"] == f"../recurrence/{row['video_id']}.npy"
    assert (out_dir / row["segment_signal"]).resolve() == (
        manual / "recurrence" / f"{row['video_id']}.npy"
    )
  assert rows[0]["feature_path"] == "../features/v0.npy"
  assert rows[4]["feature_path"] == str(manual / "features" / "v4.npy")  # Absolute stays.
  # The builder's reader resolves every path from the new folder.
  records = readers.read_manifest(out_dir, segment_signal="segment_signal")
  for record in records:
    np.testing.assert_array_equal(
        recurrence_corpus.load_features(record), features[record.video_id]
    )


@pytest.mark.parametrize("k", [3, 20])
def test_scores_equal_recurrence_scores_within_each_domain(tmp_path, k):
  features = _corpus(tmp_path)
  recurrence_corpus.build(tmp_path, k=k)
  got = _scores(tmp_path)
  for domain in ("dog", "surf"):
    ids = [v for v, (d, _) in VIDEOS.items() if d == domain]
    want = recurrence.recurrence_scores([features[v] for v in ids], [domain] * len(ids), k=k)
    for vid, scores in zip(ids, want):
      np.testing.assert_array_equal(got[vid], scores)
  # k matters (3 < 13 dog segments), so the flag reaches the scores.
  if k == 3:
    full = recurrence.recurrence_scores(
        [features["d0"], features["d1"], features["d2"]], ["dog"] * 3, k=20
    )[0]
    assert not np.allclose(got["d0"], full)


def test_group_by_all_compares_with_every_other_video(tmp_path):
  features = _corpus(tmp_path)
  recurrence_corpus.build(tmp_path, group_by="all", k=3)
  want = recurrence.recurrence_scores(list(features.values()), ["x"] * 5, k=3)
  got = _scores(tmp_path)
  for vid, scores in zip(features, want):
    np.testing.assert_array_equal(got[vid], scores)


def test_a_video_alone_in_its_domain_is_compared_with_all_others(tmp_path, caplog):
  videos = {**VIDEOS, "k0": ("ski", 5)}
  features = _corpus(tmp_path, videos)
  with caplog.at_level(logging.INFO):
    recurrence_corpus.build(tmp_path, k=3)
  assert "domain 'ski' has one video: compared with all 5 other videos" in caplog.text
  got = _scores(tmp_path)
  everyone = recurrence.recurrence_scores(list(features.values()), ["x"] * 6, k=3)
  np.testing.assert_allclose(got["k0"], everyone[-1], rtol=1e-6)
  dog = recurrence.recurrence_scores([features[v] for v in ("d0", "d1", "d2")], ["dog"] * 3, k=3)
  np.testing.assert_array_equal(got["d0"], dog[0])  # The others keep their domain.


def test_new_manifest_builds_manifest_segment_signal(tmp_path):
  manual = tmp_path / "corpus"
  features = _corpus(manual)
  built = recurrence_corpus.build(manual, k=3)
  builder = build.build(
      "duration_corpus/manifest_segment_signal",
      str(built.manifest.parent),
      str(tmp_path / "tfds"),
      feature_dim=8,
  )
  assert builder.builder_config.name == "manifest_segment_signal_d8"
  train = builder.as_data_source("train")
  examples = {ex["video_id"].decode(): ex for ex in (train[i] for i in range(len(train)))}
  assert sorted(examples) == sorted(f"{v}#{side}" for v in VIDEOS for side in ("hi", "lo"))
  scores = _scores(manual)
  for vid, (_, t) in VIDEOS.items():
    # #hi: the floor(T / 3) most recurrent segments, in time order.
    best = np.sort(np.argsort(-scores[vid], kind="stable")[: t // 3])
    np.testing.assert_array_equal(examples[f"{vid}#hi"]["features"], features[vid][best])
    assert examples[f"{vid}#hi"]["pair_group"].decode() == vid


def test_a_rerun_writes_byte_identical_files(tmp_path):
  _corpus(tmp_path)
  recurrence_corpus.build(tmp_path)
  written = sorted((tmp_path / "recurrence").glob("*.npy")) + [
      tmp_path / "recurrence_corpus" / "manifest.csv"
  ]
  first = {p: p.read_bytes() for p in written}
  for p in written:
    p.write_bytes(b"stale")
  recurrence_corpus.build(tmp_path)
  assert {p: p.read_bytes() for p in written} == first
  assert not list(tmp_path.rglob("*.partial"))


def test_jsonl_manifest_in_and_out(tmp_path):
  _corpus(tmp_path, fmt="jsonl", extra={"ctr": 0.5})
  out = tmp_path / "out" / "manifest.jsonl"
  recurrence_corpus.build(tmp_path, out)
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert rows[1] == {
      "video_id": "d1",
      "duration_s": 11.0,
      "domain": "dog",
      "feature_path": "../features/v1.npz",
      "ctr": 0.5,
      "segment_signal": "../recurrence/d1.npy",
  }
  assert len(readers.read_manifest(out.parent, segment_signal="segment_signal")) == 5


def test_ids_that_are_not_file_names_get_distinct_files(tmp_path):
  videos = {"cam/1": ("dog", 3), "cam?1": ("dog", 4)}
  _corpus(tmp_path, videos)
  built = recurrence_corpus.build(tmp_path)
  paths = [r["segment_signal"] for r in _read_csv(built.manifest)]
  assert len(set(paths)) == 2 and all(p.startswith("../recurrence/cam_1-") for p in paths)
  assert [len(np.load(built.manifest.parent / p)) for p in paths] == [3, 4]


def test_ids_equal_but_for_case_are_refused(tmp_path):
  _corpus(tmp_path, {"Clip": ("dog", 3), "clip": ("dog", 3)})
  with pytest.raises(
      ValueError,
      match=r"videos 'Clip' and 'clip' would share the score " r"file recurrence/clip.npy",
  ):
    recurrence_corpus.build(tmp_path)


def test_missing_manifest(tmp_path):
  with pytest.raises(FileNotFoundError, match=f"no manifest in {tmp_path}"):
    recurrence_corpus.build(tmp_path)


def test_missing_features_file_names_the_video_and_the_file(tmp_path):
  _corpus(tmp_path)
  missing = tmp_path / "features" / "v2.npy"
  missing.unlink()
  with pytest.raises(
      FileNotFoundError,
      match=rf"line 4 \(video d2\): feature file " rf"{missing}: no such features file",
  ):
    recurrence_corpus.build(tmp_path)
  assert not (tmp_path / "recurrence_corpus").exists()


def test_existing_segment_signal_column_needs_overwrite(tmp_path):
  _corpus(tmp_path, extra={"segment_signal": "viewers.npy"})
  with pytest.raises(
      ValueError, match=r"manifest.csv already has a 'segment_signal' " r"column; pass --overwrite"
  ):
    recurrence_corpus.build(tmp_path)
  built = recurrence_corpus.build(tmp_path, overwrite=True)
  rows = _read_csv(built.manifest)
  assert list(rows[0]).count("segment_signal") == 1
  assert rows[0]["segment_signal"] == "../recurrence/d0.npy"


@pytest.mark.parametrize(
    "output, message",
    [
        ("manifest.csv", "is the input manifest"),
        ("scores.txt", "must end in .csv or .jsonl"),
    ],
)
def test_bad_output_manifest(tmp_path, output, message):
  _corpus(tmp_path)
  with pytest.raises(app.UsageError, match=message):
    recurrence_corpus.build(tmp_path, tmp_path / output)


def test_one_video_is_too_few(tmp_path):
  _corpus(tmp_path, {"d0": ("dog", 3)})
  with pytest.raises(ValueError, match="needs at least 2"):
    recurrence_corpus.build(tmp_path)


def _run_cli(args):
  return programs.run("hl_jax.recurrence_build", *args, timeout=120, JAX_PLATFORMS="cpu")


def test_command_line(tmp_path):
  _corpus(tmp_path, extra={"segment_signal": "viewers.npy"})
  done = _run_cli([f"--manual_dir={tmp_path}"])
  assert done.returncode == 1
  assert done.stderr.splitlines()[-1] == (
      f"hl_jax.recurrence_build: error: {tmp_path}/manifest.csv already has a "
      "'segment_signal' column; pass --overwrite to replace it with recurrence scores"
  )
  done = _run_cli([f"--manual_dir={tmp_path}", "--overwrite", "--k=3", "--group_by=all"])
  assert done.returncode == 0, done.stderr[-2000:]
  assert (
      "duration_corpus/manifest_segment_signal --feature_dim=8 "
      f"--manual_dir={tmp_path}/recurrence_corpus"
  ) in done.stdout
