"""Render the bundled example picture: a small room with known geometry.

We may not redistribute other people's photos, so the example is ray-cast here:
a checkered floor, three walls and two spheres, seen by a pinhole camera whose
focal length is written to EXIF (`FocalLengthIn35mmFilm`), so `sharpdepth
predict` exercises the EXIF focal path. The exact depth is saved beside it
(`room_depth.png`, 16-bit millimetres) for checking metric predictions.

    python examples/render_example.py      # writes examples/room.jpg, examples/room_depth.png
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 1024, 768
FOCAL_35MM = 27  # integer EXIF tag -> f_px = 27 * 1280 / 43.27 = 798.8
FOCAL_PX = FOCAL_35MM * math.hypot(WIDTH, HEIGHT) / math.hypot(36, 24)
OUT = Path(__file__).resolve().parent


def rays() -> np.ndarray:
    """Unit-z ray directions (x right, y down, z forward) through pixel centres."""
    u, v = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    return np.stack([(u - WIDTH / 2) / FOCAL_PX, (v - HEIGHT / 2) / FOCAL_PX, np.ones_like(u)], axis=-1)


def plane_hit(d: np.ndarray, axis: int, value: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = value / d[..., axis]
    return np.where(t > 0, t, np.inf)


def sphere_hit(d: np.ndarray, centre, radius: float) -> np.ndarray:
    c = np.asarray(centre, dtype=np.float64)
    a = (d * d).sum(-1)
    b = -2 * (d @ c)
    disc = b * b - 4 * a * (c @ c - radius**2)
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (t > 0), t, np.inf)


def render() -> tuple[np.ndarray, np.ndarray]:
    d = rays()
    spheres = [((0.7, 0.55, 4.0), 0.65, (0.85, 0.25, 0.2)), ((-1.1, 0.8, 3.0), 0.4, (0.2, 0.45, 0.85))]
    surfaces = [
        ("floor", plane_hit(d, 1, 1.2)),
        ("back", plane_hit(d, 2, 7.0)),
        ("left", plane_hit(d, 0, -2.6)),
        ("right", plane_hit(d, 0, 2.6)),
        ("ceiling", plane_hit(d, 1, -1.6)),
    ] + [(f"sphere{i}", sphere_hit(d, c, r)) for i, (c, r, _) in enumerate(spheres)]
    ts = np.stack([t for _, t in surfaces])
    index = ts.argmin(0)
    t = ts.min(0)
    p = d * t[..., None]  # points; z = t because rays have unit z
    normal = np.zeros_like(p)
    albedo = np.zeros_like(p)
    for k, (name, _) in enumerate(surfaces):
        m = index == k
        if name == "floor":
            normal[m] = (0, -1, 0)
            checker = ((np.floor(p[m][:, 0] * 2) + np.floor(p[m][:, 2] * 2)) % 2)[:, None]
            albedo[m] = 0.35 + 0.4 * checker * np.array([0.9, 0.8, 0.6])
        elif name == "ceiling":
            normal[m], albedo[m] = (0, 1, 0), (0.8, 0.8, 0.78)
        elif name == "back":
            normal[m] = (0, 0, -1)
            stripes = 0.5 + 0.5 * np.sin(p[m][:, 0] * 3.0)[:, None]
            albedo[m] = np.array([0.55, 0.6, 0.5]) * (0.8 + 0.2 * stripes)
        elif name in ("left", "right"):
            normal[m] = (1, 0, 0) if name == "left" else (-1, 0, 0)
            albedo[m] = (0.7, 0.62, 0.5)
        else:
            centre, _, colour = spheres[int(name[-1])]
            normal[m] = (p[m] - np.asarray(centre)) / np.linalg.norm(p[m] - np.asarray(centre), axis=1, keepdims=True)
            albedo[m] = colour
    light = np.array([0.5, -1.2, 2.5])
    to_light = light - p
    dist = np.linalg.norm(to_light, axis=-1, keepdims=True)
    lambert = np.clip((normal * to_light / dist).sum(-1, keepdims=True), 0, 1)
    shade = 0.25 + 0.9 * lambert * (3.0 / (1.0 + 0.15 * dist**2))
    rgb = np.clip(albedo * shade, 0, 1) ** (1 / 2.2)
    noise = np.random.default_rng(1).normal(0, 0.01, rgb.shape)
    return (np.clip(rgb + noise, 0, 1) * 255 + 0.5).astype(np.uint8), p[..., 2].astype(np.float32)


def main() -> None:
    rgb, depth = render()
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x010F] = "sharpdepth"
    exif[0x0110] = "ray-cast example"
    exif.get_ifd(0x8769)[0xA405] = FOCAL_35MM
    img.save(OUT / "room.jpg", quality=92, exif=exif)
    Image.fromarray(np.clip(np.rint(depth * 1000), 0, 65535).astype(np.uint16)).save(OUT / "room_depth.png")
    print(f"wrote room.jpg ({WIDTH}x{HEIGHT}, f = {FOCAL_PX:.1f} px) and room_depth.png (mm)")


if __name__ == "__main__":
    main()
