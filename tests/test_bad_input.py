"""Every command refuses bad input in one clear line.

Each case runs a program as a user would (`python -m <program> ...`) on files
it creates, and checks that it exits non-zero, that the last line of stderr is
`<program>: error: ...` with the words that say what, where and how to fix,
that there is no traceback, and that nothing was written under the case's
`out/` folder (outputs, TFDS data_dirs). Each start-up costs seconds (jax,
TFDS), so the selected cases run two at a time and the predict cases share one
trained tiny workdir; variants that share a code path are checked in-process
(test_predict.py, test_video_features.py, test_scorecard.py, the end of this file).
"""

import concurrent.futures
import dataclasses
import glob
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
from typing import Callable

import numpy as np
import pytest

from configs import tiny
from hl_jax.core import cli
from hl_jax.core import run_loop
from hl_jax.highlights import streaming

import programs

REPO = pathlib.Path(__file__).resolve().parents[1]
TVSUM_DUMMY = REPO / "tfds_builders" / "tvsum" / "dummy_data"
D = 16  # feature width of the tiny model


@dataclasses.dataclass(frozen=True)
class Case:
  """`python -m program *args` in a fresh folder holding `files`.

  args are formatted with {tmp} (the case's folder; outputs go under
  {tmp}/out) and {workdir} (the shared trained workdir); `files` maps a name
  in {tmp} to a function (path, workdir) that writes it.
  """

  program: str
  args: tuple[str, ...]
  words: tuple[str, ...]
  files: dict[str, Callable[[pathlib.Path, str], None]] = dataclasses.field(default_factory=dict)


def _npy(array=None):
  array = np.ones((6, D), np.float32) if array is None else array
  return lambda path, _: np.save(path, array)


def _npz(**arrays):
  arrays.setdefault("features", np.ones((6, D), np.float32))
  return lambda path, _: np.savez(path, **arrays)


def _bytes(data: bytes):
  return lambda path, _: path.write_bytes(data)


def _torn_workdir(steps):
  """A copy of the workdir whose checkpoints `steps` have half their data."""

  def write(path, workdir):
    shutil.copytree(workdir, path)
    for step in steps:
      _tear(path / "checkpoints" / str(step))

  return write


