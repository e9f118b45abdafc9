"""`create_app`: the FastAPI application of `sharpdepth serve` (API, metrics, web page).

Every route builds the library's own settings objects from its query string
(`FocalSettings`, `OutputOptions`, `DofSettings`, ...) and calls the same
engine, effects and writers as the CLI; the HTTP layer only adds transport:
limits, auth, batching, error statuses. Uploads are multipart form fields:
`image` (the photo) and, for effects or format conversion, `depth` (a result
the client got earlier, e.g. the npz of /v1/depth) so the network is not run
again. Nothing is ever fetched from a URL.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, cast

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from ..apps.settings import DofSettings, PortraitSettings
from ..engine.settings import FocalSettings, ModelSettings
from ..errors import OptionError, SharpDepthError
from ..geometry.measure import parse_pixel
from ..geometry.settings import MeasureSettings, PointCloudSettings
from ..io.colormap import COLORMAPS
from ..io.images import LoadedImage
from ..io.outputs import OutputOptions, parse_formats
from ..registry import get_spec, list_specs
from ..result import DepthResult
from . import effects
from .decode import decode_image, read_depth_upload
from .encode import Encoded, color_view, depth_file, sidecar_fields
from .errors import ApiError, status_for
from .runtime import ModelLoader, Service
from .settings import ServeSettings

log = logging.getLogger("sharpdepth.service")

STATIC = Path(str(resources.files("sharpdepth.service") / "static"))
ROUTES = (
    "/v1/depth", "/v1/view", "/v1/dof", "/v1/portrait", "/v1/measure", "/v1/pointcloud",
    "/v1/models", "/healthz", "/readyz", "/metrics", "/",
)  # fmt: skip
MULTIPART_OVERHEAD = 64 * 1024
"""Room for multipart headers and boundaries on top of --max-upload-mb of file data."""


def create_app(
    settings: ServeSettings,
    model_settings: ModelSettings,
    loader: ModelLoader | None = None,
    on_load_error: Callable[[str], None] | None = None,
) -> FastAPI:
    """The service as an ASGI app; the model starts loading when the app starts."""
    service = Service(settings, model_settings, loader, on_load_error)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        service.stop()

    app = FastAPI(
        title="sharpdepth",
        summary="Metric monocular depth over HTTP: depth files, views, refocusing, measuring, 3D.",
        lifespan=lifespan,
    )
    app.state.service = service
    _install_errors(app)
    _install_guard(app, service)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key"],
        )  # fmt: skip
    _routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# ---------------------------------------------------------------- errors, auth, metrics
def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _install_errors(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        err = cast(ApiError, exc)
        return _error(err.status, err.message, err.headers)

    async def library_error(_: Request, exc: Exception) -> Response:
        return _error(status_for(cast(SharpDepthError, exc)), str(exc))

    async def validation_error(_: Request, exc: Exception) -> Response:
        first = cast(RequestValidationError, exc).errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        return _error(400, f"{where}: {first.get('msg', 'invalid value')}")

    async def http_error(_: Request, exc: Exception) -> Response:
        err = cast(StarletteHTTPException, exc)
        return _error(err.status_code, str(err.detail), dict(err.headers or {}))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(SharpDepthError, library_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _route_label(path: str) -> str:
    if path in ROUTES:
        return path
    return "/static" if path.startswith("/static/") else "other"


def _authorized(request: Request, key: str) -> bool:
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), key.encode())


def _install_guard(app: FastAPI, service: Service) -> None:
    """API key on /v1, and every answer counted in /metrics (route, status, latency)."""

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.monotonic()
        request.state.arrived = start
        path = request.url.path
        key = service.settings.api_key
        if key is not None and path.startswith("/v1/") and not _authorized(request, key):
            response: Response = _error(401, "missing or wrong API key", {"WWW-Authenticate": "Bearer"})
        else:
            try:
                response = await call_next(request)
            except Exception:  # a bug: the client gets one line, the log the traceback
                log.exception("unhandled error on %s", path)
                response = _error(500, "internal error (see the server log)")
        service.metrics.observe_request(_route_label(path), response.status_code, time.monotonic() - start)
        return response


# ---------------------------------------------------------------- uploads
class _InMemoryParser(MultiPartParser):
    """Starlette's parser, keeping files in memory: the body is already capped, so no spooling to disk."""

    spool_max_size = 2**40


