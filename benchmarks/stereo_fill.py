"""Disocclusion fill on real footage with real geometry (TUM RGB-D fr2_desk): stretch vs OpenCV inpaint vs ours.

usage: python benchmarks/stereo_fill.py [--pairs 0:6,10:6,20:8,30:6,12:10] [--flicker 20:10:6]

For each pair (t, k): frame t is warped into the camera of frame t+k with its
ground-truth depth and the relative ground-truth pose (z-buffered splatting,
`apps.warp.splat`). Pixels no source pixel reached are holes; the ones scored
are the *disocclusions*: holes whose true surface (the target frame's own
depth, back-projected) lies inside frame t's picture — it was there, hidden
behind something nearer (holes outside frame t's field of view are filled but
not scored; so are pixels without ground-truth depth). Each method fills the
holes and is compared with the real frame t+k on the disoccluded pixels: PSNR,
and SSIM (7x7 Gaussian window, grey levels) averaged over those pixels.

Methods:
- stretch: every hole pixel takes its nearest known pixel (what a plain warp gives).
- inpaint: OpenCV Telea inpainting of the holes (radius 3).
- ours (spatial): `stereo_fill.background_fill` — Telea told that the
  foreground around each hole is unknown too, so only background is continued.
- ours (+ neighbours): first `stereo_fill.reuse_revealed` from frames t-1, t-2,
  t-3 warped to the same camera (what the background looked like when it was
  not hidden), then the spatial fill for what is left.

Flicker (a static target camera): the target is frame T's camera and the
sources are T-k-n .. T-k (consecutive frames); the fill of each source is
compared with the fill of the next on the pixels that are disoccluded in both:
mean absolute difference in grey levels (lower = stabler). Source depth holes
(Kinect zeros) take the nearest valid depth before warping.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from sharpdepth.apps.stereo_fill import background_fill, reuse_revealed
from sharpdepth.apps.warp import splat

SEQ = (
    Path(os.environ.get("SHARPDEPTH_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared"))
    / "data/rgbd/sequences/tum_fr2_desk"
)
METHODS = ("stretch", "inpaint", "ours (spatial)", "ours (+ neighbours)")
NEIGHBOURS = 3


class Sequence:
    def __init__(self, root: Path) -> None:
        self.root = root
        cal = json.loads((root / "intrinsics.json").read_text())
        self.k = np.array([[cal["fx"], 0, cal["cx"]], [0, cal["fy"], cal["cy"]], [0, 0, 1]], np.float64)
        self.depth_scale = float(cal["depth_scale"])
        self.poses = {}
        for i, line in enumerate(ln for ln in (root / "poses.txt").read_text().splitlines() if not ln.startswith("#")):
            vals = [float(v) for v in line.split()[1:8]]
            self.poses[i] = _pose(vals[:3], vals[3:])
        self.n = len(self.poses)

    def rgb(self, i: int) -> np.ndarray:
        return np.asarray(Image.open(self.root / "rgb" / f"{i:06d}.png").convert("RGB"))

    def depth(self, i: int) -> np.ndarray:
        raw = np.asarray(Image.open(self.root / "depth" / f"{i:06d}.png"), dtype=np.float64)
        return np.where(raw > 0, raw / self.depth_scale, np.nan)


def _pose(t: list[float], q: list[float]) -> np.ndarray:
    x, y, z, w = q
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    return m


def _filled_depth(depth: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(depth)
    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return depth[idx[0], idx[1]]


def _transform(seq: Sequence, src: int, dst: int, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of frame `src` with `depth` moved into camera `dst`: (u, v, z)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    kinv = np.linalg.inv(seq.k)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ kinv.T
    pts = rays * depth[..., None]
    rel = np.linalg.inv(seq.poses[dst]) @ seq.poses[src]
    cam = pts.reshape(-1, 3) @ rel[:3, :3].T + rel[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pu = seq.k[0, 0] * cam[:, 0] / z + seq.k[0, 2]
        pv = seq.k[1, 1] * cam[:, 1] / z + seq.k[1, 2]
    return pu, pv, z


def warp(seq: Sequence, src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame `src` seen from camera `dst`: (image uint8, depth with NaN in holes, holes)."""
    rgb, depth = seq.rgb(src), _filled_depth(seq.depth(src))
    h, w = depth.shape
    u, v, z = _transform(seq, src, dst, depth)
    values, new_depth, weight = splat(rgb.reshape(-1, 3).T.astype(np.float32), u, v, z, (h, w))
    holes = weight < 0.05
    image = np.clip(np.moveaxis(values, 0, -1) + 0.5, 0, 255).astype(np.uint8)
    image[holes] = 0
    return image, np.where(holes, np.nan, new_depth), holes


