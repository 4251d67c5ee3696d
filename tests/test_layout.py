"""The layout the design asks for: the folder tree is the architecture.

hl_jax's subpackages are layers; a module imports from its own subpackage and
from the layers below it, never from a layer above or beside it:

  core <- data <- eval <- {video, signals, less_is_more, taohighlight} <- highlights
       <- programs (the modules at hl_jax's top: predict, scorecard, ...)

`core.families` finds a family's module by name at run time (importlib), so a
family can be chosen from a config without core importing it. The TFDS
builders import nothing from hl_jax, and there is no import cycle between
modules. Size is not a rule: a module long enough to hold two concepts gets a
warning, never a failure.
"""

import ast
import pathlib
import subprocess
import sys
import warnings

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = (
    ("core",),
    ("data",),
    ("eval",),
    ("video", "signals", "less_is_more", "taohighlight"),
    ("highlights",),
    ("programs",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
SOFT_MAX_LINES = 900


def _python_files(*folders):
  return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def _imported_modules(path):
  tree = ast.parse(path.read_text(), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _module_name(path):
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _hl_jax_modules():
  return {_module_name(p): p for p in _python_files("hl_jax")}


def _resolve(name, modules):
  """The hl_jax module an imported name refers to (a module, or a name in one)."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name


def _layer(module):
  parts = module.split(".")
  if len(parts) == 1:
    return None  # The hl_jax package itself.
  return parts[1] if len(parts) > 2 or parts[1] in RANK else "programs"


def _import_graph():
  modules = _hl_jax_modules()
  graph = {}
  for name, path in modules.items():
    targets = {_resolve(m, modules) for m in _imported_modules(path) if m.startswith("hl_jax")}
    graph[name] = {t for t in targets if t and t != name and t != "hl_jax"}
  return graph


@pytest.mark.parametrize("path", _python_files("tfds_builders"), ids=str)
def test_builders_import_nothing_from_hl_jax(path):
  offending = [
      m
      for m in _imported_modules(path)
      if m.split(".")[0] in ("hl_jax", "benchmarks", "experiments")
  ]
  assert not offending, f"{path.relative_to(REPO)} imports {offending}"


def test_every_subpackage_is_a_layer():
  found = {p.parent.name for p in (REPO / "hl_jax").glob("*/__init__.py")}
  assert found == set(RANK) - {"programs"}


def test_imports_run_one_way():
  wrong = []
  for source, targets in _import_graph().items():
    for target in targets:
      a, b = _layer(source), _layer(target)
      if a and b and a != b and RANK[b] >= RANK[a]:
        wrong.append(f"{source} ({a}) imports {target} ({b})")
  assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules():
  graph = _import_graph()
  cycles, state = [], {}

  def visit(node, path):
    state[node] = "open"
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
      elif nxt not in state:
        visit(nxt, path + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, "\n".join(cycles)


def test_long_modules_are_only_a_warning():
  sizes = {
      str(p.relative_to(REPO)): len(p.read_text().splitlines())
      for p in _python_files("hl_jax", "benchmarks", "experiments", "tfds_builders", "configs")
  }
  long = {p: n for p, n in sizes.items() if n > SOFT_MAX_LINES}
  if long:
    warnings.warn(f"modules over {SOFT_MAX_LINES} lines (more than one concept?): {long}")


@pytest.mark.parametrize("folder", ["benchmarks", "experiments"])
def test_benchmarks_and_experiments_are_packages_without_path_edits(folder):
  assert (REPO / folder / "__init__.py").is_file()
  for path in _python_files(folder):
    assert "sys.path" not in path.read_text(), path


def test_speed_benchmarks_import_no_experiment():
  offending = {
      str(p.relative_to(REPO)): m
      for p in _python_files("benchmarks")
      for m in _imported_modules(p)
      if m.split(".")[0] == "experiments"
  }
  assert not offending


def test_hl_jax_imports_no_benchmark_experiment_or_config():
  offending = {
      str(p.relative_to(REPO)): m
      for p in _python_files("hl_jax")
      for m in _imported_modules(p)
      if m.split(".")[0] in ("benchmarks", "experiments", "configs")
  }
  assert not offending


def test_the_parser_sees_imports(tmp_path):
  path = tmp_path / "m.py"
  path.write_text(
      "import os\nfrom hl_jax.eval import metrics\ndef f():\n"
      "  import hl_jax.less_is_more.trainer\n"
  )
  assert list(_imported_modules(path)) == [
      "os",
      "hl_jax.eval",
      "hl_jax.eval.metrics",
      "hl_jax.less_is_more.trainer",
  ]


def test_the_checks_catch_a_wrong_direction_and_a_cycle():
  assert _layer("hl_jax.core.parallel") == "core"
  assert _layer("hl_jax.predict") == "programs"
  assert RANK["core"] < RANK["less_is_more"] < RANK["highlights"] < RANK["programs"]
  modules = {"hl_jax.core.a": None, "hl_jax.eval.b": None}
  assert _resolve("hl_jax.eval.b.some_function", modules) == "hl_jax.eval.b"


def test_the_tree_is_formatted():
  """pyink (pyproject.toml's [tool.pyink]) and ruff's import order leave nothing to change."""
  for tool in (["pyink", "--check", "-q", "."], ["ruff", "check", "-q", "."]):
    try:
      done = subprocess.run(
          [sys.executable, "-m", *tool],
          cwd=REPO,
          capture_output=True,
          text=True,
          timeout=300,
          check=False,
      )
    except FileNotFoundError:
      pytest.skip(f"{tool[0]} is not installed")
    if "No module named" in done.stderr:
      pytest.skip(f"{tool[0]} is not installed (pip install -e '.[test]')")
    assert done.returncode == 0, f"{' '.join(tool)}:\n{done.stdout}{done.stderr}"
