"""Stereo pairs from one photo: left/right views, red-cyan anaglyph, side-by-side for VR viewers.

Two parallel cameras `baseline_m` apart (default 6.3 cm, human eyes) see a
point at depth z with a horizontal disparity of f * B / z pixels. The photo is
taken as the view from the middle (`center=True`, each eye B/2 away, so each
synthesised view uncovers only half as much) or as the left eye. Views are
rendered by `warp.render_view` (z-buffered splatting, holes filled from the
background side).

`convergence_m` puts the zero-parallax ("screen") plane at that depth by
shifting the views' principal points: nearer things then pop out of the
screen, farther ones sit behind it. Without it the cameras are parallel and
everything is behind the screen (disparity exactly f * B / z).

Relative results have no metres: give `max_disparity_px` instead of a
baseline — the nearest things get that disparity, the farthest none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError, RelativeDepthError
from ..geometry.camera import Camera
from ..result import DepthResult
from .common import linear_to_srgb, srgb_to_linear
from .parallax import motion_depth
from .warp import render_view

DEFAULT_BASELINE_M = 0.063
ANAGLYPH_MODES = ("color", "half-color", "gray")


@dataclass
class StereoPair:
    left: np.ndarray
    right: np.ndarray
    """HxWx3 uint8 each."""
    left_holes: np.ndarray
    right_holes: np.ndarray


def stereo_pair(
    result: DepthResult,
    baseline_m: float | None = None,
    center: bool = True,
    convergence_m: float | None = None,
    max_disparity_px: float | None = None,
    image: np.ndarray | None = None,
) -> StereoPair:
    """Left and right views of the photo (see module doc)."""
    image = result.image if image is None else image
    if image is None:
        raise OptionError("a stereo pair needs the photo")
    depth, focal, metric = motion_depth(result)
    if metric:
        if max_disparity_px is not None:
            raise OptionError("give a baseline in metres for a metric result, not --max-disparity")
        baseline = DEFAULT_BASELINE_M if baseline_m is None else float(baseline_m)
    else:
        if baseline_m is not None or convergence_m is not None:
            raise RelativeDepthError(
                f"model '{result.model_name or 'unknown'}' predicts relative disparity: a baseline or convergence "
                "in metres needs metric depth; use --max-disparity PX"
            )
        disparity_px = 0.03 * result.width if max_disparity_px is None else float(max_disparity_px)
        if not disparity_px >= 0:
            raise OptionError(f"maximum disparity must be >= 0 pixels, got {disparity_px}")
        # pseudo-depth spans 1 (nearest) .. 10: scale the baseline so the nearest gets disparity_px
        baseline = disparity_px * float(np.min(depth)) / focal
    if not baseline >= 0:
        raise OptionError(f"baseline must be >= 0 metres, got {baseline}")
    if convergence_m is not None and not convergence_m > 0:
        raise OptionError(f"convergence distance must be positive metres, got {convergence_m}")
    h, w = depth.shape
    cam = Camera.from_focal(focal, w, h)
    linear = srgb_to_linear(image)
    offsets = (-baseline / 2, baseline / 2) if center else (0.0, baseline)
    views = []
    for x in offsets:
        shift = 0.0 if convergence_m is None else focal * x / convergence_m
        dst = Camera(cam.fx, cam.fy, cam.cx + shift, cam.cy, w, h)
        if x == 0.0 and shift == 0.0:
            views.append((image.copy(), np.zeros((h, w), dtype=bool)))
            continue
        view = render_view(linear, depth, cam, np.array([x, 0.0, 0.0]), dst)
        views.append((linear_to_srgb(view.image), view.holes))
    (left, lh), (right, rh) = views
    return StereoPair(left, right, lh, rh)


def anaglyph(left: np.ndarray, right: np.ndarray, mode: str = "half-color") -> np.ndarray:
    """Red-cyan anaglyph: red from the left eye, green and blue from the right.

    "color" keeps full colour (strong retinal rivalry on saturated reds),
    "half-color" uses the left eye's luminance for red (the usual compromise),
    "gray" uses luminance for all channels.
    """
    if mode not in ANAGLYPH_MODES:
        raise OptionError(f"unknown anaglyph mode {mode!r}; choose from {', '.join(ANAGLYPH_MODES)}")

    def luma(rgb: np.ndarray) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32), 0, 255)

    out = right.copy()
    if mode == "color":
        out[..., 0] = left[..., 0]
    elif mode == "half-color":
        out[..., 0] = (luma(left) + 0.5).astype(np.uint8)
    else:
        out[..., 0] = (luma(left) + 0.5).astype(np.uint8)
        gray_right = (luma(right) + 0.5).astype(np.uint8)
        out[..., 1] = gray_right
        out[..., 2] = gray_right
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, half_width: bool = False, cross_eyed: bool = False) -> np.ndarray:
    """Left | right (parallel viewing, VR viewers); `half_width` squeezes each to half (3D TVs)."""
    a, b = (right, left) if cross_eyed else (left, right)
    pair = np.concatenate([a, b], axis=1)
    if half_width:
        from PIL import Image

        h, w = left.shape[:2]
        pair = np.asarray(Image.fromarray(pair).resize((w - w % 2, h), Image.Resampling.LANCZOS))
    return pair
