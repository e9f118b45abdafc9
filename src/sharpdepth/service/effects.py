"""The effects behind /v1/dof, /v1/portrait, /v1/measure and /v1/pointcloud.

Each route builds the job's own settings object (`apps.settings.DofSettings`,
`PortraitSettings`, `geometry.settings.PointCloudSettings`, `MeasureSettings`)
from the query string — only from the parameters the client sent, so every
default is the settings class's, as for the CLI — and calls the same effect
function as the CLI command. This module turns their outputs into bodies.
"""

from __future__ import annotations

from typing import Any

from ..apps.dof import depth_of_field
from ..apps.portrait import portrait
from ..apps.settings import DofSettings, PortraitSettings
from ..errors import OptionError
from ..geometry import pointcloud as pc
from ..geometry.measure import measure, measurement_report
from ..geometry.settings import MeasureSettings, PointCloudSettings
from ..result import DepthResult
from .encode import MEDIA_TYPES, Encoded, picture

PICTURE_FORMATS = ("jpg", "png")
DEFAULT_3D_FORMAT = "glb"
"""An HTTP answer has no file name to take the format from (the CLI's default); GLB opens in browsers."""


def given(**values: object) -> dict[str, Any]:
    """Only the parameters the client sent (None = use the settings class's default)."""
    return {k: v for k, v in values.items() if v is not None}


def check_picture_format(fmt: str) -> str:
    fmt = fmt.lower().replace("jpeg", "jpg")
    if fmt not in PICTURE_FORMATS:
        raise OptionError(f"unknown picture format {fmt!r}; choose jpg or png")
    return fmt


def refocus(result: DepthResult, settings: DofSettings, stem: str, fmt: str) -> Encoded:
    """Depth of field with a simulated lens (`sharpdepth dof`)."""
    return picture(depth_of_field(result, settings).image, f"{stem}_dof", fmt)


def make_portrait(result: DepthResult, settings: PortraitSettings, stem: str, fmt: str) -> Encoded:
    """Portrait mode: subject from depth, soft matte, background blurred by depth (`sharpdepth portrait`)."""
    return picture(portrait(result, settings).image, f"{stem}_portrait", fmt)


def measurement(result: DepthResult, settings: MeasureSettings) -> dict[str, object]:
    """One pixel: its distance from the camera; two: the 3D distance between them (metres).

    The same JSON as `sharpdepth measure --json` (both are `geometry.measure.measurement_report`).
    """
    return measurement_report(measure(result, settings), result.focal_px)


def cloud(result: DepthResult, settings: PointCloudSettings, stem: str) -> Encoded:
    """Coloured point cloud or mesh in metres (`sharpdepth pointcloud`) as PLY or GLB bytes."""
    file_type = (settings.file_type or DEFAULT_3D_FORMAT).lower()
    if settings.mesh:
        body = pc.mesh_bytes(pc.result_to_mesh(result, settings), file_type, settings.axes)
        name = f"{stem}_mesh.{file_type}"
    else:
        body = pc.point_cloud_bytes(pc.result_to_point_cloud(result, settings), file_type, settings.axes)
        name = f"{stem}_cloud.{file_type}"
    return Encoded(body, MEDIA_TYPES[file_type], name)
