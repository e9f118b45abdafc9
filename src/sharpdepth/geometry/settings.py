"""Settings of the geometry jobs (point cloud / mesh, measuring): where their defaults live.

Like the effects' settings (`sharpdepth.apps.settings`): plain data,
keyword-only, frozen and validated on construction (`OptionError`), built by
the command line and the HTTP service alike. Units are in the field names
(`_m` metres, `_deg` degrees, `_px` pixels); a pixel is `(x, y)` = (column, row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

from ..errors import OptionError
from ..maps import Range

DEFAULT_MAX_REL_JUMP = 0.05
"""Relative depth change between neighbours above which they are on different surfaces (5 %)."""
DEFAULT_MAX_GRAZING_DEG = 88.0
AXES = ("opengl", "opencv")
FORMATS = ("ply", "glb")
DEFAULT_WINDOW = 5

# Documented ranges, checked on construction (`Range.check`: `OutOfRangeError`, HTTP 422).
MAX_REL_JUMP = Range(0.0, 1e9, low_open=True)
"""Relative depth jump between neighbours (0.05 = 5 %); a huge value keeps every edge."""
MAX_GRAZING_DEG = Range(0.0, 90.0, "degrees", low_open=True)
STRIDE = Range(1, 1024, integer=True)
"""Keep every n-th pixel; beyond 1024 no photo accepted keeps more than a few points."""
VOXEL_M = Range(1e-4, 1e3, "m")
"""Voxel size: 0.1 mm (finer than any monocular depth) to 1 km."""
WINDOW_PX = Range(1, 255, "px", integer=True)
"""Side of the square over which a measured pixel's depth is the median."""


def _number(value: float) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)


def _pair(pixel: object) -> bool:
    return (
        isinstance(pixel, Sequence) and not isinstance(pixel, str) and len(pixel) == 2
        and all(_number(v) for v in pixel)
    )  # fmt: skip


def check_thresholds(max_rel_jump: float, max_grazing_deg: float, stride: int) -> None:
    """The flying-pixel thresholds and the subsampling stride (one message each)."""
    MAX_REL_JUMP.check(max_rel_jump, "depth-jump threshold")
    MAX_GRAZING_DEG.check(max_grazing_deg, "grazing-angle threshold")
    STRIDE.check(stride, "stride")


def check_voxel(voxel_m: float) -> None:
    VOXEL_M.check(voxel_m, "voxel size")


def check_window(window: int) -> None:
    WINDOW_PX.check(window, "window")


@dataclass(frozen=True, kw_only=True)
class PointCloudSettings:
    """A point cloud or mesh (`sharpdepth pointcloud`)."""

    mesh: bool = False
    """A triangle mesh instead of points."""
    file_type: str | None = None
    """ply or glb; None: from the output file's suffix."""
    stride: int = 1
    """Keep every n-th pixel (points and mesh)."""
    voxel_m: float | None = None
    """Points only: average the points per voxel of this size (metres)."""
    max_rel_jump: float = DEFAULT_MAX_REL_JUMP
    """Drop points/triangles across relative depth jumps above this (0.05 = 5 %)."""
    max_grazing_deg: float = DEFAULT_MAX_GRAZING_DEG
    """Drop surfaces seen more edge-on than this (degrees; 90 = keep all)."""
    normals: bool = True
    """Points only: store unit normals."""
    axes: str = "opengl"
    """opengl (x right, y up, z toward the viewer; what viewers expect) or opencv (camera frame)."""

    def __post_init__(self) -> None:
        check_thresholds(self.max_rel_jump, self.max_grazing_deg, self.stride)
        for flag, what in ((self.mesh, "mesh"), (self.normals, "normals")):
            if not isinstance(flag, bool):
                raise OptionError(f"{what} must be true or false, got {flag!r}")
        if self.voxel_m is not None:
            if self.mesh:
                raise OptionError("--voxel applies to point clouds; use --stride to thin a mesh")
            check_voxel(self.voxel_m)
        if self.file_type is not None and self.file_type.lower() not in FORMATS:
            raise OptionError(f"unknown format {self.file_type!r}; choose from {', '.join(FORMATS)}")
        if self.axes not in AXES:
            raise OptionError(f"unknown axes {self.axes!r}; choose from {', '.join(AXES)}")


@dataclass(frozen=True, kw_only=True)
class MeasureSettings:
    """Measuring (`sharpdepth measure`): one pixel (distance from the camera) or two (distance between)."""

    pixels: tuple[tuple[float, float], ...]
    """One or two pixels (x, y) = (column, row)."""
    window: int = DEFAULT_WINDOW
    """Median depth over this many pixels square around each pick."""

    def __post_init__(self) -> None:
        if isinstance(self.pixels, str) or not isinstance(self.pixels, Sequence):
            raise OptionError(f"pixels must be a list of x,y pairs, got {self.pixels!r}")
        if len(self.pixels) not in (1, 2):
            raise OptionError(
                f"give one pixel (distance from the camera) or two (distance between), got {len(self.pixels)}"
            )
        for pixel in self.pixels:
            if not _pair(pixel):
                raise OptionError(f"pixel must be finite numbers x,y (column,row), got {pixel!r}")
        # JSON gives lists: keep the frozen value hashable and typed as documented
        object.__setattr__(self, "pixels", tuple((float(x), float(y)) for x, y in self.pixels))
        check_window(self.window)
