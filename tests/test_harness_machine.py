"""The benchmarks' harness: the machine description names the CPU a %-of-peak ratio
holds for; a benchmark's config names its pair weighting."""

import os

import pytest

from benchmarks import harness
from configs import tiny
from hl_jax.core import families

_CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse avx avx2 fma avx512f avx512_bf16
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse avx avx2 fma avx512f avx512_bf16
"""


def test_cpu_info_parses_model_and_flags(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(_CPUINFO)
  assert harness.cpu_info(str(path)) == {
      "cpu": "AMD EPYC",
      "isa": {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_tile": False},
  }


def test_cpu_info_without_model_or_flags(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # An ARM host.
  info = harness.cpu_info(str(path))
  assert info["cpu"] == "?" and not any(info["isa"].values())


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="no /proc/cpuinfo here")
def test_machine_description_names_cpu_cores_and_isa():
  info = harness.machine()
  assert info["cpu"] != "?" and info["nproc"] >= 1
  assert set(info["isa"]) == {"avx2", "avx512f", "avx512_bf16", "amx_tile"}
  line = harness.describe_machine(info)
  assert line.startswith(f"{info['cpu']}, {info['nproc']} cores, ")
  for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile"):
    assert f"{flag} yes" in line or f"{flag} no" in line


def test_weighting_config_sets_weighting_batch_and_model_keys():
  base = tiny.get_config()
  config = harness.weighting_config(base, "ranking_em", 8, dropout=0.0)
  assert (config.train.weighting, config.train.num_groups, config.model.dropout) == (
      "ranking_em",
      8,
      0.0,
  )
  assert (base.train.weighting, base.model.dropout) == ("softmax", tiny.get_config().model.dropout)
  families.validate(config)
  with pytest.raises(ValueError, match="unknown train.weighting 'joint'"):
    harness.weighting_config(base, "joint", 8)  # The old variant name.
