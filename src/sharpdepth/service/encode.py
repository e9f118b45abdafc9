"""Response bodies made by the CLI's own writers, so the service and `predict` give the same bytes.

Each writer is called with a private temporary folder (removed before
returning) and the file it wrote is returned as bytes: the depth formats via
`io.depth_files.write_result`, the colour view via `io.outputs.write_outputs`,
the sidecar fields via `io.depth_files.write_sidecar`, effect pictures via
`io.photos.save_image`, 3D files via `geometry.pointcloud`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.depth_files import Notice, write_result, write_sidecar
from ..io.outputs import OutputOptions, write_outputs
from ..io.photos import save_image
from ..result import DepthResult

MEDIA_TYPES = {
    "npz": "application/octet-stream",
    "npy": "application/octet-stream",
    "pfm": "application/octet-stream",
    "exr": "image/x-exr",
    "png16": "image/png",
    "png": "image/png",
    "jpg": "image/jpeg",
    "ply": "application/octet-stream",
    "glb": "model/gltf-binary",
}


@dataclass(frozen=True)
class Encoded:
    """A response body with its media type and the file name a download should get."""

    body: bytes
    media_type: str
    filename: str
    notices: tuple[str, ...] = ()
    """What the CLI would print about this file (e.g. depth beyond a 16-bit PNG's range)."""


@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sharpdepth-serve-") as tmp:
        yield Path(tmp)


def depth_file(result: DepthResult, fmt: str, stem: str, options: OutputOptions) -> Encoded:
    """Exactly the file `sharpdepth predict -f FMT` writes for this result."""
    notices: list[Notice] = []
    with _scratch() as tmp:
        path = write_result(result, tmp, stem, fmt, scale_m=options.png16_scale_m, on_notice=notices.append)
        return Encoded(path.read_bytes(), MEDIA_TYPES[fmt], path.name, tuple(n.message for n in notices))


def sidecar_fields(result: DepthResult) -> dict[str, Any]:
    """The JSON sidecar's fields (model, kind, unit, size, focal and its source, statistics)."""
    with _scratch() as tmp:
        path = tmp / "result.json"
        write_sidecar(path, result)
        fields: dict[str, Any] = json.loads(path.read_text())
    return fields


def color_view(result: DepthResult, stem: str, colormap: str) -> Encoded:
    """The inverse-depth colour view `predict` writes as `<stem>_<colormap>.png`."""
    options = OutputOptions(formats=(), colormap=colormap, color_view=True)
    with _scratch() as tmp:
        written = write_outputs(result, tmp, Path(stem), options)
        path = next(p for p in written if p.name == f"{stem}_{colormap}.png")
        return Encoded(path.read_bytes(), MEDIA_TYPES["png"], path.name)


def picture(rgb: np.ndarray, stem: str, fmt: str) -> Encoded:
    """An effect's output as the CLI saves it (JPEG quality 95 or PNG)."""
    with _scratch() as tmp:
        path = save_image(tmp / f"{stem}.{fmt}", rgb)
        return Encoded(path.read_bytes(), MEDIA_TYPES[fmt], path.name)
