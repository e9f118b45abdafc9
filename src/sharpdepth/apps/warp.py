"""Novel views from one photo and its depth: forward warping with a z-buffer, then hole filling.

Each source pixel is lifted to 3D with its depth, moved into the new camera and
*splatted* (bilinear weights onto the 4 nearest target pixels). Where several
surfaces land on one pixel, a z-buffer keeps the nearest: the samples covering a pixel
substantially (bilinear weight >= 0.1) set its front depth, and only
contributions within `z_tolerance` (relative) of it are accumulated. Being points rather than
a mesh, nothing is stretched across depth edges: a foreground object simply
slides over the background and leaves a *hole* where the background was hidden.

When the view magnifies (moving toward the scene, zooming), neighbouring
samples land more than a pixel apart; each source pixel is then split into
s x s sub-samples with its own depth (no new depths are invented), so the
surface stays closed.

Holes (disocclusions) are filled from the **background side only**: known
pixels much nearer than the farthest depth around a hole are excluded, and the
rest is extended into the hole by a pull-push pyramid. A foreground object
therefore never smears into the area it uncovered ("rubber sheet"); the
uncovered area continues the background's colours.

All colour work is in linear light, (C, H, W) float32; splatting is vectorised
numpy (`np.minimum.at` for the z-buffer, `np.bincount` for the sums; no Python
loop over pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..geometry.camera import Camera
from ..maps import valid_depth_mask
from .common import pull_push

Z_TOLERANCE = 0.03


@dataclass
class WarpResult:
    image: np.ndarray
    """(C, H, W) float32, holes filled."""
    depth: np.ndarray
    """(H, W) z-depth in the new camera; NaN in holes."""
    holes: np.ndarray
    """(H, W) bool: pixels no source pixel reached (disocclusions, uncovered borders)."""


def splat(
    values: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    size: tuple[int, int],
    z_tolerance: float = Z_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffered bilinear splatting of N samples.

    `values` (C, N), target coordinates `u`, `v` (N,) in pixels, depth `z` (N,) > 0.
    Returns (accumulated values (C, h, w), depth (h, w), weight (h, w)); values and
    depth are normalised by the weight where it is > 0.
    """
    h, w = size
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(u) & np.isfinite(v) & np.isfinite(z) & (z > 0) & (u > -1) & (u < w) & (v > -1) & (v < h)
    u, v, z, values = u[ok], v[ok], z[ok], np.asarray(values, dtype=np.float32)[:, ok]
    x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fx, fy = u - x0, v - y0
    corners = []
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xs, ys = x0 + dx, y0 + dy
        m = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h) & (wgt > 1e-6)
        corners.append((ys[m] * w + xs[m], wgt[m], np.flatnonzero(m)))
    # front depth per pixel from the samples that cover it substantially (bilinear weight >= 0.1):
    # every pixel of a closed surface has one, so background samples cannot leak through its gaps
    front = np.full(h * w, np.inf)
    for idx, wgt, src in corners:
        strong = wgt >= 0.1
        np.minimum.at(front, idx[strong], z[src[strong]])
    idx = np.concatenate([c[0] for c in corners])
    wk = np.concatenate([c[1] for c in corners])
    src = np.concatenate([c[2] for c in corners])
    keep = (z[src] <= front[idx] * (1 + z_tolerance)) | np.isinf(front[idx])
    idx, wk, src = idx[keep], wk[keep], src[keep]
    wsum = np.bincount(idx, weights=wk, minlength=h * w)
    norm = np.maximum(wsum, 1e-8)
    depth = np.where(wsum > 0, np.bincount(idx, weights=wk * z[src], minlength=h * w) / norm, np.nan)
    out = np.stack([np.bincount(idx, weights=wk * values[c, src], minlength=h * w) / norm for c in range(len(values))])
    return out.reshape(-1, h, w).astype(np.float32), depth.reshape(h, w), wsum.reshape(h, w)


def fill_holes(image: np.ndarray, depth: np.ndarray, holes: np.ndarray, background_margin: float = 0.1) -> np.ndarray:
    """Fill `holes` in (C, H, W) `image` from the background side (see module doc).

    Each hole pixel's background depth is the farthest known depth around it.
    A known pixel may lend its colour only if it is about as far as the
    background of the hole nearest to it: the foreground next to a hole, and
    the inside of that foreground, are never smeared into it.
    """
    if not holes.any():
        return image
    known = ~holes & np.isfinite(depth)
    nearest_hole = ndimage.distance_transform_edt(~holes, return_distances=False, return_indices=True)
    # window reaching across the widest hole from either of its sides (the hole is <= 2 * max distance wide)
    reach = int(np.ceil(ndimage.distance_transform_edt(holes).max())) * 4 + 5
    hole_background = _local_max(np.where(known, depth, 0.0), reach)
    needed = hole_background[nearest_hole[0], nearest_hole[1]]
    # (everywhere, not just beside the hole: the pyramid's coarse levels would blend in far-off foreground)
    lend = known & (depth >= needed * (1.0 - background_margin))
    if not lend.any():
        lend = known
    filled = pull_push(image, lend.astype(np.float32))
    return np.where(holes[None], filled, image).astype(np.float32)


