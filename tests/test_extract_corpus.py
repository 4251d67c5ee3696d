"""hl_jax.extract_corpus: sharded, resumable feature extraction into a manifest corpus.

Tiny synthetic videos (32 x 32 gray frames, 10 fps, 1-3 s) and the untrained
extractor at 1 s segments, 2 frames of 16 x 16, 8-d features: a video of n
frames has num_segments(n / 10, 1) feature rows. Library calls run in-process;
the command line (exit status, one-line error, two jax.distributed processes on
127.0.0.1) in subprocesses under `timeout -k`.
"""

import csv
import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys

import av
import numpy as np
import pytest

from hl_jax.data import features_file
from hl_jax.video import corpus_extraction
from hl_jax.video import decoding
from hl_jax.video import extractors
from tfds_builders import build

REPO = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
EXTRACTOR_FLAGS = [
    "--extractor=untrained",
    "--segment_seconds=1",
    "--frames_per_segment=2",
    "--frame_size=16",
    "--feature_dim=8",
]
# name -> frames at 10 fps: 1.0, 2.0, 3.0, 1.5 s -> 1, 2, 3, 2 segments.
FRAMES = {"a": 10, "b": 20, "c": 30, "d": 15}


@pytest.fixture(scope="module")
def extractor():
  return extractors.make_extractor(
      "untrained", segment_seconds=1.0, frames_per_segment=2, frame_size=16, feature_dim=8
  )


