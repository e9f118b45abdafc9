"""Camera paths for novel-view videos of a Gaussian scene: SHARP's official trajectories plus a dolly zoom.

Official (`sharp.utils.camera`, apple/ml-sharp @ 1eaa046): the eye moves in a small range set
by the nearest depth (0.1 % quantile d_min): sideways up to 0.08 * d_min * |(W, H)| / f, forward
up to 0.15 * d_min, and looks at (0, 0, max(2 m, 10 % depth quantile)) with "up" = -y. Render
intrinsics put the principal point at ((W-1)/2, (H-1)/2) on a picture made even-sized (halved
above 3000 px high). `dolly_zoom` (not in the official tool) moves the camera forward by that
forward range while the focal length shrinks so the focus plane keeps its size on screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError

TRAJECTORIES = ("rotate_forward", "rotate", "swipe", "shake", "dolly_zoom")
DEFAULT_TRAJECTORY = "rotate_forward"
DEFAULT_STEPS = 60
MAX_DISPARITY = 0.08
MAX_ZOOM = 0.15
MIN_FOCUS_DEPTH_M = 2.0


@dataclass(frozen=True)
class View:
    """One camera of a path: world (= source camera) to camera, intrinsics, picture size."""

    world_to_camera: np.ndarray
    K: np.ndarray
    width: int
    height: int


def screen_size(width: int, height: int) -> tuple[int, int]:
    """The official render size: halved above 3000 px high, then made even (for H.264)."""
    if height > 3000:
        width, height = width // 2, height // 2
    return width + width % 2, height + height % 2


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera matrix of an OpenCV camera at `eye` looking at `target`."""
    front = target - eye
    front = front / np.linalg.norm(front)
    right = np.cross(front, up)
    right = right / np.linalg.norm(right)
    down = np.cross(front, right)
    rot = np.stack([right, down, front], axis=-1)
    m = np.eye(4)
    m[:3, :3] = rot.T
    m[:3, 3] = -rot.T @ eye
    return m


def _eyes(name: str, steps: int, offset: np.ndarray) -> list[np.ndarray]:
    ox, oy, oz = offset
    t = np.linspace(0.0, 1.0, steps)
    if name == "rotate_forward":
        return [np.array([ox * math.sin(2 * math.pi * s), 0.0, oz * (1 - math.cos(2 * math.pi * s)) / 2]) for s in t]
    if name == "rotate":
        return [np.array([ox * math.sin(2 * math.pi * s), oy * math.cos(2 * math.pi * s), 0.0]) for s in t]
    if name == "swipe":
        return [np.array([x, 0.0, 0.0]) for x in np.linspace(-ox, ox, steps)]
    half = steps // 2  # shake: left-right, then up-down
    horizontal = [np.array([ox * math.sin(2 * math.pi * s), 0.0, 0.0]) for s in np.linspace(0, 1, half)]
    vertical = [np.array([0.0, oy * math.sin(2 * math.pi * s), 0.0]) for s in np.linspace(0, 1, steps - half)]
    return horizontal + vertical


def trajectory(
    depths: np.ndarray,
    focal_px: float,
    width: int,
    height: int,
    name: str = DEFAULT_TRAJECTORY,
    steps: int = DEFAULT_STEPS,
) -> list[View]:
    """The views of path `name` for a scene whose points have z-depths `depths` (metres), seen
    from a source picture of width x height pixels at focal_px."""
    if name not in TRAJECTORIES:
        raise OptionError(f"unknown trajectory {name!r}; choose from {', '.join(TRAJECTORIES)}")
    if steps < 1:
        raise OptionError(f"a trajectory needs at least one step, got {steps}")
    z = np.asarray(depths, np.float64)
    z = z[z > 0]
    if z.size == 0:
        raise OptionError("the scene has no point in front of the camera")
    near, focus = np.quantile(z, [0.001, 0.1])
    focus = max(MIN_FOCUS_DEPTH_M, float(focus))
    diagonal = math.hypot(width / focal_px, height / focal_px)
    offset = np.array([MAX_DISPARITY * diagonal * near, MAX_DISPARITY * diagonal * near, MAX_ZOOM * near])
    w, h = screen_size(width, height)
    k = np.array(
        [
            [focal_px * w / width, 0, (width - 1) / 2 * w / width],
            [0, focal_px * h / height, (height - 1) / 2 * h / height],
            [0, 0, 1],
        ]
    )
    up = np.array([0.0, -1.0, 0.0])
    if name == "dolly_zoom":
        views = []
        for s in np.linspace(0.0, 1.0, steps):
            forward = offset[2] * (1 - math.cos(2 * math.pi * s)) / 2
            zoomed = k.copy()
            zoomed[0, 0] *= (focus - forward) / focus
            zoomed[1, 1] *= (focus - forward) / focus
            views.append(View(look_at(np.array([0.0, 0.0, forward]), np.array([0.0, 0.0, focus]), up), zoomed, w, h))
        return views
    target = np.array([0.0, 0.0, focus])
    return [View(look_at(eye, target, up), k, w, h) for eye in _eyes(name, steps, offset)]
