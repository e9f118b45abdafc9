"""/v1/depth and /v1/view: the files `sharpdepth predict` writes, for one uploaded photo."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ...errors import OptionError
from ...io.outputs import OutputOptions, parse_formats
from .. import effects
from ..dependencies import Depth, FocalQuery, ServiceDep
from ..encode import Encoded, color_view, depth_file, sidecar_fields
from .common import json_answer

router = APIRouter()


@router.post("/v1/depth")
async def depth(
    service: ServiceDep,
    upload: Depth,
    focal: FocalQuery,
    format: Annotated[str, Query(description="json, npz, png16, exr, npy or pfm")] = "json",
    colormap: str | None = None,
    png_scale: Annotated[float | None, Query(description="16-bit PNG: metres per unit")] = None,
) -> Response:
    """Depth of the uploaded photo: the file `sharpdepth predict` writes, or its sidecar fields (json).

    Send `depth` (a saved result) instead of `image` to convert it to another format without the network.
    """
    fmt = one_format(format)
    options = OutputOptions(**effects.given(colormap=colormap, png16_scale_m=png_scale))
    result, stem = await upload.obtain(focal, need_photo=False)
    if fmt == "json":
        return json_answer(await service.in_thread(sidecar_fields, result))
    return upload.download(cast(Encoded, await service.in_thread(depth_file, result, fmt, stem, options)))


@router.post("/v1/view")
async def view(service: ServiceDep, upload: Depth, focal: FocalQuery, colormap: str | None = None) -> Response:
    """The inverse-depth colour view (near = bright) `predict` writes as <stem>_<colormap>.png."""
    options = OutputOptions(**effects.given(colormap=colormap))
    result, stem = await upload.obtain(focal, need_photo=False)
    return upload.download(cast(Encoded, await service.in_thread(color_view, result, stem, options.colormap)))


def one_format(text: str) -> str:
    """`json`, or exactly one depth file format (validated by `OutputOptions`)."""
    if text.strip().lower() == "json":
        return "json"
    formats = parse_formats(text)
    if len(formats) != 1:
        raise OptionError(f"give one format (json, npz, png16, exr, npy, pfm), got {text!r}")
    OutputOptions(formats=formats)  # validates the name
    return formats[0]