def _gray_video(path, num_frames, fps=10, size=32):
  """Frame n is gray level 8 n + 5 (lossless H.264)."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"qp": "0"}
    for n in range(num_frames):
      image = np.full((size, size, 3), (8 * n + 5) % 256, np.uint8)
      for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("videos")
  for name, frames in FRAMES.items():
    _gray_video(folder / f"{name}.mp4", frames)
  (folder / "bad.mp4").write_text("not a video")
  return folder


def _csv_list(path, rows):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerows(rows)
  return path


def _read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _run_cli(args, env_extra=None):
  env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      XLA_FLAGS="--xla_force_host_platform_device_count=1",
      **(env_extra or {}),
  )
  return subprocess.run(
      ["timeout", "-k", "5", str(TIMEOUT_S), sys.executable, "-m", "hl_jax.extract_corpus"] + args,
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      check=False,
  )


def test_two_shards_merge_in_list_order_with_carried_columns(tmp_path, video_dir, extractor):
  # Relative paths, relative to the list's folder; ids from the column or the stem.
  listing = _csv_list(
      video_dir / "two_shards.csv",
      [
          ["video", "video_id", "domain", "ctr", "tags"],
          ["c.mp4", "", "dog", "0.3", "x;y"],
          ["a.mp4", "clip_a", "", "0.1", ""],
          [str(video_dir / "d.mp4"), "", "cat", "0.4", "z"],
          ["b.mp4", "", "dog", "0.2", "w"],
      ],
  )
  videos, carried = corpus_extraction.read_video_list(listing)
  assert carried == ["ctr", "tags"]
  out = tmp_path / "corpus"
  first = corpus_extraction.run_shard(videos, carried, out, extractor, shard_index=1, num_shards=2)
  # Shard 1 has list positions 1 and 3; shard 0 is still missing: no merge yet.
  assert (first.total, first.extracted, first.manifest) == (2, 2, None)
  assert not (out / "manifest.csv").exists()
  assert [r["video_id"] for r in _read_csv(out / "manifest_shard1of2.csv")] == ["clip_a", "b"]
  second = corpus_extraction.run_shard(videos, carried, out, extractor, shard_index=0, num_shards=2)
  assert second.manifest == out / "manifest.csv"
  rows = _read_csv(out / "manifest.csv")
  assert list(rows[0]) == ["video_id", "duration_s", "domain", "feature_path", "ctr", "tags"]
  assert [(r["video_id"], r["domain"], r["ctr"], r["tags"]) for r in rows] == [
      ("c", "dog", "0.3", "x;y"),
      ("clip_a", "", "0.1", ""),
      ("d", "cat", "0.4", "z"),
      ("b", "dog", "0.2", "w"),
  ]
  assert [float(r["duration_s"]) for r in rows] == pytest.approx([3.0, 1.0, 1.5, 2.0])
  for row, segments in zip(rows, [3, 1, 2, 2]):
    assert row["feature_path"] == f"features/{row['video_id']}.npz"
    with np.load(out / row["feature_path"]) as data:
      assert data["features"].shape == (segments, 8)
  # --merge_only rebuilds it from the shard manifests; a missing shard is named.
  (out / "manifest.csv").unlink()
  corpus_extraction.merge_manifests(videos, carried, out, 2, required=True)
  assert _read_csv(out / "manifest.csv") == rows
  with pytest.raises(FileNotFoundError, match="manifest_shard2of3.csv"):
    corpus_extraction.merge_manifests(videos, carried, out, 3, required=True)


def test_rerun_extracts_only_the_missing_video(tmp_path, video_dir, extractor):
  listing = video_dir / "resume.txt"
  listing.write_text("a.mp4\n\n# a comment\nb.mp4\nc.mp4\n")
  videos, carried = corpus_extraction.read_video_list(listing)
  out = tmp_path / "corpus"
  report = corpus_extraction.run_shard(videos, carried, out, extractor)
  assert (report.skipped, report.extracted) == (0, 3)
  files = {name: out / "features" / f"{name}.npz" for name in "abc"}
  stamps = {name: path.stat().st_mtime_ns for name, path in files.items()}
  before = files["a"].read_bytes()
  files["b"].unlink()
  # What a run killed mid-write leaves: a partial file, never the .npz itself.
  files["b"].with_name("b.npz.partial").write_bytes(b"half a file")
  report = corpus_extraction.run_shard(videos, carried, out, extractor)
  assert (report.skipped, report.extracted, report.failures) == (2, 1, [])
  assert {n: files[n].stat().st_mtime_ns for n in "ac"} == {n: stamps[n] for n in "ac"}
  assert files["a"].read_bytes() == before
  with np.load(files["b"]) as data:
    assert data["features"].shape == (2, 8)
  assert [r["video_id"] for r in _read_csv(out / "manifest.csv")] == ["a", "b", "c"]


def test_bad_video_is_recorded_and_the_others_written(tmp_path, video_dir):
  listing = video_dir / "with_bad.txt"
  listing.write_text("a.mp4\nbad.mp4\nb.mp4\n")
  out = tmp_path / "corpus"
  done = _run_cli([f"--videos={listing}", f"--output_dir={out}"] + EXTRACTOR_FLAGS)
  assert done.returncode == 1, done.stderr[-3000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("hl_jax.extract_corpus: error: 1 of 3 videos"), done.stderr[-3000:]
  assert str(video_dir / "bad.mp4") in last
  failures = [json.loads(line) for line in (out / "failures_shard0.jsonl").read_text().splitlines()]
  assert [(f["video_id"], f["video"], f["line"]) for f in failures] == [
      ("bad", str(video_dir / "bad.mp4"), 2)
  ]
  assert [r["video_id"] for r in _read_csv(out / "manifest.csv")] == ["a", "b"]
  assert sorted(p.name for p in (out / "features").iterdir()) == ["a.npz", "b.npz"]


@pytest.mark.parametrize(
    "kind, message",
    [
        ("description", r"extractor 'SegmentEmbedder seed 7"),
        ("segment_seconds", r"segment_seconds 2.0, this run 1.0"),
        ("width", r"4-d features, this run 8-d"),
        ("not_features", r"not a readable features file"),
    ],
)
def test_features_of_another_extractor_are_refused(tmp_path, video_dir, extractor, kind, message):
  listing = video_dir / "other.txt"
  listing.write_text("a.mp4\nb.mp4\n")
  videos, carried = corpus_extraction.read_video_list(listing)
  out = tmp_path / "corpus"
  path = out / "features" / "b.npz"
  config, description, width = extractor.config, extractor.description, 8
  if kind == "description":
    description = "SegmentEmbedder seed 7 (untrained: not meaningful features)"
  elif kind == "segment_seconds":
    config = decoding.DecodeConfig(2.0, 2, 16)
  elif kind == "width":
    width = 4
  if kind == "not_features":
    path.parent.mkdir(parents=True)
    np.savez(path, features=np.zeros((2, 8), np.float32))
  else:
    features_file.write(
        path,
        np.zeros((2, width), np.float32),
        2.0,
        dataclasses.asdict(config),
        extractor=description,
        video="elsewhere.mp4",
    )
  stamp = path.stat().st_mtime_ns
  with pytest.raises(ValueError, match=message) as error:
    corpus_extraction.run_shard(videos, carried, out, extractor)
  assert str(path) in str(error.value) and "--overwrite" in str(error.value)
  assert path.stat().st_mtime_ns == stamp and not (out / "features" / "a.npz").exists()
  report = corpus_extraction.run_shard(videos, carried, out, extractor, overwrite=True)
  assert (report.skipped, report.extracted) == (0, 2)
  assert features_file.read_signature(path) == extractor.signature()


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("a.mp4\nsub/a.mp4\n", ".txt", r"video_id 'a' is also line 1"),
        (
            '{"video": "a.mp4", "video_id": "x"}\n\n{"video": "b.mp4", "video_id": "x"}\n',
            ".jsonl",
            r"line 3: video_id 'x' is also line 1",
        ),
        ("video,duration_s\na.mp4,3\n", ".csv", r"column 'duration_s' is written by"),
        ("path\na.mp4\n", ".csv", r"`video` column"),
    ],
)
def test_list_errors_name_the_lines(tmp_path, text, suffix, message):
  listing = tmp_path / f"list{suffix}"
  listing.write_text(text)
  with pytest.raises(ValueError, match=message):
    corpus_extraction.read_video_list(listing)


def test_manifest_builds_into_a_duration_corpus(tmp_path, video_dir, extractor):
  listing = video_dir / "build.jsonl"
  listing.write_text(
      "\n".join(
          json.dumps(row)
          for row in [
              {"video": "a.mp4", "domain": "dog", "ctr": 0.5},
              {"video": "c.mp4", "ctr": 0.1},
              {"video": "d.mp4", "domain": "cat", "ctr": 0.9},
          ]
      )
      + "\n"
  )
  videos, carried = corpus_extraction.read_video_list(listing)
  out = tmp_path / "corpus"
  corpus_extraction.run_shard(videos, carried, out, extractor)
  # D = 8 is not the registered configs' 1024: the build CLI's --feature_dim
  # derives manifest_d8 (and manifest_ctr_d8 reads the carried ctr column).
  for config in ("manifest", "manifest_ctr"):
    builder = build.build(
        f"duration_corpus/{config}", str(out), str(tmp_path / "tfds"), feature_dim=8
    )
    assert builder.builder_config.name == f"{config}_d8"
    train = builder.as_data_source("train")
    examples = {ex["video_id"].decode(): ex for ex in (train[i] for i in range(len(train)))}
    assert sorted(examples) == ["a", "c", "d"]
    assert examples["c"]["domain"].decode() == "all"  # Empty domain.
    with np.load(out / "features" / "c.npz") as data:
      np.testing.assert_array_equal(examples["c"]["features"], data["features"])
    assert examples["d"]["duration_s"] == pytest.approx(1.5)
  assert examples["d"]["signal"] == pytest.approx(0.9)  # manifest_ctr: ctr.


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_jax_processes_each_take_their_shard(tmp_path, video_dir):
  listing = video_dir / "distributed.txt"
  listing.write_text("a.mp4\nb.mp4\nc.mp4\nd.mp4\n")
  out = tmp_path / "corpus"
  port = free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  procs = [
      subprocess.Popen(
          [
              "timeout",
              "-k",
              "5",
              str(TIMEOUT_S),
              sys.executable,
              "-m",
              "hl_jax.extract_corpus",
              f"--videos={listing}",
              f"--output_dir={out}",
              f"--coordinator_address=127.0.0.1:{port}",
              "--num_processes=2",
              f"--process_id={i}",
          ]
          + EXTRACTOR_FLAGS,
          cwd=REPO,
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
      )
      for i in range(2)
  ]
  logs = [p.communicate()[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
  assert [r["video_id"] for r in _read_csv(out / "manifest_shard0of2.csv")] == ["a", "c"]
  assert [r["video_id"] for r in _read_csv(out / "manifest_shard1of2.csv")] == ["b", "d"]
  assert [r["video_id"] for r in _read_csv(out / "manifest.csv")] == ["a", "b", "c", "d"]
  assert "shard 0/2: 2 extracted" in logs[0] and "shard 1/2: 2 extracted" in logs[1]