async def _read_form(request: Request, service: Service) -> FormData:
    """The multipart form, refusing bodies over --max-upload-mb before (or while) reading them."""
    limit = service.settings.max_upload_bytes + MULTIPART_OVERHEAD
    too_big = ApiError(413, f"upload over the limit of {service.settings.max_upload_mb:g} MB (--max-upload-mb)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "send the photo as multipart/form-data, field 'image'")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_big
        chunks.append(chunk)
    body = b"".join(chunks)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = _InMemoryParser(request.headers, replay(), max_files=2, max_fields=20)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart form ({exc.message})") from None


@dataclass
class Upload:
    data: bytes
    filename: str | None


async def _file(form: FormData, name: str) -> Upload | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, UploadFile):
        raise ApiError(400, f"form field '{name}' must be a file upload")
    return Upload(await value.read(), value.filename)


def _saved_result(image: Upload | None, depth: Upload, focal_px: float | None, max_pixels: int) -> DepthResult:
    """A result the client sent back, with its photo (if sent) decoded and attached."""
    photo = None if image is None else decode_image(image.data, max_pixels).rgb
    return read_depth_upload(depth.data, depth.filename, photo, focal_px, max_pixels)


def _stem(upload: Upload | None) -> str:
    name = Path(upload.filename).stem if upload is not None and upload.filename else "image"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._")[:64]
    return re.sub(r"_(depth|disparity)$", "", cleaned) or "image"


