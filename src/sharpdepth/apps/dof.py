"""Depth of field / refocusing: a thin-lens camera simulated on a photo and its depth map.

Blur size: the thin-lens circle of confusion
--------------------------------------------
A lens of focal length f and f-number N (aperture diameter A = f/N) focused at
distance s images a point at depth z as a disc of diameter on the sensor

    c = A * f / (s - f) * |z - s| / z          (all in mm)

Converting to pixels needs the pixel pitch. Depth Pro and EXIF give the focal
length in *pixels* (`focal_px`); the pitch is the simulated sensor's diagonal
over the image's diagonal (43.27 mm for the default full-frame 36 x 24 mm
sensor), and the lens's focal length `focal_px * pitch` — the photo's 35
mm-equivalent focal length, defined on the diagonal exactly as the EXIF rule
derives `focal_px` from it. A portrait and a landscape shot of one scene with
one lens therefore blur alike (dividing the sensor *width* by the upright
width would blur the portrait 1.34x more). A different `focal_length_mm` may
be given to simulate another lens on the same picture (it scales the blur, not
the framing). Focus is a distance in metres, or a pixel whose (robust) depth
is used.

Since c is proportional to |1/s - 1/z|, blur is linear in *disparity*; relative
disparity (Depth Anything, MiDaS) therefore also works, with a blur strength
(`max_blur_px`: the blur diameter at the far end of the scene) in place of the
lens parameters, which would need metres.

Rendering: layered, occlusion-aware
-----------------------------------
A single blur of the whole picture mixes the in-focus subject into the blurred
background around it (a halo) and the background into the subject's edge. Here
the signed blur radius (negative in front of the focus plane) is split into
layers with nearly constant blur, each pixel shared between its two nearest
layers so there is no banding. From the farthest layer to the nearest:

1. the layer's colours are extended (pull-push) a little way *behind* the
   nearer pixels that cover it, with full coverage there — so its blur near an
   occluder averages its own colours, not the occluder's, and is not darkened;
2. colour (premultiplied) and coverage are blurred with the aperture kernel
   (disc or hexagon, in linear light, FFT for large radii, computed at reduced
   resolution when the blur is large);
3. the result is composited *over* what is behind it.

A sharp foreground therefore keeps its edge (it is composited last and
unblurred) and the blurred background next to it contains no foreground
colour; a blurred foreground spreads semi-transparently over a sharp
background, as a real lens does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError, RelativeDepthError
from ..geometry.camera import require_metric
from ..geometry.measure import robust_depth
from ..maps import check_focal_px, fill_invalid_as_far, percentile_range, valid_mask
from ..result import DepthResult
from .common import (
    bokeh_kernel,
    convolve,
    linear_to_srgb,
    pull_push,
    resize_plane,
    srgb_to_linear,
)
from .settings import (
    FULL_FRAME_WIDTH_MM,
    KERNEL_SHAPES,
    DofSettings,
    LensSettings,
    check_choice,
    check_non_negative,
    check_positive,
)

__all__ = ["DofOutput", "DofSettings", "coc_for_result", "depth_of_field", "pixel_pitch_mm", "thin_lens_coc_px"]

_LEVEL_RATIO = 0.3  # successive layer radii differ by 30 % (at least 1 px)


# ---------------------------------------------------------------- blur size
def pixel_pitch_mm(height_px: int, width_px: int, sensor_width_mm: float = FULL_FRAME_WIDTH_MM) -> float:
    """Millimetres per pixel: the (3:2) sensor's diagonal over the image diagonal (see module doc)."""
    if height_px < 1 or width_px < 1:
        raise OptionError(f"the image is empty ({width_px}x{height_px} pixels)")
    return LensSettings(sensor_width_mm=sensor_width_mm).sensor_diagonal_mm / math.hypot(width_px, height_px)


def thin_lens_coc_px(
    depth_m: np.ndarray,
    focus_m: float,
    f_number: float,
    focal_px: float | None,
    image_size: tuple[int, int],
    focal_length_mm: float | None = None,
    sensor_width_mm: float = FULL_FRAME_WIDTH_MM,
) -> np.ndarray:
    """Signed circle-of-confusion *diameter* in pixels: > 0 behind the focus plane, < 0 in front.

    `image_size` is (height, width) of the picture `focal_px` belongs to; only
    its diagonal matters, so the result does not depend on the orientation.
    """
    check_positive(f_number, "f-number")
    focal_px = check_focal_px(focal_px)
    pitch_mm = pixel_pitch_mm(image_size[0], image_size[1], sensor_width_mm)
    f_mm = focal_length_mm if focal_length_mm is not None else focal_px * pitch_mm
    check_positive(f_mm, "focal length (mm)")
    s_mm = check_positive(focus_m, "focus distance (metres)") * 1000.0
    if not s_mm > f_mm:
        raise OptionError(f"focus distance {focus_m:g} m is inside the lens's focal length ({f_mm:.1f} mm)")
    z_mm = np.asarray(depth_m, dtype=np.float64) * 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        c_mm = (f_mm / f_number) * f_mm / (s_mm - f_mm) * (z_mm - s_mm) / z_mm
    return (c_mm / pitch_mm).astype(np.float32)


