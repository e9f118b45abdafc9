"""Reading a request's multipart upload: bounded, in memory, and a dropped client is not an error.

The body is refused over --max-upload-mb before (or while) it is read; files stay in memory (the
body is already capped, so there is nothing to spool to disk). A client that hangs up mid-upload
raises `ClientGone`, which the app logs as one line and counts on its own, never as a 500.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .errors import ApiError

MULTIPART_OVERHEAD = 64 * 1024
"""Room for multipart headers and boundaries on top of --max-upload-mb of file data."""


class ClientGone(Exception):
    """The client closed the connection before its upload was complete: nobody is left to answer."""


class _InMemoryParser(MultiPartParser):
    """Starlette's parser, keeping files in memory: the body is already capped, so no spooling to disk."""

    spool_max_size = 2**40


@dataclass
class Upload:
    data: bytes
    filename: str | None


async def read_form(request: Request, max_upload_bytes: int, max_upload_mb: float) -> FormData:
    """The multipart form, refusing bodies over the limit before (or while) reading them."""
    limit = max_upload_bytes + MULTIPART_OVERHEAD
    too_big = ApiError(413, f"upload over the limit of {max_upload_mb:g} MB (--max-upload-mb)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "send the photo as multipart/form-data, field 'image'")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise too_big
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone(f"after {total:,} bytes") from None
    body = b"".join(chunks)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = _InMemoryParser(request.headers, replay(), max_files=2, max_fields=20)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart form ({exc.message})") from None


async def file_field(form: FormData, name: str) -> Upload | None:
    """The uploaded file in form field `name`, or None when the field is absent."""
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, UploadFile):
        raise ApiError(400, f"form field '{name}' must be a file upload")
    return Upload(await value.read(), value.filename)


def stem(upload: Upload | None) -> str:
    """A safe download name from the client's file name (`photo_depth.npz` -> `photo`)."""
    name = Path(upload.filename).stem if upload is not None and upload.filename else "image"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._")[:64]
    return re.sub(r"_(depth|disparity)$", "", cleaned) or "image"
