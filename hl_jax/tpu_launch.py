r"""Runs launch.py on every worker of a Cloud TPU slice: code, install, detached run, logs.

  python -m hl_jax.tpu_launch --tpu=my-v5e-32 --zone=us-west4-a -- \
    --config=configs/joint.py --workdir=gs://BUCKET/runs/joint \
    --config.data_dir=gs://BUCKET/tensorflow_datasets

Everything after `--` is launch.py's command line (--config.distributed.initialize=True
is added). Three gcloud commands follow, each on all workers at once
(`gcloud compute tpus tpu-vm ... --worker=all`):

 1. the code: this checkout's files (git's tracked and untracked, not ignored:
    uncommitted edits included) as one archive, copied to every worker
    (`tpu-vm scp`); or, with --git_url and --git_rev, cloned there at that rev.
    Each version of the code gets its own folder, ~/hl_jax/code-<id>.
 2. the install: a Python >= 3.11 venv (~/hl_jax/venv; python3.11 from apt when
    the image has no 3.11 or 3.12), then `pip install -e '.[tpu,gcs]'` with jax,
    jaxlib, libtpu and hl_jax's direct dependencies pinned to exact versions,
    the launcher's own (one jax / libtpu on every host of the job; JAX needs
    that). Each worker's `pip freeze` goes to ~/hl_jax/logs/.
 3. the run: launch.py started with nohup under setsid, detached from the ssh
    session, its log in ~/hl_jax/logs/<run>-<worker hostname>.log on each worker.

It then prints the commands that follow the logs and stop the run (a SIGTERM
on every worker: the run saves a checkpoint of its step first). --dry_run
prints the gcloud commands without running them. The workdir must be on
cloud storage (gs://): every worker writes there, and a slice recreated after
a preemption resumes from it by rerunning this same command. The data_dir
should be too, built before the job (WORKSPACE.md: Data).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import pathlib
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from typing import Sequence

from absl import app
from absl import flags

FLAGS = flags.FLAGS

REPO = pathlib.Path(__file__).resolve().parents[1]
HOME = "$HOME/hl_jax"  # On every worker.
PYTHON_CANDIDATES = ("python3.13", "python3.12", "python3.11")


def _define_flags() -> None:
  flags.DEFINE_string("tpu", None, "Name of the TPU slice (gcloud compute tpus tpu-vm).")
  flags.DEFINE_string("zone", None, "Its zone.")
  flags.DEFINE_string("project", None, "Its project (default: gcloud's).")
  flags.DEFINE_string("run_name", None, "Names the logs (default: the workdir's last part).")
  flags.DEFINE_string("git_url", None, "Clone this repository on the workers instead of copying.")
  flags.DEFINE_string("git_rev", None, "The commit to check out with --git_url.")
  flags.DEFINE_string(
      "libtpu_version", None, "Exact libtpu version (default: the launcher's, else jax's pin)."
  )
  flags.DEFINE_boolean("dry_run", False, "Print the gcloud commands; run nothing.")
  flags.mark_flags_as_required(["tpu", "zone"])


def pinned_requirements() -> list[str]:
  """`name==version` of jax, jaxlib and hl_jax's direct dependencies, as installed here.

  Only what is installed here is pinned (a dependency missing here is left
  to pip); extras and markers are dropped, the versions are exact.
  """
  names = ["jax", "jaxlib", "gcsfs", "etils"]
  for requirement in importlib.metadata.requires("hl_jax") or []:
    if "extra ==" not in requirement:
      names.append(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
  pins = {}
  for name in names:
    try:
      pins[name.lower()] = f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
      pass
  return list(pins.values())


def libtpu_requirement(explicit: str | None = None) -> str:
  """The libtpu pin: `explicit`, else the launcher's libtpu, else jax[tpu]'s own pin.

  jax[tpu] pins libtpu to one release series ("libtpu==0.0.42.*"); which
  patch pip picks is then up to the index at install time, the same on every
  worker of one install but not necessarily on a slice recreated later.
  """
  if explicit:
    return f"libtpu=={explicit}"
  try:
    return f"libtpu=={importlib.metadata.version('libtpu')}"
  except importlib.metadata.PackageNotFoundError:
    pass
  for requirement in importlib.metadata.requires("jax") or []:
    if requirement.startswith("libtpu") and 'extra == "tpu"' in requirement:
      return requirement.split(";")[0].strip()
  raise ValueError("jax declares no libtpu for its tpu extra; pass --libtpu_version")


def code_files(repo: pathlib.Path = REPO) -> list[str]:
  """The checkout's files that git tracks or would track (not ignored), relative, sorted."""
  listed = subprocess.run(
      ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      cwd=repo,
      check=True,
      capture_output=True,
  ).stdout.decode()
  return sorted(name for name in set(listed.split("\0")) if name and (repo / name).is_file())


