"""The effects behind /v1/dof, /v1/portrait, /v1/measure and /v1/pointcloud.

Each takes a depth result (with its photo attached) and the same settings the
CLI commands build, and returns a response body. No defaults are restated
here: a parameter the client did not send is simply not passed on, so the
library's own default applies, as it does for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..apps.dof import DofSettings, depth_of_field
from ..apps.portrait import portrait
from ..errors import OptionError
from ..geometry import pointcloud as pc
from ..geometry.measure import PointMeasurement, measure_distance, measure_point, parse_pixel
from ..result import DepthResult
from .encode import MEDIA_TYPES, Encoded, picture

PICTURE_FORMATS = ("jpg", "png")


def given(**values: object) -> dict[str, Any]:
    """Only the parameters the client sent (None = use the library's default)."""
    return {k: v for k, v in values.items() if v is not None}


def pixel_or_none(text: str | None) -> tuple[float, float] | None:
    return None if text is None else parse_pixel(text)


def check_picture_format(fmt: str) -> str:
    fmt = fmt.lower().replace("jpeg", "jpg")
    if fmt not in PICTURE_FORMATS:
        raise OptionError(f"unknown picture format {fmt!r}; choose jpg or png")
    return fmt


def refocus(result: DepthResult, settings: DofSettings, stem: str, fmt: str) -> Encoded:
    """Depth of field with a simulated lens (`sharpdepth dof`)."""
    rendered = depth_of_field(result, settings)
    return picture(rendered.image, f"{stem}_dof", fmt)


@dataclass(frozen=True, kw_only=True)
class PortraitRequest:
    """Portrait options as `apps.portrait.portrait` takes them (None = its default)."""

    subject: tuple[float, float] | None = None
    f_number: float | None = None
    max_blur_px: float | None = None
    shape: str | None = None
    highlight_boost: float | None = None
    focal_length_mm: float | None = None


def make_portrait(result: DepthResult, request: PortraitRequest, stem: str, fmt: str) -> Encoded:
    """Portrait mode: subject from depth, soft matte, background blurred by depth (`sharpdepth portrait`)."""
    options = given(
        f_number=request.f_number, max_blur_px=request.max_blur_px, shape=request.shape,
        highlight_boost=request.highlight_boost, focal_length_mm=request.focal_length_mm,
    )  # fmt: skip
    rendered = portrait(result, request.subject, **options)
    return picture(rendered.image, f"{stem}_portrait", fmt)


def measure(result: DepthResult, points: list[str], window: int | None) -> dict[str, Any]:
    """One pixel: its distance from the camera; two: the 3D distance between them (metres)."""
    if len(points) not in (1, 2):
        raise OptionError(f"give one point (distance from the camera) or two (distance between), got {len(points)}")
    picks = [parse_pixel(p) for p in points]
    options = given(window=window)
    if len(picks) == 1:
        return {"point": _point(measure_point(result, picks[0], **options)), "focal_px": result.focal_px}
    m = measure_distance(result, picks[0], picks[1], **options)
    return {"distance_m": m.distance_m, "a": _point(m.a), "b": _point(m.b), "focal_px": result.focal_px}


def _point(p: PointMeasurement) -> dict[str, Any]:
    return {
        "pixel": list(p.pixel),
        "depth_m": p.depth_m,
        "distance_from_camera_m": p.distance_m,
        "xyz_m": list(p.point),
        "spread_m": p.spread_m,
    }


@dataclass(frozen=True, kw_only=True)
class CloudRequest:
    """Point cloud / mesh options as `geometry.pointcloud` takes them (None = its default)."""

    file_type: str = "glb"
    mesh: bool = False
    stride: int | None = None
    voxel_size: float | None = None
    max_rel_jump: float | None = None
    max_grazing_deg: float | None = None
    normals: bool | None = None
    axes: str = "opengl"

    def __post_init__(self) -> None:
        if self.file_type not in pc.FORMATS:
            raise OptionError(f"unknown 3D format {self.file_type!r}; choose from {', '.join(pc.FORMATS)}")
        if self.voxel_size is not None and self.mesh:
            raise OptionError("voxel applies to point clouds; use stride to thin a mesh")
        if self.axes not in pc.AXES:
            raise OptionError(f"unknown axes {self.axes!r}; choose from {', '.join(pc.AXES)}")


def cloud(result: DepthResult, request: CloudRequest, stem: str) -> Encoded:
    """Coloured point cloud or mesh in metres (`sharpdepth pointcloud`) as PLY or GLB bytes."""
    options = given(stride=request.stride, max_rel_jump=request.max_rel_jump, max_grazing_deg=request.max_grazing_deg)
    if request.mesh:
        body = pc.mesh_bytes(pc.result_to_mesh(result, **options), request.file_type, request.axes)
        name = f"{stem}_mesh.{request.file_type}"
    else:
        options.update(given(voxel_size=request.voxel_size, with_normals=request.normals))
        points = pc.result_to_point_cloud(result, **options)
        body = pc.point_cloud_bytes(points, request.file_type, request.axes)
        name = f"{stem}_cloud.{request.file_type}"
    return Encoded(body, MEDIA_TYPES[request.file_type], name)
