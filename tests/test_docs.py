"""The quick commands of the docs run as written.

A fenced ```sh block is run when the line right before its fence is the HTML
comment `<!-- doc-test -->` (invisible when rendered), or `<!-- doc-test 900 -->`
to give it 900 s instead of the default 300 s. Each marked block of a document
runs with `bash` (`set -euo pipefail`), from the repository root, in the order
of the document (a later block may use a workdir an earlier one made), with a
fresh HOME and TFDS data_dir and without the 4 forced CPU devices of conftest.
The docs' scratch root /tmp/hl_jax/ (workdirs, outputs) is moved into the
test's own temporary folder, so that concurrent test runs, and workdirs left in
/tmp by an older version of the code, do not meet.
A block that names ../shared/data is skipped where that folder is absent.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import pytest

import conftest

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = ("README.md", "WORKSPACE.md", "RESULTS.md", "BENCHMARKS.md")
DEFAULT_LIMIT_S = 300
_MARKER = re.compile(r"^<!-- doc-test(?: (\d+))? -->$")
_SHARED_DATA = "../shared/data"
_SCRATCH = "/tmp/hl_jax/"


@dataclasses.dataclass(frozen=True)
class Block:
  line: int  # 1-based line of the opening fence.
  code: str
  limit_s: int


def marked_blocks(markdown: str) -> list[Block]:
  """The ```sh blocks right after a `<!-- doc-test -->` line, in order."""
  lines = markdown.splitlines()
  blocks = []
  for i, line in enumerate(lines):
    marker = _MARKER.match(lines[i - 1].strip()) if i else None
    if line.strip() != "```sh" or not marker:
      continue
    end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
    if end is None:
      raise ValueError(f"line {i + 1}: marked ```sh block is never closed")
    blocks.append(
        Block(i + 1, "\n".join(lines[i + 1 : end]) + "\n", int(marker.group(1) or DEFAULT_LIMIT_S))
    )
  return blocks


def localised(code: str, tmp_path: pathlib.Path) -> str:
  """`code` with the docs' scratch root /tmp/hl_jax/ moved under `tmp_path`."""
  return code.replace(_SCRATCH, f"{tmp_path}/hl_jax/")


def _environment(tmp_path: pathlib.Path) -> dict[str, str]:
  env = dict(os.environ)
  for name, forced in (
      ("XLA_FLAGS", "--xla_force_host_platform_device_count=4"),
      ("JAX_PLATFORMS", "cpu"),
  ):
    if env.get(name) == forced:  # Set by conftest for the tests, not by the user.
      del env[name]
  env["HOME"] = str(tmp_path / "home")
  env["TFDS_DATA_DIR"] = str(tmp_path / "tensorflow_datasets")
  env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
  os.makedirs(env["HOME"], exist_ok=True)
  return env


def _run(block: Block, env: dict[str, str]) -> subprocess.CompletedProcess:
  script = "set -euo pipefail\n" + block.code
  return subprocess.run(
      ["timeout", "-k", "10", str(block.limit_s), "bash", "-c", script],
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      check=False,
  )


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_marked_blocks_run(doc, tmp_path):
  path = REPO / doc
  if not path.exists():
    pytest.skip(f"{doc} does not exist")
  blocks = marked_blocks(path.read_text(encoding="utf-8"))
  if not blocks:
    pytest.skip(f"{doc} has no block marked <!-- doc-test -->")
  env = _environment(tmp_path)
  shared = conftest.shared_data_dir()
  skipped = []
  for block in blocks:
    if _SHARED_DATA in block.code and not shared.is_dir():
      skipped.append(block.line)
      continue
    done = _run(dataclasses.replace(block, code=localised(block.code, tmp_path)), env)
    if done.returncode:
      why = (
          f"timed out after {block.limit_s} s"
          if done.returncode in (124, 137)
          else f"exit status {done.returncode}"
      )
      pytest.fail(
          f"{doc}:{block.line}, {why}:\n"
          f"{block.code}\n--- last output ---\n{done.stdout[-3000:]}",
          pytrace=False,
      )
  if skipped:
    pytest.skip(
        f"{doc}: blocks at lines {skipped} need {_SHARED_DATA}, absent at {shared}; "
        f"{len(blocks) - len(skipped)} other blocks ran"
    )


_SAMPLE = """\
# Title

<!-- doc-test -->
```sh
echo one
echo two
```

```sh
echo unmarked
```

<!-- doc-test 30 -->
```python
print("not shell")
```

<!-- doc-test 30 -->
```sh
echo three
```
"""


def test_parser_finds_marked_sh_blocks_only():
  assert marked_blocks(_SAMPLE) == [
      Block(4, "echo one\necho two\n", DEFAULT_LIMIT_S),
      Block(19, "echo three\n", 30),
  ]


def test_scratch_root_moves_into_the_test_folder(tmp_path):
  code = "launch --workdir=/tmp/hl_jax/tiny --out=/tmp/hl_jax_bench/x\n"
  assert localised(code, tmp_path) == (
      f"launch --workdir={tmp_path}/hl_jax/tiny --out=/tmp/hl_jax_bench/x\n"
  )


def test_parser_rejects_an_unclosed_block():
  with pytest.raises(ValueError, match="line 2"):
    marked_blocks("<!-- doc-test -->\n```sh\necho never closed\n")


def test_a_failing_command_stops_its_block(tmp_path):
  done = _run(Block(1, "echo before\nfalse\necho after\n", 10), _environment(tmp_path))
  assert done.returncode == 1 and "before" in done.stdout and "after" not in done.stdout
