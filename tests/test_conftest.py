"""conftest.py: the tests run on forced host CPU devices, whatever XLA_FLAGS held."""

import os
import pathlib
import subprocess
import sys

import jax
import pytest

import conftest

_REPO = pathlib.Path(__file__).resolve().parents[1]
_FORCE = conftest.DEVICE_COUNT_FLAG


def test_the_tests_see_the_forced_devices():
  # 4, or the count of an XLA_FLAGS that already forced one.
  expected = conftest.forced_device_count(os.environ["XLA_FLAGS"])
  assert expected is not None, os.environ["XLA_FLAGS"]
  assert [d.platform for d in jax.devices()] == ["cpu"] * expected


@pytest.mark.parametrize(
    "given, expected",
    [
        ("", f"{_FORCE}=4"),
        ("--xla_dump_hlo_as_text", f"--xla_dump_hlo_as_text {_FORCE}=4"),
        # A count of the user's own is kept, wherever it stands.
        (f"{_FORCE}=8 --xla_dump_hlo_as_text", f"{_FORCE}=8 --xla_dump_hlo_as_text"),
        (f"--xla_dump_hlo_as_text {_FORCE}=2", f"--xla_dump_hlo_as_text {_FORCE}=2"),
        # Not the flag itself, only a longer name that starts like it.
        (f"{_FORCE}_x=8", f"{_FORCE}_x=8 {_FORCE}=4"),
    ],
)
def test_with_device_count(given, expected):
  assert conftest.with_device_count(given) == expected


def test_an_xla_flags_of_the_user_gets_the_devices_too():
  # Before, setdefault kept "--xla_dump_hlo_as_text" alone: 1 device.
  env = dict(os.environ, XLA_FLAGS="--xla_dump_hlo_as_text", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [
          "timeout",
          "-k",
          "5",
          "120",
          sys.executable,
          "-c",
          "import os, conftest, jax; print(jax.device_count(), os.environ['XLA_FLAGS'])",
      ],
      cwd=_REPO,
      env=env,
      capture_output=True,
      text=True,
      check=True,
  ).stdout
  assert out.split("\n")[-2] == f"4 --xla_dump_hlo_as_text {_FORCE}=4"
