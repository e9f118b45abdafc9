"""`sharpdepth serve`: run the HTTP service (API + web page) on one model.

The model flags are those of `sharpdepth predict` and build the same
`ModelSettings`; the serving flags build `ServeSettings`. Both are validated
before anything heavy is imported, so a bad flag fails in milliseconds with
one line. torch, FastAPI and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..engine.settings import ModelSettings
from ..service.settings import ServeSettings, api_key_from_env
from .options import MODEL_OPTIONS, bundled


def run_serve(serve: ServeSettings, model: ModelSettings, log_level: str = "info") -> int:
    """Serve until interrupted; returns the exit status (2 if the model could not be loaded)."""
    import logging
    import sys

    import uvicorn

    from ..service.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    failure: list[str] = []
    server: uvicorn.Server | None = None

    def stop(message: str) -> None:
        failure.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(serve, model, on_load_error=stop)
    config = uvicorn.Config(app, host=serve.host, port=serve.port, log_level=log_level, access_log=False)
    server = uvicorn.Server(config)
    sys.stderr.write(f"sharpdepth serve: http://{serve.host}:{serve.port}/ (model {model.name} loading)\n")
    server.run()
    if failure:
        sys.stderr.write(f"error: {failure[0]}\n")
        return 2
    return 0


def register(app: typer.Typer) -> None:
    defaults = ServeSettings()

    @app.command("serve")
    @bundled(model=MODEL_OPTIONS)
    def serve(
        model: ModelSettings,
        host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = defaults.host,
        port: Annotated[int, typer.Option(help="TCP port.")] = defaults.port,
        max_batch: Annotated[int, typer.Option(help="Images per forward pass.")] = defaults.max_batch,
        max_queue: Annotated[int, typer.Option(help="Requests that may wait; more get 429.")] = defaults.max_queue,
        max_wait_ms: Annotated[float, typer.Option(help="Wait this long for a batch to fill.")] = (
            defaults.max_wait_ms
        ),
        max_upload_mb: Annotated[float, typer.Option(help="Largest upload (413 above).")] = defaults.max_upload_mb,
        timeout: Annotated[float, typer.Option(help="Seconds before a request gets 504.")] = defaults.timeout_s,
        max_inflight_mpx: Annotated[
            float, typer.Option(help="Megapixels of photos worked on at once, all requests together (429 above).")
        ] = defaults.max_inflight_mpx,
        max_response_mb: Annotated[float, typer.Option(help="Largest answer (422 above).")] = (
            defaults.max_response_mb
        ),
        api_key_env: Annotated[
            str | None,
            typer.Option(help="Require the API key held in this environment variable (default: SHARPDEPTH_API_KEY)."),
        ] = None,
        cors_origin: Annotated[
            list[str] | None, typer.Option(help="Allow browser calls from this origin (repeatable; default: none).")
        ] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    ) -> None:
        """HTTP service: depth files, views, refocusing, measuring and 3D over a batching queue, plus a web page."""
        if log_level.lower() not in ("debug", "info", "warning", "error"):
            from ..errors import OptionError

            raise OptionError(f"unknown --log-level {log_level!r}; choose debug, info, warning or error")
        serve_settings = ServeSettings(
            host=host, port=port, max_batch=max_batch, max_queue=max_queue, max_wait_ms=max_wait_ms,
            max_upload_mb=max_upload_mb, timeout_s=timeout, max_inflight_mpx=max_inflight_mpx,
            max_response_mb=max_response_mb, api_key=api_key_from_env(api_key_env),
            cors_origins=tuple(cors_origin or ()),
        )  # fmt: skip
        from ..registry import get_spec

        get_spec(model.name)  # unknown model: one line now, not after the server started
        code = run_serve(serve_settings, model, log_level.lower())
        if code:
            raise typer.Exit(code)
