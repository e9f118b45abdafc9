"""Surface normals from a depth map, and their colour view.

Normals are computed from the back-projected 3D points, not from image-space
depth gradients: a gradient of z per pixel mixes metres with pixels and gives a
tilted plane the wrong normal unless focal length and distance are accounted
for. With points P(u, v), the tangents dP/du and dP/dv span the surface and
their cross product is the true 3D normal.

At depth discontinuities a central difference would straddle two surfaces and
produce a normal pointing sideways (the "fin" artefact around every object). So
each tangent is a central difference only where both neighbours are on the same
surface (relative depth change below `max_rel_jump`); otherwise the one-sided
difference toward the neighbour on the same surface is used, and if neither
neighbour is, the smaller jump. Invalid depth gives a zero normal.

Normals are unit vectors in the camera frame (x right, y down, z forward) and
face the camera (n . P < 0).
"""

from __future__ import annotations

import numpy as np

from .camera import Camera, valid_depth_mask
from .settings import DEFAULT_MAX_REL_JUMP

__all__ = ["DEFAULT_MAX_REL_JUMP", "normals_to_rgb", "surface_normals", "view_angle_deg"]


def _one_axis_tangent(points: np.ndarray, z: np.ndarray, axis: int, max_rel_jump: float) -> np.ndarray:
    """Tangent along `axis` (1 = u, 0 = v): central where continuous, else the best one-sided difference."""
    h, w = z.shape
    diff = np.diff(points, axis=axis)  # P[i+1] - P[i]
    dz = np.abs(np.diff(z, axis=axis))
    pad_shape = (1, w) if axis == 0 else (h, 1)
    inf = np.full(pad_shape, np.inf)
    nan3 = np.full(pad_shape + (3,), np.nan)
    # jump toward the next (forward) and previous (backward) neighbour, relative to this pixel's depth
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd_jump = np.concatenate([dz, inf], axis=axis) / z
        bwd_jump = np.concatenate([inf, dz], axis=axis) / z
    fwd_jump = np.where(np.isfinite(fwd_jump), fwd_jump, np.inf)
    bwd_jump = np.where(np.isfinite(bwd_jump), bwd_jump, np.inf)
    fwd = np.concatenate([diff, nan3], axis=axis)
    bwd = np.concatenate([nan3, diff], axis=axis)
    use_f = fwd_jump <= max_rel_jump
    use_b = bwd_jump <= max_rel_jump
    fallback = np.where((fwd_jump <= bwd_jump)[..., None], fwd, bwd)
    tangent = np.where(
        (use_f & use_b)[..., None],
        0.5 * (fwd + bwd),
        np.where(use_f[..., None], fwd, np.where(use_b[..., None], bwd, fallback)),
    )
    return tangent


def surface_normals(depth: np.ndarray, camera: Camera, max_rel_jump: float = DEFAULT_MAX_REL_JUMP) -> np.ndarray:
    """HxWx3 float32 unit normals (camera frame, facing the camera); zeros where undefined."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = valid_depth_mask(depth)
    z = np.where(valid, depth, np.nan)
    points = camera.unproject(z)
    du = _one_axis_tangent(points, z, axis=1, max_rel_jump=max_rel_jump)
    dv = _one_axis_tangent(points, z, axis=0, max_rel_jump=max_rel_jump)
    normals = np.cross(dv, du)  # x-right, y-down: dv x du points toward the camera for a facing surface
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    ok = valid & np.isfinite(norm[..., 0]) & (norm[..., 0] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = np.where(ok[..., None], normals / norm, 0.0)
    # a visible surface faces the camera; flip the rare back-facing estimate at a fold
    facing = np.sum(normals * np.where(ok[..., None], points, 0.0), axis=-1)
    normals[facing > 0] *= -1.0
    return normals.astype(np.float32)


def view_angle_deg(normals: np.ndarray, camera: Camera) -> np.ndarray:
    """Angle (degrees) between each normal and the line of sight; 90 = seen edge-on (grazing)."""
    rays = camera.rays()
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    cos = np.abs(np.sum(normals * rays, axis=-1))
    angle = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
    angle[~np.any(normals != 0, axis=-1)] = np.nan
    return angle.astype(np.float32)


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """Colour view: the usual normal-map encoding with x right, y up, z toward the viewer.

    RGB = (n' + 1) / 2 with n' = (nx, -ny, -nz) from our camera frame, so a wall
    facing the camera is (128, 128, 255) lavender, a floor greenish, a surface
    turned to the right reddish. Undefined normals are black.
    """
    normals = np.asarray(normals, dtype=np.float32)
    flipped = normals * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    rgb = np.clip((flipped + 1.0) * 0.5 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb[~np.any(normals != 0, axis=-1)] = 0
    return rgb
