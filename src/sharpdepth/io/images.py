"""Reading user images: any common format in, upright 8-bit RGB out, never a traceback.

Why the care: phones store pictures sideways with an EXIF orientation tag (8
variants, mirrored ones too), iPhones write HEIC, scanners write 16-bit or CMYK,
screenshots come as palette PNGs with alpha. A depth map must line up with the
picture the user *sees*, so orientation is applied before anything else, and
every pixel format is reduced to RGB the same way. Pillow's decompression-bomb
guard stays on, and a picture above the pixel limit is refused with a message
saying how to raise it.

EXIF is advice, never a reason to lose a picture: a tag that is not a number
(`FocalLength = 'fifty'`, `FocalPlaneResolutionUnit = 'cm'`) or a focal length
outside what lenses have (`FocalLengthIn35mmFilm = 65535`) is ignored, with a
note (`LoadedImage.notes`, written to the sidecar), and the model estimates the
focal length instead. Animated images use their first frame, with a note.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputImageError, first_line

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
_TEXT_TAGS = frozenset({"Make", "Model"})
# Plausibility bounds (mm). 35 mm-equivalent: 4 mm (beyond the widest fisheye) to 5000 mm (the longest
# bridge-camera zooms reach ~3000 mm); physical: 0.5 mm (phone ultra-wides ~1.5 mm) to 2000 mm.
F35_RANGE_MM = (4.0, 5000.0)
FOCAL_RANGE_MM = (0.5, 2000.0)
FOV_RANGE_DEG = (0.3, 175.0)
MIN_SIDE_PX = 2
"""The smallest picture side accepted, from files and arrays alike."""
_ORIENTATION_WORDS = {
    1: "none (already upright)",
    2: "mirrored left-right",
    3: "rotated 180°",
    4: "mirrored top-bottom",
    5: "transposed (mirrored and rotated 90°)",
    6: "rotated 90° clockwise",
    7: "transversed (mirrored and rotated 270°)",
    8: "rotated 90° counter-clockwise",
}


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
    notes: list[str] = field(default_factory=list)
    """What was ignored or assumed while reading (odd EXIF, first frame of an animation)."""
    orientation_applied: str = "none (already upright)"
    """How the stored pixels were turned upright, in words (also when the decoder did it, as HEIF does)."""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _rational(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def read_exif(img: Image.Image, notes: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    """(orientation, selected EXIF tags by name) — missing or unusable tags are absent.

    Numeric tags that are not numbers (text, empty, broken rationals) are left
    out and described in `notes`: odd EXIF must never cost the picture.
    """
    notes = [] if notes is None else notes
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must not make the picture unreadable
        notes.append("EXIF block unreadable: ignored")
        return 1, {}
    orientation = _orientation(exif.get(_ORIENTATION, 1), notes)
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    tags: dict[str, Any] = {}
    for name, tag in _TAGS.items():
        value = sub.get(tag, exif.get(tag))
        if value is None:
            continue
        if name in _TEXT_TAGS:
            tags[name] = str(value).strip("\x00 ")
            continue
        number = _rational(value)
        if number is None:
            notes.append(f"EXIF {name} {_show(value)} is not a number: ignored")
            if name == "FocalPlaneResolutionUnit":  # kept as text: no unit means no trustworthy density
                tags[name] = str(value)
        else:
            tags[name] = number
    return orientation, tags


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _orientation(value: Any, notes: list[str]) -> int:
    number = _rational(value)
    if number is None or int(number) != number or not 1 <= number <= 8:
        notes.append(f"EXIF Orientation {_show(value)} is not one of 1..8: ignored")
        return 1
    return int(number)


def focal_from_exif(tags: dict[str, Any], width: int, height: int, notes: list[str] | None = None) -> FocalInfo | None:
    """Focal length in pixels for the upright image of size width x height, if EXIF gives a plausible one.

    1. `FocalLengthIn35mmFilm`: the official Depth Pro rule, matching the image
       diagonal to the 36x24 mm full-frame diagonal.
    2. Else physical `FocalLength` (mm) times the sensor's pixel density
       (`FocalPlaneXResolution` per `FocalPlaneResolutionUnit`), rescaled if the
       picture was resized since capture (`PixelXDimension`/`PixelYDimension`).

    Values outside what lenses have (`F35_RANGE_MM`, `FOCAL_RANGE_MM`, a field of
    view outside `FOV_RANGE_DEG`) are ignored with a note, so the model
    estimates the focal length instead of every depth being scaled by nonsense.
    """
    notes = [] if notes is None else notes
    f35 = _number(tags.get("FocalLengthIn35mmFilm"))
    if f35 is not None and f35 > 0:
        if not F35_RANGE_MM[0] <= f35 <= F35_RANGE_MM[1]:
            notes.append(
                f"EXIF FocalLengthIn35mmFilm = {f35:g} mm is implausible (outside {F35_RANGE_MM[0]:g}.."
                f"{F35_RANGE_MM[1]:g} mm): ignored, the model estimates the focal length"
            )
        else:
            info = FocalInfo(f35 * math.hypot(width, height) / _FULL_FRAME_DIAGONAL_MM, "35mm-equivalent")
            return _plausible_fov(info, width, notes)
    return _focal_from_plane_resolution(tags, width, height, notes)


def _number(value: Any) -> float | None:
    return None if isinstance(value, str) else _rational(value)


def _focal_from_plane_resolution(tags: dict[str, Any], width: int, height: int, notes: list[str]) -> FocalInfo | None:
    f_mm = _number(tags.get("FocalLength"))
    density = _number(tags.get("FocalPlaneXResolution"))
    raw_unit = tags.get("FocalPlaneResolutionUnit", 2)
    unit = _number(raw_unit)
    unit_mm = _UNIT_MM.get(int(unit)) if unit is not None and unit == int(unit) else None
    if not (f_mm and f_mm > 0 and density and density > 0) or isinstance(raw_unit, str):
        return None  # (a text unit was already noted by read_exif)
    if unit_mm is None:
        notes.append(f"EXIF FocalPlaneResolutionUnit {_show(tags.get('FocalPlaneResolutionUnit'))} unknown: ignored")
        return None
    if not FOCAL_RANGE_MM[0] <= f_mm <= FOCAL_RANGE_MM[1]:
        notes.append(
            f"EXIF FocalLength = {f_mm:g} mm is implausible (outside {FOCAL_RANGE_MM[0]:g}..{FOCAL_RANGE_MM[1]:g} mm): "
            "ignored, the model estimates the focal length"
        )
        return None
    focal_px = f_mm * density / unit_mm
    orig_w, orig_h = _number(tags.get("PixelXDimension")), _number(tags.get("PixelYDimension"))
    if orig_w and orig_h and orig_w > 0 and orig_h > 0:
        # Long sides compare correctly whatever rotation the orientation tag applied.
        focal_px *= max(width, height) / max(orig_w, orig_h)
    return _plausible_fov(FocalInfo(focal_px, "focal-plane-resolution"), width, notes)


def _plausible_fov(info: FocalInfo, width: int, notes: list[str]) -> FocalInfo | None:
    fov = math.degrees(2.0 * math.atan(0.5 * width / info.focal_px))
    if FOV_RANGE_DEG[0] <= fov <= FOV_RANGE_DEG[1]:
        return info
    notes.append(
        f"EXIF focal length gives {info.focal_px:.0f} px, a {fov:.2g}° field of view (outside "
        f"{FOV_RANGE_DEG[0]:g}..{FOV_RANGE_DEG[1]:g}°): ignored, the model estimates the focal length"
    )
    return None


def check_image_size(width: int, height: int, source: str | None = None) -> None:
    """The one size rule for files and arrays: at least `MIN_SIDE_PX` pixels each way."""
    if width < MIN_SIDE_PX or height < MIN_SIDE_PX:
        raise InputImageError(
            f"{source or 'image'}: too small ({width}x{height} pixels; at least {MIN_SIDE_PX}x{MIN_SIDE_PX})"
        )


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
        raise InputImageError(f"{path}: corrupt or truncated image ({first_line(exc, 120)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _finish(img: Image.Image, source: str | None, fmt: str | None) -> LoadedImage:
    notes: list[str] = []
    frames = int(getattr(img, "n_frames", 1) or 1)
    if getattr(img, "is_animated", False) and frames > 1:
        notes.append(f"animated image ({frames} frames): the first frame is used")
    orientation, tags = read_exif(img, notes)
    mode = img.mode
    decoder_turned = _decoder_orientation(img)
    if decoder_turned is not None:  # HEIF: libheif already turned the pixels, EXIF now says 1
        orientation = decoder_turned
        applied = f"{_ORIENTATION_WORDS.get(orientation, '?')} (EXIF orientation {orientation}, by the decoder)"
    else:
        applied = _ORIENTATION_WORDS.get(orientation, "none")
        if orientation != 1:
            applied += f" (EXIF orientation {orientation})"
    upright = ImageOps.exif_transpose(img) if orientation != 1 and decoder_turned is None else img
    rgb = to_rgb8(upright)
    check_image_size(rgb.shape[1], rgb.shape[0], source)
    focal = focal_from_exif(tags, rgb.shape[1], rgb.shape[0], notes)
    return LoadedImage(rgb, source, orientation, tags, focal, mode, fmt, notes, applied)


def _decoder_orientation(img: Image.Image) -> int | None:
    """The orientation a decoder applied itself (pillow-heif keeps it in `info["original_orientation"]`)."""
    value = img.info.get("original_orientation")
    number = _rational(value)
    if number is None or number == 1 or not 1 <= number <= 8:
        return None
    return int(number)


def as_loaded_image(image: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Accept a path, a PIL image or an HxWx3 / HxW array (uint8, uint16, or float in [0, 1])."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, str | Path):
        return load_image(image, max_pixels)
    if isinstance(image, Image.Image):
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InputImageError(f"image: corrupt or truncated ({first_line(exc, 120)})") from None
        return _finish(image, getattr(image, "filename", None) or None, image.format)
    if isinstance(image, np.ndarray):
        return LoadedImage(_array_to_rgb8(image))
    raise InputImageError(f"unsupported image type {type(image).__name__}: give a path, PIL image or array")


def _array_to_rgb8(arr: np.ndarray) -> np.ndarray:
    """HxW / HxWx3 / HxWx4 array -> HxWx3 uint8; refuses what would silently give another picture."""
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputImageError(f"image array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    check_image_size(arr.shape[1], arr.shape[0], "image array")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputImageError("image array contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputImageError(
                f"float image arrays must hold values in [0, 1], got {lo:g}..{hi:g}"
                + ("; for 0..255 data pass uint8 (or divide by 255)" if hi <= 255.0 else "")
            )
        return (arr * 255.0 + 0.5).astype(np.uint8)
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    raise InputImageError(f"unsupported image array dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
