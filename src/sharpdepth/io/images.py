"""Reading user images: any common format in, upright 8-bit RGB out, never a traceback.

Why the care: phones store pictures sideways with an EXIF orientation tag (8
variants, mirrored ones too), iPhones write HEIC, scanners write 16-bit or CMYK,
screenshots come as palette PNGs with alpha. A depth map must line up with the
picture the user *sees*, so orientation is applied before anything else, and
every pixel format is reduced to RGB the same way. Pillow's decompression-bomb
guard stays on, and a picture above the pixel limit is refused with a message
saying how to raise it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputImageError

try:  # HEIC/HEIF support is optional at runtime but a declared dependency.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF_AVAILABLE = False

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".gif", ".ppm", ".pgm"}
)

DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_TAGS = {
    "FocalLength": 0x920A,
    "FocalLengthIn35mmFilm": 0xA405,
    "FocalPlaneXResolution": 0xA20E,
    "FocalPlaneYResolution": 0xA20F,
    "FocalPlaneResolutionUnit": 0xA210,
    "PixelXDimension": 0xA002,
    "PixelYDimension": 0xA003,
    "Make": 0x010F,
    "Model": 0x0110,
}
# FocalPlaneResolutionUnit -> millimetres per unit (EXIF 2.3: 2 inch, 3 cm; 4/5 are common extensions).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


@dataclass
class FocalInfo:
    """Focal length derived from EXIF, with the rule that produced it."""

    focal_px: float
    rule: str
    """"35mm-equivalent" or "focal-plane-resolution"."""


@dataclass
class LoadedImage:
    rgb: np.ndarray
    """HxWx3 uint8, upright (EXIF orientation applied)."""
    path: str | None = None
    orientation: int = 1
    exif: dict[str, Any] = field(default_factory=dict)
    exif_focal: FocalInfo | None = None
    original_mode: str = "RGB"
    format: str | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _rational(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def read_exif(img: Image.Image) -> tuple[int, dict[str, Any]]:
    """(orientation, selected EXIF tags by name) — missing tags are absent."""
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must not make the picture unreadable
        return 1, {}
    orientation = int(exif.get(_ORIENTATION, 1) or 1)
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    tags: dict[str, Any] = {}
    for name, tag in _TAGS.items():
        value = sub.get(tag, exif.get(tag))
        if value is not None:
            tags[name] = value if isinstance(value, str) else _rational(value)
    return orientation, {k: v for k, v in tags.items() if v is not None}


def focal_from_exif(tags: dict[str, Any], width: int, height: int) -> FocalInfo | None:
    """Focal length in pixels for the upright image of size width x height.

    1. `FocalLengthIn35mmFilm`: the official Depth Pro rule, matching the image
       diagonal to the 36x24 mm full-frame diagonal.
    2. Else physical `FocalLength` (mm) times the sensor's pixel density
       (`FocalPlaneXResolution` per `FocalPlaneResolutionUnit`), rescaled if the
       picture was resized since capture (`PixelXDimension`/`PixelYDimension`).
    """
    f35 = tags.get("FocalLengthIn35mmFilm")
    if f35 and f35 >= 1:
        return FocalInfo(f35 * math.hypot(width, height) / _FULL_FRAME_DIAGONAL_MM, "35mm-equivalent")
    f_mm = tags.get("FocalLength")
    density = tags.get("FocalPlaneXResolution")
    unit_mm = _UNIT_MM.get(int(tags.get("FocalPlaneResolutionUnit", 2) or 2))
    if not (f_mm and f_mm > 0 and density and density > 0 and unit_mm):
        return None
    focal_px = f_mm * density / unit_mm
    orig_w, orig_h = tags.get("PixelXDimension"), tags.get("PixelYDimension")
    if orig_w and orig_h and orig_w > 0 and orig_h > 0:
        # Long sides compare correctly whatever rotation the orientation tag applied.
        focal_px *= max(width, height) / max(orig_w, orig_h)
    return FocalInfo(focal_px, "focal-plane-resolution")


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> HxWx3 uint8. 16-bit and float data are scaled, not clipped."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(np.nanmax(arr)), 1e-12) if arr.size else 1.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode != "RGB":
        img = img.convert("RGB")  # RGBA/LA drop alpha, CMYK/YCbCr/L/1/P convert
    return np.asarray(img, dtype=np.uint8).copy()


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read a picture file upright as RGB, or raise InputImageError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise InputImageError(f"{path}: no such file")
    if path.is_dir():
        raise InputImageError(f"{path}: is a directory, not an image")
    if path.suffix.lower() in (".heic", ".heif") and not HEIF_AVAILABLE:
        raise InputImageError(f"{path}: HEIC needs pillow-heif (pip install pillow-heif)")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            # Above the limit Pillow only warns up to 2x; refuse it like a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                img.load()
                return _finish(img, str(path), fmt)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputImageError(
            f"{path}: image too large (over {max_pixels:,} pixels); raise the limit with --max-pixels"
        ) from None
    except UnidentifiedImageError:
        raise InputImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputImageError(f"{path}: corrupt or truncated image ({_short(exc)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _finish(img: Image.Image, source: str | None, fmt: str | None) -> LoadedImage:
    orientation, tags = read_exif(img)
    mode = img.mode
    upright = ImageOps.exif_transpose(img) if orientation != 1 else img
    rgb = to_rgb8(upright)
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise InputImageError(f"{source or 'image'}: too small ({rgb.shape[1]}x{rgb.shape[0]} pixels)")
    focal = focal_from_exif(tags, rgb.shape[1], rgb.shape[0])
    return LoadedImage(rgb, source, orientation, tags, focal, mode, fmt)


def as_loaded_image(image: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Accept a path, a PIL image or an HxWx3 / HxW array (uint8, or float in [0, 1])."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, str | Path):
        return load_image(image, max_pixels)
    if isinstance(image, Image.Image):
        image.load()
        return _finish(image, getattr(image, "filename", None) or None, image.format)
    if isinstance(image, np.ndarray):
        return LoadedImage(_array_to_rgb8(image))
    raise InputImageError(f"unsupported image type {type(image).__name__}: give a path, PIL image or array")


def _array_to_rgb8(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputImageError(f"image array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputImageError("image array contains NaN or infinite values")
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    raise InputImageError(f"unsupported image array dtype {arr.dtype}")
