"""Portrait mode: keep the subject sharp, blur the background by its depth.

1. **Subject** — from depth alone: the photo's disparity (1/z, or a relative
   model's disparity) is split into near and far by Otsu's threshold, and the
   nearest *large* connected near region is the subject (ground that runs into
   the bottom edge across most of the width is passed over). Or the user points
   at it: the connected region around that pixel whose disparity stays within a
   tolerance of the picked one.
2. **Matte** — depth edges are a few pixels off the photo's edges and cannot
   resolve hair, so the hard mask is refined with a colour guided filter on the
   photo (fast guided filter: solved at <= 1024 px, applied at full size),
   restricted to a band around the mask edge.
3. **Background** — blurred with the layered depth-of-field renderer (`dof`),
   focused on the subject, with the subject's core forced sharp and the matte's
   transition pixels given the background's depth (the depth map's edge would
   otherwise keep a ring of background in focus). Result =
   matte * photo + (1 - matte) * blurred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import OptionError
from ..maps import normalize_percentile, require_valid, valid_mask
from ..result import DepthResult
from .common import guided_coefficients, linear_to_srgb, pull_push, resize_plane, srgb_to_linear
from .dof import boost_highlights, coc_for_result, render_layered_blur
from .settings import PortraitSettings

__all__ = ["PortraitOutput", "PortraitSettings", "find_subject", "portrait", "refine_matte"]

MIN_SUBJECT_FRACTION = 0.01


def normalized_disparity(result: DepthResult) -> np.ndarray:
    """Disparity mapped to [0, 1] (1st..99th percentile; near = 1); invalid pixels -> 0 (far)."""
    disparity = result.disparity.astype(np.float64)
    valid = valid_mask(result.prediction, result.kind)
    require_valid(valid)
    return normalize_percentile(disparity, valid, fill=0.0).astype(np.float64)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Threshold in [0, 1] maximising the between-class variance of `values`."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    total = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total * w0 - m0) ** 2 / (w0 * (1.0 - w0))
    between[~np.isfinite(between)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def ground_like(disp: np.ndarray, min_rise: float = 0.5) -> np.ndarray:
    """Pixels on a floor-like surface: disparity rising steadily toward the bottom of the picture.

    A floor (seen from above its level) has disparity growing linearly down the
    image; a standing subject has nearly constant disparity down its height.
    `min_rise` is the rise in normalised disparity per image height. "Steadily"
    means the slope agrees at a fine and a coarse scale: the top edge of a near
    object also rises downward, but only in one step, not as a ramp.
    """
    h, w = disp.shape
    coarse_y, coarse_x = np.gradient(ndimage.gaussian_filter(disp, sigma=max(1.0, 0.01 * max(h, w))))
    fine_y = np.gradient(ndimage.gaussian_filter(disp, sigma=1.0), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        agree = (fine_y > 0.5 * coarse_y) & (fine_y < 2.0 * coarse_y)
    return (coarse_y * h > min_rise) & (coarse_y > 2.0 * np.abs(coarse_x)) & agree


def find_subject(result: DepthResult, point: tuple[float, float] | None = None, tolerance: float = 0.12) -> np.ndarray:
    """Boolean HxW mask of the subject (see module doc). `tolerance` is in normalised disparity."""
    disp = normalized_disparity(result)
    h, w = disp.shape
    if point is not None:
        x, y = point
        if not (0 <= round(x) < w and 0 <= round(y) < h):
            raise OptionError(f"subject point ({x:g}, {y:g}) is outside the {w}x{h} image")
        row, col = int(round(y)), int(round(x))
        patch = disp[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3]
        seed = float(np.median(patch))
        labels, _ = ndimage.label(np.abs(disp - seed) <= tolerance)
        return labels == labels[row, col]
    raw = (disp >= otsu_threshold(disp)) & ~ground_like(disp)
    near = ndimage.binary_opening(raw, iterations=1)  # cut thin bridges to other near things
    labels, count = ndimage.label(near)
    if count == 0:
        raise OptionError("no subject found in the depth map; point at it with --subject x,y")
    index = np.arange(1, count + 1)
    area = ndimage.sum(np.ones_like(disp), labels, index) / disp.size
    nearness = ndimage.mean(disp, labels, index)
    bottom = np.array([np.count_nonzero(labels[-1] == i) / w for i in index])
    score = nearness * np.sqrt(area) * np.where(bottom > 0.6, 0.25, 1.0)
    score[area < MIN_SUBJECT_FRACTION] = -1.0
    if score.max() <= 0:
        score = area  # only small regions: take the largest
    subject = labels == index[int(np.argmax(score))]
    subject |= raw & ndimage.binary_dilation(subject, iterations=4)  # give back what the opening shaved off
    # holes the floor test or the opening punched into the subject, but not background seen through it
    holes = ndimage.binary_fill_holes(subject) & ~subject
    return subject | (holes & (disp >= otsu_threshold(disp)))


def refine_matte(image: np.ndarray, mask: np.ndarray, band_px: int | None = None, eps: float = 1e-4) -> np.ndarray:
    """Soft matte in [0, 1] from a hard mask whose edge is only known to within `band_px`.

    A trimap: sure subject (mask eroded by the band) = 1, sure background (outside
    the dilated mask) = 0, the band between unknown. A weighted guided filter fits,
    window by window, a linear colour model to the sure pixels only, so band pixels
    coloured like the subject go to 1 and those coloured like the background to 0:
    the matte's edge moves to the photo's edge.
    """
    h, w = mask.shape
    band_px = band_px or max(2, round(0.006 * max(h, w)))
    sure_fg = ndimage.binary_erosion(mask, iterations=band_px)
    sure_bg = ~ndimage.binary_dilation(mask, iterations=band_px)
    trimap = sure_fg.astype(np.float32)
    known = (sure_fg | sure_bg).astype(np.float32)
    scale = min(1.0, 1024.0 / max(h, w))
    size = (max(round(h * scale), 1), max(round(w * scale), 1))
    guide_full = image.astype(np.float32) / 255.0
    guide = guide_full if scale == 1.0 else np.stack([resize_plane(c, size) for c in guide_full.transpose(2, 0, 1)], -1)
    src = trimap if scale == 1.0 else resize_plane(trimap, size)
    weights = known if scale == 1.0 else resize_plane(known, size)
    radius = max(2, round((band_px + 2) * scale))
    a, b = guided_coefficients(guide, src, radius, eps, weights)
    if scale != 1.0:
        a = np.stack([resize_plane(c, (h, w)) for c in a.transpose(2, 0, 1)], -1)
        b = resize_plane(b, (h, w))
    soft = np.clip(np.sum(a * guide_full, axis=-1) + b, 0.0, 1.0)
    return np.where(sure_fg, 1.0, np.where(sure_bg, 0.0, soft)).astype(np.float32)


@dataclass
class PortraitOutput:
    image: np.ndarray
    matte: np.ndarray
    subject: np.ndarray
    coc_px: np.ndarray


def portrait(
    result: DepthResult, settings: PortraitSettings | None = None, image: np.ndarray | None = None
) -> PortraitOutput:
    """Portrait-mode picture of `result`'s photo (metric: thin lens at the settings' f-number; relative:
    their blur strength)."""
    settings = settings or PortraitSettings()
    image = result.image if image is None else image
    if image is None:
        raise OptionError("portrait mode needs the photo")
    subject = find_subject(result, settings.subject_px, settings.subject_tolerance)
    matte = refine_matte(image, subject)
    # focus on the subject: its median depth (metric) or disparity (relative), via a pixel at that value
    disp = normalized_disparity(result)
    focus_pixel = _pixel_at_median(disp, subject)
    dof = settings.dof(focus_pixel, settings.blur_cap_px(result.height, result.width))
    coc, _ = coc_for_result(result, dof)
    coc = _background_coc_behind_matte(coc, matte)
    radius = coc.astype(np.float64) / 2.0
    linear = boost_highlights(srgb_to_linear(image), radius, settings.highlight_boost)
    blurred = render_layered_blur(linear, radius, settings.shape)
    sharp = srgb_to_linear(image)
    out = matte[None] * sharp + (1.0 - matte[None]) * blurred
    return PortraitOutput(linear_to_srgb(out), matte, subject, coc)


def _pixel_at_median(values: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """A subject pixel whose value is the subject's median (focus on the subject as a whole)."""
    median = np.median(values[mask])
    rows, cols = np.nonzero(mask)
    best = int(np.argmin(np.abs(values[rows, cols] - median)))
    return float(cols[best]), float(rows[best])


def _background_coc_behind_matte(coc: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """Subject core sharp; the matte's transition pixels blurred like the background next to them."""
    core = matte >= 0.95
    background = matte <= 0.05
    known = background.astype(np.float32)
    extended = pull_push(coc[None].astype(np.float32), known)[0]
    out = np.where(background, coc, extended)
    out[core] = 0.0
    return out.astype(np.float32)
