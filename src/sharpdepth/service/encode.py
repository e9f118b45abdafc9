"""Response bodies made by the CLI's own encoders, so the service and `predict` give the same bytes.

`predict` writes the bytes of these encoders to files; the service returns them as they
are (nothing goes through a temporary folder): the depth formats via
`io.depth_files.encode_depth`, the colour view via `io.outputs.color_view` and
`io.photos.encode_image`, the sidecar fields via `io.depth_files.encode_sidecar`, effect
pictures via `io.photos.encode_image`, 3D files via `geometry.pointcloud`, Gaussian scenes via
`Gaussians.ply_bytes` (what `Gaussians.save_ply` writes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry.gaussians import Gaussians
from ..io import outputs
from ..io.depth_files import encode_depth, encode_sidecar, output_path
from ..io.outputs import OutputOptions
from ..io.photos import encode_image
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


def depth_file(result: DepthResult, fmt: str, stem: str, options: OutputOptions) -> Encoded:
    """Exactly the file `sharpdepth predict -f FMT` writes for this result."""
    encoded = encode_depth(result, fmt, scale_m=options.png16_scale_m)
    name = output_path(Path("."), stem, fmt, result.kind).name
    return Encoded(encoded.data, MEDIA_TYPES[fmt], name, tuple(n.message for n in encoded.notices))


def sidecar_fields(result: DepthResult) -> dict[str, Any]:
    """The JSON sidecar's fields (model, kind, unit, size, focal and its source, statistics)."""
    fields: dict[str, Any] = json.loads(encode_sidecar(result))
    return fields


def color_view(result: DepthResult, stem: str, colormap: str) -> Encoded:
    """The inverse-depth colour view `predict` writes as `<stem>_<colormap>.png`."""
    view = encode_image(outputs.color_view(result, colormap), ".png")
    return Encoded(view, MEDIA_TYPES["png"], f"{stem}_{colormap}.png")


def picture(rgb: np.ndarray, stem: str, fmt: str) -> Encoded:
    """An effect's output as the CLI saves it (JPEG quality 95 or PNG)."""
    return Encoded(encode_image(rgb, f".{fmt}", name=f"{stem}.{fmt}"), MEDIA_TYPES[fmt], f"{stem}.{fmt}")


def splat_file(gaussians: Gaussians, stem: str) -> Encoded:
    """Exactly the `<stem>.ply` `sharpdepth splat` writes (`Gaussians.ply_bytes`, the official 3DGS layout)."""
    return Encoded(gaussians.ply_bytes(), MEDIA_TYPES["ply"], f"{stem}.ply")
