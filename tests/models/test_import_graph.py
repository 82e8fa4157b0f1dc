"""The package's import structure: every module imports, no import cycles, floors respected.

The graph is static (``ast``): every ``import`` / ``from … import`` anywhere in a module,
including the ones inside functions (a lazy import is still a dependency), between twinlib
modules. One pattern is not counted as an edge: a submodule reaching back into its *own*
package's namespace (``from . import make_detector`` inside a function of
``detect/detectors/ensemble.py``) — the package is initialised before any such function runs.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import twinlib

ROOT = Path(twinlib.__file__).resolve().parent


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "jupyter_config" in path.parts:  # Jupyter's config files (run by traitlets), not modules
            continue
        parts = ["twinlib", *path.relative_to(ROOT).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
    return mods


def _absolute(module: str | None, level: int, current: str, is_pkg: bool) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_graph(mods: dict[str, tuple[Path, bool]] | None = None) -> dict[str, set[str]]:
    """``{module: {twinlib modules it imports}}``, from the source, function-level imports included."""
    mods = _modules() if mods is None else mods
    graph = {}
    for name, (path, is_pkg) in mods.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node.module, node.level, name, is_pkg)
                for alias in node.names:
                    if f"{target}.{alias.name}" in mods:
                        edges.add(f"{target}.{alias.name}")
                    elif target in mods:
                        edges.add(target)
        # a module's own packages (``twinlib``, ``twinlib.detect`` for ``twinlib.detect.rules``)
        edges -= {name} | {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_cycle_and_ignores_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "twinlib"
    (pkg / "w").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "w" / "__init__.py").write_text("")
    (pkg / "w" / "a.py").write_text("def f():\n    from twinlib.w.b import g\n")
    (pkg / "w" / "b.py").write_text("from . import a\n")
    mods = {"twinlib": (pkg / "__init__.py", True), "twinlib.w": (pkg / "w" / "__init__.py", True),
            "twinlib.w.a": (pkg / "w" / "a.py", False), "twinlib.w.b": (pkg / "w" / "b.py", False)}
    graph = import_graph(mods)
    assert graph["twinlib.w.a"] == {"twinlib.w.b"} and graph["twinlib.w.b"] == {"twinlib.w.a"}
    assert cycles(graph) == [["twinlib.w.a", "twinlib.w.b"]]


def test_no_import_cycle_among_twinlib_modules():
    assert cycles(import_graph()) == []


def test_the_models_wing_stands_below_ingest_and_workflows():
    graph = import_graph()
    bad = sorted((m, t) for m, targets in graph.items() if m.startswith("twinlib.models")
                 for t in targets if t.startswith(("twinlib.ingest", "twinlib.workflows",
                                                   "twinlib.commands", "twinlib.cli")))
    assert bad == []


def test_commands_do_not_import_the_cli_module_for_shared_helpers():
    """``commands/*`` take ``CommandError`` and the shared options from ``commands/_common``."""
    graph = import_graph()
    bad = sorted(m for m, targets in graph.items()
                 if m.startswith("twinlib.commands.") and "twinlib.cli" in targets
                 and m not in ("twinlib.commands.menu", "twinlib.commands.up"))
    assert bad == []
    for name in ("twinlib.commands.menu", "twinlib.commands.up"):
        # these run the command line itself (the menu calls ``main``; ``up`` reads the parser)
        tree = ast.parse(_modules()[name][0].read_text())
        names = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and (node.module or "").endswith("cli") for a in node.names}
        assert names <= {"main", "build_parser"}, (name, names)


@pytest.mark.parametrize("name", sorted(m for m in _modules() if m != "twinlib.__main__"))
def test_every_module_imports(name):
    importlib.import_module(name)
