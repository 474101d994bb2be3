"""The packages import in one direction only (ARCHITECTURE.md), and no two modules import each other.

Read from the source with `ast`, so a lazy import inside a function counts as much as one at the top;
imports under `if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src"
CORE = {"vgssl", "errors", "atomic", "yaml_config", "locks"}  # the package root (version), leaf modules
# What each package may import besides itself, following the data's path: core → audio → data →
# (corpus | model) → train → evaluate → study → cli.
ALLOWED = {
    "errors": set(),
    "atomic": {"errors"},
    "yaml_config": {"errors"},
    "locks": {"errors"},
    "audio": CORE,
    "data": CORE | {"audio"},
    "corpus": CORE | {"audio", "data"},
    "model": CORE | {"audio", "data"},
    "prepare": CORE | {"audio", "data"},
    "train": CORE | {"audio", "data", "model"},
    "evaluate": CORE | {"audio", "data", "model", "train"},
    "study": CORE | {"audio", "data", "corpus", "prepare", "model", "train", "evaluate"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            found |= {name for child in node.orelse for name in _imports(ast.Module([child], []))}
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        found |= _imports(node)
    return {name for name in found if name == "vgssl" or name.startswith("vgssl.")}


def import_graph() -> dict[str, set[str]]:
    """vgssl module -> the vgssl modules it imports (`from vgssl.x import y` counts as importing vgssl.x)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((SOURCE / "vgssl").rglob("*.py")):
        graph[_module_name(path)] = _imports(ast.parse(path.read_text(encoding="utf-8")))
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_sees_lazy_imports_and_skips_type_checking_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\nimport vgssl.a\nif TYPE_CHECKING:\n    import vgssl.b\n"
        "def f():\n    from vgssl.c import d\n"
    )
    assert _imports(ast.parse(source)) == {"vgssl.a", "vgssl.c"}


def test_packages_import_only_downstream_of_the_data_path() -> None:
    graph = import_graph()
    assert {_package(module) for module in graph} >= set(ALLOWED) - {"errors", "atomic"}
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imports in graph.items()
        for imported in imports
        if (package := _package(module)) in ALLOWED
        and _package(imported) != package
        and _package(imported) not in ALLOWED[package]
    )
    assert wrong == []


def test_no_import_cycle() -> None:
    graph = import_graph()
    # A module importing a name of its own package's __init__ is not a cycle of interest.
    edges = {module: {i for i in imports if i in graph and i != module} for module, imports in graph.items()}
    cycles = _strongly_connected(edges)
    assert [sorted(cycle) for cycle in cycles if len(cycle) > 1] == []


@pytest.mark.parametrize("cyclic", [True, False])
def test_the_cycle_finder_finds_a_planted_cycle(cyclic: bool) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"} if cyclic else set(), "d": {"a"}}
    big = [sorted(cycle) for cycle in _strongly_connected(edges) if len(cycle) > 1]
    assert big == ([["a", "b", "c"]] if cyclic else [])


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (the graph has hundreds of modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, set())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def test_modules_stay_readable_in_one_sitting() -> None:
    """No source file over 400 lines, data files aside (the grammars' words are YAML)."""
    long = {
        str(path.relative_to(SOURCE)): lines
        for path in (SOURCE / "vgssl").rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_every_module_imports() -> None:
    """A module whose imports name something that does not exist fails here, not in the first test that
    happens to load it lazily."""
    import importlib

    for module in sorted(import_graph()):
        if module != "vgssl.__main__":
            importlib.import_module(module)
