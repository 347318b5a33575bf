"""The package's shape, read from its source: the import graph of ``gradcam_core`` (every import
statement, function-level ones included) has no cycle, and the layers depend the way the package
docstring says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gradcam_core"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file, for every module and subpackage of ``package``."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (AST, so imports inside
    functions count). ``from a import b`` is an edge to ``a.b`` when that is a module, else to
    ``a``; relative imports are resolved against the importing module's package."""
    modules = module_files(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own_package.split(".")[: len(own_package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                return stack[stack.index(successor) :] + [successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for successor in graph[todo.pop()]:
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen


def test_cycle_finder_finds_a_cycle_and_a_clean_graph_has_none():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_reads_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n")
    (package / "b.py").write_text("from .sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from ..a import f\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.sub.c"} and graph["pkg.sub.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]


def test_gradcam_core_has_no_import_cycle():
    graph = import_graph()
    assert {"gradcam_core.models", "gradcam_core.training", "gradcam_core.methods.cam"} <= set(graph)
    assert find_cycle(graph) is None


#: Everything the data layer reaches: the stand-ins and the results-file layer may reach no more.
DATA_LAYER = {"gradcam_core", "gradcam_core.data", "gradcam_core.cli", "gradcam_core.files"}


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("gradcam_core.data", DATA_LAYER - {"gradcam_core.data"}),
        ("gradcam_core.standins", DATA_LAYER),
        ("gradcam_core.results", DATA_LAYER),
        ("gradcam_core.files", set()),
        ("gradcam_core.maps", set()),
        ("gradcam_core.metrics", set()),
        ("gradcam_core.figures", set()),
    ],
)
def test_foundation_modules_depend_on_little(module, allowed):
    assert reachable(import_graph(), module) <= allowed


@pytest.mark.parametrize("module", ["gradcam_core.runner", "gradcam_core.study", "gradcam_core.models"])
def test_lower_layers_never_reach_presentation_or_training(module):
    reached = reachable(import_graph(), module)
    assert not reached & {"gradcam_core.tables", "gradcam_core.figures", "gradcam_core.notebook"}
    if module == "gradcam_core.models":
        # the registry depends on the stand-ins, never the reverse
        assert "gradcam_core.training" not in reached
