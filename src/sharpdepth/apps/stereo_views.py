"""Fast eye views for stereo conversion: a horizontal forward warp with a z-buffer, then a fill.

The two eyes differ from the photo only by a horizontal offset (no rotation, same
intrinsics, the screen plane set by shifting principal points), so a view is a
per-row warp: a source pixel with parallax p moves by `shift = side * p / 2`
(left eye `side = +1`, right eye `-1`: a near point sits further right in the
left view — crossed parallax, in front of the screen). It is done in three
vectorised passes, with no Python loop over pixels:

1. Visibility: every source pixel lands on its nearest target column; where
   several land, the largest parallax (the nearest surface) wins
   (`np.maximum.at`).
2. Empty columns take the parallax of their background neighbour along the
   row (the farther of the nearest left and right winners). An empty column is
   a *crack* (a stretched surface) if its backward sample lands on a source
   pixel of that same parallax, else a *hole* (a disocclusion).
3. Colour: every visible pixel is sampled backward at `x - shift` with bilinear
   interpolation (`cv2.remap`), so planes move by exact sub-pixel amounts.

Holes are filled by `fill_holes_rows`: `stretch` repeats the background edge
pixel, `inpaint` is OpenCV's Telea inpainting, `depth-aware` mirrors the
background's texture across the edge, drawing only from pixels at the
background's depth — never from the foreground that caused the hole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .settings import STEREO_FILLS, check_choice

CRACK_TOLERANCE_PX = 0.75
"""An empty column whose backward sample has its parallax within this is a crack, not a hole."""
BACKGROUND_TOLERANCE_PX = 1.0
"""A pixel may lend its colour to a hole if its parallax exceeds the edge's by at most this."""


@dataclass
class EyeView:
    """One synthesised eye: picture, disocclusion mask, and the parallax of what each pixel shows."""

    image: np.ndarray
    """HxWx3 uint8, holes filled."""
    holes: np.ndarray
    """HxW bool: disoccluded pixels (filled, not seen in the source)."""
    parallax: np.ndarray
    """HxW float32 px: the visible surface's parallax (its background's in holes)."""
    edge: np.ndarray
    """HxW int: column of the background-side visible pixel each hole was filled from (its own column elsewhere)."""
    source_x: np.ndarray
    """HxW float32: source column each pixel was sampled from (holes: the edge's)."""


