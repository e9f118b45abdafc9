"""Colour views of depth results.

Views colour *inverse* depth (disparity): near things get the bright end of the
map and the far range, where depth changes little visually, is compressed —
the convention of Depth Pro, Depth Anything and MiDaS demos. The colour
tables are 256-entry LUTs (matplotlib's perceptual maps and Google's Turbo),
shipped as data so we need no plotting library.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

from ..errors import OptionError
from ..maps import normalize_percentile

COLORMAPS = ("inferno", "turbo", "viridis", "magma", "plasma", "spectral", "gray")


@cache
def _luts() -> dict[str, np.ndarray]:
    with resources.files("sharpdepth.assets").joinpath("colormaps.npz").open("rb") as fh:
        data = np.load(fh)
        return {name: data[name] for name in data.files}


def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colour table."""
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp] * 3, axis=1)
    tables = _luts()
    if name not in tables:
        raise OptionError(f"unknown colormap {name!r}; choose from {', '.join(COLORMAPS)}")
    return tables[name]


def normalize_for_view(values: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Map finite values to [0, 1] with robust percentiles; invalid pixels -> 0 (`maps.normalize_percentile`)."""
    return normalize_percentile(values, None, low_pct, high_pct, fill=0.0)


def colorize(values01: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """[0, 1] float map -> HxWx3 uint8 through the named LUT."""
    idx = np.clip(np.rint(np.asarray(values01) * 255.0), 0, 255).astype(np.uint8)
    return lut(cmap)[idx]


def disparity_view(disparity: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """Colour view of inverse depth (near = bright)."""
    return colorize(normalize_for_view(disparity), cmap)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Input photo and its view next to each other (same height)."""
    if left.shape[0] != right.shape[0]:
        raise ValueError("side_by_side needs images of equal height")
    return np.concatenate([left, right], axis=1)
