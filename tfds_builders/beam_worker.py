r"""The Beam worker image's files, pinned to the versions installed here (the launcher's).

  python -m tfds_builders.beam_worker --output_dir=.

writes, from the environment that runs it (the launcher of the Beam build):

  beam_worker_requirements.txt  `name==version` of apache-beam (with its gcp
                                extra) and of what the workers import
                                (tensorflow-datasets, array_record, numpy,
                                etils, absl-py, importlib_resources, gcsfs),
                                with every dependency of theirs installed here,
                                each at exactly the version installed here
  beam_worker.Dockerfile        FROM apache/beam_python<this Python>_sdk:<this
                                Beam>; installs that file, then the hl_jax wheel
                                without its dependencies (no JAX, no TensorFlow),
                                from the build context's dist/ (build the image
                                with the output_dir as its context, after
                                `pip wheel --no-deps -w <output_dir>/dist .`)

Beam's workers unpickle what the launcher pickled (the example maker, TFDS's
writer), so they need the launcher's Python minor version and Beam version,
and the same versions of those libraries. A dependency the launcher lacks
(most of apache-beam[gcp] on a launcher that only runs locally) is listed
unpinned, in a comment: pip resolves it when the image is built. Rerun this
after any upgrade of the launcher's environment, then rebuild the image.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys
from typing import Sequence

from absl import app
from absl import flags
from packaging import requirements
from packaging import utils

FLAGS = flags.FLAGS

REQUIREMENTS_NAME = "beam_worker_requirements.txt"
DOCKERFILE_NAME = "beam_worker.Dockerfile"
# What the workers import, and the extra of each (apache-beam's for GCS and Dataflow).
WORKER_PACKAGES = {
    "apache-beam": ("gcp",),
    "tensorflow-datasets": (),
    "array_record": (),
    "numpy": (),
    "etils": ("epath",),
    "absl-py": (),
    "importlib_resources": (),
    "gcsfs": (),
}


def pinned_closure(roots: dict[str, Sequence[str]]) -> tuple[list[str], list[str]]:
  """The installed versions of `roots` and of all their dependencies, recursively.

  Args:
    roots: distribution name -> the extras asked for.

  Returns:
    (sorted "name==version" of every distribution installed here, sorted
    requirement strings of the dependencies not installed here).
  """
  pinned: dict[str, str] = {}
  missing: dict[str, str] = {}
  todo = [(name, tuple(extras)) for name, extras in roots.items()]
  seen: set[tuple[str, tuple[str, ...]]] = set()
  while todo:
    name, extras = todo.pop()
    key = utils.canonicalize_name(name)
    if (key, extras) in seen:
      continue
    seen.add((key, extras))
    try:
      distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
      missing.setdefault(key, name)
      continue
    pinned[key] = f"{distribution.metadata['Name']}=={distribution.version}"
    for text in distribution.requires or []:
      requirement = requirements.Requirement(text)
      if requirement.marker is None or any(
          requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
      ):
        todo.append((requirement.name, tuple(sorted(requirement.extras))))
  for key in pinned:
    missing.pop(key, None)
  return sorted(pinned.values(), key=str.lower), sorted(missing.values(), key=str.lower)


def requirements_text(roots: dict[str, Sequence[str]] = WORKER_PACKAGES) -> str:
  """beam_worker_requirements.txt (see the module docstring)."""
  pinned, missing = pinned_closure(roots)
  beam_extras = roots.get("apache-beam")
  if beam_extras:  # Pinned with its extras below.
    pinned = [p for p in pinned if not p.lower().startswith("apache-beam==")]
  python = f"{sys.version_info.major}.{sys.version_info.minor}"
  beam = importlib.metadata.version("apache-beam")
  lines = [
      "# The Beam workers' packages at the launcher's exact versions (Python "
      f"{python}, apache-beam {beam}).",
      "# Written by `python -m tfds_builders.beam_worker`; rerun it after upgrading the launcher.",
      f"apache-beam[{','.join(beam_extras)}]=={beam}" if beam_extras else "",
      *pinned,
  ]
  if missing:
    lines.append("# Not installed on the launcher, so left to pip: " + ", ".join(missing))
  return "\n".join(line for line in lines if line) + "\n"


def dockerfile_text(wheel: str) -> str:
  """beam_worker.Dockerfile (see the module docstring)."""
  python = f"{sys.version_info.major}.{sys.version_info.minor}"
  beam = importlib.metadata.version("apache-beam")
  return "\n".join(
      [
          "# The Beam SDK image of the launcher's Python and Beam, plus hl_jax's builders and",
          "# the launcher's exact versions of what they import; without JAX or TensorFlow.",
          "# Written by `python -m tfds_builders.beam_worker`; its folder is the build context,",
          "# with the wheel in dist/: pip wheel --no-deps -w <this folder>/dist .",
          f"FROM apache/beam_python{python}_sdk:{beam}",
          f"COPY {REQUIREMENTS_NAME} /tmp/",
          f"COPY dist/{wheel} /tmp/",
          f"RUN pip install --no-cache-dir -r /tmp/{REQUIREMENTS_NAME} \\",
          f" && pip install --no-cache-dir --no-deps /tmp/{wheel}",
          "",
      ]
  )


def write(output_dir: str | pathlib.Path) -> list[pathlib.Path]:
  """Writes both files into `output_dir`; returns their paths."""
  output_dir = pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  version = importlib.metadata.version("hl_jax")
  paths = [output_dir / REQUIREMENTS_NAME, output_dir / DOCKERFILE_NAME]
  paths[0].write_text(requirements_text())
  paths[1].write_text(dockerfile_text(f"hl_jax-{version}-py3-none-any.whl"))
  return paths


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    paths = write(FLAGS.output_dir)
  except importlib.metadata.PackageNotFoundError as e:
    sys.exit(
        f"tfds_builders.beam_worker: error: {e.name} is not installed here; run this in the "
        "Beam launcher's environment (pip install -e '.[beam,gcs]')"
    )
  for path in paths:
    print(f"wrote {path}")


if __name__ == "__main__":
  flags.DEFINE_string("output_dir", ".", "Where to write both files (the repository root).")
  app.run(main)
