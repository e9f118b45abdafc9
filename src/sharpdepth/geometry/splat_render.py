"""A 3-D Gaussian rasteriser for any machine: compiled 16x16 tiles on the CPU (numba), PyTorch on CUDA.

It computes what gsplat's "classic" rasteriser computes (the renderer SHARP's official tool
calls, CUDA-only there), with the same projection and compositing rules:

* projection (gsplat `_fully_fused_projection`, pinhole, eps2d = 0): camera-frame means and
  covariances, the Jacobian with gsplat's off-screen clamp of x/z and y/z, the 2-D conic, and
  the per-axis radius ceil(3.33 sigma); Gaussians nearer than 1 cm or off screen are dropped;
* compositing (gsplat's CUDA kernel): pixel centres at +0.5, sigma = d^T conic d / 2,
  alpha = min(0.999, opacity * exp(-sigma)), Gaussians with alpha < 1/255 (or sigma < 0) are
  skipped, front to back by depth, and a pixel stops before the Gaussian that would bring its
  transmittance T to 1e-4 or below. Colour, depth (z) and alpha = 1 - T are accumulated.

On the CPU the rules run in compiled tile loops (see "CPU: compiled tiles" below): about 3
frames/s at 640x480 for 1.18 M Gaussians on 2 cores, where the vectorised PyTorch version takes
seconds. The PyTorch version serves CUDA (and checks the tiles in the tests).

How the PyTorch version runs (vectorised, no per-pixel or per-tile Python loop): the visible Gaussians are
sorted by depth once per frame; each one is expanded into the pixels of its alpha >= 1/255
ellipse's bounding box (never more than gsplat's tile footprint, so the same Gaussians meet at
each pixel); the (pixel, Gaussian) pairs are grouped by pixel with one stable sort, which keeps
the depth order; and the front-to-back product of (1 - alpha) is a segmented cumulative sum of
log(1 - alpha) in float64. Because that running sum only decreases, "stop at T <= 1e-4" is a
mask on it. Work goes in chunks of Gaussians (front to back, carrying each pixel's
transmittance) to bound memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import torch

from ..errors import OptionError

if TYPE_CHECKING:
    from .gaussians import Gaussians

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
NEAR_PLANE = 0.01
RADIUS_SIGMAS = 3.33
PAIRS_PER_CHUNK = 1 << 21
"""(pixel, Gaussian) pairs per step: bounds the temporaries (about 60 bytes a pair) and sets how
often finished pixels are taken out (smaller steps skip more hidden Gaussians)."""


@dataclass
class SplatImage:
    """One rendered view."""

    color: np.ndarray
    """(H, W, 3) float32 sRGB in [0, 1] (blended in linear RGB, then converted)."""
    depth: np.ndarray
    """(H, W) float32 z-depth in metres (alpha-normalised; 0 where nothing was drawn)."""
    alpha: np.ndarray
    """(H, W) float32 accumulated opacity."""


@dataclass
class Projected:
    """The visible Gaussians of one view, sorted front to back."""

    means2d: torch.Tensor
    conics: torch.Tensor
    """(n, 3): a, b, c of the inverse 2-D covariance [[a, b], [b, c]]."""
    depths: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    box: torch.Tensor
    """(n, 4) int64 first x, first y, last x + 1, last y + 1 of the pixels the Gaussian may reach."""


@dataclass
class SplatScene:
    """Gaussians as the renderer keeps them between frames (on the render device)."""

    means: torch.Tensor
    factor: torch.Tensor
    """(3, 3, N): M = R(q) diag(s), so that the covariance is M M^T (columns: rotated std axes)."""
    opacities: torch.Tensor
    colors: torch.Tensor


def prepare(
    means: torch.Tensor, quaternions: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor, colors: torch.Tensor
) -> SplatScene:
    """Per-scene work done once for all frames: the covariance factor of every Gaussian."""
    keep = opacities >= ALPHA_MIN  # alpha <= opacity: these can never be drawn
    q = torch.nn.functional.normalize(quaternions[keep], p=2, dim=-1)
    w, x, y, z = q.unbind(-1)
    rot = (
        (1 - 2 * (y**2 + z**2), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x**2 + z**2), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x**2 + y**2)),
    )
    s = scales[keep]
    factor = torch.stack([torch.stack([rot[i][j] * s[:, j] for j in range(3)]) for i in range(3)])
    return SplatScene(means[keep].contiguous(), factor, opacities[keep].contiguous(), colors[keep].contiguous())


def project(scene: SplatScene, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int) -> Projected:
    """gsplat's pinhole projection and culling, then the depth sort. The 2-D covariance is
    (J R M)(J R M)^T with R the view rotation and J the projection's Jacobian, computed as
    per-Gaussian columns (no batched 3x3 products)."""
    rot, t = viewmat[:3, :3], viewmat[:3, 3]
    means_c = scene.means @ rot.T + t
    keep = (means_c[:, 2] > NEAR_PLANE).nonzero().squeeze(1)
    means_c = means_c[keep]
    n = keep.shape[0]
    a_cam = (rot @ scene.factor[:, :, keep].reshape(3, 3 * n)).reshape(3, 3, n)  # R M, per Gaussian
    tx, ty, tz = means_c.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    cx_t = tz * torch.clamp(tx / tz, min=-(cx / fx + 0.3 * tan_x), max=(width - cx) / fx + 0.3 * tan_x)
    cy_t = tz * torch.clamp(ty / tz, min=-(cy / fy + 0.3 * tan_y), max=(height - cy) / fy + 0.3 * tan_y)
    j00, j02 = fx / tz, -fx * cx_t / tz**2
    j11, j12 = fy / tz, -fy * cy_t / tz**2
    b0 = j00 * a_cam[0] + j02 * a_cam[2]  # (3, n): first row of J R M
    b1 = j11 * a_cam[1] + j12 * a_cam[2]
    a, b, c = (b0 * b0).sum(0), (b0 * b1).sum(0), (b1 * b1).sum(0)
    means2d = torch.stack([fx * tx + K[0, 1] * ty + cx * tz, fy * ty + cy * tz], -1) / tz[:, None]
    det = (a * c - b * b).clamp(min=1e-10)
    conics = torch.stack([c / det, -b / det, a / det], -1)
    std = torch.sqrt(torch.stack([a, c], -1))
    radius = torch.ceil(RADIUS_SIGMAS * std)
    opacities = scene.opacities[keep]
    # alpha >= 1/255 needs sigma <= log(255 * opacity): the ellipse's half-extents along x and y
    reach = torch.sqrt(2.0 * torch.log(opacities * 255.0).clamp(min=0))[:, None] * std
    reach = torch.minimum(reach + 1e-3, radius)
    lo = torch.ceil(means2d - reach - 0.5).clamp(min=0)
    hi = torch.floor(means2d + reach - 0.5) + 1
    hi = torch.minimum(hi, torch.tensor([width, height], device=hi.device, dtype=hi.dtype))
    inside = (
        (means2d[:, 0] + radius[:, 0] > 0)
        & (means2d[:, 0] - radius[:, 0] < width)
        & (means2d[:, 1] + radius[:, 1] > 0)
        & (means2d[:, 1] - radius[:, 1] < height)
        & (radius > 0).all(-1)
        & (hi > lo).all(-1)
    )
    order = torch.sort(tz[inside], stable=True).indices
    idx = inside.nonzero().squeeze(1)[order]
    box = torch.cat([lo, hi], dim=1)[idx].to(torch.int64)
    return Projected(means2d[idx], conics[idx], tz[idx], opacities[idx], scene.colors[keep[idx]], box)


def _pairs(p: Projected, gauss: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel index, Gaussian index) of every pixel in the boxes of Gaussians `gauss` (ascending),
    Gaussian-major (so in depth order)."""
    box = p.box[gauss]
    nx, ny = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    counts = nx * ny
    local_gid = torch.repeat_interleave(torch.arange(gauss.shape[0], device=box.device), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(int(counts.sum()), device=box.device) - first[local_gid]
    row_len = nx[local_gid]
    px = box[local_gid, 0] + local % row_len
    py = box[local_gid, 1] + local // row_len
    return py * width + px, gauss[local_gid]


def _chunks(p: Projected) -> list[tuple[int, int]]:
    """Consecutive Gaussian ranges of at most PAIRS_PER_CHUNK pairs each (at least one Gaussian)."""
    counts = ((p.box[:, 2] - p.box[:, 0]) * (p.box[:, 3] - p.box[:, 1])).cumsum(0)
    bounds, start, n = [], 0, int(counts.shape[0])
    while start < n:
        base = int(counts[start - 1]) if start else 0
        stop = int(torch.searchsorted(counts, base + PAIRS_PER_CHUNK, right=True))
        stop = max(stop, start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def _still_open(p: Projected, gauss: torch.Tensor, done: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Which of `gauss` have a pixel in their box that is not finished (T > 1e-4 so far): an
    integral image of the open pixels answers each box in four lookups. Gaussians entirely
    behind finished pixels are skipped before any per-pixel work (they would all be excluded)."""
    open_px = (~done).reshape(height, width).to(torch.int32)
    table = torch.zeros(height + 1, width + 1, dtype=torch.int32, device=done.device)
    table[1:, 1:] = open_px.cumsum(0).cumsum(1)
    x0, y0, x1, y1 = p.box[gauss].unbind(-1)
    return (table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]) > 0


def composite(p: Projected, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Front-to-back blending: (linear RGB (H*W, 3), accumulated z (H*W,), alpha (H*W,))."""
    dev = p.means2d.device
    pixels = width * height
    rgbd = torch.zeros(pixels, 4, device=dev, dtype=torch.float32)
    log_t_all = torch.zeros(pixels, device=dev, dtype=torch.float64)
    """Sum of log(1 - alpha) over every Gaussian met so far, included or not: the stop test."""
    log_t = torch.zeros(pixels, device=dev, dtype=torch.float64)
    """Sum over the included Gaussians only: the transmittance."""
    log_t_min = math.log(T_MIN)
    done = torch.zeros(pixels, device=dev, dtype=torch.bool)
    features = torch.cat([p.colors, p.depths[:, None]], dim=1)
    for start, stop in _chunks(p):
        gauss = torch.arange(start, stop, device=dev)
        if start:
            gauss = gauss[_still_open(p, gauss, done, width, height)]
            if not gauss.numel():
                continue
        pix, gid = _pairs(p, gauss, width)
        live = ~done[pix]
        pix, gid = pix[live], gid[live]
        d = torch.stack([(pix % width).to(torch.float32) + 0.5, (pix // width).to(torch.float32) + 0.5], -1)
        d = p.means2d[gid] - d
        con = p.conics[gid]
        sigma = 0.5 * (con[:, 0] * d[:, 0] ** 2 + con[:, 2] * d[:, 1] ** 2) + con[:, 1] * d[:, 0] * d[:, 1]
        alpha = torch.clamp(p.opacities[gid] * torch.exp(-sigma), max=ALPHA_MAX)
        hit = (sigma >= 0) & (alpha >= ALPHA_MIN)
        pix, gid, alpha = pix[hit], gid[hit], alpha[hit]
        del d, con, sigma, hit, live
        if not pix.numel():
            continue
        pix, order = torch.sort(pix, stable=True)  # groups by pixel, keeps depth order within
        gid, alpha = gid[order], alpha[order]
        log1m = torch.log1p(-alpha.double())
        running = torch.cumsum(log1m, 0)
        _, counts = torch.unique_consecutive(pix, return_counts=True)
        seg_first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        before = running - log1m - (running[seg_first] - log1m[seg_first])  # exclusive, within the pixel
        include = (log_t_all[pix] + before + log1m) > log_t_min
        weight = (alpha.double() * torch.exp(log_t[pix] + before)).float() * include
        rgbd.index_add_(0, pix, features[gid] * weight[:, None])
        log_t_all.index_add_(0, pix, log1m)
        log_t.index_add_(0, pix, log1m * include)
        done = log_t_all <= log_t_min
    alpha_out = (1.0 - torch.exp(log_t)).float()
    return rgbd[:, :3], rgbd[:, 3], alpha_out


# --------------------------------------------------------------------------- CPU: compiled tiles
# The CPU path runs the same rules as gsplat's CUDA kernels, one 16x16 tile per task: projection
# is one fused loop over the Gaussians, the visible ones are depth-sorted once (radix sort of the
# float32 depth bits), binned to the tiles they reach (a stable counting sort, so each tile's list
# stays front to back: gsplat's (tile, depth) key order), and every pixel walks its tile's list in
# float32 as gsplat's rasterize_to_pixels kernel does. numba compiles these loops on first use
# (cached on disk after that).

TILE = 16
_F = np.float32
_HALF, _ONE, _ZERO = _F(0.5), _F(1.0), _F(0.0)
_NEAR, _SIGMAS, _MARGIN = _F(NEAR_PLANE), _F(RADIUS_SIGMAS), _F(1e-3)
_AMIN, _AMAX, _TMIN = _F(ALPHA_MIN), _F(ALPHA_MAX), _F(T_MIN)
_DET_MIN, _GUARD, _TWO, _O255 = _F(1e-10), _F(0.3), _F(2.0), _F(255.0)


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _project_tiles(means, factor, opacities, rot, t, intrinsics, width, height, m2d, conic, depth, box):
    """`project`'s float32 arithmetic for every Gaussian at once; box[i, 0] = -1 marks a culled one."""
    fx, fy, cx, cy, skew = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2], intrinsics[0, 1]
    w, h = _F(width), _F(height)
    tan_x, tan_y = _HALF * w / fx, _HALF * h / fy
    lim_x_lo, lim_x_hi = -(cx / fx + _GUARD * tan_x), (w - cx) / fx + _GUARD * tan_x
    lim_y_lo, lim_y_hi = -(cy / fy + _GUARD * tan_y), (h - cy) / fy + _GUARD * tan_y
    for i in numba.prange(means.shape[0]):
        box[i, 0] = -1
        mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
        tz = rot[2, 0] * mx + rot[2, 1] * my + rot[2, 2] * mz + t[2]
        if not tz > _NEAR:
            continue
        tx = rot[0, 0] * mx + rot[0, 1] * my + rot[0, 2] * mz + t[0]
        ty = rot[1, 0] * mx + rot[1, 1] * my + rot[1, 2] * mz + t[1]
        cx_t = tz * min(max(tx / tz, lim_x_lo), lim_x_hi)
        cy_t = tz * min(max(ty / tz, lim_y_lo), lim_y_hi)
        j00, j02 = fx / tz, -fx * cx_t / (tz * tz)
        j11, j12 = fy / tz, -fy * cy_t / (tz * tz)
        a = _ZERO
        b = _ZERO
        c = _ZERO
        for col in range(3):  # column `col` of R M, then of J R M
            r0 = rot[0, 0] * factor[0, col, i] + rot[0, 1] * factor[1, col, i] + rot[0, 2] * factor[2, col, i]
            r1 = rot[1, 0] * factor[0, col, i] + rot[1, 1] * factor[1, col, i] + rot[1, 2] * factor[2, col, i]
            r2 = rot[2, 0] * factor[0, col, i] + rot[2, 1] * factor[1, col, i] + rot[2, 2] * factor[2, col, i]
            b0 = j00 * r0 + j02 * r2
            b1 = j11 * r1 + j12 * r2
            a += b0 * b0
            b += b0 * b1
            c += b1 * b1
        u = (fx * tx + skew * ty + cx * tz) / tz
        v = (fy * ty + cy * tz) / tz
        det = max(a * c - b * b, _DET_MIN)
        std_x, std_y = np.sqrt(a), np.sqrt(c)
        rad_x, rad_y = np.ceil(_SIGMAS * std_x), np.ceil(_SIGMAS * std_y)
        if not (u + rad_x > _ZERO and u - rad_x < w and v + rad_y > _ZERO and v - rad_y < h):
            continue
        if not (rad_x > _ZERO and rad_y > _ZERO):
            continue
        ext = np.sqrt(max(_TWO * np.log(opacities[i] * _O255), _ZERO))
        reach_x = min(ext * std_x + _MARGIN, rad_x)
        reach_y = min(ext * std_y + _MARGIN, rad_y)
        x0 = max(np.ceil(u - reach_x - _HALF), _ZERO)
        y0 = max(np.ceil(v - reach_y - _HALF), _ZERO)
        x1 = min(np.floor(u + reach_x - _HALF) + _ONE, w)
        y1 = min(np.floor(v + reach_y - _HALF) + _ONE, h)
        if not (x1 > x0 and y1 > y0):
            continue
        m2d[i, 0], m2d[i, 1] = u, v
        conic[i, 0], conic[i, 1], conic[i, 2] = c / det, -b / det, a / det
        depth[i] = tz
        box[i, 0], box[i, 1], box[i, 2], box[i, 3] = np.int32(x0), np.int32(y0), np.int32(x1), np.int32(y1)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _depth_order(box, depth):
    """Indices of the drawn Gaussians (box[:, 0] >= 0), nearest first, ties in index order: an LSD
    radix sort of the depth's float32 bits (positive floats order like their bit patterns)."""
    n = 0
    for i in range(box.shape[0]):
        if box[i, 0] >= 0:
            n += 1
    idx = np.empty(n, np.int32)
    keys = np.empty(n, np.uint32)
    bits = depth.view(np.uint32)
    k = 0
    for i in range(box.shape[0]):
        if box[i, 0] >= 0:
            idx[k] = i
            keys[k] = bits[i]
            k += 1
    idx2 = np.empty(n, np.int32)
    keys2 = np.empty(n, np.uint32)
    for shift in range(0, 32, 8):
        count = np.zeros(257, np.int64)
        for j in range(n):
            count[((keys[j] >> shift) & 255) + 1] += 1
        if count[1:].max() == n:
            continue  # every key has the same byte here: this pass would not move anything
        for d in range(256):
            count[d + 1] += count[d]
        for j in range(n):
            d = (keys[j] >> shift) & 255
            keys2[count[d]] = keys[j]
            idx2[count[d]] = idx[j]
            count[d] += 1
        keys, keys2 = keys2, keys
        idx, idx2 = idx2, idx
    return idx


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _gather(order, m2d, conic, opacities, colors, depth, box):
    """The drawn Gaussians in depth order, one row each: u, v, conic a b c, opacity, r, g, b, z
    (float32), and their pixel boxes. One random-access pass; everything after reads in order."""
    n = order.shape[0]
    rows = np.empty((n, 10), np.float32)
    rects = np.empty((n, 4), np.int32)
    for k in numba.prange(n):
        g = order[k]
        rows[k, 0], rows[k, 1] = m2d[g, 0], m2d[g, 1]
        rows[k, 2], rows[k, 3], rows[k, 4] = conic[g, 0], conic[g, 1], conic[g, 2]
        rows[k, 5] = opacities[g]
        rows[k, 6], rows[k, 7], rows[k, 8], rows[k, 9] = colors[g, 0], colors[g, 1], colors[g, 2], depth[g]
        for e in range(4):
            rects[k, e] = box[g, e]
    return rows, rects


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _bin_tiles(rects, tiles_x, tiles_y):
    """Per-tile lists of Gaussians (offsets into one array of row numbers), each front to back: a
    stable counting sort of the depth-ordered rows by the tiles their pixel box reaches."""
    offsets = np.zeros(tiles_x * tiles_y + 1, np.int64)
    for g in range(rects.shape[0]):
        for ty in range(rects[g, 1] // TILE, (rects[g, 3] - 1) // TILE + 1):
            for tx in range(rects[g, 0] // TILE, (rects[g, 2] - 1) // TILE + 1):
                offsets[ty * tiles_x + tx + 1] += 1
    for k in range(tiles_x * tiles_y):
        offsets[k + 1] += offsets[k]
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[-1], np.int32)
    for g in range(rects.shape[0]):
        for ty in range(rects[g, 1] // TILE, (rects[g, 3] - 1) // TILE + 1):
            for tx in range(rects[g, 0] // TILE, (rects[g, 2] - 1) // TILE + 1):
                tile = ty * tiles_x + tx
                lists[fill[tile]] = g
                fill[tile] += 1
    return offsets, lists


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _composite_tiles(offsets, lists, rows, rects, width, height, tiles_x, rgbd, trans):
    """gsplat's rasterize_to_pixels loop in float32, one tile per task, the tile's Gaussians front
    to back, each over the pixels of its box in the tile: skip alpha < 1/255 (or sigma < 0); a
    pixel stops before the Gaussian that would bring its T to 1e-4 or below, and the tile stops
    when all its pixels have. Per pixel this is exactly gsplat's sequence of operations."""
    for tile in numba.prange(offsets.shape[0] - 1):
        tile_y, tile_x = divmod(np.int64(tile), np.int64(tiles_x))  # signed (prange's index may not be)
        x_lo, y_lo = tile_x * TILE, tile_y * TILE
        x_hi, y_hi = min(x_lo + TILE, width), min(y_lo + TILE, height)
        T = np.ones((TILE, TILE), np.float32)
        acc = np.zeros((TILE, TILE, 4), np.float32)
        done = np.zeros((TILE, TILE), np.bool_)
        open_pixels = (x_hi - x_lo) * (y_hi - y_lo)
        for k in range(offsets[tile], offsets[tile + 1]):
            g = lists[k]
            u, v, ca, cb, cc, o = rows[g, 0], rows[g, 1], rows[g, 2], rows[g, 3], rows[g, 4], rows[g, 5]
            # alpha >= 1/255 needs sigma <= log(255 o): a larger sigma (with a margin far above
            # float32 rounding) is skipped before the exp
            limit = _F(np.log(np.float64(o) * 255.0) + 1e-4)
            x_first, x_last = max(rects[g, 0], x_lo), min(rects[g, 2], x_hi)
            for py in range(max(rects[g, 1], y_lo), min(rects[g, 3], y_hi)):
                dy = v - (_F(py) + _HALF)
                iy = py - y_lo
                for px in range(x_first, x_last):
                    ix = px - x_lo
                    if done[iy, ix]:
                        continue
                    dx = u - (_F(px) + _HALF)
                    sigma = _HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma > limit or sigma < _ZERO:
                        continue
                    alpha = min(_AMAX, o * np.exp(-sigma))
                    if alpha < _AMIN:
                        continue
                    next_t = T[iy, ix] * (_ONE - alpha)
                    if next_t <= _TMIN:
                        done[iy, ix] = True
                        open_pixels -= 1
                        continue
                    vis = alpha * T[iy, ix]
                    for ch in range(4):
                        acc[iy, ix, ch] += rows[g, 6 + ch] * vis
                    T[iy, ix] = next_t
            if open_pixels == 0:
                break
        for py in range(y_lo, y_hi):
            for px in range(x_lo, x_hi):
                trans[py, px] = T[py - y_lo, px - x_lo]
                for ch in range(4):
                    rgbd[py, px, ch] = acc[py - y_lo, px - x_lo, ch]


def _threads() -> int:
    """numba's worker count follows torch's (set_num_threads applies to both renderers)."""
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]


def rasterise_tiles(
    scene: SplatScene, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled CPU path: (linear RGB (H*W, 3), accumulated z (H*W,), alpha (H*W,)), what
    `composite(project(...))` returns, from the same float32 projection and compositing rules."""
    means, factor = scene.means.numpy(), scene.factor.numpy()
    opacities = scene.opacities.numpy()
    n = means.shape[0]
    m2d, conic = np.empty((n, 2), np.float32), np.empty((n, 3), np.float32)
    depth, box = np.empty(n, np.float32), np.empty((n, 4), np.int32)
    view, intrinsics = viewmat.numpy(), K.numpy()
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    rgbd = np.empty((height, width, 4), np.float32)
    trans = np.empty((height, width), np.float32)
    previous_threads, previous_chunk = numba.get_num_threads(), numba.get_parallel_chunksize()
    numba.set_num_threads(_threads())
    numba.set_parallel_chunksize(0)
    try:
        rot, t = np.ascontiguousarray(view[:3, :3]), np.ascontiguousarray(view[:3, 3])
        _project_tiles(means, factor, opacities, rot, t, intrinsics, width, height, m2d, conic, depth, box)
        order = _depth_order(box, depth)
        rows, rects = _gather(order, m2d, conic, opacities, scene.colors.numpy(), depth, box)
        offsets, lists = _bin_tiles(rects, tiles_x, tiles_y)
        numba.set_parallel_chunksize(2)  # tiles differ a lot in work: hand them out a few at a time
        _composite_tiles(offsets, lists, rows, rects, width, height, tiles_x, rgbd, trans)
    finally:
        numba.set_parallel_chunksize(previous_chunk)
        numba.set_num_threads(previous_threads)
    flat = torch.from_numpy(rgbd.reshape(-1, 4))
    return flat[:, :3], flat[:, 3], torch.from_numpy(1.0 - trans.reshape(-1))


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    safe = torch.where(x <= 0.0031308, 0.0031308, x)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * safe ** (1 / 2.4) - 0.055)


def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _matrix(name: str, value: np.ndarray | torch.Tensor, shape: tuple[int, int], dev: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, np.float32))
    if tuple(t.shape) != shape or not torch.isfinite(t).all():
        raise OptionError(f"{name} must be a finite {shape[0]}x{shape[1]} matrix, got shape {tuple(t.shape)}")
    return t.to(dev)


def prepared_scene(g: Gaussians, device: str | None = None) -> SplatScene:
    """`g` on the render device (None: CUDA when present) with its per-scene work done."""
    dev = _device(device)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(dev)

    with torch.inference_mode():
        return prepare(tensor(g.means), tensor(g.quaternions), tensor(g.scales), tensor(g.opacities), tensor(g.colors))


def render_scene(
    scene: SplatScene,
    world_to_camera: np.ndarray | torch.Tensor,
    K: np.ndarray | torch.Tensor,
    width: int,
    height: int,
) -> SplatImage:
    """One frame of a prepared scene (a video prepares once and renders every view with this)."""
    if width < 1 or height < 1:
        raise OptionError(f"render size must be positive, got {width}x{height}")
    dev = scene.means.device
    view = _matrix("world_to_camera", world_to_camera, (4, 4), dev)
    intrinsics = _matrix("K", K, (3, 3), dev)
    with torch.inference_mode():
        if dev.type == "cpu":
            rgb, depth, alpha = rasterise_tiles(scene, view, intrinsics, width, height)
        else:
            rgb, depth, alpha = composite(project(scene, view, intrinsics, width, height), width, height)
        color = _linear_to_srgb(rgb).reshape(height, width, 3)
        depth = (depth / alpha.clamp(min=1e-8)).reshape(height, width)
    return SplatImage(
        color=color.cpu().numpy(), depth=depth.cpu().numpy(), alpha=alpha.reshape(height, width).cpu().numpy()
    )