def _local_max(values: np.ndarray, size: int) -> np.ndarray:
    """Maximum over a size x size window, computed on a 4x max-pooled copy for large windows."""
    if size <= 15:
        return ndimage.maximum_filter(values, size=size)
    h, w = values.shape
    f = 4
    padded = np.pad(values, ((0, (-h) % f), (0, (-w) % f)))
    pooled = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).max(axis=(1, 3))
    pooled = ndimage.maximum_filter(pooled, size=size // f + 2)
    return np.repeat(np.repeat(pooled, f, axis=0), f, axis=1)[:h, :w]


def grow_foreground(depth: np.ndarray, pixels: int, max_rel_jump: float = 0.05) -> np.ndarray:
    """Give the `pixels` background pixels next to every depth edge the foreground's depth.

    A depth edge rarely sits exactly on the colour edge: the last pixels of an
    object, or blends of object and background, often carry the background's
    depth. Left behind when the object moves, they draw a ghost outline beside
    it; moved with it, they are a rim that nobody notices.
    """
    if pixels <= 0:
        return depth
    valid = valid_depth_mask(depth)
    nearest = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=2 * pixels + 1)
    behind_edge = valid & (depth > nearest * (1.0 + max_rel_jump))
    return np.where(behind_edge, nearest, depth)


def default_edge_growth(shape: tuple[int, int]) -> int:
    """Edge pixels to hand to the foreground: ~1 per 500 px of image size (0 for tiny images)."""
    return round(max(shape) / 500)


def magnification(depth: np.ndarray, src: Camera, translation: np.ndarray, dst: Camera) -> float:
    """Largest local scale factor of the warp (> 1: samples spread apart, sub-sampling needed)."""
    z = depth[valid_depth_mask(depth)]
    if z.size == 0:
        return 1.0
    z_new = z - translation[2]
    ratio = np.max(z / np.maximum(z_new, 1e-6))
    return float(max(dst.fx / src.fx, dst.fy / src.fy) * ratio)


def render_view(
    image_linear: np.ndarray,
    depth: np.ndarray,
    src: Camera,
    translation: np.ndarray,
    dst: Camera | None = None,
    z_tolerance: float = Z_TOLERANCE,
    fill: bool = True,
    edge_growth: int | None = None,
) -> WarpResult:
    """The photo seen from a camera moved by `translation` (metres, camera frame), intrinsics `dst`.

    No rotation: the new camera looks the same way; shifting `dst`'s principal
    point is how a path keeps a chosen depth plane still. `edge_growth` pixels
    behind each depth edge move with the foreground (default: by image size).
    """
    dst = dst or src
    translation = np.asarray(translation, dtype=np.float64)
    growth = default_edge_growth(depth.shape) if edge_growth is None else edge_growth
    depth = grow_foreground(np.asarray(depth, dtype=np.float64), growth)
    mag = magnification(depth, src, translation, dst)
    sub = 1 if mag <= 1.25 else (2 if mag <= 2.5 else 3)
    h, w = depth.shape
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    us, vs, zs, cols = [], [], [], []
    grid_u, grid_v = src.pixel_grid()
    flat_colour = image_linear.reshape(image_linear.shape[0], -1)
    for oy in offsets:
        for ox in offsets:
            pts = src.unproject(depth, grid_u + ox, grid_v + oy).reshape(-1, 3) - translation
            u_new, v_new, z_new = dst.project(pts)
            us.append(u_new)
            vs.append(v_new)
            zs.append(z_new)
            cols.append(flat_colour)
    values, new_depth, weight = splat(
        np.concatenate(cols, axis=1), np.concatenate(us), np.concatenate(vs), np.concatenate(zs),
        (dst.height, dst.width), z_tolerance,
    )  # fmt: skip
    holes = weight < 0.05
    new_depth = np.where(holes, np.nan, new_depth)
    values = np.where(holes[None], 0.0, values).astype(np.float32)
    if fill:
        values = fill_holes(values, new_depth, holes)
    return WarpResult(values, new_depth, holes)
