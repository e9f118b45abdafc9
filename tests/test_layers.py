"""The package's layering, checked from the source: imports only go downwards or sideways, never in a cycle.

Read from every `import` statement in `src/sharpdepth`, at module level and
inside functions alike (a lazy import is still a dependency). The order is the
one the README's layout paragraph states; a new subpackage must be placed in it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "sharpdepth"

# Lowest first. Sideways imports (same layer) are allowed; cycles never.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "result", "maps", "family", "assets", "version"}),
    frozenset({"io", "models", "weights", "registry", "align"}),
    frozenset({"geometry"}),
    frozenset({"engine"}),
    frozenset({"apps", "eval", "video", "export"}),
    frozenset({"service", "distributed", "train"}),
    frozenset({"cli"}),
)
FACADES = frozenset({"__init__", "__main__"})  # the public package root and `python -m sharpdepth`
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def _node(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def _targets(path: Path, node: ast.AST) -> list[str]:
    """Absolute module names an import statement refers to."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if not node.level:
        return [node.module] if node.module else []
    package = ["sharpdepth", *path.relative_to(PKG).parts[:-1]]
    base = package[: len(package) - (node.level - 1)]
    if node.module:
        return [".".join([*base, node.module])]
    return [".".join([*base, alias.name]) for alias in node.names]


def import_edges() -> dict[tuple[str, str], str]:
    """{(from node, to node): "file:line"} for every import between top-level nodes of the package."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(PKG.rglob("*.py")):
        src = _node(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(path, node):
                parts = target.split(".")
                if parts[0] != "sharpdepth" or len(parts) < 2 or parts[1] == src:
                    continue
                where = f"{path.relative_to(PKG)}:{getattr(node, 'lineno', 0)}"
                edges.setdefault((src, parts[1]), where)
    return edges


def _nodes() -> set[str]:
    return {_node(p) for p in PKG.iterdir() if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}


def test_every_node_has_a_layer():
    unplaced = sorted(_nodes() - FACADES - set(RANK))
    assert not unplaced, f"place these in LAYERS (and the README's layout paragraph): {unplaced}"


def test_imports_never_go_up():
    upward = [
        f"{src} -> {dst} ({where})"
        for (src, dst), where in import_edges().items()
        if src not in FACADES and dst not in FACADES and RANK.get(dst, -1) > RANK.get(src, 99)
    ]
    assert not upward, "imports into a higher layer:\n" + "\n".join(upward)


def test_no_cycles_between_nodes():
    graph: dict[str, set[str]] = {}
    for src, dst in import_edges():
        if src not in FACADES and dst not in FACADES:
            graph.setdefault(src, set()).add(dst)
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < len(graph) + 1:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, f"import cycles: {cycles[:5]}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("sharpdepth", *parts))


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but the bodies of `if TYPE_CHECKING:` (annotations only: not a dependency at run time)."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def file_edges() -> dict[str, set[str]]:
    """{module: modules it imports} between the files of the package, function-level imports included.

    `from pkg import name` points at the submodule `pkg.name` when there is one, else at `pkg`
    (its `__init__`); a package's own `__init__` is not an edge of its submodules unless named.
    """
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets = _targets(path, node)
            if isinstance(node, ast.ImportFrom):
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for base in targets[:1]
                    for alias in node.names
                ] if node.module else targets  # fmt: skip
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges[module].add(target)
    return edges


def file_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one file (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_no_cycles_between_files():
    """Inside every package too: e.g. engine's model, settings, video and backends import each other only one way."""
    cycles = file_cycles(file_edges())
    assert not cycles, "file-level import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_file_cycle_detector_sees_a_lazy_loop(tmp_path, monkeypatch):
    fake = tmp_path / "sharpdepth"
    (fake / "engine").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "engine" / "__init__.py").write_text("")
    (fake / "engine" / "a.py").write_text("from .b import thing\n")
    (fake / "engine" / "b.py").write_text("def thing():\n    from . import a\n")
    (fake / "engine" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert file_cycles(file_edges()) == [["sharpdepth.engine.a", "sharpdepth.engine.b"]]


def test_lowest_layer_imports_nothing_above_it():
    for (src, dst), where in import_edges().items():
        if src in ("errors", "result", "maps"):
            assert dst in ("errors", "result"), f"{src} imports {dst} ({where})"
    assert ("result", "maps") not in import_edges()


def test_detector_sees_function_level_imports(tmp_path, monkeypatch):
    # The checker itself must not miss a lazy upward import (it would pass vacuously).
    fake = tmp_path / "sharpdepth"
    (fake / "io").mkdir(parents=True)
    (fake / "io" / "__init__.py").write_text("")
    (fake / "io" / "x.py").write_text("def f():\n    from ..engine import model\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert ("io", "engine") in import_edges()


@pytest.mark.timeout(60)
def test_command_line_starts_without_torch():
    # `sharpdepth --help` and `info` must answer at once: no command module may import torch at import time.
    code = "import sys, sharpdepth.cli.main; print(sorted(m for m in ('torch', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "torch" not in out.stdout, out.stdout


@pytest.mark.timeout(60)
def test_info_runs_without_torch(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 6)).save(tmp_path / "p.jpg")
    code = (
        "import sys; from sharpdepth.cli.main import main; "
        f"code = main(['info', {str(tmp_path / 'p.jpg')!r}]); print('torch' in sys.modules, code)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False 0", out.stdout + out.stderr
