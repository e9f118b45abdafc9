"""Photos in and out for geometry and effects: the upright picture a depth map belongs to, and saving renders.

Effects are re-run many times on one prediction (another focus point, another
camera path), so they start from the photo plus a saved result
(`sharpdepth.io.depth_files.read_depth_result(path, image=load_photo(...))`)
instead of the network.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import OptionError
from .atomic import write_bytes_atomic
from .images import DEFAULT_MAX_PIXELS, load_image

__all__ = ["encode_image", "load_photo", "save_image"]


def load_photo(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The photo as upright HxWx3 uint8 (EXIF orientation applied, like `predict` sees it)."""
    return load_image(path, max_pixels).rgb


def save_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an HxWx3 uint8 image atomically; format from the suffix (.jpg, .png, .webp, ...)."""
    path = Path(path)
    write_bytes_atomic(path, encode_image(rgb, path.suffix, quality, name=str(path)))
    return path


def encode_image(rgb: np.ndarray, suffix: str, quality: int = 95, name: str | None = None) -> bytes:
    """An HxWx3 uint8 image as the bytes of a file with this suffix (.png, .jpg, .webp, ...)."""
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise OptionError(f"{name or 'image'}: unknown image type {suffix!r} (use .png, .jpg or .webp)")
    img = Image.fromarray(np.ascontiguousarray(rgb))
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()
