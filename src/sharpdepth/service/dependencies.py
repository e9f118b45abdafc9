"""What every route shares, as FastAPI dependencies: the service, the focal query, the depth of the upload.

- `FocalQuery`: the `focal_px` / `fov_deg` query parameters of every depth route, built into the
  predict job's own `FocalSettings` (validated there) in this one place.
- `Depth`: the request's depth result — from a sent-back `depth` file, else by running the network —
  (or, for /v1/splat, the decoded photo itself) with the photo's pixels charged to the service's
  in-flight budget from admission until the answer is made (`Service.admit_pixels`), and the
  answer refused when it is over --max-response-mb.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.responses import Response

from ..engine.settings import FocalSettings
from ..io.images import LoadedImage
from ..result import DepthResult
from .decode import decode_image, image_pixels, read_depth_upload
from .encode import Encoded
from .errors import ApiError
from .runtime import Service
from .uploads import Upload, file_field, read_form, stem


def service_of(request: Request) -> Service:
    return cast(Service, request.app.state.service)


ServiceDep = Annotated[Service, Depends(service_of)]


def focal_query(focal_px: float | None = None, fov_deg: float | None = None) -> FocalSettings:
    """The focal length the client gives (pixels, or a horizontal field of view in degrees)."""
    return FocalSettings(focal_px=focal_px, fov_deg=fov_deg)


FocalQuery = Annotated[FocalSettings, Depends(focal_query)]


def _saved_result(image: Upload | None, depth: Upload, focal_px: float | None, max_pixels: int) -> DepthResult:
    """A result the client sent back, with its photo (if sent) decoded and attached."""
    photo = None if image is None else decode_image(image.data, max_pixels).rgb
    return read_depth_upload(depth.data, depth.filename, photo, focal_px, max_pixels)


class DepthOfUpload:
    """One request's depth result and answer, holding its pixels in the service's budget meanwhile."""

    def __init__(self, request: Request, service: Service) -> None:
        self.request = request
        self.service = service
        self.charged = 0

    def _charge(self, pixels: int) -> None:
        self.service.admit_pixels(pixels)
        self.charged += pixels

    async def obtain(self, focal: FocalSettings, need_photo: bool) -> tuple[DepthResult, str]:
        """The depth result and a download stem: from a sent-back `depth` file, else by running the network."""
        service = self.service
        service.require_model()
        max_pixels = service.model_settings.max_pixels
        form = await read_form(self.request, service.settings.max_upload_bytes, service.settings.max_upload_mb)
        image = await file_field(form, "image")
        depth = await file_field(form, "depth")
        if image is None and (depth is None or need_photo):
            raise ApiError(400, "missing form field 'image' (the photo)")
        if image is not None:
            self._charge(image_pixels(image.data, max_pixels))  # from the header: nothing decoded yet
        if depth is not None:
            if focal.fov_deg is not None:
                raise ApiError(400, "fov_deg applies when predicting; with a saved result give focal_px")
            result = cast(DepthResult, await service.new_work(_saved_result, image, depth, focal.focal_px, max_pixels))
            if image is None:
                self._charge(int(result.prediction.size))
            return result, stem(image or depth)
        assert image is not None
        service.refuse_if_full()
        loaded = cast(LoadedImage, await service.new_work(decode_image, image.data, max_pixels))
        return await service.predict(loaded, focal, self.request.state.arrived), stem(image)

    async def photo(self) -> tuple[LoadedImage, str]:
        """The uploaded photo itself, decoded, and a download stem (for work that needs the picture, not its depth)."""
        service = self.service
        service.require_model()
        max_pixels = service.model_settings.max_pixels
        form = await read_form(self.request, service.settings.max_upload_bytes, service.settings.max_upload_mb)
        image = await file_field(form, "image")
        if image is None:
            raise ApiError(400, "missing form field 'image' (the photo)")
        self._charge(image_pixels(image.data, max_pixels))  # from the header: nothing decoded yet
        service.refuse_if_full()
        loaded = cast(LoadedImage, await service.new_work(decode_image, image.data, max_pixels))
        return loaded, stem(image)

    def download(self, encoded: Encoded) -> Response:
        """The encoded file as an attachment, refused (422) over --max-response-mb."""
        limit = self.service.settings.max_response_bytes
        if len(encoded.body) > limit:
            raise ApiError(
                422, f"the answer would be {len(encoded.body) / 2**20:.0f} MB, over the limit of "
                f"{self.service.settings.max_response_mb:g} MB (--max-response-mb); ask for less "
                "(a stride or voxel for 3D, a smaller photo, a compressed format)",
            )  # fmt: skip
        headers = {"Content-Disposition": f'attachment; filename="{encoded.filename}"'}
        if encoded.notices:  # what the CLI would print, e.g. depth beyond a 16-bit PNG's range
            headers["X-Sharpdepth-Notice"] = " | ".join(encoded.notices).encode("ascii", "replace").decode()
        return Response(encoded.body, media_type=encoded.media_type, headers=headers)


async def depth_of_upload(request: Request, service: ServiceDep) -> AsyncIterator[DepthOfUpload]:
    """The request's `DepthOfUpload`; its pixels go back to the budget once the answer is made (or failed)."""
    upload = DepthOfUpload(request, service)
    try:
        yield upload
    finally:
        if upload.charged:
            await service.release_pixels(upload.charged)


Depth = Annotated[DepthOfUpload, Depends(depth_of_upload)]
