"""The service's routes, one module per kind of answer; `ROUTERS` is what `create_app` includes.

Each path is written once, in its route's decorator; `ROUTE_PATHS` reads them back from the
routers (e.g. to label /metrics).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from . import depth, effects, splat, status

ROUTERS: tuple[APIRouter, ...] = (status.router, depth.router, effects.router, splat.router)
ROUTE_PATHS: frozenset[str] = frozenset(
    route.path for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)
)
