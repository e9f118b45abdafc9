"""Everything `predict` writes for one result: data formats, views and the JSON sidecar.

Order matters for resumability: the JSON sidecar is written last, so its
presence means every other file of that image is complete; it records the
model and the files written, so `--skip-existing` can tell "done with these
options" from "done with other ones". Each file is itself written atomically.

io sits below geometry, so it cannot compute surface normals itself: the
caller passes the renderer (`normals_view`, e.g. the engine's, built on
`sharpdepth.geometry.normals`). Without one, a requested normal view is
skipped with a notice instead of importing upwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ..errors import OptionError
from ..result import DepthResult, OutputKind
from .colormap import COLORMAPS, disparity_view, side_by_side
from .depth_files import (
    DATA_FORMATS,
    DEFAULT_PNG16_SCALE_M,
    Notice,
    NoticeSink,
    output_path,
    write_result,
    write_sidecar,
)
from .photos import save_image

__all__ = [
    "NormalsView",
    "Notice",
    "OutputOptions",
    "color_view",
    "parse_formats",
    "planned_files",
    "sidecar_path",
    "write_outputs",
]

NormalsView = Callable[[DepthResult], np.ndarray]
"""Renders the surface-normal view (HxWx3 uint8) of a metric result with a focal length."""


@dataclass(frozen=True)
class OutputOptions:
    formats: tuple[str, ...] = ("npz",)
    colormap: str = "inferno"
    color_view: bool = True
    side_by_side: bool = False
    normals: bool = False
    png16_scale_m: float = DEFAULT_PNG16_SCALE_M
    extra_sidecar: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in DATA_FORMATS]
        if unknown:
            raise OptionError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(DATA_FORMATS)}")
        if self.colormap not in COLORMAPS:
            raise OptionError(f"unknown colormap {self.colormap!r}; choose from {', '.join(COLORMAPS)}")
        if not self.png16_scale_m > 0:
            raise OptionError("PNG scale must be a positive number of metres per unit")


def parse_formats(text: str) -> tuple[str, ...]:
    """`--format` text -> format names; an empty list is an error (it would write no depth file)."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not names:
        raise OptionError(f"--format needs at least one of {', '.join(DATA_FORMATS)} (comma-separated)")
    aliases = {"png": "png16", "png16": "png16", "openexr": "exr"}
    return tuple(aliases.get(n, n) for n in names)


def sidecar_path(out_dir: Path, stem: PurePath) -> Path:
    return out_dir / stem.parent / f"{stem.name}.json"


def color_view(result: DepthResult, colormap: str) -> np.ndarray:
    return disparity_view(result.disparity, colormap)


def planned_files(
    result_kind: OutputKind | str, stem_name: str, options: OutputOptions, has_image: bool = True
) -> list[str]:
    """Names of the data and view files `write_outputs` writes for these options (not sidecar, normals).

    `--skip-existing` compares them with the sidecar's record of what was written.
    """
    kind = OutputKind(result_kind)
    names = [output_path(Path("."), stem_name, fmt, kind).name for fmt in options.formats]
    if options.color_view:
        names.append(f"{stem_name}_{options.colormap}.png")
    if options.side_by_side and has_image:
        names.append(f"{stem_name}_sbs.png")
    return names


def write_outputs(
    result: DepthResult,
    out_dir: Path,
    stem: PurePath,
    options: OutputOptions,
    normals_view: NormalsView | None = None,
    on_notice: NoticeSink | None = None,
) -> list[Path]:
    """Write all requested files for one result; returns their paths (sidecar last).

    `on_notice` hears what the user should be told (depth beyond a 16-bit PNG's
    range, a skipped normal view); the same facts go into the sidecar.
    """
    folder = out_dir / stem.parent
    name = stem.name
    notices: list[Notice] = []

    def notice(item: Notice) -> None:
        notices.append(item)
        if on_notice is not None:
            on_notice(item)

    written = [
        write_result(result, folder, name, fmt, scale_m=options.png16_scale_m, on_notice=notice)
        for fmt in options.formats
    ]
    if options.color_view or options.side_by_side:
        view = color_view(result, options.colormap)
        if options.color_view:
            written.append(save_image(folder / f"{name}_{options.colormap}.png", view))
        if options.side_by_side and result.image is not None:
            written.append(save_image(folder / f"{name}_sbs.png", side_by_side(result.image, view)))
    if options.normals:
        reason = _normals_skip_reason(result, normals_view)
        if reason is None and normals_view is not None:
            written.append(save_image(folder / f"{name}_normals.png", normals_view(result)))
        else:
            notice(Notice("normals_skipped", f"normal view skipped: {reason}"))
    sidecar = output_path(folder, name, "json", result.kind)
    extra: dict[str, Any] = {"files": [p.name for p in written], "view_encodes": "inverse depth (near = bright)"}
    for item in notices:
        if item.kind == "normals_skipped":
            extra["normals_skipped"] = item.message.removeprefix("normal view skipped: ")
        elif item.kind == "png16_saturated":
            extra["png16_saturated_share"] = item.share
    extra.update(options.extra_sidecar)
    write_sidecar(sidecar, result, extra)
    written.append(sidecar)
    return written


def _normals_skip_reason(result: DepthResult, normals_view: NormalsView | None) -> str | None:
    if not result.is_metric:
        return f"{result.model_name or 'this model'} predicts {result.kind.meaning} (no metric geometry)"
    if result.focal_px is None:
        return "no focal length"
    if normals_view is None:
        return "no normal renderer given to the writer"
    return None