def code_id(repo: pathlib.Path, names: Sequence[str]) -> str:
  """A short hash of the files' names and contents: one folder per version of the code."""
  digest = hashlib.sha256()
  for name in names:
    digest.update(name.encode() + b"\0" + (repo / name).read_bytes() + b"\0")
  return digest.hexdigest()[:12]


def write_archive(repo: pathlib.Path, names: Sequence[str], path: pathlib.Path) -> None:
  with tarfile.open(path, "w:gz") as archive:
    for name in names:
      archive.add(repo / name, arcname=name, recursive=False)


def install_script(code_dir: str, requirements: Sequence[str], run: str, fetch_code: str) -> str:
  """The shell commands every worker runs to get the code and a pinned venv."""
  candidates = " || ".join(f"command -v {p}" for p in PYTHON_CANDIDATES)
  pins = " ".join(shlex.quote(r) for r in requirements)
  return "\n".join(
      [
          "set -euo pipefail",
          f"mkdir -p {HOME}/logs",
          fetch_code,
          # Ubuntu 22.04 TPU images have Python 3.10; jax needs 3.11 or newer.
          f"PY=$({candidates} || true)",
          'if [ -z "$PY" ]; then',
          "  sudo apt-get update -q && sudo apt-get install -y -q python3.11 python3.11-venv",
          "  PY=python3.11",
          "fi",
          f'[ -x {HOME}/venv/bin/python ] || "$PY" -m venv {HOME}/venv',
          f"{HOME}/venv/bin/python -m pip install -q -U pip",
          f'{HOME}/venv/bin/python -m pip install -q -e "{code_dir}[tpu,gcs]" {pins}',
          f'{HOME}/venv/bin/python -m pip freeze > {HOME}/logs/{run}-freeze-"$(hostname)".txt',
      ]
  )


def run_script(code_dir: str, launch_args: Sequence[str], run: str) -> str:
  """Starts launch.py detached from the ssh session; its log stays on the worker."""
  args = " ".join(shlex.quote(a) for a in launch_args)
  log = f'{HOME}/logs/{run}-"$(hostname)".log'
  return "\n".join(
      [
          "set -euo pipefail",
          f"cd {code_dir}",
          f"EPATH_USE_TF=false setsid nohup {HOME}/venv/bin/python launch.py {args} \\",
          f"  > {log} 2>&1 < /dev/null &",
          f'echo $! > {HOME}/logs/{run}-"$(hostname)".pid',
          f'echo "$(hostname): started process $(cat {HOME}/logs/{run}-"$(hostname)".pid), log {log}"',
      ]
  )


