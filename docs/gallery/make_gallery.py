"""Rebuild the effect gallery in docs/gallery/ (run from the repository root).

    python docs/gallery/make_gallery.py [--shared ../shared]

Depth sources (no network weights are needed, so the pictures can be rebuilt anywhere):
- Middlebury 2014 "Motorcycle" (shared/data/rgbd): a real photo with *measured* metric depth
  (ground-truth disparity -> metres with the calibration; unknown pixels filled from their
  nearest known neighbour). Camera focal length from the calibration file.
- moon.jpg (shared/data/photos): a real photo with a *synthetic stand-in* depth: a ground
  plane seen from 1.7 m (horizon traced by hand) and the astronaut as an upright billboard
  standing at his feet's distance (outline traced by hand as a polygon, then refined on the
  photo with the portrait matte). Replace it with a Depth Pro prediction when weights are at hand:
  `sharpdepth predict moon.jpg -o out && sharpdepth dof moon.jpg --depth out/moon.npz ...`.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from sharpdepth.apps.dof import DofSettings, depth_of_field
from sharpdepth.apps.parallax import plan_parallax, render_frames
from sharpdepth.apps.portrait import portrait, refine_matte
from sharpdepth.apps.settings import ParallaxSettings, PortraitSettings, StereoSettings
from sharpdepth.apps.stereo import anaglyph, stereo_pair
from sharpdepth.apps.warp import splat
from sharpdepth.geometry.camera import Camera
from sharpdepth.geometry.normals import normals_to_rgb, surface_normals
from sharpdepth.geometry.pointcloud import depth_to_point_cloud
from sharpdepth.io.depth_files import read_pfm
from sharpdepth.result import DepthResult, OutputKind

OUT = Path(__file__).resolve().parent
WIDTH = 760  # width of every gallery picture


def middlebury(shared: Path, scene: str = "Motorcycle") -> DepthResult:
    folder = shared / "data/rgbd/middlebury2014_quarter" / scene
    calib = (folder / "calib.txt").read_text()
    focal = float(re.search(r"cam0=\[\s*([\d.]+)", calib).group(1))
    doffs = float(re.search(r"doffs=\s*([\d.]+)", calib).group(1))
    baseline_mm = float(re.search(r"baseline=\s*([\d.]+)", calib).group(1))
    disparity = read_pfm(folder / "disp0GT.pfm")
    known = np.isfinite(disparity)
    nearest = ndimage.distance_transform_edt(~known, return_distances=False, return_indices=True)
    depth_m = baseline_mm * focal / (disparity[tuple(nearest)] + doffs) / 1000.0
    image = np.asarray(Image.open(folder / "im0.png").convert("RGB"))
    return DepthResult(depth_m, OutputKind.METRIC_DEPTH, focal_px=focal, image=image, model_name="middlebury-gt")


# hand-traced in the 700x700 picture: horizon (left, right) and the astronaut's outline
_HORIZON = ((0, 120), (700, 45))
_ASTRONAUT = [
    (300, 30), (410, 28), (418, 100), (440, 135), (462, 165), (468, 205), (448, 225), (440, 260), (455, 330),
    (462, 385), (478, 420), (470, 435), (435, 428), (428, 390), (405, 350), (380, 360), (360, 395), (345, 420),
    (315, 430), (312, 405), (325, 370), (318, 300), (305, 260), (295, 310), (275, 315), (270, 280), (278, 210),
    (282, 155), (292, 120), (285, 60),
]  # fmt: skip


def moon_standin(shared: Path, size: int = 700) -> DepthResult:
    """Real photo, synthetic depth: ground plane from a 1.7 m eye height + astronaut billboard."""
    image = np.asarray(Image.open(shared / "data/photos/moon.jpg").convert("RGB").resize((size, size), Image.LANCZOS))
    focal = size / 2 / np.tan(np.radians(49.2 / 2))  # Hasselblad 60 mm on 6x6 film: ~49 deg
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    (u0, v0), (u1, v1) = _HORIZON
    horizon = v0 + (v1 - v0) * (u - u0) / (u1 - u0)
    with np.errstate(divide="ignore"):
        ground = np.where(v > horizon + 1, 1.7 * focal / (v - horizon), 400.0)
    depth = np.minimum(ground, 400.0)
    outline = Image.new("L", (size, size))
    ImageDraw.Draw(outline).polygon(_ASTRONAUT, fill=1)
    mask = refine_matte(image, np.asarray(outline, bool), band_px=6) > 0.5
    feet = 1.7 * focal / (430 - (v0 + (v1 - v0) * (390 - u0) / (u1 - u0)))
    depth[mask] = feet
    return DepthResult(depth, OutputKind.METRIC_DEPTH, focal_px=focal, image=image, model_name="stand-in")


def fit(rgb: np.ndarray, width: int = WIDTH) -> Image.Image:
    img = Image.fromarray(rgb)
    return img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)


def row(*panels: np.ndarray, gap: int = 4) -> np.ndarray:
    h = min(p.shape[0] for p in panels)
    parts = []
    for p in panels:
        parts += [p[:h], np.full((h, gap, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def save(name: str, rgb: np.ndarray, quality: int = 78, width: int = WIDTH) -> None:
    path = OUT / name
    fit(rgb, width).save(path, quality=quality, optimize=True, progressive=True)
    print(f"{name}: {path.stat().st_size / 1024:.0f} KB")


def oblique_view(result: DepthResult, yaw_deg: float, scale: float = 0.4, **options) -> np.ndarray:
    """Render a point cloud from a camera turned `yaw_deg` around the scene's middle (z-buffered splats).

    Rendered at `scale` of the photo's size so neighbouring points still touch after the turn.
    """
    cam = Camera.from_result(result)
    cloud = depth_to_point_cloud(result.depth, cam, result.image, with_normals=False, **options)
    pivot = np.array([0.0, 0.0, float(np.median(result.depth))])
    yaw = np.radians(yaw_deg)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    pts = (cloud.points - pivot) @ rot.T + pivot
    view = cam.scaled(scale)
    u, v, z = view.project(pts)
    values, _, weight = splat(cloud.colors.T.astype(np.float32), u, v, z, (view.height, view.width))
    out = np.where(weight[None] > 0.3, values, 235.0)
    return np.clip(out, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def gaussian_blend(image: np.ndarray, coc_px: np.ndarray) -> np.ndarray:
    """The usual shortcut for comparison: one Gaussian blur, blended in by each pixel's blur size."""
    from sharpdepth.apps.common import linear_to_srgb, srgb_to_linear

    linear = srgb_to_linear(image)
    radius = np.abs(coc_px) / 2
    blurred = np.stack([ndimage.gaussian_filter(c, radius.max() / 2) for c in linear])
    weight = np.clip(radius / 3.0, 0, 1)[None]  # fully blurred from a 3 px radius on
    return linear_to_srgb(linear * (1 - weight) + blurred * weight)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared")
    args = parser.parse_args()
    moto = middlebury(args.shared)
    moon = moon_standin(args.shared)
    start = time.time()

    near = depth_of_field(moto, DofSettings(focus_px=(520, 150), f_number=1.4, focal_length_mm=85))
    far = depth_of_field(moto, DofSettings(focus_px=(600, 60), f_number=1.4, focal_length_mm=85))
    save("dof_motorcycle.jpg", row(near.image, far.image))
    save("dof_vs_gaussian.jpg", row(*(crop[60:260, 400:700] for crop in (gaussian_blend(moto.image, near.coc_px),
                                                                           near.image))), width=600)  # fmt: skip
    moon_dof = depth_of_field(
        moon, DofSettings(focus_px=(370, 250), f_number=2.0, focal_length_mm=120, shape="hexagon")
    )
    save("dof_moon.jpg", row(moon.image, moon_dof.image))

    pr = portrait(moto, PortraitSettings(f_number=1.4, focal_length_mm=85))
    matte = np.repeat((pr.matte[..., None] * 255).astype(np.uint8), 3, axis=2)
    save("portrait_motorcycle.jpg", row(moto.image, matte, pr.image))

    frames = []
    for kind, t in (("circle", (0.0, 0.25, 0.5)), ("dolly-zoom", (0.5,))):
        plan = plan_parallax(moon, ParallaxSettings(path=kind, duration_s=8, fps=1, max_size_px=None))
        rendered = list(render_frames(plan))
        frames += [rendered[round(x * 8) % 8] for x in t]
    save("parallax_moon.jpg", np.concatenate([row(*frames[:2]), np.full((4, 2 * 700 + 4, 3), 255, np.uint8),
                                              row(*frames[2:])]), width=560)  # fmt: skip

    pair = stereo_pair(moto, StereoSettings(baseline_m=0.12, convergence_m=3.0))
    save("stereo_anaglyph_motorcycle.jpg", anaglyph(pair.left, pair.right, "half-color"), width=600)

    # point clouds: the measured depth is crisp, so soften its edges like a network's (3 px) to show flying pixels
    soft = DepthResult(1.0 / ndimage.gaussian_filter(1.0 / moto.depth, 3.0), OutputKind.METRIC_DEPTH,
                       focal_px=moto.focal_px, image=moto.image)  # fmt: skip
    naive = oblique_view(soft, 18, max_rel_jump=1e9, max_grazing_deg=90)
    clean = oblique_view(soft, 18)
    save("pointcloud_motorcycle.jpg", row(naive, clean))
    normals = normals_to_rgb(surface_normals(moto.depth, Camera.from_result(moto)))
    save("normals_motorcycle.jpg", row(moto.image, normals))
    print(f"rendered in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
