"""Workdirs and data on gs://, against the local GCS emulator (tests/gcs_emulator.py).

The workdir's files (config, history, results, metrics, TensorBoard events,
checkpoints) go through etils.epath and Orbax to the bucket; the lease that
stands in for the local lock refuses a second run and is taken over from a
run that died; a data_dir on gs:// is read, never built into. The slow tests
run the real `launch.py` as two JAX processes on 127.0.0.1 with the workdir
and the TFDS data_dir in the bucket, for both model families: one run is
stopped (SIGTERM to one host: both save the step it reached) or killed
(SIGKILL), rerun with the same command, and must end bit-identical to an
uninterrupted run; `hl_jax.predict` and `hl_jax.scorecard` then read the
gs:// workdir. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

from absl import logging
from etils import epath
import fsspec
import jax
import numpy as np
import pytest

from configs import tiny
from hl_jax.core import checkpointing
from hl_jax.core import files
from hl_jax.core import workdir as workdir_lib
from hl_jax.core import writers
from hl_jax.data import benchmarks
from hl_jax.data import corpora

import gcs_emulator

gcs_server = gcs_emulator.gcs_server  # The fixtures, by the names tests ask for.
gcs_bucket = gcs_emulator.gcs_bucket

_REPO = pathlib.Path(__file__).resolve().parents[1]
_TVSUM_DUMMY = _REPO / "tfds_builders" / "tvsum" / "dummy_data"


def _listing(url: str) -> list[str]:
  path = epath.Path(url)
  return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


# ------------------------------------------------------------ the workdir's files


def test_config_history_and_results_round_trip(gcs_bucket):
  workdir = f"{gcs_bucket}/runs/a"
  config = tiny.get_config()
  workdir_lib.save_config(workdir, config, {"family": "less_is_more", "feature_dim": 16})
  loaded, record = workdir_lib.load_config(workdir)
  assert loaded.train.num_steps == config.train.num_steps
  assert record == {"family": "less_is_more", "feature_dim": 16}
  assert workdir_lib.read_config_json(f"{gcs_bucket}/runs/none") is None

  # No appends on GCS: each evaluation rewrites the whole file.
  history = workdir_lib.EvalHistory(workdir, restored_step=0)
  for step in (10, 20, 30):
    history.add({"step": step, "mAP": step / 100})
  path = epath.Path(workdir) / workdir_lib.HISTORY_NAME
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20, 30]
  # A run resumed from step 20 drops step 30 (it redoes it), in the file too.
  resumed = workdir_lib.EvalHistory(workdir, restored_step=20)
  assert [e["step"] for e in resumed.entries()] == [10, 20] and 30 not in resumed
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]

  workdir_lib.write_results(workdir, {"step": 30, "mAP": 0.5}, "# results\n")
  assert json.loads((epath.Path(workdir) / "results.json").read_text()) == {"step": 30, "mAP": 0.5}
  assert (epath.Path(workdir) / "results.md").read_text() == "# results\n"
  # Written in place: no temporary names left beside the files.
  assert _listing(workdir) == ["config.json", "history.jsonl", "results.json", "results.md"]


def test_atomic_output_uploads_only_a_finished_file(gcs_bucket):
  url = f"{gcs_bucket}/out/table.npz"
  with files.atomic_output(url) as partial:
    assert not files.is_remote(partial) and partial.suffix == ".npz"
    np.savez(partial, x=np.arange(3))
  with epath.Path(url).open("rb") as f:
    np.testing.assert_array_equal(np.load(f)["x"], np.arange(3))
  with pytest.raises(RuntimeError, match="half way"):
    with files.atomic_output(f"{gcs_bucket}/out/broken.npz") as partial:
      partial.write_bytes(b"half")
      raise RuntimeError("half way")
  assert _listing(f"{gcs_bucket}/out") == ["table.npz"]
  assert files.is_remote("gs://b/x") and files.is_remote("s3://b/x")
  assert not files.is_remote("/tmp/x") and not files.is_remote("file:///tmp/x")


def test_metrics_and_tensorboard_events_go_to_the_bucket(gcs_bucket):
  workdir = f"{gcs_bucket}/runs/metrics"
  writer = writers.create_writer(workdir, is_chief=True)
  writer.write_scalars(5, {"train/loss": 0.5})
  writer.write_scalars(10, {"train/loss": 0.25})
  writer.flush()
  writer.close()
  # A resumed run keeps the rows already there (GCS cannot append: rewritten whole).
  again = writers.create_writer(workdir, is_chief=True)
  again.write_scalars(15, {"train/loss": 0.125})
  again.flush()
  again.close()
  rows = [
      json.loads(line) for line in (epath.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  ]
  assert [(r["step"], r["train/loss"]) for r in rows] == [(5, 0.5), (10, 0.25), (15, 0.125)]
  # (Event files are named by the second and the host: the two runs' may be one.)
  events = list(epath.Path(workdir, "tensorboard").iterdir())
  assert events and all(p.name.startswith("events.out.tfevents.") for p in events)
  assert all(b"train/loss" in p.read_bytes() for p in events)


def _state(step: int) -> dict[str, jax.Array]:
  return {"step": jax.numpy.asarray(step), "w": jax.numpy.full((8, 3), float(step))}


def test_checkpoints_are_written_to_the_url_and_skip_unfinished_saves(gcs_bucket):
  workdir = f"{gcs_bucket}/runs/ckpt"
  directory = checkpointing.checkpoint_dir(workdir)
  assert directory == f"{workdir}/checkpoints"  # Not os.path.abspath of a URL.
  assert not checkpointing.has_checkpoints(workdir)
  manager = checkpointing.make_manager(workdir, max_to_keep=5)
  for step in (1, 2):
    checkpointing.save(manager, step, _state(step), {"window_index": step})
  manager.wait_until_finished()
  assert checkpointing.has_checkpoints(workdir)
  assert _listing(directory) == ["1", "2"]
  assert (epath.Path(directory) / "2" / "commit_success.txt").exists()  # Orbax's GCS marker.

  # A save killed midway leaves <step>/ without its commit marker: skipped, said so.
  (epath.Path(directory) / "2" / "commit_success.txt").unlink()
  manager = checkpointing.make_manager(workdir, max_to_keep=5)
  with pytest.MonkeyPatch.context() as patch:
    warnings = []
    patch.setattr(logging, "warning", lambda *args: warnings.append(args[0] % args[1:]))
    state, input_state = checkpointing.restore_latest(
        manager, checkpointing.abstract_like(_state(0))
    )
  assert int(state["step"]) == 1 and input_state == {"window_index": 1}
  assert any("2 (unfinished save" in w for w in warnings), warnings
  # Step 2 is saved again over the unfinished one, and read back by a reader.
  checkpointing.save(manager, 2, _state(2), {"window_index": 2})
  manager.wait_until_finished()
  assert float(checkpointing.restore_state(workdir)["w"][0, 0]) == 2.0


# ------------------------------------------------------------ the lease


def _lease(workdir: str) -> dict:
  return json.loads((epath.Path(workdir) / workdir_lib.LEASE_NAME).read_text())


def test_lease_refuses_a_second_run_in_one_line(gcs_bucket):
  workdir = f"{gcs_bucket}/runs/lease"
  with workdir_lib.exclusive(workdir):
    held = _lease(workdir)
    assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
    with pytest.raises(workdir_lib.WorkdirLockedError) as refused:
      with workdir_lib.exclusive(workdir):
        pass
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"workdir {workdir} is in use by another run: process {os.getpid()} on "
        f"{socket.gethostname()} holds {workdir}/.lease (renewed "
    )
    assert _lease(workdir)["token"] == held["token"]  # The refused run changed nothing.
  assert _listing(workdir) == []  # Released: deleted.
  with pytest.raises(ZeroDivisionError):
    with workdir_lib.exclusive(workdir):
      _ = 1 / 0
  assert _listing(workdir) == []  # Released when the block raises too.


def _leave_lease(workdir: str, **fields) -> None:
  record = {"pid": 1, "host": "another-host", "boot_id": "x", "token": "theirs", "renewed": 0}
  record.update(fields)
  epath.Path(workdir, workdir_lib.LEASE_NAME).write_text(json.dumps(record))


def test_lease_of_a_dead_run_is_taken_over(gcs_bucket, monkeypatch):
  warnings = []
  monkeypatch.setattr(logging, "warning", lambda *args: warnings.append(args[0] % args[1:]))
  workdir = f"{gcs_bucket}/runs/stale"
  # Another host's lease renewed just now: refused.
  _leave_lease(workdir, renewed=time.time())
  with pytest.raises(workdir_lib.WorkdirLockedError, match="process 1 on another-host holds"):
    with workdir_lib.exclusive(workdir):
      pass
  # Not renewed for longer than stale_after_s: taken over, with a warning.
  _leave_lease(workdir, renewed=time.time() - 100)
  with workdir_lib.exclusive(workdir, stale_after_s=60):
    assert _lease(workdir)["pid"] == os.getpid()
  assert any("process 1 on another-host: not renewed for 1" in w for w in warnings), warnings
  # A holder of this host that no longer runs: taken over at once.
  done = subprocess.run(
      [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
  )
  _leave_lease(
      workdir,
      pid=int(done.stdout),
      host=socket.gethostname(),
      boot_id=workdir_lib._boot_id(),  # pylint: disable=protected-access
      start_ticks=1,
      renewed=time.time(),
  )
  with workdir_lib.exclusive(workdir):
    assert _lease(workdir)["pid"] == os.getpid()
  assert any("its holder no longer runs" in w for w in warnings), warnings


def test_lease_is_renewed_and_a_takeover_is_noticed(gcs_bucket):
  workdir = f"{gcs_bucket}/runs/renew"
  with workdir_lib.exclusive(workdir, renew_every_s=0.1) as guard:
    first = _lease(workdir)["renewed"]
    deadline = time.time() + 60
    while _lease(workdir)["renewed"] == first:
      assert time.time() < deadline, "the lease was not renewed"
      time.sleep(0.05)
    guard.check()  # Still ours.
    # Another run took it over, and renews it as a live run does. (Renewal is read,
    # then write: a renewal already past its read can overwrite the other run's
    # record once, and the other run's next renewal restores it.)
    deadline = time.time() + 60
    while True:
      _leave_lease(workdir, renewed=time.time())
      try:
        guard.check()
      except workdir_lib.WorkdirLockedError as e:
        assert "taken over by process 1 on another-host" in str(e)
        break
      assert time.time() < deadline, "the takeover went unnoticed"
      time.sleep(0.05)
  assert _lease(workdir)["token"] == "theirs"  # Not deleted by the run that lost it.


def test_lease_is_created_only_if_absent(gcs_bucket):
  url = f"{gcs_bucket}/runs/x/.lease"
  workdir_lib._create_if_absent(url, b"first")  # pylint: disable=protected-access
  with pytest.raises(FileExistsError):
    workdir_lib._create_if_absent(url, b"second")  # pylint: disable=protected-access
  assert epath.Path(url).read_bytes() == b"first"


# ------------------------------------------------------------ data on gs://


def test_a_data_dir_on_gcs_is_read_never_built_into(gcs_bucket):
  config = tiny.get_config()
  config.data_dir = f"{gcs_bucket}/tfds"
  with pytest.raises(FileNotFoundError) as missing:
    corpora.load_corpus(config)
  message = str(missing.value)
  assert "\n" not in message and message.startswith(
      f"duration_corpus/synthetic_tiny is not built in {gcs_bucket}/tfds; a data_dir on cloud "
      "storage is read, never built into: build it once locally (python -m "
      "tfds_builders.build duration_corpus/synthetic_tiny --data_dir=/tmp/tfds )"
  )
  with pytest.raises(FileNotFoundError, match=r"^tvsum/i3d_rgb is not built in gs://"):
    benchmarks.load_benchmark(
        "tvsum", "val", manual_dir=str(_TVSUM_DUMMY), data_dir=f"{gcs_bucket}/tfds"
    )
  assert _listing(f"{gcs_bucket}/tfds") == []  # Nothing half-built there.


# ------------------------------------------------------------ two hosts, end to end

TIMEOUT_S = 300  # Per launch.py process, enforced by `timeout -k`.
NUM_STEPS, EVERY = 100, 10


def _upload(local: pathlib.Path, url: str) -> None:
  """Copies a local folder's files under `url` (how a built data_dir reaches GCS)."""
  fs = fsspec.filesystem("gs")
  for path in sorted(p for p in local.rglob("*") if p.is_file()):
    fs.put_file(str(path), f"{url}/{path.relative_to(local).as_posix()}")


