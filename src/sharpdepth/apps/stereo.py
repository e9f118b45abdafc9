"""Stereo from one picture and its depth: eye views, anaglyphs, and the layouts players read.

Geometry (see `StereoSettings`): two cameras `interaxial` apart, converged on
the screen plane at `convergence_m` by shifting their principal points, see a
point at depth z with a parallax of f * B * (1/z - 1/c) pixels: positive
(crossed, the point sits further *right* in the left view) in front of the
screen, negative (uncrossed) behind it, zero on it. Relative results: the
nearest things get `max_disparity` x width, the farthest none.

The picture is the middle view (`center=True`: each eye moves by half the
parallax, so each uncovers only half as much) or the left eye. The eyes are
rendered by `stereo_views.render_eye` (vectorised horizontal warp, z-buffer,
holes filled from the background side).

Layouts (`settings.layout`): `sbs` left | right (twice the width), `tb` left
over right (twice the height), `half-sbs` / `half-tb` the same squeezed to the
input's size (3D TVs; the eyes are rendered at half size, which is also twice
as fast), `anaglyph` one red-cyan picture, `vr180` each eye re-projected to
180x180 degree equirectangular, side by side (the file carries the spherical
metadata, `stereo_mp4`), `pair` two pictures, `spatial-heic` both eyes in one
HEIC (`spatial_photo`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError, RelativeDepthError
from ..result import DepthResult, focal_from_fov
from .settings import ANAGLYPH_MODES, StereoSettings, check_choice
from .stereo_views import (
    EyeView,
    disparity_range,
    dubois_anaglyph,
    half_size,
    metric_parallax,
    relative_parallax,
    render_eye,
)

__all__ = [
    "StereoPair",
    "StereoSettings",
    "anaglyph",
    "compose",
    "layout_frame",
    "parallax_map",
    "side_by_side",
    "stereo_images",
    "stereo_pair",
]

DEFAULT_FOV_DEG = 60.0
"""Horizontal field of view assumed for results without a focal length."""
EYE_SIDES = {"left": 1.0, "right": -1.0}


@dataclass
class StereoPair:
    left: np.ndarray
    right: np.ndarray
    """HxWx3 uint8 each."""
    left_holes: np.ndarray
    right_holes: np.ndarray


def result_focal_px(result: DepthResult) -> float:
    return float(result.focal_px or focal_from_fov(DEFAULT_FOV_DEG, result.width))


def parallax_map(
    result: DepthResult, settings: StereoSettings, relative_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Total parallax (left minus right position, pixels) of every pixel of `result` (see module doc).

    `relative_range`: the (lo, hi) disparity of the shot for relative results, so
    that a video keeps one mapping per shot; None: this frame's own range.
    """
    if result.is_metric:
        if settings.max_disparity is not None:
            raise OptionError("give --interaxial-mm / --convergence-m for a metric result, not --max-disparity")
        depth = result.depth
        return metric_parallax(depth, result_focal_px(result), settings.interaxial_m, settings.screen_m)
    if settings.interaxial_mm is not None or settings.convergence_m is not None:
        raise RelativeDepthError(
            f"model '{result.model_name or 'unknown'}' predicts {result.kind.meaning}: an interaxial distance or "
            "convergence in metres needs metric depth; use --max-disparity (fraction of the width)"
        )
    disparity = result.disparity
    lo, hi = relative_range or disparity_range(disparity)
    return relative_parallax(disparity, lo, hi, settings.disparity_fraction * result.width)


def _sides(settings: StereoSettings) -> tuple[float, float]:
    """How far each eye moves, in units of half the parallax: centred (+1, -1) or photo = left (0, -2)."""
    return (1.0, -1.0) if settings.center else (0.0, -2.0)


def render_pair(
    rgb: np.ndarray, parallax: np.ndarray, settings: StereoSettings, fill: str | None = None
) -> tuple[EyeView, EyeView]:
    """Left and right eye views of `rgb` (HxWx3 uint8) with total `parallax` (HxW, px)."""
    a, b = _sides(settings)
    left, right = _both_eyes([(rgb, parallax, a), (rgb, parallax, b)], fill or settings.fill)
    return left, right


def _both_eyes(jobs: list[tuple[np.ndarray, np.ndarray, float]], fill: str) -> list[EyeView]:
    """Render the eyes at once: the caller draws the first while a helper thread draws the rest.

    Most of the work is numpy and OpenCV, which release the GIL. The helper lives only for the
    call, so no thread outlives a job (a job that ends leaves no sharpdepth thread behind).
    """
    (rgb, parallax, side), rest = jobs[0], jobs[1:]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sharpdepth-eye") as pool:
        others = [pool.submit(render_eye, r, p, s, fill) for r, p, s in rest]
        first = render_eye(rgb, parallax, side, fill)
        return [first] + [f.result() for f in others]


def stereo_pair(
    result: DepthResult, settings: StereoSettings | None = None, image: np.ndarray | None = None
) -> StereoPair:
    """Left and right views of the photo at full size (see module doc)."""
    settings = settings or StereoSettings()
    image = result.image if image is None else image
    if image is None:
        raise OptionError("a stereo pair needs the photo")
    left, right = render_pair(image, parallax_map(result, settings), settings)
    return StereoPair(left.image, right.image, left.holes, right.holes)


# ---------------------------------------------------------------- anaglyphs and layouts
def anaglyph(left: np.ndarray, right: np.ndarray, mode: str = "dubois") -> np.ndarray:
    """Red-cyan anaglyph: red from the left eye, green and blue from the right.

    "dubois" is Dubois' least-squares projection (least colour error through
    the filters, little ghosting); "color" keeps full colour (strong retinal
    rivalry on saturated reds), "half-color" uses the left eye's luminance for
    red (the usual compromise), "gray" uses luminance for all channels.
    """
    check_choice(mode, ANAGLYPH_MODES, "anaglyph mode")
    if mode == "dubois":
        return dubois_anaglyph(left, right)

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
    if half_width:
        a, b = half_size(a, 1), half_size(b, 1)
    return np.concatenate([a, b], axis=1)


