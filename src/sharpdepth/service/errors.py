"""HTTP errors of the service: one JSON shape, `{"error": "<one line>"}`, with the right status.

Library errors keep their meaning across the wire: a bad option is the
client's fault (400), a value outside its documented range, an image that
cannot be decoded or an empty 3D result is 422, and so on.
Anything else is a bug and becomes 500 with a generic message (the traceback
goes to the server log, never to the client).
"""

from __future__ import annotations

from ..errors import (
    EmptyResultError,
    InputImageError,
    OptionError,
    OutOfRangeError,
    RelativeDepthError,
    SharpDepthError,
)


class ApiError(Exception):
    """An error answer: HTTP status, one-line message and optional headers (e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def status_for(exc: SharpDepthError) -> int:
    """The HTTP status that says whose fault a library error is.

    A value outside its documented range and an input that leaves nothing to return are
    well-formed requests that cannot be served (422); other option errors are malformed (400).
    """
    if isinstance(exc, OutOfRangeError | EmptyResultError):
        return 422
    if isinstance(exc, OptionError | RelativeDepthError):
        return 400
    if isinstance(exc, InputImageError):
        return 422
    return 500


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
