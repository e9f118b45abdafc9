"""Small operations on depth and disparity maps that every layer needs, written once.

This is the lowest layer beside `errors` and `result`: it imports nothing else
from sharpdepth, and torch only inside the functions that take tensors, so the
command line can import it without paying for torch.

Which pixels are valid depends on what the map holds (`OutputKind`):

- metric depth (metres of z-depth): finite and > 0. Zero and negative values
  are "no depth" (sky, holes, the invalid value 0 of a 16-bit PNG).
- relative disparity (affine-invariant inverse depth): every finite value. A
  disparity of exactly 0 is a real answer (MiDaS gives 0 for the sky after its
  ReLU: infinitely far), and an affine-invariant map may be negative too.

Resizing, normalisation and masks below all follow that one rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import OptionError, OutOfRangeError
from .result import OutputKind

if TYPE_CHECKING:
    import torch

__all__ = [
    "Range",
    "check_focal_px",
    "fill_invalid_as_far",
    "normalize_percentile",
    "percentile_range",
    "require_valid",
    "rescale_intrinsics",
    "resize_map",
    "resize_map_tensor",
    "share_at_maximum",
    "valid_depth_mask",
    "valid_mask",
]

FOCAL_MESSAGE = "focal length must be a positive number of pixels, got {value}"
MAX_FOCAL_PX = 1e6
"""A field of view under 0.5 degree on the largest photo accepted: beyond it a focal length is a typo."""


# ---------------------------------------------------------------- validity
def valid_depth_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels with a usable metric depth: finite and positive."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


def valid_mask(values: np.ndarray, kind: OutputKind | str) -> np.ndarray:
    """Valid pixels of a map of the given kind (see the module docstring for the rule)."""
    if OutputKind(kind) is OutputKind.METRIC_DEPTH:
        return valid_depth_mask(values)
    return np.isfinite(np.asarray(values))


def require_valid(mask: np.ndarray, what: str = "depth map") -> None:
    """Refuse a map without a single valid pixel (nothing sensible can be computed from it)."""
    if not np.any(mask):
        raise OptionError(f"the {what} has no valid pixel")


def fill_invalid_as_far(depth: np.ndarray) -> np.ndarray:
    """Invalid metric depth (NaN, inf, <= 0: sky or unknown) becomes the farthest valid depth.

    Effects treat "unknown" as "background": blurred like the far end, moved
    like the far end, never pulled to the camera.
    """
    depth = np.asarray(depth)
    valid = valid_depth_mask(depth)
    require_valid(valid)
    return np.where(valid, depth, np.max(depth[valid])).astype(np.float32)


def share_at_maximum(values: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """(share of valid pixels at the map's maximum, that maximum): how much of a map is clamped.

    A network that clamps its output (Depth Pro at 1e4 m) puts most of a map
    at one value when its focal length is absurd; a real scene almost never does.
    """
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(values))
    if not valid.any():
        return 0.0, float("nan")
    top = float(values[valid].max())
    at_top = valid & (values >= top - 1e-6 * max(abs(top), 1.0))
    return float(np.count_nonzero(at_top)) / float(np.count_nonzero(valid)), top


# ---------------------------------------------------------------- normalisation
def percentile_range(
    values: np.ndarray, valid: np.ndarray | None = None, low_pct: float = 1.0, high_pct: float = 99.0
) -> tuple[float, float]:
    """(lo, hi) percentiles of the valid values, with hi > lo always.

    Robust ends (1st..99th by default) so that one outlier pixel does not set
    the scale of a view, a blur or a matte. `valid` defaults to the finite pixels.
    """
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(values))
    require_valid(valid, "map")
    lo, hi = (float(x) for x in np.percentile(values[valid], [low_pct, high_pct]))
    return lo, max(hi, lo + 1e-12)


def normalize_percentile(
    values: np.ndarray,
    valid: np.ndarray | None = None,
    low_pct: float = 1.0,
    high_pct: float = 99.0,
    fill: float = 0.0,
) -> np.ndarray:
    """Map values to [0, 1] between their `low_pct`..`high_pct` percentiles; invalid pixels -> `fill`.

    A map with no valid pixel becomes all `fill` (a view of nothing is blank,
    not an error); callers that cannot work without depth call `require_valid`.
    """
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(values))
    if not valid.any():
        return np.full(values.shape, fill, dtype=np.float32)
    lo, hi = percentile_range(values, valid, low_pct, high_pct)
    with np.errstate(invalid="ignore"):
        out = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    out[~valid] = fill
    return out.astype(np.float32)


# ---------------------------------------------------------------- focal length and camera
def check_focal_px(value: float | None) -> float:
    """The focal length as a float, or OptionError with the one message every front end shows."""
    if value is None or not (isinstance(value, int | float | np.floating | np.integer) and math.isfinite(value)):
        raise OptionError(FOCAL_MESSAGE.format(value=value))
    if not value > 0:
        raise OptionError(FOCAL_MESSAGE.format(value=value))
    if value > MAX_FOCAL_PX:
        raise OutOfRangeError(f"focal length must be at most {MAX_FOCAL_PX:g} pixels, got {value:g}")
    return float(value)


@dataclass(frozen=True)
class Range:
    """The documented range of a number setting, checked once where the settings object is built.

    Every front end (command line, HTTP, Python) builds the same settings objects, so a range
    declared here is enforced for all of them: a value outside it is refused with
    `OutOfRangeError` (HTTP 422) instead of silently giving nonsense (an all-black picture from a
    focus at 1e308 m, a one-point cloud from 1e-30 m voxels). A value that is no finite number
    at all is an `OptionError`.
    """

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    """True: `low` itself is excluded (e.g. a distance must be > 0)."""
    integer: bool = False

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]{unit}"

    def check(self, value: float, what: str) -> float:
        """`value` (float, or int for an integer range) if inside the range, else a one-line error."""
        if self.integer:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise OptionError(f"{what} must be a whole number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise OptionError(f"{what} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise OptionError(f"{what} must be a finite number, got {value!r}")
        inside = (value > self.low if self.low_open else value >= self.low) and value <= self.high
        if not inside:
            raise OutOfRangeError(f"{what} must be in {self}, got {value:g}")
        return int(value) if self.integer else float(value)


def rescale_intrinsics(
    fx: float, fy: float, cx: float, cy: float, sx: float, sy: float
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of the same camera after resizing the image by (sx, sy).

    Pixel centres sit at integer coordinates, so the principal point scales
    about the image's corner (-0.5, -0.5), not about pixel (0, 0).
    """
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


# ---------------------------------------------------------------- resizing
def resize_map(values: np.ndarray, size: tuple[int, int], kind: OutputKind | str) -> np.ndarray:
    """Bilinear resize of an HxW float map to `size` (h, w) over its valid pixels only.

    Normalised convolution: values and the validity mask are resampled alike and
    divided, so invalid pixels (by the rule of `kind`) never bleed into their
    neighbours; an output pixel that is mostly invalid stays invalid (NaN).
    """
    h, w = size
    values = np.asarray(values, dtype=np.float32)
    valid = valid_mask(values, kind)
    if valid.all():
        resized = Image.fromarray(values, mode="F").resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.float32)
    filled = np.where(valid, values, 0.0).astype(np.float32)
    num = np.asarray(Image.fromarray(filled, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    den = np.asarray(Image.fromarray(valid.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0.5, num / np.maximum(den, 1e-6), np.nan)
    return out.astype(np.float32)


def resize_map_tensor(values: torch.Tensor, size: tuple[int, int], kind: OutputKind | str) -> torch.Tensor:
    """`resize_map` for a torch tensor (HxW, or NxHxW), on the tensor's own device.

    Same validity rule and normalised convolution, so post-processing can stay
    on the GPU; antialiased bilinear like Pillow's resize when shrinking.
    """
    import torch
    import torch.nn.functional as F

    squeeze = values.ndim == 2
    x = values.float()[None] if squeeze else values.float()
    x = x[:, None]  # N, 1, H, W
    if OutputKind(kind) is OutputKind.METRIC_DEPTH:
        valid = torch.isfinite(x) & (x > 0)
    else:
        valid = torch.isfinite(x)
    antialias = size[0] < x.shape[-2] or size[1] < x.shape[-1]

    def interp(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=antialias)

    if bool(valid.all()):
        out = interp(x)
    else:
        m = valid.float()
        num, den = interp(torch.where(valid, x, torch.zeros_like(x))), interp(m)
        out = torch.where(den > 0.5, num / den.clamp_min(1e-6), torch.full_like(num, float("nan")))
    out = out[:, 0]
    return out[0] if squeeze else out
