"""`create_app`: the FastAPI application of `sharpdepth serve` (API, metrics, web page).

Every route (`service.routes`) builds the library's own settings objects from its query string
(`FocalSettings` through one shared dependency, `OutputOptions`, `DofSettings`, ...) and calls the
same engine, effects and writers as the CLI; the HTTP layer only adds transport: limits, auth,
batching, error statuses. Uploads are multipart form fields: `image` (the photo) and, for effects
or format conversion, `depth` (a result the client got earlier, e.g. the npz of /v1/depth) so the
network is not run again. Nothing is ever fetched from a URL.

Memory is bounded by pixels, not by request count: a request holds its photo's pixels in a budget
shared by every request in flight (--max-inflight-mpx) until its answer is made, answers over
--max-response-mb are refused, and freed memory goes back to the system after a burst.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engine.settings import ModelSettings
from ..errors import SharpDepthError
from .errors import ApiError, status_for
from .routes import ROUTE_PATHS, ROUTERS
from .routes.status import STATIC
from .runtime import ModelLoader, Service
from .settings import ServeSettings
from .uploads import ClientGone

log = logging.getLogger("sharpdepth.service")

CLIENT_CLOSED = 499
"""Status recorded for a request whose client hung up (nginx's convention; nobody receives it)."""


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
    for router in ROUTERS:
        app.include_router(router)
    _install_guard(app, service, ROUTE_PATHS)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key"],
        )  # fmt: skip
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


def _route_label(path: str, known: frozenset[str]) -> str:
    if path in known:
        return path
    return "/static" if path.startswith("/static/") else "other"


def _authorized(request: Request, key: str) -> bool:
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), key.encode())


def _install_guard(app: FastAPI, service: Service, known: frozenset[str]) -> None:
    """API key on /v1, and every answer counted in /metrics (route, status, latency).

    A client that hangs up mid-upload is one log line and its own counter: it is not an error of
    the service, and there is nobody to answer.
    """

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.monotonic()
        request.state.arrived = start
        path = request.url.path
        route = _route_label(path, known)
        key = service.settings.api_key
        if key is not None and path.startswith("/v1/") and not _authorized(request, key):
            response: Response = _error(401, "missing or wrong API key", {"WWW-Authenticate": "Bearer"})
        else:
            try:
                response = await call_next(request)
            except ClientGone as gone:
                log.info("client disconnected during the upload to %s (%s)", path, gone)
                service.metrics.client_disconnects.labels(route=route).inc()
                return Response(status_code=CLIENT_CLOSED)
            except Exception:  # a bug: the client gets one line, the log the traceback
                log.exception("unhandled error on %s", path)
                response = _error(500, "internal error (see the server log)")
        service.metrics.observe_request(route, response.status_code, time.monotonic() - start)
        return response