def disoccluded(seq: Sequence, src: int, dst: int, holes: np.ndarray) -> np.ndarray:
    """Holes whose true surface (frame dst's depth) projects inside frame src: hidden, not out of view."""
    true = seq.depth(dst)
    h, w = true.shape
    u, v, z = _transform(seq, dst, src, np.where(np.isfinite(true), true, 1.0))
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1) & (z > 0)
    return holes & np.isfinite(true) & inside.reshape(h, w)


def fill(method: str, image: np.ndarray, depth: np.ndarray, holes: np.ndarray, neighbours) -> np.ndarray:
    import cv2

    if method == "stretch":
        idx = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
        return image[idx[0], idx[1]]
    if method == "inpaint":
        return cv2.inpaint(image, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    if method == "ours (+ neighbours)":
        image, depth, holes = reuse_revealed(image, depth, holes, neighbours)
    return background_fill(image, depth, holes)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: ndimage.gaussian_filter(x, sigma, truncate=2.0)  # noqa: E731 - 7x7 window
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))


def score(filled: np.ndarray, real: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    mse = float(np.mean((filled[mask].astype(np.float64) - real[mask].astype(np.float64)) ** 2))
    psnr = 10 * np.log10(255**2 / max(mse, 1e-10))
    return psnr, float(ssim_map(_grey(filled), _grey(real))[mask].mean())


def neighbour_views(seq: Sequence, t: int, dst: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [warp(seq, s, dst) for s in range(t - 1, max(-1, t - 1 - NEIGHBOURS), -1)]


def run_pairs(seq: Sequence, pairs: list[tuple[int, int]]) -> dict[str, list[tuple[float, float, int]]]:
    rows: dict[str, list[tuple[float, float, int]]] = {m: [] for m in METHODS}
    for t, k in pairs:
        image, depth, holes = warp(seq, t, t + k)
        mask = disoccluded(seq, t, t + k, holes)
        real = seq.rgb(t + k)
        neighbours = neighbour_views(seq, t, t + k)
        for m in METHODS:
            psnr, ssim = score(fill(m, image, depth, holes, neighbours), real, mask)
            rows[m].append((psnr, ssim, int(mask.sum())))
        scores = "; ".join(f"{m} {rows[m][-1][0]:.2f} dB / {rows[m][-1][1]:.3f}" for m in METHODS)
        print(f"pair t={t} k={k}: {int(mask.sum())} disoccluded px; {scores}", flush=True)
    return rows


def run_flicker(seq: Sequence, target: int, k: int, n: int) -> dict[str, float]:
    fills: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in METHODS}
    for s in range(target - k - n, target - k + 1):
        image, depth, holes = warp(seq, s, target)
        mask = disoccluded(seq, s, target, holes)
        neighbours = neighbour_views(seq, s, target)
        for m in METHODS:
            fills[m].append((_grey(fill(m, image, depth, holes, neighbours)), mask))
    out = {}
    for m in METHODS:
        diffs = [
            np.abs(a - b)[ma & mb].mean()
            for (a, ma), (b, mb) in zip(fills[m], fills[m][1:], strict=False)
            if (ma & mb).any()
        ]
        out[m] = float(np.mean(diffs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", default="4:6,10:6,16:8,24:6,30:10,36:8")
    parser.add_argument("--flicker", default="30:6:8", help="target:k:n (sources target-k-n .. target-k)")
    parser.add_argument("--sequence", type=Path, default=SEQ)
    args = parser.parse_args()
    seq = Sequence(args.sequence.resolve())
    pairs = [tuple(int(x) for x in p.split(":")) for p in args.pairs.split(",")]
    rows = run_pairs(seq, pairs)  # type: ignore[arg-type]
    target, k, n = (int(x) for x in args.flicker.split(":"))
    flicker = run_flicker(seq, target, k, n)
    print(f"\n| fill | PSNR dB (mean of {len(pairs)} pairs) | SSIM | pairs won vs inpaint | flicker (grey levels) |")
    print("|---|---|---|---|---|")
    for m in METHODS:
        psnr = np.mean([r[0] for r in rows[m]])
        ssim = np.mean([r[1] for r in rows[m]])
        won = sum(a[0] > b[0] for a, b in zip(rows[m], rows["inpaint"], strict=True))
        print(f"| {m} | {psnr:.2f} | {ssim:.3f} | {won}/{len(pairs)} | {flicker[m]:.2f} |")


if __name__ == "__main__":
    main()
