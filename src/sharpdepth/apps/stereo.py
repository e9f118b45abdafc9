"""Stereo pairs from one photo: left/right views, red-cyan anaglyph, side-by-side for VR viewers.

Two parallel cameras `baseline_m` apart (default 6.3 cm, human eyes) see a
point at depth z with a horizontal disparity of f * B / z pixels. The photo is
taken as the view from the middle (`center=True`, each eye B/2 away, so each
synthesised view uncovers only half as much) or as the left eye. Views are
rendered by `warp.render_view` (z-buffered splatting, holes filled from the
background side).

The sign: a point at depth z sits f * B / z pixels further *right* in the left
view than in the right one — crossed parallax, which a viewer sees *in front
of* the screen. With parallel cameras (no convergence) that holds for every
finite depth; only infinity has zero parallax, i.e. lies at the screen plane.
`convergence_m` = c moves the zero-parallax ("screen") plane to depth c by
shifting the views' principal points: the parallax becomes f * B * (1/z - 1/c),
so nearer things pop out of the screen (crossed) and farther ones sit behind
it (uncrossed, negative).

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
from .settings import ANAGLYPH_MODES, StereoSettings, check_choice
from .warp import render_view

__all__ = ["StereoPair", "StereoSettings", "anaglyph", "side_by_side", "stereo_images", "stereo_pair"]


@dataclass
class StereoPair:
    left: np.ndarray
    right: np.ndarray
    """HxWx3 uint8 each."""
    left_holes: np.ndarray
    right_holes: np.ndarray


def stereo_pair(
    result: DepthResult, settings: StereoSettings | None = None, image: np.ndarray | None = None
) -> StereoPair:
    """Left and right views of the photo (see module doc)."""
    settings = settings or StereoSettings()
    image = result.image if image is None else image
    if image is None:
        raise OptionError("a stereo pair needs the photo")
    depth, focal, metric = motion_depth(result)
    convergence_m = settings.convergence_m
    if metric:
        if settings.max_disparity_px is not None:
            raise OptionError("give a baseline in metres for a metric result, not --max-disparity")
        baseline = settings.metric_baseline_m
    else:
        if settings.baseline_m is not None or convergence_m is not None:
            raise RelativeDepthError(
                f"model '{result.model_name or 'unknown'}' predicts relative disparity: a baseline or convergence "
                "in metres needs metric depth; use --max-disparity PX"
            )
        # pseudo-depth spans 1 (nearest) .. 10: scale the baseline so the nearest gets the disparity asked for
        baseline = settings.relative_disparity_px(result.width) * float(np.min(depth)) / focal
    center = settings.center
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
    check_choice(mode, ANAGLYPH_MODES, "anaglyph mode")

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


def stereo_images(pair: StereoPair, settings: StereoSettings) -> list[np.ndarray]:
    """The pictures to write for the settings' layout: one (anaglyph, sbs) or two (pair: left, right)."""
    if settings.layout == "anaglyph":
        return [anaglyph(pair.left, pair.right, settings.anaglyph)]
    if settings.layout == "sbs":
        return [side_by_side(pair.left, pair.right, settings.half_width)]
    return [pair.left, pair.right]
