"""Pytest set-up shared by tests/ and tfds_builders/.

Forces 4 host CPU devices (before jax is imported) so multi-device code runs
everywhere, and marks absl flags as parsed so Grain worker processes start.
"""

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
