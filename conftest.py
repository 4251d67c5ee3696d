"""Pytest set-up shared by tests/ and tfds_builders/.

Forces 4 host CPU devices (before jax is imported) so multi-device code runs
everywhere, sends gs:// paths to gcsfs as launch.py does, and marks absl flags
as parsed so Grain worker processes start. Shared fixtures: `shared_data` (the
real data, or a skip), `tiny_data_dir` (synthetic_tiny built) and `tiny_workdir`
(a tiny model trained on it).
An XLA_FLAGS of your own is kept: the device count is appended to it, unless
it already sets one (then the tests run on that many devices).
"""

import os
import pathlib
import re

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
DEFAULT_DEVICE_COUNT = 4


def with_device_count(xla_flags: str, count: int = DEFAULT_DEVICE_COUNT) -> str:
  """`xla_flags` plus a forced host device count, unless it already has one."""
  if forced_device_count(xla_flags) is not None:
    return xla_flags
  return f"{xla_flags} {DEVICE_COUNT_FLAG}={count}".strip()


def forced_device_count(xla_flags: str) -> int | None:
  """The host device count `xla_flags` forces (the last one wins), or None."""
  counts = re.findall(rf"(?:^|\s){DEVICE_COUNT_FLAG}=(\d+)(?=\s|$)", xla_flags)
  return int(counts[-1]) if counts else None


os.environ["XLA_FLAGS"] = with_device_count(os.environ.get("XLA_FLAGS", ""))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# gs:// paths through gcsfs, as launch.py sets it, even with TensorFlow installed
# (etils.epath would send them to tf.io.gfile, which no emulator can serve).
os.environ.setdefault("EPATH_USE_TF", "false")

from absl import flags  # noqa: E402
import pytest  # noqa: E402

flags.FLAGS.mark_as_parsed()

_REPO = pathlib.Path(__file__).resolve().parent
SHARED_DATA_ENV = "HL_JAX_SHARED_DATA"


def shared_data_dir() -> pathlib.Path:
  """Where the real data lives: $HL_JAX_SHARED_DATA or ../shared/data."""
  return pathlib.Path(os.environ.get(SHARED_DATA_ENV, _REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
  """The real-data folder, or a skip that says where it was looked for."""
  path = shared_data_dir()
  if not path.is_dir():
    pytest.skip(f"real data not found at {path} (set ${SHARED_DATA_ENV} to its location)")
  return path


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory) -> str:
  """A tiny model (D = 16) trained on synthetic_tiny for 10 steps (once per test module)."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from hl_jax.core import run_loop  # pylint: disable=g-import-not-at-top

  config = tiny.get_config()
  config.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.train.num_steps = 10
  path = str(tmp_path_factory.mktemp("workdir"))
  run_loop.train_and_evaluate(config, path)
  return path


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory) -> str:
  """A TFDS data_dir with synthetic_tiny built (once per test module), so that runs only read it."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from hl_jax.data import corpora  # pylint: disable=g-import-not-at-top

  path = str(tmp_path_factory.mktemp("tfds"))
  config = tiny.get_config()
  config.data_dir = path
  corpora.load_corpus(config)
  return path