def disparity_coc_px(disparity: np.ndarray, focus_disparity: float, max_blur_px: float) -> np.ndarray:
    """Signed blur diameter for relative disparity: linear in disparity, `max_blur_px` over the full range.

    The range is the 1st..99th percentile of valid disparity, so one outlier
    pixel does not set the scale.
    """
    check_non_negative(max_blur_px, "maximum blur (pixels)")
    disparity = np.asarray(disparity, dtype=np.float64)
    lo, hi = percentile_range(disparity)
    return (max_blur_px * (focus_disparity - disparity) / (hi - lo)).astype(np.float32)


# ---------------------------------------------------------------- layered renderer
def blur_levels(r_min: float, r_max: float, ratio: float = _LEVEL_RATIO, min_step: float = 1.0) -> np.ndarray:
    """Sorted signed radii covering [r_min, r_max], always including 0, spaced ~`ratio` apart."""

    def side(limit: float) -> list[float]:
        out, level = [], 0.0
        while level < limit - 1e-6:
            level += max(min_step, ratio * level)
            out.append(level)
        return out

    pos = side(max(r_max, 0.0))
    neg = side(max(-r_min, 0.0))
    return np.array(sorted([-v for v in neg] + [0.0] + pos), dtype=np.float64)


def _memberships(radius: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel: index of the layer just below its radius and the weight t of the one above."""
    r = np.clip(radius, levels[0], levels[-1])
    lo = np.clip(np.searchsorted(levels, r, side="right") - 1, 0, len(levels) - 2)
    gap = levels[lo + 1] - levels[lo]
    t = np.clip((r - levels[lo]) / gap, 0.0, 1.0)
    return lo, t


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)),
    )


def _blur_layer(stack: np.ndarray, radius: float, shape: str) -> np.ndarray:
    """Aperture blur of (C, h, w); large radii are blurred at reduced resolution (the result is smooth)."""
    factor = int(min(max(radius // 8, 1), 8))
    if factor == 1:
        return convolve(stack, bokeh_kernel(radius, shape))
    c, h, w = stack.shape
    padded = np.pad(stack, ((0, 0), (0, (-h) % factor), (0, (-w) % factor)), mode="edge")
    hs, ws = padded.shape[1] // factor, padded.shape[2] // factor
    small = padded.reshape(c, hs, factor, ws, factor).mean(axis=(2, 4))
    blurred = convolve(small, bokeh_kernel(radius / factor, shape))
    up = np.stack([resize_plane(ch, (hs * factor, ws * factor)) for ch in blurred])
    return up[:, :h, :w]


def render_layered_blur(image_linear: np.ndarray, radius: np.ndarray, shape: str = "disc") -> np.ndarray:
    """Occlusion-aware layered blur (see module doc).

    `image_linear` (3, H, W) linear light; `radius` HxW signed blur radius in pixels,
    ordered like depth (larger = farther; negative = in front of the focus plane).
    """
    from scipy.ndimage import distance_transform_edt

    check_choice(shape, KERNEL_SHAPES, "bokeh shape")
    radius = np.nan_to_num(np.asarray(radius, dtype=np.float64), nan=0.0)
    levels = blur_levels(float(radius.min()), float(radius.max()))
    if len(levels) == 1:
        return image_linear.copy()
    lo, t = _memberships(radius, levels)
    h, w = radius.shape
    out = np.zeros((3, h, w), dtype=np.float32)
    acc = np.zeros((h, w), dtype=np.float32)
    covered = np.zeros((h, w))  # weight of the layers done so far (this one and farther)
    counts = np.bincount(lo[t < 1], minlength=len(levels)) + np.bincount(lo[t > 0] + 1, minlength=len(levels))
    present = [k for k in range(len(levels)) if counts[k] > 0]
    for k in sorted(present, reverse=True):  # far to near
        weight = np.where(lo == k, 1.0 - t, 0.0) + np.where(lo + 1 == k, t, 0.0)
        support = weight > 0
        covered += weight
        nearer = np.clip(1.0 - covered, 0.0, 1.0)
        r_k = abs(levels[k])
        r_nearer = max((abs(levels[j]) for j in present if j < k), default=0.0)
        reach = int(math.ceil(r_nearer + r_k)) + 2  # how far behind occluders the layer must extend
        box = _bbox(support, reach + int(math.ceil(r_k)) + 1)
        if box is None:
            continue
        wk = weight[box].astype(np.float32)
        sup = support[box]
        band = (distance_transform_edt(~sup) <= reach) & (nearer[box] > 0)
        colour = image_linear[:, box[0], box[1]]
        extended = np.where(sup, colour, pull_push(colour, wk))
        fill = np.where(band, nearer[box], 0.0).astype(np.float32)
        stack = np.concatenate([colour * wk + extended * fill, (wk + fill)[None]])
        if r_k >= 0.5:
            stack = _blur_layer(stack, r_k, shape)
        a = np.clip(stack[3], 0.0, 1.0)
        out[:, box[0], box[1]] = out[:, box[0], box[1]] * (1.0 - a) + stack[:3]
        acc[box] = acc[box] * (1.0 - a) + a
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(acc > 1e-6, out / np.maximum(acc, 1e-6), image_linear).astype(np.float32)


def boost_highlights(image_linear: np.ndarray, radius: np.ndarray, gain: float, threshold: float = 0.85):
    """Brighten near-white pixels that will be blurred, standing in for the clipped dynamic range.

    A camera clips bright lights to white; blurred at their true brightness they
    make the bright discs of real bokeh. In-focus pixels (|r| < 1) are untouched.
    """
    if gain <= 0:
        return image_linear
    lum = 0.2126 * image_linear[0] + 0.7152 * image_linear[1] + 0.0722 * image_linear[2]
    ramp = np.clip((lum - threshold) / (1.0 - threshold), 0.0, 1.0) ** 2
    blurred = np.clip(np.abs(radius) - 0.5, 0.0, 1.0)
    return (image_linear * (1.0 + gain * ramp * blurred)).astype(np.float32)


# ---------------------------------------------------------------- public API
@dataclass
class DofOutput:
    image: np.ndarray
    """HxWx3 uint8."""
    coc_px: np.ndarray
    """Signed blur diameter per pixel (after the cap)."""
    focus: float
    """Focus distance in metres (metric) or the focus disparity (relative)."""
    metric: bool = True
    """Whether `focus` is in metres."""

    @property
    def focus_text(self) -> str:
        """The focus with its unit, for messages: "2.24 m" or "disparity 0.53"."""
        return f"{self.focus:.3g} m" if self.metric else f"disparity {self.focus:.3g}"


def coc_for_result(result: DepthResult, settings: DofSettings) -> tuple[np.ndarray, float]:
    """(signed blur diameter in pixels, focus) for a result, metric or relative."""
    cap = settings.blur_cap_px(result.height, result.width)
    if result.is_metric:
        require_metric(result)  # and a focal length
        depth = fill_invalid_as_far(result.depth)
        if settings.focus_m is not None:
            focus = float(settings.focus_m)
        else:
            focus = robust_depth(result.depth, settings.focus_px, settings.focus_window)[0]  # type: ignore[arg-type]
        coc = thin_lens_coc_px(
            depth, focus, settings.f_number, result.focal_px, (result.height, result.width),
            settings.focal_length_mm, settings.sensor_width_mm,
        )  # fmt: skip
        return np.clip(coc, -cap, cap), focus
    if settings.focus_m is not None or settings.focus_px is None:
        raise RelativeDepthError(
            f"model '{result.model_name or 'unknown'}' predicts {result.kind.meaning}: focus on a pixel "
            "(--focus-px) and set the blur strength (--max-blur) instead of metres"
        )
    disparity = result.disparity.astype(np.float64)
    valid = valid_mask(disparity, result.kind)
    if not valid.any():
        raise OptionError("the disparity map has no valid pixel")
    disparity = np.where(valid, disparity, np.min(disparity[valid]))  # unknown = farthest
    focus = _robust_disparity(disparity, settings.focus_px, settings.focus_window)
    return np.clip(disparity_coc_px(disparity, focus, cap), -cap, cap), focus


def _robust_disparity(disparity: np.ndarray, pixel: tuple[float, float], window: int) -> float:
    shifted = disparity - np.min(disparity) + 1.0  # robust_depth wants positive values
    return robust_depth(shifted, pixel, window)[0] + float(np.min(disparity)) - 1.0


def render_dof(image: np.ndarray, coc_px: np.ndarray, shape: str = "disc", highlight_boost: float = 1.0) -> np.ndarray:
    """Blur `image` (HxWx3 uint8) by the signed blur diameter map; returns uint8."""
    if image.shape[:2] != coc_px.shape:
        raise OptionError(f"image {image.shape[:2]} and blur map {coc_px.shape} differ in size")
    radius = np.asarray(coc_px, dtype=np.float64) / 2.0
    linear = boost_highlights(srgb_to_linear(image), radius, highlight_boost)
    return linear_to_srgb(render_layered_blur(linear, radius, shape))


def depth_of_field(result: DepthResult, settings: DofSettings, image: np.ndarray | None = None) -> DofOutput:
    """Refocus the photo of `result` (or `image`) with a simulated lens."""
    image = result.image if image is None else image
    if image is None:
        raise OptionError("depth of field needs the photo")
    coc, focus = coc_for_result(result, settings)
    return DofOutput(render_dof(image, coc, settings.shape, settings.highlight_boost), coc, focus, result.is_metric)
