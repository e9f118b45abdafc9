"""Small helpers the route modules share: JSON without NaN, a pixel from the query string."""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse

from ...geometry.measure import parse_pixel


def finite(value: object) -> object:
    """JSON has no NaN or infinity (an unknown focal, an empty map): they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_answer(content: object) -> JSONResponse:
    return JSONResponse(finite(content))


def pixel(text: str | None) -> tuple[float, float] | None:
    return None if text is None else parse_pixel(text)
