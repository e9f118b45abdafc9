"""Expanding the `predict` command's INPUT arguments into image files and output stems.

Accepted: files, directories (searched recursively), glob patterns and `.txt`
lists of paths (relative to the list's folder). Each image gets a relative
output stem that mirrors its sub-folder under the directory (or glob base) it
was found through, so `shots/a/1.jpg` -> `OUT/a/1.*`, and two `1.jpg` in
different folders never overwrite each other. Two inputs that would still share
an output name (`IMG_0001.JPG` and `IMG_0001.HEIC` side by side) keep their
extension in it (`IMG_0001.JPG.npz`, `IMG_0001.HEIC.npz`), flagged `renamed`
so the front end can say so.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from .images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class InputItem:
    path: Path
    stem: PurePath
    """Output location relative to OUT, without suffix (e.g. a/1)."""
    renamed: bool = False
    """The stem keeps the input's extension because another input has the same one."""


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _from_directory(root: Path) -> list[InputItem]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and _is_image(p))
    return [InputItem(p, p.relative_to(root).with_suffix("")) for p in files]


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = [p for p in _until_magic(parts)]
    return Path(*base) if base else Path(".")


def _until_magic(parts: tuple[str, ...]) -> Iterator[str]:
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
    """Drop repeats of one file; give different files that share an output stem distinct names."""
    unique: list[InputItem] = []
    seen_paths: set[Path] = set()
    for item in items:
        key = item.path.resolve()
        if key not in seen_paths:
            seen_paths.add(key)
            unique.append(item)
    counts: dict[PurePath, int] = {}
    for item in unique:
        counts[item.stem] = counts.get(item.stem, 0) + 1
    taken = {item.stem for item in unique if counts[item.stem] == 1}
    out: list[InputItem] = []
    for item in unique:
        if counts[item.stem] == 1:
            out.append(item)
            continue
        stem = item.stem.with_name(item.stem.name + item.path.suffix)
        n = 2
        while stem in taken:
            stem = item.stem.with_name(f"{item.stem.name}{item.path.suffix}-{n}")
            n += 1
        taken.add(stem)
        out.append(replace(item, stem=stem, renamed=True))
    return out
