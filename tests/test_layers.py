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
    frozenset({"errors", "result", "maps", "family", "assets"}),
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
