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
    cols = np.arange(w)
    left = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(known, cols, w)[:, ::-1], axis=1)[:, ::-1]
    return left, right


def visible_parallax(parallax: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """(parallax of the surface each target pixel sees, known mask) — the z-buffered forward pass."""
    h, w = parallax.shape
    target = np.rint(np.arange(w, dtype=np.float32) + side * 0.5 * parallax).astype(np.int64)
    ok = (target >= 0) & (target < w)
    flat = (np.arange(h, dtype=np.int64)[:, None] * w + target)[ok]
    best = np.full(h * w, -np.inf, dtype=np.float32)
    np.maximum.at(best, flat, parallax[ok])
    best = best.reshape(h, w)
    return best, np.isfinite(best)


def render_eye(rgb: np.ndarray, parallax: np.ndarray, side: float, fill: str = "depth-aware") -> EyeView:
    """The view of one eye (`side` +1 left, -1 right, 0 the photo itself); see the module doc."""

    check_choice(fill, STEREO_FILLS, "fill")
    h, w = parallax.shape
    parallax = np.asarray(parallax, dtype=np.float32)
    if side == 0:
        cols = np.broadcast_to(np.arange(w), (h, w)).copy()
        return EyeView(rgb.copy(), np.zeros((h, w), bool), parallax, cols, cols.astype(np.float32))
    best, known = visible_parallax(parallax, side)
    left, right = nearest_known(known)
    rows = np.arange(h)[:, None]
    p_left = np.where(left >= 0, best[rows, np.clip(left, 0, w - 1)], np.inf)
    p_right = np.where(right < w, best[rows, np.clip(right, 0, w - 1)], np.inf)
    from_left = p_left <= p_right  # the background (smaller parallax) side
    edge = np.where(known, np.arange(w)[None], np.where(from_left, left, right))
    p_full = np.where(known, best, np.minimum(p_left, p_right))
    p_full = np.where(np.isfinite(p_full), p_full, 0.0).astype(np.float32)
    xs, ys = _rows(h, w)
    map_x = (xs - side * 0.5 * p_full).astype(np.float32)
    seen = parallax[rows, np.clip(np.rint(map_x).astype(np.int64), 0, w - 1)]
    inside = (map_x > -0.5) & (map_x < w - 0.5)
    holes = ~known & ~((np.abs(seen - p_full) < CRACK_TOLERANCE_PX) & inside)
    holes |= ~inside
    edge = np.where(holes, np.clip(edge, 0, w - 1), np.arange(w)[None])
    image = remap_linear_light(rgb, map_x, np.ascontiguousarray(ys))
    source_x = np.where(holes, map_x[rows, edge], map_x).astype(np.float32)
    view = EyeView(image, holes, p_full, edge, source_x)
    if holes.any():
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
    h, w = holes.shape
    rows = np.arange(h)[:, None]
    if method == "stretch":
        out = image.copy()
        out[holes] = image[rows, view.edge][holes]
        return out
    if method == "inpaint":
        import cv2

        return cv2.inpaint(image, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return _mirror_background(view)


def _mirror_background(view: EyeView) -> np.ndarray:
    """Mirror the background across each hole's edge, from background pixels only (see module doc).

    A hole pixel k columns from its background edge e takes the pixel k - 1 columns
    beyond e (away from the hole) if that pixel is visible and at most
    `BACKGROUND_TOLERANCE_PX` nearer than the edge; else the edge pixel itself.
    Rows are then smoothed vertically inside the hole (3 px), which hides the
    row-wise structure without reaching outside the hole.
    """
    image, holes, edge = view.image, view.holes, view.edge
    h, w = holes.shape
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None]
    direction = np.sign(edge - cols)  # from the hole pixel toward its edge, and on beyond it
    distance = np.abs(cols - edge)
    mirror = edge + direction * np.maximum(distance - 1, 0)
    inside = (mirror >= 0) & (mirror < w)
    mirror = np.clip(mirror, 0, w - 1)
    p_edge = view.parallax[rows, edge]
    ok = inside & ~holes[rows, mirror] & (view.parallax[rows, mirror] <= p_edge + BACKGROUND_TOLERANCE_PX)
    source = np.where(ok, mirror, edge)
    out = image.copy()
    out[holes] = image[rows, source][holes]
    return _smooth_in_holes(out, holes)


def _smooth_in_holes(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Vertical 3-tap average over hole pixels only (their neighbours weighted only if also holes)."""
    img = image.astype(np.float32)
    wts = holes.astype(np.float32)
    num = img * wts[..., None]
    up = np.roll(num, 1, axis=0)
    down = np.roll(num, -1, axis=0)
    wu, wd = np.roll(wts, 1, axis=0), np.roll(wts, -1, axis=0)
    wu[0], wd[-1] = 0, 0
    up[0], down[-1] = 0, 0
    total = num + up + down
    weight = wts + wu + wd
    smooth = total / np.maximum(weight, 1e-6)[..., None]
    return np.where(holes[..., None], np.clip(smooth + 0.5, 0, 255), img).astype(np.uint8)


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