@pytest.fixture(scope="module")
def lim_data_dir(gcs_server, tmp_path_factory):
  """synthetic_tiny built locally, then copied to gs://<bucket>/tfds."""
  local = tmp_path_factory.mktemp("tfds")
  config = tiny.get_config()
  config.data_dir = str(local)
  corpora.load_corpus(config)
  url = f"{gcs_server.create_bucket()}/tfds"
  _upload(local, url)
  return url


@pytest.fixture(scope="module")
def tao_data_dir(gcs_server, tmp_path_factory):
  """TVSum's dummy data built locally (4096-d features), then copied to gs://<bucket>/tfds."""
  local = tmp_path_factory.mktemp("tfds_tvsum")
  for split in ("train", "val"):
    benchmarks.load_benchmark(
        "tvsum",
        split,
        manual_dir=str(_TVSUM_DUMMY),
        data_dir=str(local),
        feature_set="i3d_rgb_flow_audio",
    )
  url = f"{gcs_server.create_bucket()}/tfds"
  _upload(local, url)
  return url


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class _TwoHosts:
  """launch.py as JAX processes 0 and 1 on 127.0.0.1 (2 CPU devices each), logging to files.

  The launches of one test share a persistent compilation cache (the same
  executables, compiled once: the test's time is mostly compilation).
  """

  def __init__(self, log_dir: pathlib.Path, name: str, args: list[str]):
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")  # The emulator's variables included.
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["JAX_COMPILATION_CACHE_DIR"] = str(log_dir / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    self.logs = [log_dir / f"{name}_p{i}.log" for i in range(2)]
    self.processes = []
    for i, log in enumerate(self.logs):
      command = ["timeout", "-k", "5", str(TIMEOUT_S), sys.executable, "launch.py", *args]
      command += [
          "--config.distributed.initialize=True",
          f"--config.distributed.coordinator_address=127.0.0.1:{port}",
          "--config.distributed.num_processes=2",
          f"--config.distributed.process_id={i}",
      ]
      with open(log, "ab") as f:
        self.processes.append(
            subprocess.Popen(
                command,
                cwd=_REPO,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

  def texts(self) -> list[str]:
    return [log.read_text() for log in self.logs]

  def wait(self) -> list[int]:
    return [p.wait() for p in self.processes]

  def finish(self) -> list[str]:
    """Waits for a run that must succeed; returns its logs."""
    codes = self.wait()
    assert codes == [0, 0], "\n".join(t[-3000:] for t in self.texts())
    return self.texts()

  def wait_for_log(self, host: int, text: str) -> None:
    deadline = time.time() + TIMEOUT_S
    while text not in self.logs[host].read_text():
      assert all(p.poll() is None for p in self.processes), "\n".join(self.texts())[-6000:]
      assert time.time() < deadline
      time.sleep(0.05)

  def python_pid(self, host: int) -> int:
    """The python process of `host` (the child of its `timeout`)."""
    pid = self.processes[host].pid
    deadline = time.time() + 30
    while True:
      children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
      if children:
        return int(children[0])
      assert time.time() < deadline
      time.sleep(0.05)

  def kill(self) -> None:
    """SIGKILL to both hosts' process groups (no clean-up runs)."""
    for process in self.processes:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
      process.wait()


def _finished_steps(workdir: str) -> list[int]:
  """Steps whose save has completed (Orbax's commit marker on GCS)."""
  names = _listing(f"{workdir}/checkpoints")
  return sorted(
      int(n)
      for n in names
      if n.isdigit() and epath.Path(workdir, "checkpoints", n, "commit_success.txt").exists()
  )


def _kill_after_checkpoint(run: _TwoHosts, workdir: str, after: int, delay_s: float) -> None:
  """SIGKILLs both hosts `delay_s` after a checkpoint past step `after` is complete."""
  deadline = time.time() + TIMEOUT_S
  while not any(step > after for step in _finished_steps(workdir)):
    assert all(p.poll() is None for p in run.processes), "\n".join(run.texts())[-6000:]
    assert time.time() < deadline
    time.sleep(0.02)
  time.sleep(delay_s)
  run.kill()
  assert [p.returncode for p in run.processes] == [-signal.SIGKILL] * 2
  assert not epath.Path(workdir, "results.json").exists(), "finished before the kill"


def _assert_same_run(expected: str, got: str, num_steps: int) -> None:
  """Bit-identical final states, and the same results.json (but wall_s and ports)."""
  a, b = (checkpointing.restore_workdir(w)[1] for w in (expected, got))
  assert int(a["step"]) == int(b["step"]) == num_steps
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  results = [json.loads(epath.Path(w, "results.json").read_text()) for w in (expected, got)]
  for result in results:
    del result["wall_s"]  # Seconds of the process that wrote it.
    result.get("config", {}).pop("distributed", None)  # Each launch's own port.
  assert results[0] == results[1]


@pytest.mark.slow
def test_less_is_more_two_hosts_on_gcs_stop_kill_resume_predict(lim_data_dir, tmp_path):
  bucket = lim_data_dir.rsplit("/", 1)[0]
  straight, interrupted = f"{bucket}/runs/straight", f"{bucket}/runs/interrupted"
  common = [
      "--config=configs/tiny.py",
      f"--config.data_dir={lim_data_dir}",
      "--config.input.window_videos=30",
      "--config.input.refill_every_steps=25",
  ]
  every = [f"--config.train.num_steps={NUM_STEPS}", f"--config.checkpoint.every_steps={EVERY}"]
  runs = [_TwoHosts(tmp_path, "straight", [*common, *every, f"--workdir={straight}"])]
  try:
    # 1. A preemption notice (SIGTERM) to host 1 alone; no periodic checkpoints.
    first = _TwoHosts(
        tmp_path,
        "interrupted",
        [
            *common,
            f"--workdir={interrupted}",
            "--config.train.num_steps=100000",
            "--config.checkpoint.every_steps=100000",
        ],
    )
    runs.append(first)
    first.wait_for_log(1, "Training steps 0..100000")
    os.kill(first.python_pid(1), signal.SIGTERM)
    assert first.wait() == [143, 143], "\n".join(first.texts())[-6000:]
    stopped = [int(re.search(r"Preempted at step (\d+)", t).group(1)) for t in first.texts()]
    assert stopped[0] == stopped[1], stopped  # Both hosts saved the same step...
    assert _finished_steps(interrupted) == [stopped[0]]  # ...the one they reached.
    assert stopped[0] < NUM_STEPS - 3 * EVERY, stopped
    assert all(f"launch.py: preempted at step {stopped[0]}" in t for t in first.texts())
    assert not epath.Path(interrupted, workdir_lib.LEASE_NAME).exists()  # Released.

    # 2. The same command (to NUM_STEPS) resumes there; SIGKILL after a later checkpoint.
    second = _TwoHosts(tmp_path, "interrupted", [*common, *every, f"--workdir={interrupted}"])
    runs.append(second)
    _kill_after_checkpoint(second, interrupted, stopped[0], delay_s=0.1)
    assert epath.Path(interrupted, workdir_lib.LEASE_NAME).exists()  # Left by the dead run.

    # 3. Again: the dead run's lease is taken over, the newest checkpoint restored.
    logs = _TwoHosts(tmp_path, "interrupted", [*common, *every, f"--workdir={interrupted}"])
    runs.append(logs)
    texts = logs.finish()
    runs[0].finish()
  finally:
    for run in runs:
      run.kill()
  assert "its holder no longer runs" in texts[0]
  restored = [int(s) for s in re.findall(r"Restoring checkpoint at step (\d+)", texts[0])]
  assert stopped[0] in restored and restored[-1] > stopped[0], restored
  _assert_same_run(straight, interrupted, NUM_STEPS)

  # hl_jax.predict reads the gs:// workdir: the scores are its f's.
  from hl_jax.core import families  # pylint: disable=g-import-not-at-top
  from hl_jax.highlights import predict  # pylint: disable=g-import-not-at-top

  features = np.random.default_rng(0).normal(size=(9, 16)).astype(np.float32)
  np.savez(tmp_path / "clip.npz", features=features, segment_seconds=2.0)
  result = predict.run(
      straight, tmp_path / "out" / "clip.json", features=[str(tmp_path / "clip.npz")]
  )
  assert result["checkpoint_step"] == NUM_STEPS
  scorer = families.load_segment_scorer(straight)
  np.testing.assert_allclose(
      result["videos"][0]["scores"], scorer.score_segments(features), rtol=1e-6
  )


@pytest.mark.slow
def test_taohighlight_two_hosts_on_gcs_kill_resume_scorecard(tao_data_dir, tmp_path):
  bucket = tao_data_dir.rsplit("/", 1)[0]
  straight, killed = f"{bucket}/runs/straight", f"{bucket}/runs/killed"
  steps, every = 12, 4
  common = [
      "--config=configs/taohighlight.py:tiny",
      f"--config.data_dir={tao_data_dir}",
      "--config.data_root=/nonexistent",  # Built already: the raw data is never read.
      f"--config.train.num_steps={steps}",
      f"--config.checkpoint.every_steps={every}",
      "--config.train.log_every=5",
  ]
  runs = [
      _TwoHosts(tmp_path, "straight", [*common, f"--workdir={straight}"]),
      _TwoHosts(tmp_path, "killed", [*common, f"--workdir={killed}"]),
  ]
  try:
    _kill_after_checkpoint(runs[1], killed, every, delay_s=0.05)
    runs.append(_TwoHosts(tmp_path, "killed", [*common, f"--workdir={killed}"]))
    texts = runs[2].finish()
    runs[0].finish()
  finally:
    for run in runs:
      run.kill()
  restored = [int(s) for s in re.findall(r"Restoring checkpoint at step (\d+)", texts[0])]
  assert restored and every < restored[-1] < steps, restored
  _assert_same_run(straight, killed, steps)

  # hl_jax.scorecard reads the gs:// workdir and the gs:// data_dir.
  from hl_jax.highlights import scorecard  # pylint: disable=g-import-not-at-top

  report = scorecard.run(
      "tvsum",
      "val",
      tmp_path / "card.json",
      data_dir=tao_data_dir,
      feature_set="i3d_rgb_flow_audio",
      workdir=straight,
  )
  final = json.loads(epath.Path(straight, "results.json").read_text())
  assert report["mAP"] == pytest.approx(final["mAP"], abs=1e-6)