def _finite(value: object) -> object:
    """JSON has no NaN or infinity (an unknown focal, an empty map): they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(content: object) -> JSONResponse:
    return JSONResponse(_finite(content))


def _download(encoded: Encoded) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{encoded.filename}"'}
    if encoded.notices:  # what the CLI would print, e.g. depth beyond a 16-bit PNG's range
        headers["X-Sharpdepth-Notice"] = " | ".join(encoded.notices).encode("ascii", "replace").decode()
    return Response(encoded.body, media_type=encoded.media_type, headers=headers)


# ---------------------------------------------------------------- routes
def _routes(app: FastAPI, service: Service) -> None:  # noqa: C901 - one place that lists every route
    max_pixels = service.model_settings.max_pixels

    async def obtain(request: Request, focal: FocalSettings, need_photo: bool) -> tuple[DepthResult, str]:
        """The depth result for a request: from a sent-back `depth` file, else by running the network."""
        service.require_model()
        form = await _read_form(request, service)
        image = await _file(form, "image")
        depth = await _file(form, "depth")
        if image is None and (depth is None or need_photo):
            raise ApiError(400, "missing form field 'image' (the photo)")
        if depth is not None:
            if focal.fov_deg is not None:
                raise ApiError(400, "fov_deg applies when predicting; with a saved result give focal_px")
            result = await service.new_work(_saved_result, image, depth, focal.focal_px, max_pixels)
            return cast(DepthResult, result), _stem(image or depth)
        assert image is not None
        service.refuse_if_full()
        loaded = cast(LoadedImage, await service.new_work(decode_image, image.data, max_pixels))
        return await service.predict(loaded, focal, request.state.arrived), _stem(image)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up (the model may still be loading)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        """200 once the model is loaded and the worker runs; 503 before (or if loading failed)."""
        model = service.require_model()
        return JSONResponse({"ready": True, "model": model.name, "device": str(model.device)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        served = get_spec(service.model_settings.name).name
        specs = list_specs(include_test_only=True)
        return {
            "served": served,
            "ready": service.ready,
            "colormaps": list(COLORMAPS),
            "default_colormap": OutputOptions().colormap,
            "models": [
                {
                    "name": s.name, "output_kind": str(s.output_kind), "description": s.description,
                    "license": s.license, "served": s.name == served,
                }
                for s in specs
                if not s.test_only or s.name == served
            ],
        }  # fmt: skip

    @app.post("/v1/depth")
    async def depth(
        request: Request,
        format: Annotated[str, Query(description="json, npz, png16, exr, npy or pfm")] = "json",
        focal_px: float | None = None,
        fov_deg: float | None = None,
        colormap: str | None = None,
        png_scale: Annotated[float | None, Query(description="16-bit PNG: metres per unit")] = None,
    ) -> Response:
        """Depth of the uploaded photo: the file `sharpdepth predict` writes, or its sidecar fields (json).

        Send `depth` (a saved result) instead of `image` to convert it to another format without the network.
        """
        fmt = _one_format(format)
        options = OutputOptions(**effects.given(colormap=colormap, png16_scale_m=png_scale))
        focal = FocalSettings(focal_px=focal_px, fov_deg=fov_deg)
        result, stem = await obtain(request, focal, need_photo=False)
        if fmt == "json":
            return _json(await service.in_thread(sidecar_fields, result))
        return _download(cast(Encoded, await service.in_thread(depth_file, result, fmt, stem, options)))

    @app.post("/v1/view")
    async def view(
        request: Request, colormap: str | None = None, focal_px: float | None = None, fov_deg: float | None = None
    ) -> Response:
        """The inverse-depth colour view (near = bright) `predict` writes as <stem>_<colormap>.png."""
        options = OutputOptions(**effects.given(colormap=colormap))
        result, stem = await obtain(request, FocalSettings(focal_px=focal_px, fov_deg=fov_deg), need_photo=False)
        return _download(cast(Encoded, await service.in_thread(color_view, result, stem, options.colormap)))

    @app.post("/v1/dof")
    async def dof(
        request: Request,
        focus_m: float | None = None,
        focus_px: Annotated[str | None, Query(description="focus on the pixel x,y")] = None,
        f_number: float | None = None,
        focal_mm: float | None = None,
        sensor_mm: float | None = None,
        max_blur: float | None = None,
        bokeh: str | None = None,
        highlights: float | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        format: str = "jpg",
    ) -> Response:
        """Refocus the photo with a simulated lens (as `sharpdepth dof`)."""
        fmt = effects.check_picture_format(format)
        settings = DofSettings(
            **effects.given(
                focus_m=focus_m, focus_px=_pixel(focus_px), f_number=f_number,
                focal_length_mm=focal_mm, sensor_width_mm=sensor_mm, max_blur_px=max_blur, shape=bokeh,
                highlight_boost=highlights,
            )
        )  # fmt: skip
        result, stem = await obtain(request, FocalSettings(focal_px=focal_px, fov_deg=fov_deg), need_photo=True)
        return _download(cast(Encoded, await service.in_thread(effects.refocus, result, settings, stem, fmt)))

    @app.post("/v1/portrait")
    async def portrait(
        request: Request,
        subject: Annotated[str | None, Query(description="a pixel x,y on the subject")] = None,
        f_number: float | None = None,
        focal_mm: float | None = None,
        sensor_mm: float | None = None,
        max_blur: float | None = None,
        bokeh: str | None = None,
        highlights: float | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        format: str = "jpg",
    ) -> Response:
        """Portrait mode (as `sharpdepth portrait`)."""
        fmt = effects.check_picture_format(format)
        options = PortraitSettings(
            **effects.given(
                subject_px=_pixel(subject), f_number=f_number, max_blur_px=max_blur, shape=bokeh,
                highlight_boost=highlights, focal_length_mm=focal_mm, sensor_width_mm=sensor_mm,
            )
        )  # fmt: skip
        result, stem = await obtain(request, FocalSettings(focal_px=focal_px, fov_deg=fov_deg), need_photo=True)
        return _download(cast(Encoded, await service.in_thread(effects.make_portrait, result, options, stem, fmt)))

    @app.post("/v1/measure")
    async def measure(
        request: Request,
        points: Annotated[list[str], Query(description="one or two pixels x,y")],
        window: int | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
    ) -> Response:
        """Metres: distance from the camera to one pixel, or the 3D distance between two."""
        settings = MeasureSettings(pixels=tuple(parse_pixel(p) for p in points), **effects.given(window=window))
        result, _ = await obtain(request, FocalSettings(focal_px=focal_px, fov_deg=fov_deg), need_photo=False)
        return _json(await service.in_thread(effects.measurement, result, settings))

    @app.post("/v1/pointcloud")
    async def pointcloud(
        request: Request,
        format: str = effects.DEFAULT_3D_FORMAT,
        mesh: bool | None = None,
        stride: int | None = None,
        voxel: float | None = None,
        max_jump: float | None = None,
        max_grazing: float | None = None,
        normals: bool | None = None,
        axes: str | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
    ) -> Response:
        """Coloured point cloud or mesh in metres, PLY or GLB (as `sharpdepth pointcloud`)."""
        options = PointCloudSettings(
            **effects.given(
                file_type=format.lower(), mesh=mesh, stride=stride, voxel_m=voxel, max_rel_jump=max_jump,
                max_grazing_deg=max_grazing, normals=normals, axes=axes,
            )
        )  # fmt: skip
        result, stem = await obtain(request, FocalSettings(focal_px=focal_px, fov_deg=fov_deg), need_photo=False)
        return _download(cast(Encoded, await service.in_thread(effects.cloud, result, options, stem)))


def _pixel(text: str | None) -> tuple[float, float] | None:
    return None if text is None else parse_pixel(text)


def _one_format(text: str) -> str:
    if text.strip().lower() == "json":
        return "json"
    formats = parse_formats(text)
    if len(formats) != 1:
        raise OptionError(f"give one format (json, npz, png16, exr, npy, pfm), got {text!r}")
    OutputOptions(formats=formats)  # validates the name
    return formats[0]
