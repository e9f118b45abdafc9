"""/v1/dof, /v1/portrait, /v1/measure and /v1/pointcloud: the effect and geometry commands over HTTP.

Each builds the job's own settings object from the parameters the client sent (so every default
and every range is the settings class's, as for the CLI) and calls the same function as the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...apps.settings import DofSettings, PortraitSettings
from ...engine.settings import FocalSettings
from ...geometry.measure import parse_pixel
from ...geometry.settings import MeasureSettings, PointCloudSettings
from ...result import DepthResult
from .. import effects
from ..dependencies import Depth, DepthOfUpload, FocalQuery, ServiceDep
from ..encode import Encoded
from ..runtime import Service
from .common import json_answer, pixel

router = APIRouter()
S = TypeVar("S")


def lens_query(
    f_number: float | None = None,
    focal_mm: float | None = None,
    sensor_mm: float | None = None,
    max_blur: float | None = None,
    bokeh: str | None = None,
    highlights: float | None = None,
) -> dict[str, Any]:
    """The simulated lens of /v1/dof and /v1/portrait: the parameters sent, as settings keywords."""
    return effects.given(
        f_number=f_number, focal_length_mm=focal_mm, sensor_width_mm=sensor_mm, max_blur_px=max_blur, shape=bokeh,
        highlight_boost=highlights,
    )  # fmt: skip


LensQuery = Annotated[dict[str, Any], Depends(lens_query)]


async def _picture(
    service: Service,
    upload: DepthOfUpload,
    focal: FocalSettings,
    make: Callable[[DepthResult, S, str, str], Encoded],
    settings: S,
    fmt: str,
) -> Response:
    """Depth for the upload (photo needed), then the effect in a worker thread, answered as a download."""
    result, stem = await upload.obtain(focal, need_photo=True)
    return upload.download(cast(Encoded, await service.in_thread(make, result, settings, stem, fmt)))


@router.post("/v1/dof")
async def dof(
    service: ServiceDep,
    upload: Depth,
    focal: FocalQuery,
    lens: LensQuery,
    focus_m: float | None = None,
    focus_px: Annotated[str | None, Query(description="focus on the pixel x,y")] = None,
    format: str = "jpg",
) -> Response:
    """Refocus the photo with a simulated lens (as `sharpdepth dof`)."""
    fmt = effects.check_picture_format(format)
    settings = DofSettings(**lens, **effects.given(focus_m=focus_m, focus_px=pixel(focus_px)))
    return await _picture(service, upload, focal, effects.refocus, settings, fmt)


@router.post("/v1/portrait")
async def portrait(
    service: ServiceDep,
    upload: Depth,
    focal: FocalQuery,
    lens: LensQuery,
    subject: Annotated[str | None, Query(description="a pixel x,y on the subject")] = None,
    format: str = "jpg",
) -> Response:
    """Portrait mode (as `sharpdepth portrait`)."""
    fmt = effects.check_picture_format(format)
    settings = PortraitSettings(**lens, **effects.given(subject_px=pixel(subject)))
    return await _picture(service, upload, focal, effects.make_portrait, settings, fmt)


@router.post("/v1/measure")
async def measure(
    service: ServiceDep,
    upload: Depth,
    focal: FocalQuery,
    points: Annotated[list[str], Query(description="one or two pixels x,y")],
    window: int | None = None,
) -> Response:
    """Metres: distance from the camera to one pixel, or the 3D distance between two."""
    settings = MeasureSettings(pixels=tuple(parse_pixel(p) for p in points), **effects.given(window=window))
    result, _ = await upload.obtain(focal, need_photo=False)
    return json_answer(await service.in_thread(effects.measurement, result, settings))


@router.post("/v1/pointcloud")
async def pointcloud(
    service: ServiceDep,
    upload: Depth,
    focal: FocalQuery,
    format: str = effects.DEFAULT_3D_FORMAT,
    mesh: bool | None = None,
    stride: int | None = None,
    voxel: float | None = None,
    max_jump: float | None = None,
    max_grazing: float | None = None,
    normals: bool | None = None,
    axes: str | None = None,
) -> Response:
    """Coloured point cloud or mesh in metres, PLY or GLB (as `sharpdepth pointcloud`)."""
    settings = PointCloudSettings(
        **effects.given(
            file_type=format.lower(), mesh=mesh, stride=stride, voxel_m=voxel, max_rel_jump=max_jump,
            max_grazing_deg=max_grazing, normals=normals, axes=axes,
        )
    )  # fmt: skip
    result, stem = await upload.obtain(focal, need_photo=False)
    return upload.download(cast(Encoded, await service.in_thread(effects.cloud, result, settings, stem)))