def _half_views(rgb: np.ndarray, parallax: np.ndarray, settings: StereoSettings, axis: int) -> np.ndarray:
    """Half-sbs (axis 1) / half-tb (axis 0): eyes rendered at half size, packed into the input's size."""
    import cv2

    h, w = parallax.shape
    sizes = ((w // 2, h), (w - w // 2, h)) if axis == 1 else ((w, h // 2), (w, h - h // 2))
    resized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for size in sizes:  # both eyes share one resize when the size splits evenly
        if size not in resized:
            small = rgb if size == (w, h) else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            p = cv2.resize(parallax, size, interpolation=cv2.INTER_LINEAR) * np.float32(size[0] / w)
            resized[size] = (small, p)
    jobs = [(*resized[size], side) for side, size in zip(_sides(settings), sizes, strict=True)]
    eyes = [view.image for view in _both_eyes(jobs, settings.fill)]
    return np.concatenate(eyes, axis=axis)


def compose(
    rgb: np.ndarray, parallax: np.ndarray, settings: StereoSettings, vr: Equirect180 | None = None
) -> np.ndarray:
    """The one frame of `settings.layout` (not `pair`/`spatial-heic`, which are two pictures)."""
    layout = settings.layout
    if layout == "half-sbs":
        return _half_views(rgb, parallax, settings, 1)
    if layout == "half-tb":
        return _half_views(rgb, parallax, settings, 0)
    left, right = render_pair(rgb, parallax, settings)
    return layout_frame(left.image, right.image, settings, vr)


def layout_frame(
    left: np.ndarray, right: np.ndarray, settings: StereoSettings, vr: Equirect180 | None = None
) -> np.ndarray:
    """The one frame of `settings.layout` from two full-size eye pictures (any source of eyes:
    the depth warp, or views rendered from SHARP Gaussians); half layouts squeeze each eye."""
    layout = settings.layout
    if layout in ("half-sbs", "half-tb"):
        import cv2

        axis = 1 if layout == "half-sbs" else 0
        h, w = left.shape[:2]
        sizes = ((w // 2, h), (w - w // 2, h)) if axis == 1 else ((w, h // 2), (w, h - h // 2))
        eyes = [
            cv2.resize(eye, size, interpolation=cv2.INTER_AREA) for eye, size in zip((left, right), sizes, strict=True)
        ]
        return np.concatenate(eyes, axis=axis)  # the input's size, as `_half_views` packs it
    if layout == "sbs":
        return np.concatenate([left, right], axis=1)
    if layout == "tb":
        return np.concatenate([left, right], axis=0)
    if layout == "anaglyph":
        return anaglyph(left, right, settings.anaglyph)
    if layout == "vr180":
        if vr is None:
            raise OptionError("the vr180 layout needs the camera's focal length")
        return np.concatenate([vr.project(left), vr.project(right)], axis=1)
    raise OptionError(f"layout {layout!r} is two pictures, not one frame")


def stereo_images(result: DepthResult, settings: StereoSettings) -> list[np.ndarray]:
    """The pictures to write for a photo: one frame, or two (pair, spatial-heic: left, right)."""
    image = result.image
    if image is None:
        raise OptionError("a stereo picture needs the photo")
    parallax = parallax_map(result, settings)
    if settings.layout in ("pair", "spatial-heic"):
        left, right = render_pair(image, parallax, settings)
        return [left.image, right.image]
    vr = Equirect180.for_view(result.width, result.height, result_focal_px(result))
    return [compose(image, parallax, settings, vr)]


# ---------------------------------------------------------------- VR180
@dataclass
class Equirect180:
    """Re-projection of a perspective view onto one eye's 180 x 180 degree equirectangular half.

    Column j of the `size` x `size` eye covers longitude (j + 0.5) / size * 180 - 90
    degrees, row i latitude 90 - (i + 0.5) / size * 180; each direction is
    projected through the pinhole camera (focal `focal_px`, centred), and
    directions outside the picture are black. The maps are computed once per clip.
    """

    width: int
    height: int
    focal_px: float
    size: int
    _maps: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def for_view(cls, width: int, height: int, focal_px: float, max_size: int = 2048) -> Equirect180:
        """Eye size matching the picture's angular resolution at its centre (pi * f per 180 degrees),
        at most twice the picture's longer side and `max_size`; even (for 4:2:0 video)."""
        want = min(math.pi * focal_px, 2 * max(width, height), max_size)
        return cls(width, height, focal_px, max(16, 2 * round(want / 2)))

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._maps is None:
            n = self.size
            lon = ((np.arange(n, dtype=np.float64) + 0.5) / n - 0.5) * math.pi
            lat = (0.5 - (np.arange(n, dtype=np.float64) + 0.5) / n) * math.pi
            lon_g, lat_g = np.meshgrid(lon, lat)
            x = np.cos(lat_g) * np.sin(lon_g)
            y = -np.sin(lat_g)
            z = np.cos(lat_g) * np.cos(lon_g)
            front = z > 1e-6
            zs = np.where(front, z, 1.0)
            u = np.where(front, self.focal_px * x / zs + (self.width - 1) / 2, -1e4)
            v = np.where(front, self.focal_px * y / zs + (self.height - 1) / 2, -1e4)
            self._maps = (u.astype(np.float32), v.astype(np.float32))
        return self._maps

    def project(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        map_x, map_y = self.maps()
        return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