def _tear(step_dir: pathlib.Path) -> None:
  """Halves every data file of a checkpoint's state (a torn write)."""
  files = [
      f
      for f in glob.glob(str(step_dir / "state" / "**" / "d" / "*"), recursive=True)
      if os.path.getsize(f)
  ]
  assert files
  for name in files:
    os.truncate(name, os.path.getsize(name) // 2)


def _empty_workdir(path, workdir):
  (path / "checkpoints").mkdir(parents=True)
  shutil.copy(pathlib.Path(workdir) / "config.json", path / "config.json")


def _manifest(path, _):
  path.mkdir()
  for vid in ("a", "b"):
    np.save(path / f"{vid}.npy", np.zeros((4, 1024), np.float32))
  (path / "manifest.csv").write_text("video_id,duration_s,feature_path\na,8,a.npy\nb,abc,b.npy\n")


def _tvsum_with_corrupt_features(path, _):
  shutil.copytree(TVSUM_DUMMY, path)
  (path / "features_umt_f16" / "i3d_rgb" / "dummyBK_val.npz").write_bytes(b"PK\x03\x04torn")


def _audio_only(path, _):
  import videos  # pylint: disable=g-import-not-at-top  # tests/videos.py needs av: AV_CASES only

  videos.make_audio_only(path)


PREDICT = ("hl_jax.predict", "--workdir={workdir}", "--output={tmp}/out/p.json")
SCORECARD = ("hl_jax.scorecard", "--benchmark=tvsum", "--output={tmp}/out/r.json")
FEATURES = ("hl_jax.video_features", "--video={tmp}/v.mp4", "--output={tmp}/out/f.npz")
BUILD = ("tfds_builders.build", "--data_dir={tmp}/out")


def _case(command, args, words, **files):
  return Case(command[0], command[1:] + tuple(args), tuple(words), files)


CASES = {
    # hl_jax.predict: flags (validated while parsed), features files, workdirs.
    "predict_segment_seconds_zero": _case(
        PREDICT,
        ["--features={tmp}/a.npy", "--segment_seconds=0"],
        ["--segment_seconds=0.0", "finite number of seconds > 0"],
        **{"a.npy": _npy()},
    ),
    "predict_segment_seconds_nan": _case(
        PREDICT,
        ["--features={tmp}/a.npy", "--segment_seconds=nan"],
        ["--segment_seconds=nan", "finite"],
        **{"a.npy": _npy()},
    ),
    "predict_max_plots_negative": _case(
        PREDICT,
        ["--features={tmp}/a.npy", "--max_plots=-1"],
        ["--max_plots=-1", ">= 0"],
        **{"a.npy": _npy()},
    ),
    "predict_features_and_benchmark": _case(
        PREDICT,
        ["--features={tmp}/a.npy", "--benchmark=tvsum"],
        ["exactly one of --features, --video and --benchmark"],
        **{"a.npy": _npy()},
    ),
    "predict_features_and_videos_differ": _case(
        PREDICT,
        ["--features={tmp}/a.npy,{tmp}/b.npy", "--video={tmp}/v.mp4"],
        ["2 features files but 1 videos", "one --video per --features file"],
        **{"a.npy": _npy(), "b.npy": _npy()},
    ),
    "predict_layout_unknown": _case(
        PREDICT, ["--benchmark=tvsum", "--layout=umd"], ["--layout", "umd", "lighthouse"]
    ),
    "predict_benchmark_not_that_layout": _case(
        PREDICT,
        [
            "--benchmark=tvsum",
            "--manual_dir={tmp}/tvsum",
            "--layout=umt",
            "--feature_set=i3d_rgb",
            "--data_dir={tmp}/tfds",
        ],
        ["tvsum", "is not tvsum's umt layout, which expects", "tvsum_anno.json"],
        tvsum=lambda path, _: shutil.copytree(TVSUM_DUMMY, path),
    ),
    "predict_npz_stride_zero": _case(
        PREDICT,
        ["--features={tmp}/s.npz"],
        ["s.npz", "'stride_seconds' is 0.0", "> 0"],
        **{"s.npz": _npz(stride_seconds=0.0)},
    ),
    "predict_npz_duration_nan": _case(
        PREDICT,
        ["--features={tmp}/d.npz"],
        ["d.npz", "'duration_seconds' is nan"],
        **{"d.npz": _npz(duration_seconds=np.nan)},
    ),
    "predict_npz_duration_before_last_segment": _case(
        PREDICT,
        ["--features={tmp}/d.npz"],
        ["d.npz", "'duration_seconds' is 3.0", "segment 5 of 6 starts at 10.0 s"],
        **{"d.npz": _npz(segment_seconds=2.0, duration_seconds=3.0)},
    ),
    "predict_corrupt_npy": _case(
        PREDICT,
        ["--features={tmp}/bad.npy"],
        ["bad.npy", "not a readable .npy file"],
        **{"bad.npy": _bytes(b"\x93NUMPY\x01\x00garbage")},
    ),
    "predict_corrupt_npz": _case(
        PREDICT,
        ["--features={tmp}/bad.npz"],
        ["bad.npz", "not a readable .npz file"],
        **{"bad.npz": _bytes(b"PK\x03\x04garbage")},
    ),
    "predict_no_whole_checkpoint": _case(
        ("hl_jax.predict", "--workdir={tmp}/w", "--output={tmp}/out/p.json"),
        ["--features={tmp}/a.npy"],
        ["can be restored", "step 10 (restore failed", "step 5"],
        **{"a.npy": _npy(), "w": _torn_workdir([5, 10])},
    ),
    "predict_no_checkpoint": _case(
        ("hl_jax.predict", "--workdir={tmp}/w", "--output={tmp}/out/p.json"),
        ["--features={tmp}/a.npy"],
        ["no finished checkpoint in", "w/checkpoints"],
        **{"a.npy": _npy(), "w": _empty_workdir},
    ),
    # hl_jax.scorecard: the errors come before any data is read.
    "scorecard_random_seeds_negative": _case(
        SCORECARD, ["--random_seeds=-1"], ["--random_seeds=-1", ">= 0"]
    ),
    "scorecard_no_source": _case(
        SCORECARD, [], ["exactly one of --predictions, --workdir and --random_seeds"]
    ),
    "scorecard_output_not_json": _case(
        ("hl_jax.scorecard", "--benchmark=tvsum", "--output={tmp}/out/r.txt"),
        ["--random_seeds=1"],
        ["r.txt", "must end in .json"],
    ),
    "scorecard_layout_unknown": _case(
        SCORECARD, ["--random_seeds=1", "--layout=UMT"], ["--layout", "UMT", "auto"]
    ),
    "scorecard_lighthouse_has_no_audio": _case(
        SCORECARD,
        [
            "--random_seeds=1",
            "--manual_dir=" + str(TVSUM_DUMMY / "lighthouse"),
            "--feature_set=i3d_rgb_flow_audio",
            "--data_dir={tmp}/tfds",
        ],
        ["tvsum/i3d_rgb_flow_audio cannot be built from the lighthouse layout", "pann_audio"],
    ),
    "scorecard_not_built_no_manual_dir": _case(
        SCORECARD,
        ["--random_seeds=1", "--data_dir={tmp}/out/tfds", "--manual_dir={tmp}/missing"],
        ["tvsum/i3d_rgb is not built", "missing"],
    ),
    # hl_jax.video_features: flags, then the video and the weights.
    "features_feature_dim_zero": _case(FEATURES, ["--feature_dim=0"], ["--feature_dim=0", ">= 1"]),
    "features_segment_seconds_nan": _case(
        FEATURES, ["--segment_seconds=nan"], ["--segment_seconds=nan", "finite"]
    ),
    "features_output_not_npz": _case(
        ("hl_jax.video_features", "--video={tmp}/v.mp4", "--output={tmp}/out/f.npy"),
        [],
        ["--output=", "f.npy", ".npz"],
    ),
    "features_not_a_video": _case(
        FEATURES, [], ["v.mp4", "Invalid data"], **{"v.mp4": _bytes(b"not a video\n")}
    ),
    "features_audio_only": _case(
        FEATURES, [], ["v.mp4 has no video stream", "audio"], **{"v.mp4": _audio_only}
    ),
    "features_i3d_corrupt_weights": _case(
        FEATURES,
        ["--extractor_weights={tmp}/w.ckpt"],
        ["w.ckpt"],
        **{"w.ckpt": _bytes(b"\x80\x04garbage")},
    ),
    "features_i3d_feature_dim": _case(
        FEATURES, ["--feature_dim=16"], ["i3d extractor gives 1024-d features", "16"]
    ),
    "features_corrupt_weights": _case(
        FEATURES,
        ["--extractor=untrained", "--extractor_weights={tmp}/w.msgpack"],
        ["w.msgpack", "not a readable .msgpack weights file"],
        **{"w.msgpack": _bytes(b"\x00garbage")},
    ),
    # tfds_builders.build: names, flags, manual_dir, then the raw data.
    "build_unknown_dataset": _case(BUILD, ["tvsumm/i3d_rgb"], ["unknown dataset 'tvsumm'"]),
    "build_unknown_config": _case(
        BUILD, ["tvsum/i3d_rgbb"], ["unknown config 'i3d_rgbb'", "i3d_rgb_flow"]
    ),
    "build_no_manual_dir": _case(
        BUILD, ["tvsum/i3d_rgb"], ["tvsum/i3d_rgb", "pass --manual_dir", "umt_tvsum_anno.json"]
    ),
    "build_manual_dir_missing": _case(
        BUILD,
        ["tvsum/i3d_rgb", "--manual_dir={tmp}/nope"],
        ["--manual_dir=", "nope", "not a folder"],
    ),
    "build_feature_dim_negative": _case(
        BUILD, ["duration_corpus/synthetic_tiny", "--feature_dim=-3"], ["--feature_dim=-3"]
    ),
    "build_manifest_bad_line": _case(
        BUILD,
        ["duration_corpus/manifest", "--manual_dir={tmp}/m", "--feature_dim=1024"],
        ["manifest.csv line 3 (video b)", "duration_s 'abc' is not a number"],
        m=_manifest,
    ),
    "build_corrupt_feature_file": _case(
        BUILD,
        ["tvsum/i3d_rgb", "--manual_dir={tmp}/m"],
        ["dummyBK_val.npz", "not a readable .npz file"],
        m=_tvsum_with_corrupt_features,
    ),
}


# Cases that decode: without PyAV the program says so instead (and they skip).
AV_CASES = {"features_not_a_video", "features_audio_only"}
HAVE_AV = importlib.util.find_spec("av") is not None


def _run(program: str, *args: str) -> subprocess.CompletedProcess:
  return programs.run(program, *args, JAX_PLATFORMS="cpu")


def _run_case(case: Case, tmp: pathlib.Path, workdir: str) -> subprocess.CompletedProcess:
  return _run(case.program, *(a.format(tmp=tmp, workdir=workdir) for a in case.args))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny model (D = 16) trained for 10 steps, checkpoints at steps 5 and 10."""
  config = tiny.get_config()
  config.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.train.num_steps = 10
  config.checkpoint.every_steps = 5
  config.eval.random_seeds = 1
  path = tmp_path_factory.mktemp("workdir")
  run_loop.train_and_evaluate(config, str(path))
  assert sorted(os.listdir(path / "checkpoints")) == ["10", "5"]
  return str(path)


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
  """{case name: future (folder, finished process)} of the selected cases.

  All start at once, two at a time, so that the tests below mostly wait on
  processes that are already done.
  """
  names = [
      item.callspec.params["name"]
      for item in request.session.items
      if item.path == pathlib.Path(__file__)
      and hasattr(item, "callspec")
      and "name" in item.callspec.params
  ]
  names = [n for n in names if HAVE_AV or n not in AV_CASES]
  needs_workdir = any(CASES[n].program == "hl_jax.predict" for n in names)
  trained = request.getfixturevalue("workdir") if needs_workdir else ""
  futures = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    for name in names:
      tmp = tmp_path_factory.mktemp(name)
      for file_name, write in CASES[name].files.items():
        write(tmp / file_name, trained)
      futures[name] = pool.submit(lambda c=CASES[name], t=tmp: (t, _run_case(c, t, trained)))
    yield futures


@pytest.mark.parametrize("name", sorted(CASES))
def test_refuses_bad_input(outcomes, name):
  if name in AV_CASES and not HAVE_AV:
    pytest.skip("needs PyAV (pip install av)")
  case = CASES[name]
  tmp, proc = outcomes[name].result()
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode in (1, 2), proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert lines and lines[-1].startswith(f"{case.program}: error: "), proc.stderr[-3000:]
  for word in case.words:
    assert word in lines[-1], lines[-1]
  out = tmp / "out"
  assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], sorted(out.rglob("*"))


def test_predict_falls_back_past_a_torn_newest_checkpoint(workdir, tmp_path):
  torn = tmp_path / "w"
  _torn_workdir([10])(torn, workdir)
  np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(6, D)).astype(np.float32))
  out = tmp_path / "p.json"
  proc = _run(
      "hl_jax.predict", f"--workdir={torn}", f"--features={tmp_path / 'a.npy'}", f"--output={out}"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert json.loads(out.read_text())["checkpoint_step"] == 5
  assert "step 10 (restore failed" in proc.stderr  # the warning names what was skipped


# ----------------------------------------------------------------------------
# In-process: the streaming detector and the one-line messages.


def _quiet_stream(num=200):
  """Bounded periodic scores whose robust z-scores stay below enter_z: no events."""
  t = np.arange(num)
  return 0.3 * np.sin(2 * np.pi * t / 7) + 0.2 * np.sin(2 * np.pi * t / 3.3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_streaming_skips_a_non_finite_score_without_an_event(bad):
  scores = _quiet_stream()
  detector = streaming.OnlineDetector(streaming.StreamConfig())
  assert detector.push(scores) + detector.finish() == []
  scores[50] = bad
  detector = streaming.OnlineDetector(streaming.StreamConfig())
  events = detector.push(scores) + detector.finish()
  assert events == [] and detector.skipped_segments == 1
  assert detector.segments_seen == len(scores)


def test_streaming_keeps_stream_time_across_skipped_segments():
  # A planted highlight at 100..114 is found at the same segments whether or
  # not segments 20 and 30 (before it) are NaN, and in chunks or one by one.
  scores = _quiet_stream()
  scores[100:115] += 4.0
  config = streaming.StreamConfig()
  clean = streaming.OnlineDetector(config)
  expected = streaming.highlights(clean.push(scores) + clean.finish())
  scores[[20, 30]] = np.nan
  for chunks in ([len(scores)], [1] * len(scores)):
    detector = streaming.OnlineDetector(config)
    bounds = np.cumsum([0] + chunks)
    events = [e for a, b in zip(bounds[:-1], bounds[1:]) for e in detector.push(scores[a:b])]
    assert streaming.highlights(events + detector.finish()) == expected
    assert len(expected) == 1 and detector.skipped_segments == 2


def test_messages_are_one_line():
  assert cli.message(KeyError("video v: no key 'fps'")) == "video v: no key 'fps'"
  assert cli.message(ValueError("first\n  second\n\n")) == "first second"
  assert cli.message(OSError()) == "OSError"
  assert cli.positive(2.0) and not any(map(cli.positive, (0.0, -1.0, np.nan, np.inf)))
  assert cli.non_negative(0.0) and not any(map(cli.non_negative, (-1e-9, np.nan, np.inf)))
