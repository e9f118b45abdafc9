"""Everything `predict` writes for one result: data formats, views and the JSON sidecar.

Order matters for resumability: the JSON sidecar is written last, so its
presence means every other file of that image is complete (`--skip-existing`
trusts it). Each file is itself written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
from PIL import Image

from ..errors import OptionError
from ..result import DepthResult
from .atomic import atomic_path
from .colormap import COLORMAPS, disparity_view, side_by_side
from .depth_files import DATA_FORMATS, DEFAULT_PNG16_SCALE_M, output_path, write_result, write_sidecar


@dataclass(frozen=True)
class OutputOptions:
    formats: tuple[str, ...] = ("npz",)
    colormap: str = "inferno"
    color_view: bool = True
    side_by_side: bool = False
    normals: bool = False
    png16_scale_m: float = DEFAULT_PNG16_SCALE_M
    extra_sidecar: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in DATA_FORMATS]
        if unknown:
            raise OptionError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(DATA_FORMATS)}")
        if self.colormap not in COLORMAPS:
            raise OptionError(f"unknown colormap {self.colormap!r}; choose from {', '.join(COLORMAPS)}")
        if not self.png16_scale_m > 0:
            raise OptionError("PNG scale must be a positive number of metres per unit")


def parse_formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    aliases = {"png": "png16", "png16": "png16", "openexr": "exr"}
    return tuple(aliases.get(n, n) for n in names)


def sidecar_path(out_dir: Path, stem: PurePath) -> Path:
    return out_dir / stem.parent / f"{stem.name}.json"


def _save_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def color_view(result: DepthResult, colormap: str) -> np.ndarray:
    return disparity_view(result.disparity, colormap)


def normals_view(result: DepthResult) -> np.ndarray:
    from ..geometry.camera import Camera
    from ..geometry.normals import normals_to_rgb, surface_normals

    camera = Camera.from_result(result)
    return normals_to_rgb(surface_normals(result.depth, camera))


def write_outputs(result: DepthResult, out_dir: Path, stem: PurePath, options: OutputOptions) -> list[Path]:
    """Write all requested files for one result; returns their paths (sidecar last)."""
    folder = out_dir / stem.parent
    name = stem.name
    written = [write_result(result, folder, name, fmt, **_format_options(fmt, options)) for fmt in options.formats]
    notes: dict[str, str] = {}
    if options.color_view or options.side_by_side:
        view = color_view(result, options.colormap)
        if options.color_view:
            path = folder / f"{name}_{options.colormap}.png"
            _save_png(path, view)
            written.append(path)
        if options.side_by_side and result.image is not None:
            path = folder / f"{name}_sbs.png"
            _save_png(path, side_by_side(result.image, view))
            written.append(path)
    if options.normals:
        if result.is_metric and result.focal_px is not None:
            path = folder / f"{name}_normals.png"
            _save_png(path, normals_view(result))
            written.append(path)
        else:
            notes["normals_skipped"] = (
                "relative disparity has no metric geometry" if not result.is_metric else "no focal length"
            )
    sidecar = output_path(folder, name, "json", result.kind)
    extra = {"files": [p.name for p in written], "view_encodes": "inverse depth (near = bright)"}
    extra.update(notes)
    extra.update(options.extra_sidecar)
    write_sidecar(sidecar, result, extra)
    written.append(sidecar)
    return written


def _format_options(fmt: str, options: OutputOptions) -> dict:
    return {"scale_m": options.png16_scale_m} if fmt == "png16" else {}
