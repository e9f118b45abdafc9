"""Turning uploaded bytes into what the engine and the effects take, without touching the disk.

Images are decoded in memory by Pillow exactly as `sharpdepth predict` reads a
file (`io.images.as_loaded_image`: EXIF orientation, any mode to RGB), so the
depth of an upload equals the CLI's for the same file. The status says what
went wrong: 415 for bytes that are no image format we read, 422 for an image
that cannot be decoded (truncated, corrupt), 413 for too many pixels.

A saved depth result (the npz a client got from /v1/depth) is read by the
same reader as `--depth FILE`; that reader wants a path, so the bytes go into
a private temporary folder that is removed before the function returns.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import SharpDepthError, first_line
from ..io.depth_files import read_depth_result
from ..io.images import LoadedImage, as_loaded_image
from ..result import DepthResult
from .errors import ApiError, status_for

# Formats `sharpdepth predict` reads (io.images.IMAGE_SUFFIXES); Pillow tries no other decoder.
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "TIFF", "WEBP", "HEIF", "GIF", "PPM")
DEPTH_SUFFIXES = (".npz", ".npy", ".exr", ".pfm", ".png")


def decode_image(data: bytes, max_pixels: int, what: str = "image") -> LoadedImage:
    """Upright RGB of an uploaded picture, or ApiError (400 empty, 413 too many pixels, 415, 422)."""
    with _open(data, max_pixels, what) as img:
        try:
            return as_loaded_image(img, max_pixels)
        except SharpDepthError as exc:
            raise ApiError(status_for(exc), f"the {what}: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ApiError(422, f"the {what} is corrupt or truncated ({first_line(exc, 120)})") from None


def image_pixels(data: bytes, max_pixels: int, what: str = "image") -> int:
    """Width x height of an uploaded picture from its header alone (nothing decoded): what admission charges."""
    with _open(data, max_pixels, what) as img:
        return int(img.width * img.height)


def _open(data: bytes, max_pixels: int, what: str) -> Image.Image:
    """The picture opened lazily (header read), refused when empty, unknown or over `max_pixels`."""
    if not data:
        raise ApiError(400, f"the {what} upload is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=_formats())
    except UnidentifiedImageError:
        raise ApiError(415, f"the {what} upload is not an image (JPEG, PNG, HEIC, WebP, TIFF, BMP, GIF)") from None
    except Image.DecompressionBombError:
        raise ApiError(413, f"the {what} has too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ApiError(422, f"the {what} cannot be decoded ({first_line(exc, 120)})") from None
    if img.width * img.height > max_pixels:
        img.close()
        raise ApiError(413, f"the {what} is {img.width}x{img.height}, over the limit of {max_pixels:,} pixels")
    return img


def _formats() -> list[str]:
    Image.init()  # registers the plugins (and pillow-heif's, imported by io.images)
    return [f for f in IMAGE_FORMATS if f in Image.OPEN]


def read_depth_upload(
    data: bytes, filename: str | None, image: np.ndarray | None, focal_px: float | None, max_pixels: int
) -> DepthResult:
    """A previous result sent back (npz from /v1/depth, or npy/exr/pfm/png16), matched to `image`."""
    if not data:
        raise ApiError(400, "the depth upload is empty")
    suffix = Path(filename or "depth.npz").suffix.lower() or ".npz"
    if suffix not in DEPTH_SUFFIXES:
        raise ApiError(415, f"the depth upload must be one of {', '.join(DEPTH_SUFFIXES)}, got {suffix!r}")
    if suffix == ".npz":
        _check_npz(data, max_pixels)
    name = _safe_name(Path(filename or "depth").stem) + suffix
    try:
        with tempfile.TemporaryDirectory(prefix="sharpdepth-serve-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            result = read_depth_result(path, focal_px=focal_px, image=image)
    except SharpDepthError as exc:
        raise ApiError(status_for(exc), f"the depth upload: {_strip_path(str(exc), name)}") from None
    if result.prediction.size > max_pixels:
        raise ApiError(413, f"the depth map is over the limit of {max_pixels:,} pixels")
    return result


def _check_npz(data: bytes, max_pixels: int) -> None:
    """Refuse a zip whose members would decompress to far more than one float32 map (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ApiError(422, f"the depth upload is not a readable npz ({first_line(exc, 120)})") from None
    if total > 8 * max_pixels + 2**20:
        raise ApiError(413, "the depth upload decompresses to more than a depth map of the pixel limit")


def _safe_name(stem: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip("._")
    return cleaned[:64] or "depth"


def _strip_path(message: str, name: str) -> str:
    """Error messages name the temporary file; the client only knows its own file name."""
    return re.sub(r"\S*/" + re.escape(name), name, message)
