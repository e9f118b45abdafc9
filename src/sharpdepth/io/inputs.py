"""Expanding the `predict` command's INPUT arguments into image files and output stems.

Accepted: files, directories (searched recursively), glob patterns and `.txt`
lists of paths (relative to the list's folder). Each image gets a relative
output stem that mirrors its sub-folder under the directory (or glob base) it
was found through, so `shots/a/1.jpg` -> `OUT/a/1.*`, and two `1.jpg` in
different folders never overwrite each other.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path, PurePath

from ..errors import InputImageError
from .images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class InputItem:
    path: Path
    stem: PurePath
    """Output location relative to OUT, without suffix (e.g. a/1)."""


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _from_directory(root: Path) -> list[InputItem]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and _is_image(p))
    return [InputItem(p, p.relative_to(root).with_suffix("")) for p in files]


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = [p for p in _until_magic(parts)]
    return Path(*base) if base else Path(".")


def _until_magic(parts: tuple[str, ...]):
    for part in parts:
        if glob.has_magic(part):
            return
        yield part


def _from_list(list_file: Path) -> list[InputItem]:
    items = []
    for line in list_file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line)
        path = path if path.is_absolute() else list_file.parent / path
        items.append(InputItem(path, Path(path.stem)))  # missing files are reported per item later
    return items


def expand_inputs(arguments: list[str]) -> tuple[list[InputItem], list[tuple[str, str]]]:
    """(items to process, [(argument, error)] for arguments that matched nothing)."""
    items: list[InputItem] = []
    problems: list[tuple[str, str]] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            found = _from_directory(path)
            if not found:
                problems.append((arg, "directory contains no images"))
            items.extend(found)
        elif path.suffix.lower() == ".txt" and path.is_file():
            items.extend(_from_list(path))
        elif path.is_file():
            items.append(InputItem(path, Path(path.stem)))
        elif glob.has_magic(arg):
            base = _glob_base(arg)
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            matches = [m for m in matches if m.is_file() and _is_image(m)]
            if not matches:
                problems.append((arg, "pattern matched no images"))
            items.extend(InputItem(m, m.relative_to(base).with_suffix("")) for m in matches)
        else:
            problems.append((arg, "no such file or directory"))
    return _dedupe(items), problems


def _dedupe(items: list[InputItem]) -> list[InputItem]:
    seen: dict[PurePath, Path] = {}
    unique = []
    for item in items:
        if item.stem in seen:
            if seen[item.stem].resolve() == item.path.resolve():
                continue
            raise InputImageError(
                f"two inputs map to the same output name {item.stem}: {seen[item.stem]} and {item.path}; "
                "pass their common parent directory instead"
            )
        seen[item.stem] = item.path
        unique.append(item)
    return unique
