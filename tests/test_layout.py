"""The layout the design asks for: builders stand alone, modules stay small."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
MAX_LINES = 450


def _python_files(*folders):
  return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def _imported_modules(path):
  tree = ast.parse(path.read_text(), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module


@pytest.mark.parametrize("path", _python_files("tfds_builders"), ids=str)
def test_builders_import_nothing_from_hl_jax(path):
  offending = [m for m in _imported_modules(path) if m.split(".")[0] in ("hl_jax", "benchmarks")]
  assert not offending, f"{path.relative_to(REPO)} imports {offending}"


def test_no_module_over_the_size_limit():
  sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines())
           for p in _python_files("hl_jax", "benchmarks", "tfds_builders", "tests", "configs")}
  assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_benchmarks_is_a_package_without_path_edits():
  assert (REPO / "benchmarks" / "__init__.py").is_file()
  for path in _python_files("benchmarks"):
    assert "sys.path" not in path.read_text(), path


def test_the_parser_sees_imports(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("import os\nfrom hl_jax import metrics\ndef f():\n  import hl_jax.train\n")
  assert list(_imported_modules(path)) == ["os", "hl_jax", "hl_jax.train"]
