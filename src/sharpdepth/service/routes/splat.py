"""/v1/splat: the `<stem>.ply` of 3-D Gaussians `sharpdepth splat` writes, for one uploaded photo."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ...registry import DEFAULT_SPLAT_MODEL
from ..dependencies import Depth, FocalQuery, ServiceDep
from ..encode import Encoded, splat_file
from ..splats import splat_spec

router = APIRouter()


@router.post("/v1/splat")
async def splat(
    service: ServiceDep,
    upload: Depth,
    focal: FocalQuery,
    model: Annotated[str, Query(description="a model that predicts 3-D Gaussians")] = DEFAULT_SPLAT_MODEL,
) -> Response:
    """Metric 3-D Gaussians of the uploaded photo as a 3DGS PLY (as `sharpdepth splat`).

    Focal length: focal_px or fov_deg > EXIF > the model's default (SHARP: a 30 mm lens).
    """
    spec = splat_spec(model)  # before the upload is read: a wrong model costs nothing
    image, stem = await upload.photo()
    gaussians = await service.predict_gaussians(spec, image, focal, upload.request.state.arrived)
    return upload.download(cast(Encoded, await service.in_thread(splat_file, gaussians, stem)))
