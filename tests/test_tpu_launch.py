"""hl_jax.tpu_launch: the gcloud commands that copy, install and start a run on a TPU slice.

Nothing here reaches Google Cloud: the dry run prints the commands, and the
real run is pointed at a stand-in `gcloud` on PATH that records what it is
asked to do.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import shlex
import subprocess
import sys
import tarfile

from hl_jax import tpu_launch

_REPO = pathlib.Path(__file__).resolve().parents[1]
_LAUNCH_ARGS = [
    "--config=configs/joint.py",
    "--workdir=gs://bucket/runs/joint",
    "--config.data_dir=gs://bucket/tfds",
]


def run_launcher(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", "hl_jax.tpu_launch", *args],
      cwd=_REPO,
      env=env or dict(os.environ),
      capture_output=True,
      text=True,
      timeout=120,
  )


def test_dry_run_prints_copy_install_and_detached_run_on_every_worker(tmp_path):
  env = dict(os.environ, TMPDIR=str(tmp_path))
  done = run_launcher(
      "--tpu=my-slice", "--zone=us-west4-a", "--dry_run", "--", *_LAUNCH_ARGS, env=env
  )
  assert done.returncode == 0, done.stderr
  lines = done.stdout.splitlines()
  assert lines[0].startswith(f"# would write {tmp_path}/hl_jax-") and lines[0].endswith(
      "files of this checkout"
  )
  text = "\n" + "\n".join(lines[1:])
  commands = [shlex.split("gcloud " + c) for c in text.split("\ngcloud ")[1:]]
  assert len(commands) == 3
  scp, install, run = commands
  archive = pathlib.Path(scp[5])
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
  assert scp[6:] == [f"my-slice:{archive.name}", "--zone=us-west4-a", "--worker=all"]
  assert not archive.exists()  # A dry run writes nothing.
  for command in (install, run):
    assert command[:7] == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "ssh",
        "my-slice",
        "--zone=us-west4-a",
    ]
    assert command[-1] == "--worker=all"
  install_script = install[-2].removeprefix("--command=")
  version = archive.name.removeprefix("hl_jax-").removesuffix(".tar.gz")
  # Python >= 3.11, and one exact jax / jaxlib (and libtpu series) on every worker.
  assert "command -v python3.11" in install_script and "python3.11-venv" in install_script
  jax_version = importlib.metadata.version("jax")
  pins = shlex.split(install_script.splitlines()[-2])
  assert f"$HOME/hl_jax/code-{version}[tpu,gcs]" in pins
  assert f"jax=={jax_version}" in pins and f"jaxlib=={jax_version}" in pins
  assert any(p.startswith("libtpu==") for p in pins)
  assert f"orbax-checkpoint=={importlib.metadata.version('orbax-checkpoint')}" in pins
  run_script = run[-2].removeprefix("--command=")
  assert f"cd $HOME/hl_jax/code-{version}" in run_script
  assert (
      "EPATH_USE_TF=false setsid nohup $HOME/hl_jax/venv/bin/python launch.py "
      + " ".join(_LAUNCH_ARGS)
      + " --config.distributed.initialize=True"
  ) in run_script
  assert '> $HOME/hl_jax/logs/joint-"$(hostname)".log 2>&1 < /dev/null &' in run_script
  for script in (install_script, run_script):  # Valid shell.
    subprocess.run(["bash", "-n", "-c", script], check=True)


def test_git_route_clones_the_rev_and_copies_nothing():
  planned = tpu_launch.plan(
      "s", "z", _LAUNCH_ARGS, git_url="https://example.org/hl_jax.git", git_rev="abc123"
  )
  assert not planned.archive and [c[4] for c in planned.commands] == ["ssh", "ssh"]
  script = planned.commands[0][-2]
  assert (
      "git clone -q https://example.org/hl_jax.git $HOME/hl_jax/code-abc123 && "
      "git -C $HOME/hl_jax/code-abc123 checkout -q abc123"
  ) in script


def test_bad_command_lines_end_in_one_line():
  done = run_launcher("--tpu=s", "--zone=z", "--dry_run", "--", "--config=configs/joint.py")
  assert done.returncode == 1
  assert done.stderr.strip() == (
      "hl_jax.tpu_launch: error: give launch.py one --workdir=gs://BUCKET/... after `--`: every "
      "worker writes it, and a recreated slice resumes from it (got none)"
  )
  done = run_launcher("--tpu=s", "--zone=z", "--git_url=u", "--dry_run", "--", *_LAUNCH_ARGS)
  assert done.returncode == 1 and "--git_url and --git_rev go together" in done.stderr


def test_a_run_writes_the_archive_and_calls_gcloud_three_times(tmp_path):
  calls = tmp_path / "calls.txt"
  fake = tmp_path / "bin" / "gcloud"
  fake.parent.mkdir()
  fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
  fake.chmod(0o755)
  env = dict(os.environ, TMPDIR=str(tmp_path), PATH=f"{fake.parent}:{os.environ['PATH']}")
  done = run_launcher("--tpu=s", "--zone=z", "--", *_LAUNCH_ARGS, env=env)
  assert done.returncode == 0, done.stderr
  recorded = calls.read_text().split("\ncompute tpus tpu-vm ")
  assert [r.split()[0] for r in recorded] == ["compute", "ssh", "ssh"]
  assert "kill -TERM" in done.stdout and "tail -n 20" in done.stdout
  archives = list(tmp_path.glob("hl_jax-*.tar.gz"))
  assert len(archives) == 1
  with tarfile.open(archives[0]) as archive:
    names = set(archive.getnames())
  assert {"launch.py", "hl_jax/tpu_launch.py", "pyproject.toml", "configs/joint.py"} <= names
  assert not any("__pycache__" in n for n in names)
