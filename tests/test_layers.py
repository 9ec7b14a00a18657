# -*- test-case-name: tests.test_layers -*-
"""The package layering: no import cycle between the packages of C{openclaw}."""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent / "openclaw"


def module_name(path: Path) -> str:
    parts = ["openclaw", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    return imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_of(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every C{openclaw.*} module C{source} imports, at any depth (functions and TYPE_CHECKING blocks too)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from openclaw import x` names a module
    return {m for m in found if m == "openclaw" or m.startswith("openclaw.")}


def unit(module: str) -> str:
    """The package a module belongs to: C{openclaw.gateway.hub} → C{openclaw.gateway}; root modules stand alone."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(unit(name), set())
        for target in imports(path):
            if target in modules and unit(target) != unit(name) and target != "openclaw":
                edges.add(unit(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


class LayerTests(SynchronousTestCase):
    def test_no_package_cycles(self):
        """No two packages of openclaw import each other, directly or around a loop."""
        graph = package_graph()
        self.assertIn("openclaw.gateway", graph)
        self.assertEqual(cycles(graph), [], {p: sorted(graph[p]) for c in cycles(graph) for p in c})

    def test_finds_a_cycle(self):
        """The check itself sees a loop of three and ignores a chain."""
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": set()}), [])

    def test_relative_and_lazy_imports_count(self):
        """Imports inside functions and relative imports are edges too."""
        source = "def f():\n    from openclaw.gateway import hub\nif 0:\n    from ..protocol import frames\n    from . import devices\n"
        found = imports_of(source, "openclaw.nodes.methods")
        self.assertTrue({"openclaw.gateway.hub", "openclaw.protocol.frames", "openclaw.nodes.devices"} <= found, found)

    def test_dispatch_is_below_handlers(self):
        """The method table lives in protocol/, which imports no handler package."""
        graph = package_graph()
        self.assertEqual(graph["openclaw.protocol"] & {"openclaw.gateway", "openclaw.agent", "openclaw.nodes", "openclaw.web"}, set())

    def test_architecture_names_every_module(self):
        """docs/architecture.md has a row for every module of openclaw."""
        text = (ROOT.parent / "docs" / "architecture.md").read_text()
        missing = [str(p.relative_to(ROOT.parent)) for p in sorted(ROOT.rglob("*.py")) if f"`{p.relative_to(ROOT.parent)}`" not in text and not marker_only(p)]
        self.assertEqual(missing, [])


def marker_only(path: Path) -> bool:
    """A package's C{__init__.py} that holds nothing but (at most) a docstring."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)
