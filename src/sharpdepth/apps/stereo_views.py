"""Fast eye views for stereo conversion: a horizontal forward warp with a z-buffer, then a fill.

The two eyes differ from the photo only by a horizontal offset (no rotation, same
intrinsics, the screen plane set by shifting principal points), so a view is a
per-row warp: a source pixel with parallax p moves by `shift = side * p / 2`
(left eye `side = +1`, right eye `-1`: a near point sits further right in the
left view — crossed parallax, in front of the screen). It is done in three
vectorised passes, with no Python loop over pixels:

1. Visibility: every source pixel lands on its nearest target column; where
   several land, the largest parallax (the nearest surface) wins (an ordered
   scatter, see `visible_parallax`).
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


def nearest_known(known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the column of the nearest known pixel to its left and to its right (-1 / w if none)."""
    h, w = known.shape
    cols = np.arange(w, dtype=np.int32)
    left = np.maximum.accumulate(np.where(known, cols, np.int32(-1)), axis=1)
    right = np.minimum.accumulate(np.where(known, cols, np.int32(w))[:, ::-1], axis=1)[:, ::-1]
    return left, right


def empty_runs(empty_flat: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """For the sorted flat indices of the empty pixels of an image `w` wide: the column of the nearest
    known pixel to the left and to the right of each (-1 / w if none) — `nearest_known` at those
    pixels only, in time proportional to their number rather than the image's.

    Empty pixels come in runs along a row; a run's neighbours are the pixels just before and
    after it (known, else they would be in the run), unless the run touches the row's ends.
    """
    n = empty_flat.size
    if n == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    col = (empty_flat % w).astype(np.int32)
    starts = np.empty(n, bool)
    starts[0] = True
    np.not_equal(empty_flat[1:], empty_flat[:-1] + 1, out=starts[1:])
    starts[1:] |= col[1:] == 0  # a run never continues onto the next row
    first = np.flatnonzero(starts)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = n - 1
    run = np.repeat(np.arange(first.size, dtype=np.int32), np.diff(np.append(first, n)))
    return col[first][run] - 1, col[last][run] + 1


def visible_parallax(parallax: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """(parallax of the surface each target pixel sees, known mask) — the z-buffered forward pass.

    Each source pixel lands on its nearest target column; where several land, the largest
    parallax (the nearest surface) wins. No `np.maximum.at` is needed: two pixels of a row
    landing on one column, source columns x1 < x2, satisfy |x1 + s p1 - x2 - s p2| <= 1 with
    x2 - x1 >= 1, so for the left eye (s > 0) p1 >= p2 and for the right eye (s < 0) p2 >= p1:
    the winner is the first of them along the row in the direction away from the eye's motion.
    A plain scatter in the opposite order (the last write to an index wins) is that z-buffer;
    `tests/test_stereo.py` checks it against `np.maximum.at`.
    """
    h, w = parallax.shape
    target = np.arange(w, dtype=np.float32) + np.float32(side * 0.5) * parallax
    np.rint(target, out=target)
    np.clip(target, -1, w, out=target)  # off-picture: -1 or w, then sent to a spare slot
    idx = target.astype(np.int32)
    off = (idx < 0) | (idx >= w)
    idx += (np.arange(h, dtype=np.int32) * np.int32(w))[:, None]
    idx[off] = h * w
    best = np.full(h * w + 1, -np.inf, dtype=np.float32)
    if side > 0:  # left eye: the leftmost source wins, so it must be written last
        best[idx[:, ::-1].ravel()] = parallax[:, ::-1].ravel()
    else:
        best[idx.ravel()] = parallax.ravel()
    best = best[: h * w].reshape(h, w)
    return best, best != -np.inf


def render_eye(rgb: np.ndarray, parallax: np.ndarray, side: float, fill: str = "depth-aware") -> EyeView:
    """The view of one eye (`side` +1 left, -1 right, 0 the photo itself); see the module doc.

    Full-image passes are few and cheap (forward scatter, one remap through lookup
    tables); everything about empty columns is computed on those pixels only. The fill
    is a separate last step (`fill_holes_rows`).
    """
    check_choice(fill, STEREO_FILLS, "fill")
    h, w = parallax.shape
    parallax = np.asarray(parallax, dtype=np.float32)
    if side == 0:
        cols = np.broadcast_to(np.arange(w, dtype=np.int32), (h, w)).copy()
        return EyeView(rgb.copy(), np.zeros((h, w), bool), parallax, cols, cols.astype(np.float32))
    best, known = visible_parallax(parallax, side)
    half = np.float32(side * 0.5)
    p_full = best  # becomes the parallax each target pixel is sampled at
    p_flat = p_full.reshape(-1)
    hole_flat, hole_edge = _classify_empty(p_flat, known.reshape(-1), parallax.reshape(-1), w, half)
    map_x = np.arange(w, dtype=np.float32) - half * p_full
    image = remap_linear_light(rgb, map_x, _row_map(h, w))
    edge = np.broadcast_to(np.arange(w, dtype=np.int32), (h, w)).copy()
    holes = np.zeros((h, w), bool)
    source_x = map_x.copy()
    if hole_flat.size:
        holes.reshape(-1)[hole_flat] = True
        edge.reshape(-1)[hole_flat] = hole_edge
        source_x.reshape(-1)[hole_flat] = map_x.reshape(-1)[hole_flat - hole_flat % w + hole_edge]
    view = EyeView(image, holes, p_full, edge, source_x)
    if hole_flat.size:
        view.image = fill_holes_rows(view, fill)
    return view


def _classify_empty(
    p_flat: np.ndarray, known_flat: np.ndarray, parallax_flat: np.ndarray, w: int, half: np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Give every empty target pixel its background's parallax (in `p_flat`, in place) and return the
    holes among them (flat indices) with the column of each one's background edge.

    An empty pixel takes the farther (smaller) parallax of its nearest known neighbours
    along the row; it is a crack, not a hole, if its backward sample lands inside the
    picture on a source pixel of about that parallax.
    """
    empty = np.flatnonzero(~known_flat)
    if empty.size == 0:
        return empty, empty.astype(np.int32)
    lft, rgt = empty_runs(empty, w)
    row0 = empty - empty % w
    p_left = np.where(lft >= 0, p_flat[row0 + np.maximum(lft, 0)], np.float32(np.inf))
    p_right = np.where(rgt < w, p_flat[row0 + np.minimum(rgt, w - 1)], np.float32(np.inf))
    background = np.minimum(p_left, p_right)
    background[~np.isfinite(background)] = 0.0
    side_edge = np.where(p_left <= p_right, lft, rgt)  # the background (smaller parallax) side
    p_flat[empty] = background
    back_x = (empty - row0) - half * background
    inside = (back_x > -0.5) & (back_x < w - 0.5)
    seen = parallax_flat[row0 + np.clip(np.rint(back_x).astype(np.int32), 0, w - 1)]
    hole = ~(inside & (np.abs(seen - background) < CRACK_TOLERANCE_PX))
    return empty[hole], np.clip(side_edge[hole], 0, w - 1).astype(np.int32)


_ROW_MAPS: dict[tuple[int, int], np.ndarray] = {}


def _row_map(h: int, w: int) -> np.ndarray:
    """The constant y map of a horizontal remap (kept per frame size: one clip, one size)."""
    key = (h, w)
    if key not in _ROW_MAPS:
        if len(_ROW_MAPS) > 8:
            _ROW_MAPS.clear()
        _ROW_MAPS[key] = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return _ROW_MAPS[key]


def remap_linear_light(rgb: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Bilinear resampling in linear light (sRGB values mix wrongly: edges darken, positions bias).

    Through 16-bit linear values and lookup tables (`cv2.LUT` in, `np.take` out), which
    costs little more than resampling the 8-bit values directly.
    """
    import cv2

    to_lin, to_srgb = _linear_luts()
    linear = cv2.LUT(np.ascontiguousarray(rgb), to_lin)
    out = cv2.remap(linear, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.take(to_srgb, np.asarray(out, dtype=np.uint16))


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
