"""tfds_builders.beam_worker: the worker image pinned to the launcher's exact versions."""

import importlib.metadata
import subprocess
import sys

from packaging import requirements

from tfds_builders import beam_worker


def test_one_command_writes_both_files_at_the_installed_versions(tmp_path):
  done = subprocess.run(
      [sys.executable, "-m", "tfds_builders.beam_worker", f"--output_dir={tmp_path}"],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert done.returncode == 0, done.stderr
  lines = (tmp_path / beam_worker.REQUIREMENTS_NAME).read_text().splitlines()
  pins = {}
  for line in lines:
    if line and not line.startswith("#"):
      requirement = requirements.Requirement(line)
      assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "=="
      pins[requirement.name.lower().replace("_", "-")] = str(requirement.specifier)[2:]
  for name in ("apache-beam", "tensorflow-datasets", "array-record", "numpy", "etils", "gcsfs"):
    assert pins[name] == importlib.metadata.version(name), name  # Exactly the launcher's.
  assert "apache-beam[gcp]==" + pins["apache-beam"] in lines
  # Dependencies of those are pinned too (protobuf: TFDS's; fsspec: gcsfs's).
  for name in ("protobuf", "fsspec"):
    assert pins[name] == importlib.metadata.version(name)
  # The workers need neither JAX nor TensorFlow.
  assert not {"jax", "jaxlib", "flax", "orbax-checkpoint", "tensorflow", "tensorflow-cpu"} & set(
      pins
  )

  python = f"{sys.version_info.major}.{sys.version_info.minor}"
  dockerfile = (tmp_path / beam_worker.DOCKERFILE_NAME).read_text().splitlines()
  assert f"FROM apache/beam_python{python}_sdk:{pins['apache-beam']}" in dockerfile
  assert f"RUN pip install --no-cache-dir -r /tmp/{beam_worker.REQUIREMENTS_NAME} \\" in dockerfile
  wheel = f"hl_jax-{importlib.metadata.version('hl_jax')}-py3-none-any.whl"
  assert f" && pip install --no-cache-dir --no-deps /tmp/{wheel}" in dockerfile


def test_a_dependency_missing_here_is_left_to_pip():
  pinned, missing = beam_worker.pinned_closure({"gcsfs": (), "surely-not-installed-pkg": ()})
  assert f"gcsfs=={importlib.metadata.version('gcsfs')}" in pinned
  assert missing == ["surely-not-installed-pkg"]
