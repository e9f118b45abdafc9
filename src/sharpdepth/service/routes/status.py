"""The page, liveness, readiness, metrics and the model list."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from ...io.colormap import COLORMAPS
from ...io.outputs import OutputOptions
from ...registry import DEFAULT_SPLAT_MODEL, get_spec, list_specs
from ..dependencies import ServiceDep
from ..splats import predicts_gaussians

STATIC = Path(str(resources.files("sharpdepth.service") / "static"))
router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (the model may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> Response:
    """200 once the model is loaded and the worker runs; 503 before (or if loading failed)."""
    model = service.require_model()
    return JSONResponse({"ready": True, "model": model.name, "device": str(model.device)})


@router.get("/metrics")
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type=service.metrics.content_type)


@router.get("/v1/models")
async def models(service: ServiceDep) -> dict[str, object]:
    served = get_spec(service.model_settings.name).name
    specs = list_specs(include_test_only=True)
    return {
        "served": served,
        "ready": service.ready,
        "colormaps": list(COLORMAPS),
        "default_colormap": OutputOptions().colormap,
        "splat_model": served if predicts_gaussians(served) else DEFAULT_SPLAT_MODEL,
        "models": [
            {
                "name": s.name, "output_kind": str(s.output_kind), "description": s.description,
                "license": s.license, "served": s.name == served, "splat": predicts_gaussians(s.name),
            }
            for s in specs
            if not s.test_only or s.name == served
        ],
    }  # fmt: skip