def _gcloud(action: str, *args: str) -> list[str]:
  """`gcloud compute tpus tpu-vm <action> <args> --worker=all`: on every worker at once."""
  return ["gcloud", "compute", "tpus", "tpu-vm", action, *args, "--worker=all"]


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `plan` decided.

  Attributes:
    commands: the gcloud commands to run, in order.
    follow: commands (text) that follow the logs and stop the run.
    archive: the local archive of the code that `commands` copy ("" with git).
    files: the files that go into it.
  """

  commands: list[list[str]]
  follow: list[str]
  archive: str
  files: list[str]


def plan(
    tpu: str,
    zone: str,
    launch_args: Sequence[str],
    *,
    project: str | None = None,
    run_name: str | None = None,
    git_url: str | None = None,
    git_rev: str | None = None,
    libtpu_version: str | None = None,
    repo: pathlib.Path = REPO,
    archive_dir: pathlib.Path | None = None,
) -> Plan:
  """The gcloud commands that copy, install and start a run on every worker.

  Raises:
    ValueError: launch.py's arguments lack a --workdir on cloud storage, or
      --git_url and --git_rev are not given together.
  """
  launch_args = list(launch_args)
  workdirs = [a.split("=", 1)[1] for a in launch_args if a.startswith("--workdir=")]
  if len(workdirs) != 1 or not workdirs[0].startswith("gs://"):
    raise ValueError(
        "give launch.py one --workdir=gs://BUCKET/... after `--`: every worker writes it, and "
        f"a recreated slice resumes from it (got {workdirs or 'none'})"
    )
  if bool(git_url) != bool(git_rev):
    raise ValueError("--git_url and --git_rev go together (the commit every worker checks out)")
  if not any(a.startswith("--config.distributed.initialize") for a in launch_args):
    launch_args.append("--config.distributed.initialize=True")
  run = run_name or workdirs[0].rstrip("/").rsplit("/", 1)[-1]
  where = [f"--zone={zone}"] + ([f"--project={project}"] if project else [])
  commands, archive, names = [], "", []
  if git_url:
    code_dir = f"{HOME}/code-{git_rev}"
    fetch = (
        f"[ -d {code_dir} ] || {{ git clone -q {shlex.quote(git_url)} {code_dir} && "
        f"git -C {code_dir} checkout -q {shlex.quote(git_rev)}; }}"
    )
  else:
    names = code_files(repo)
    version = code_id(repo, names)
    code_dir = f"{HOME}/code-{version}"
    archive = str((archive_dir or pathlib.Path(tempfile.gettempdir())) / f"hl_jax-{version}.tar.gz")
    commands.append(_gcloud("scp", archive, f"{tpu}:hl_jax-{version}.tar.gz", *where))
    fetch = (
        f"[ -d {code_dir} ] || {{ mkdir -p {code_dir} && "
        f"tar -xzf $HOME/hl_jax-{version}.tar.gz -C {code_dir}; }}"
    )
  requirements = [*pinned_requirements(), libtpu_requirement(libtpu_version)]
  install = install_script(code_dir, requirements, run, fetch)
  commands.append(_gcloud("ssh", tpu, *where, f"--command={install}"))
  commands.append(
      _gcloud("ssh", tpu, *where, f"--command={run_script(code_dir, launch_args, run)}")
  )
  follow = [
      _gcloud("ssh", tpu, *where, f"--command=tail -n 20 {HOME}/logs/{run}-*.log"),
      # SIGTERM: every host saves the step it reached, then the run stops.
      _gcloud(
          "ssh", tpu, *where, f'--command=kill -TERM "$(cat {HOME}/logs/{run}-"$(hostname)".pid)"'
      ),
  ]
  return Plan(commands, [shlex.join(c) for c in follow], archive, names)


def main(argv: Sequence[str]) -> None:
  launch_args = argv[1:]
  try:
    planned = plan(
        FLAGS.tpu,
        FLAGS.zone,
        launch_args,
        project=FLAGS.project,
        run_name=FLAGS.run_name,
        git_url=FLAGS.git_url,
        git_rev=FLAGS.git_rev,
        libtpu_version=FLAGS.libtpu_version,
    )
  except ValueError as e:
    sys.exit(f"hl_jax.tpu_launch: error: {e}")
  if FLAGS.dry_run:
    if planned.archive:
      print(f"# would write {planned.archive}: {len(planned.files)} files of this checkout")
    for command in planned.commands:
      print(shlex.join(command))
    return
  if planned.archive:
    write_archive(REPO, planned.files, pathlib.Path(planned.archive))
  for command in planned.commands:
    print("+", shlex.join(command)[:200], flush=True)
    subprocess.run(command, check=True)
  print("Follow the logs:", planned.follow[0], sep="\n")
  print("Stop the run (every host saves its step first):", planned.follow[1], sep="\n")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