def _rows(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.broadcast_to(np.arange(w, dtype=np.float32), (h, w)), np.broadcast_to(
        np.arange(h, dtype=np.float32)[:, None], (h, w)
    )


def nearest_known(known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the column of the nearest known pixel to its left and to its right (-1 / w if none)."""
    h, w = known.shape
    cols = np.arange(w, dtype=np.int32)
    left = np.maximum.accumulate(np.where(known, cols, np.int32(-1)), axis=1)
    right = np.minimum.accumulate(np.where(known, cols, np.int32(w))[:, ::-1], axis=1)[:, ::-1]
    return left, right


def visible_parallax(parallax: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """(parallax of the surface each target pixel sees, known mask) — the z-buffered forward pass."""
    h, w = parallax.shape
    target = np.rint(np.arange(w, dtype=np.float32) + np.float32(side * 0.5) * parallax).astype(np.int32)
    ok = (target >= 0) & (target < w)
    flat = (np.arange(h, dtype=np.int32)[:, None] * np.int32(w) + target)[ok]
    best = np.full(h * w, -np.inf, dtype=np.float32)
    np.maximum.at(best, flat, parallax[ok])
    best = best.reshape(h, w)
    return best, np.isfinite(best)


def render_eye(rgb: np.ndarray, parallax: np.ndarray, side: float, fill: str = "depth-aware") -> EyeView:
    """The view of one eye (`side` +1 left, -1 right, 0 the photo itself); see the module doc.

    Full-image passes are few and cheap (forward pass, one remap); everything about
    empty columns is computed on those pixels only.
    """
    check_choice(fill, STEREO_FILLS, "fill")
    h, w = parallax.shape
    parallax = np.asarray(parallax, dtype=np.float32)
    if side == 0:
        cols = np.broadcast_to(np.arange(w, dtype=np.int32), (h, w)).copy()
        return EyeView(rgb.copy(), np.zeros((h, w), bool), parallax, cols, cols.astype(np.float32))
    best, known = visible_parallax(parallax, side)
    half = np.float32(side * 0.5)
    p_full = np.where(known, best, np.float32(0.0))
    edge = np.broadcast_to(np.arange(w, dtype=np.int32), (h, w)).copy()
    holes = np.zeros((h, w), bool)
    ey, ex = np.nonzero(~known)
    if ey.size:
        left, right = nearest_known(known)
        lft, rgt = left[ey, ex], right[ey, ex]
        p_left = np.where(lft >= 0, best[ey, np.clip(lft, 0, w - 1)], np.inf)
        p_right = np.where(rgt < w, best[ey, np.clip(rgt, 0, w - 1)], np.inf)
        background = np.minimum(p_left, p_right)
        background = np.where(np.isfinite(background), background, 0.0).astype(np.float32)
        side_edge = np.where(p_left <= p_right, lft, rgt)  # the background (smaller parallax) side
        p_full[ey, ex] = background
        back_x = ex - half * background
        inside = (back_x > -0.5) & (back_x < w - 0.5)
        seen = parallax[ey, np.clip(np.rint(back_x).astype(np.int32), 0, w - 1)]
        crack = inside & (np.abs(seen - background) < CRACK_TOLERANCE_PX)
        hole = ~crack
        holes[ey[hole], ex[hole]] = True
        edge[ey[hole], ex[hole]] = np.clip(side_edge[hole], 0, w - 1)
    xs = np.arange(w, dtype=np.float32)[None, :]
    map_x = xs - half * p_full
    map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    image = remap_linear_light(rgb, map_x, np.ascontiguousarray(map_y))
    source_x = map_x.copy()
    hy, hx = np.nonzero(holes)
    source_x[hy, hx] = map_x[hy, edge[hy, hx]]
    view = EyeView(image, holes, p_full, edge, source_x)
    if hy.size:
        view.image = fill_holes_rows(view, fill)
    return view


def remap_linear_light(rgb: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Bilinear resampling in linear light (sRGB values mix wrongly: edges darken, positions bias).

    Through 16-bit linear values and lookup tables, which costs little more than
    resampling the 8-bit values directly.
    """
    import cv2

    to_lin, to_srgb = _linear_luts()
    linear = to_lin[rgb]
    out = cv2.remap(linear, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return to_srgb[out]


_LUTS: tuple[np.ndarray, np.ndarray] | None = None


def _linear_luts() -> tuple[np.ndarray, np.ndarray]:
    """uint8 sRGB -> uint16 linear, and uint16 linear -> uint8 sRGB (rounded)."""
    global _LUTS
    if _LUTS is None:
        x = np.arange(256, dtype=np.float64) / 255.0
        lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
        y = np.arange(65536, dtype=np.float64) / 65535.0
        srgb = np.where(y <= 0.0031308, y * 12.92, 1.055 * np.power(y, 1 / 2.4) - 0.055)
        _LUTS = (np.rint(lin * 65535).astype(np.uint16), np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8))
    return _LUTS


def fill_holes_rows(view: EyeView, method: str) -> np.ndarray:
    """The view's picture with its holes filled by `method` (stretch, inpaint or depth-aware)."""
    check_choice(method, STEREO_FILLS, "fill")
    image, holes = view.image, view.holes
    if method == "inpaint":
        import cv2

        return cv2.inpaint(image, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    hy, hx = np.nonzero(holes)
    out = image.copy()
    if method == "stretch":
        out[hy, hx] = image[hy, view.edge[hy, hx]]
        return out
    out[hy, hx] = _mirror_background(view, hy, hx)
    return _smooth_in_holes(out, holes, hy, hx)


def _mirror_background(view: EyeView, hy: np.ndarray, hx: np.ndarray) -> np.ndarray:
    """Colours for the hole pixels (hy, hx): the background mirrored across each hole's edge.

    A hole pixel k columns from its background edge e takes the pixel k - 1 columns
    beyond e (away from the hole) if that pixel is visible and at most
    `BACKGROUND_TOLERANCE_PX` nearer than the edge; else the edge pixel itself.
    """
    image, holes = view.image, view.holes
    w = holes.shape[1]
    edge = view.edge[hy, hx]
    direction = np.sign(edge - hx)  # from the hole pixel toward its edge, and on beyond it
    mirror = edge + direction * np.maximum(np.abs(hx - edge) - 1, 0)
    inside = (mirror >= 0) & (mirror < w)
    mirror = np.clip(mirror, 0, w - 1)
    p_edge = view.parallax[hy, edge]
    ok = inside & ~holes[hy, mirror] & (view.parallax[hy, mirror] <= p_edge + BACKGROUND_TOLERANCE_PX)
    return image[hy, np.where(ok, mirror, edge)]


def _smooth_in_holes(image: np.ndarray, holes: np.ndarray, hy: np.ndarray, hx: np.ndarray) -> np.ndarray:
    """Vertical 3-tap average at the hole pixels, over those of the 3 that are holes too: hides the
    row-wise structure of the mirrored fill without reaching outside the hole."""
    h = holes.shape[0]
    total = image[hy, hx].astype(np.float32)
    count = np.ones(hy.size, np.float32)
    for dy in (-1, 1):
        ny = hy + dy
        ok = (ny >= 0) & (ny < h)
        ny = np.clip(ny, 0, h - 1)
        ok &= holes[ny, hx]
        total += np.where(ok[:, None], image[ny, hx], 0).astype(np.float32)
        count += ok
    out = image.copy()
    out[hy, hx] = np.clip(total / count[:, None] + 0.5, 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------- parallax from depth
def metric_parallax(depth_m: np.ndarray, focal_px: float, interaxial_m: float, convergence_m: float) -> np.ndarray:
    """f * B * (1/z - 1/c) pixels; unknown or non-positive depth counts as infinitely far."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(np.isfinite(depth_m) & (depth_m > 0), 1.0 / depth_m, 0.0)
    screen = 0.0 if not np.isfinite(convergence_m) else 1.0 / convergence_m
    return (focal_px * interaxial_m * (inv - screen)).astype(np.float32)


def relative_parallax(disparity: np.ndarray, lo: float, hi: float, max_px: float) -> np.ndarray:
    """Relative disparity mapped linearly onto 0 (at `lo`, the screen) .. `max_px` (at `hi`, nearest)."""
    span = hi - lo if hi > lo else 1.0
    near = np.clip((np.where(np.isfinite(disparity), disparity, lo) - lo) / span, 0.0, 1.0)
    return (near * max_px).astype(np.float32)


def disparity_range(disparity: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite disparity (the relative range of a shot)."""
    finite = disparity[np.isfinite(disparity)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1.0, 99.0])
    return float(lo), float(hi)


# ---------------------------------------------------------------- layouts and anaglyphs
DUBOIS_LEFT = np.array([[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]], np.float32)
DUBOIS_RIGHT = np.array([[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]], np.float32)
"""Dubois' red-cyan least-squares projections (2001): the anaglyph whose colours, seen through the
filters, are closest (in CIE XYZ) to each eye's original; applied in linear light."""


def dubois_anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph by Dubois' least-squares method (HxWx3 uint8 in and out)."""
    lut = _srgb_lut()
    lin_l, lin_r = lut[left], lut[right]
    mixed = lin_l @ DUBOIS_LEFT.T + lin_r @ DUBOIS_RIGHT.T
    return _to_srgb(mixed)


_LUT: np.ndarray | None = None


def _srgb_lut() -> np.ndarray:
    global _LUT
    if _LUT is None:
        x = np.arange(256, dtype=np.float32) / 255.0
        _LUT = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)
    return _LUT


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    y = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)


def half_size(rgb: np.ndarray, axis: int) -> np.ndarray:
    """Halve an image along `axis` (1: width, 0: height) by area averaging (for half layouts)."""
    import cv2

    h, w = rgb.shape[:2]
    size = (max(1, w // 2), h) if axis == 1 else (w, max(1, h // 2))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
