"""Camera maths of Depth Anything 3: its 9-number pose encoding, quaternions, rigid inverses.

DA3 encodes a camera as [t (3), quaternion x y z w (4), fov_h, fov_w] of the camera-to-world
pose; `pose_encoding_to_cameras` is its camera decoder's read-out (principal point at the
centre of the network grid), `cameras_to_pose_encoding` the camera encoder's input.
`umeyama_scale` is the similarity fit the posed path uses to bring depth into the given
poses' units.
"""

from __future__ import annotations

import numpy as np
import torch


def rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid (..., 3, 4) or (..., 4, 4) transforms, keeping the shape ([R^T | -R^T t])."""
    r, t = m[..., :3, :3], m[..., :3, 3:]
    top = torch.cat([r.mT, -r.mT @ t], dim=-1)
    return torch.cat([top, m[..., 3:, :]], dim=-2)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions, scalar last (x, y, z, w), not necessarily unit -> (..., 3, 3)."""
    i, j, k, r = torch.unbind(q, -1)
    two_s = 2.0 / (q * q).sum(-1)
    entries = (
        1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
        two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
        two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
    )  # fmt: skip
    return torch.stack(entries, -1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (x, y, z, w) with w >= 0.

    The largest of the four |q| candidates is used (numerically safest), as DA3 does."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = torch.unbind(m.reshape(m.shape[:-2] + (9,)), -1)
    squares = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    q_abs = torch.where(squares > 0, torch.sqrt(squares.clamp(min=0)), torch.zeros_like(squares))
    candidates = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )  # rows: candidates in (w, x, y, z) order
    floor = torch.tensor(0.1, dtype=q_abs.dtype, device=q_abs.device)
    candidates = candidates / (2.0 * q_abs[..., None].max(floor))
    best = q_abs.argmax(dim=-1)
    wxyz = torch.gather(candidates, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    xyzw = wxyz[..., [1, 2, 3, 0]]
    return torch.where(xyzw[..., 3:4] < 0, -xyzw, xyzw)


def pose_encoding_to_cameras(encoding: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 9) encodings -> (camera-to-world (..., 3, 4), intrinsics (..., 3, 3)) on an H x W grid."""
    h, w = hw
    t, quat, fov_h, fov_w = encoding[..., :3], encoding[..., 3:7], encoding[..., 7], encoding[..., 8]
    c2w = torch.cat([quaternion_to_matrix(quat), t[..., None]], dim=-1)
    fy = (h / 2.0) / torch.clamp(torch.tan(fov_h / 2.0), 1e-6)
    fx = (w / 2.0) / torch.clamp(torch.tan(fov_w / 2.0), 1e-6)
    k = torch.zeros(encoding.shape[:-1] + (3, 3), device=encoding.device)
    k[..., 0, 0], k[..., 1, 1] = fx, fy
    k[..., 0, 2], k[..., 1, 2], k[..., 2, 2] = w / 2, h / 2, 1.0
    return c2w, k


def cameras_to_pose_encoding(c2w: torch.Tensor, k: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Camera-to-world (..., 3|4, 4) and intrinsics (..., 3, 3) on an H x W grid -> (..., 9)."""
    h, w = hw
    quat = matrix_to_quaternion(c2w[..., :3, :3])
    fov_h = 2 * torch.atan((h / 2) / k[..., 1, 1])
    fov_w = 2 * torch.atan((w / 2) / k[..., 0, 0])
    return torch.cat([c2w[..., :3, 3], quat, fov_h[..., None], fov_w[..., None]], dim=-1).float()


def normalise_world_to_cam(w2c: torch.Tensor) -> torch.Tensor:
    """Given world-to-camera poses (B, S, 4, 4) as DA3's camera encoder expects them: the first
    camera at the origin and the median camera distance scaled to 1 (at least 0.1 before scaling)."""
    out = w2c @ rigid_inverse(w2c[:, :1])
    distances = rigid_inverse(out)[..., :3, 3].norm(dim=-1)
    median = torch.clamp(torch.median(distances), min=1e-1)
    out = out.clone()
    out[..., :3, 3] = out[..., :3, 3] / median
    return out


def umeyama_scale(source: np.ndarray, target: np.ndarray) -> float:
    """Scale s of the least-squares similarity target ~ s R source + t (Umeyama 1991), points (N, 3).

    1.0 when the source points do not spread (one view, or identical centres)."""
    src = source - source.mean(0)
    dst = target - target.mean(0)
    var = float((src**2).sum() / len(src))
    if var < 1e-12:
        return 1.0
    cov = dst.T @ src / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    return float((d * sign).sum() / var)
