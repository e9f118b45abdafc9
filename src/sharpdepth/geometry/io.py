"""Getting a depth result and its photo into geometry and effects, and their outputs out.

Effects are re-run many times on one prediction (another focus point, another
camera path), so every command can start from a saved result instead of the
network: `load_depth_result("out/photo.npz", image=rgb)`.

Accepted files
--------------
- `.npz` written by `sharpdepth predict`: array `depth` (float32 HxW, metres of
  z-depth; metric models) or `disparity` (relative models), scalars `focal_px`
  (NaN when unknown), `output_kind`, `model`.
- `.npy`: a bare float32 HxW map. Whether it is metres or relative disparity is
  taken from the name (`*_depth.npy` / `*_disparity.npy`, as `predict` names
  them) or from `kind=`; the focal length, which a bare array cannot carry, from
  `focal_px=` (the CLI's `--focal-px`).
- `.exr`, `.pfm`, 16-bit `.png` written by `predict` (through the shared reader).

Reading is delegated to the shared reader `sharpdepth.io.depth_files.read_depth_result`
(one parser for every format); this module adds what effects need on top:
matching the map to the photo it belongs to.

Depth maps and photos must line up pixel for pixel. A map saved at another
resolution (same aspect ratio) is resampled to the photo's size and its focal
length scaled with it; a different aspect ratio is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputImageError, OptionError
from ..io.atomic import atomic_path
from ..io.depth_files import read_depth_result
from ..io.images import load_image
from ..result import DepthResult, FocalSource, OutputKind

__all__ = [
    "atomic_output",
    "load_depth_result",
    "load_photo",
    "match_result_to_image",
    "save_image",
]


def load_photo(path: str | Path) -> np.ndarray:
    """The photo as upright HxWx3 uint8 (EXIF orientation applied, like `predict` sees it)."""
    return load_image(path).rgb


def load_depth_result(
    path: str | Path,
    image: np.ndarray | None = None,
    focal_px: float | None = None,
    kind: OutputKind | str | None = None,
) -> DepthResult:
    """Read a saved depth result (.npz/.npy/.exr/.pfm/.png) and attach `image` if given.

    `focal_px` overrides the file's focal length (and is the only source of one
    for a bare .npy). With `image`, the map is resampled to the image's size.
    """
    path = Path(path)
    if focal_px is not None and not (np.isfinite(focal_px) and focal_px > 0):
        raise OptionError(f"focal length must be a positive number of pixels, got {focal_px}")
    if path.suffix.lower() == ".npy" and kind is None:
        kind = _kind_for_bare_array(path)
    result = read_depth_result(path, kind=kind, focal_px=focal_px)
    if image is not None:
        result = match_result_to_image(result, image)
    return result


def _kind_for_bare_array(path: Path) -> OutputKind:
    """A bare .npy names its kind like `predict` does; anything else is assumed to be metres."""
    return OutputKind.RELATIVE_DISPARITY if path.stem.endswith("disparity") else OutputKind.METRIC_DEPTH


def match_result_to_image(result: DepthResult, image: np.ndarray) -> DepthResult:
    """Return `result` at the image's resolution with the image attached.

    Resampling is bilinear over valid pixels only (invalid ones stay invalid and
    never bleed into their neighbours); focal length scales with the width.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputImageError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    if (result.height, result.width) == (h, w):
        return replace(result, image=image)
    src_aspect = result.width / result.height
    if abs(src_aspect / (w / h) - 1.0) > 0.01:
        raise InputImageError(
            f"depth map is {result.width}x{result.height} but the photo is {w}x{h} (another aspect ratio); "
            "was it computed from this photo?"
        )
    prediction = resize_map(result.prediction, (h, w))
    focal = None if result.focal_px is None else float(result.focal_px) * w / result.width
    return replace(result, prediction=prediction, focal_px=focal, image=image)


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HxW float map with NaN/<=0 treated as missing (normalised convolution)."""
    h, w = size
    values = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(values) & (values != 0)
    filled = np.where(valid, values, 0.0).astype(np.float32)
    num = np.asarray(Image.fromarray(filled, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    den = np.asarray(Image.fromarray(valid.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0.5, num / np.maximum(den, 1e-6), np.nan)
    return out.astype(np.float32)


def result_with_focal(result: DepthResult, focal_px: float | None) -> DepthResult:
    """`result` with a user-given focal length (None keeps the result's own)."""
    if focal_px is None:
        return result
    if not (np.isfinite(focal_px) and focal_px > 0):
        raise OptionError(f"focal length must be a positive number of pixels, got {focal_px}")
    return replace(result, focal_px=float(focal_px), focal_source=FocalSource.USER)


@contextmanager
def atomic_output(dest: str | Path) -> Iterator[Path]:
    """A temporary path beside `dest`, renamed over it only when the block succeeds.

    The temporary file is created private (mode 0600); before the rename it gets
    the permissions a plainly created file would have (0666 minus the umask).
    """
    with atomic_path(dest) as tmp:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an HxWx3 uint8 image atomically; format from the suffix (.jpg, .png, .webp, ...)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise OptionError(f"{path}: unknown image type {path.suffix!r} (use .png, .jpg or .webp)")
    img = Image.fromarray(np.ascontiguousarray(rgb))
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_output(path) as tmp:
        img.save(tmp, format=fmt, **options)
    return path
