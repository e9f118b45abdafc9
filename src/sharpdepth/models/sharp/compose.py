"""SHARP's weight-free Gaussian maths: base Gaussians, deltas added to them, unprojection.

Written from the official `models/initializer.py`, `models/composer.py` and
`utils/gaussians.py` (apple/ml-sharp @ 1eaa046) with the same float32 operation order, so the
parity fixtures match to float rounding. Conventions worth knowing:

* "NDC" Gaussians: x' = z * x_ndc, y' = z * y_ndc, z metric, on the stretched square image;
  the unprojection (`unproject`) turns them into metres in the OpenCV camera frame of the
  original picture (principal point at W/2, H/2 — not (W-1)/2).
* Depth is normalised so that the nearest point is at 1 before the network sees it; the
  global scale undoes that at the end, so the features do not depend on the focal length.
* Quaternions leave the composer unnormalised; after unprojection they come from an SVD of
  the covariance (descending singular values, rotation fixed to det +1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..splats import SplatTensors

DELTA_CHANNELS = 14
"""Per Gaussian and layer: 3 mean, 3 scale, 4 quaternion, 3 colour, 1 opacity."""

DELTA_FACTOR_XY = 0.001
DELTA_FACTOR_Z = 0.001
DELTA_FACTOR_COLOR = 0.1
MAX_SCALE = 10.0
"""Scale deltas multiply the base scale by 10 * sigmoid(a * d + b): from 0 to 10, 1 at d = 0."""
DEPTH_CLAMP = 100.0
"""Normalised depth (nearest point = 1) is clamped here before the network sees it."""


@dataclass
class BaseGaussians:
    """The initializer's output: base values on the Gaussian grid (N, C, layers, h, w) and the
    network's feature input."""

    x_ndc: torch.Tensor
    y_ndc: torch.Tensor
    inverse_z: torch.Tensor
    """Normalised disparity of the nearest surface in each stride x stride cell, per layer."""
    scales: torch.Tensor
    colors: torch.Tensor
    """sRGB, the image averaged over each cell (same for every layer)."""
    feature_input: torch.Tensor
    """(N, 5, S, S): 2 * (image, normalised disparity) - 1."""
    global_scale: torch.Tensor
    """(N,) metres per normalised unit (the nearest depth)."""


@dataclass
class NdcGaussians:
    """Gaussians before unprojection, flattened layer-major: (N, G, C) and (N, G)."""

    means: torch.Tensor
    scales: torch.Tensor
    quaternions: torch.Tensor
    """w x y z, not normalised."""
    colors: torch.Tensor
    """Linear RGB."""
    opacities: torch.Tensor


def initial_gaussians(image: torch.Tensor, depth: torch.Tensor, stride: int) -> BaseGaussians:
    """Official `MultiLayerInitializer` with the released options (surface_min layers, colours
    on all layers, normalised depth)."""
    batch, layers, height, width = depth.shape
    nearest = depth.flatten(1).min(dim=-1).values
    depth_factor = 1.0 / (nearest + 1e-6)
    depth = (depth * depth_factor[:, None, None, None]).clamp(max=DEPTH_CLAMP)
    disparity = 1.0 / depth
    inverse_z = F.max_pool2d(disparity, stride, stride)[:, None]  # (N, 1, layers, h, w)
    xx = torch.arange(0.5 * stride, width, stride, device=depth.device)
    yy = torch.arange(0.5 * stride, height, stride, device=depth.device)
    xx, yy = torch.meshgrid(2 * xx / width - 1.0, 2 * yy / height - 1.0, indexing="xy")
    grid = (batch, 1, layers, *xx.shape)
    scales = torch.ones_like(inverse_z) / inverse_z * (2 * stride / float(width))
    colors = F.avg_pool2d(image, stride, stride)[:, :, None].expand(-1, -1, layers, -1, -1)
    feature_input = 2.0 * torch.cat([image, disparity], dim=1) - 1.0
    return BaseGaussians(
        x_ndc=xx.expand(grid),
        y_ndc=yy.expand(grid),
        inverse_z=inverse_z,
        scales=scales,
        colors=colors,
        feature_input=feature_input,
        global_scale=1.0 / depth_factor,
    )


def inverse_softplus(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log(exp(x) - 1), written as the official code does (clamped at eps)."""
    x = x.clamp_min(eps)
    s = torch.sigmoid(-x)
    return x + torch.log(-(s / (1.0 - s)) + 1.0)


def inverse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x / (1.0 - x))


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB -> linear RGB (the official threshold 0.04045)."""
    safe = torch.where(x <= 0.04045, 0.04045, x)
    return torch.where(x <= 0.04045, x / 12.92, ((safe + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear RGB -> sRGB (the official threshold 0.0031308)."""
    safe = torch.where(x <= 0.0031308, 0.0031308, x)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * safe ** (1 / 2.4) - 0.055)


def _scale_constants() -> tuple[float, float]:
    """a, b with MAX_SCALE * sigmoid(a * 0 + b) = 1 and unit slope at 0 (float32 b, as the official)."""
    a = MAX_SCALE / (MAX_SCALE - 1.0)
    b = inverse_sigmoid(torch.tensor(1.0 / MAX_SCALE)).item()
    return a, b


def compose_gaussians(delta: torch.Tensor, base: BaseGaussians) -> NdcGaussians:
    """Official `GaussianComposer`: base values + deltas through fixed activations, then metric
    (x global scale) and flattened (layer, row, column)."""
    x = base.x_ndc + DELTA_FACTOR_XY * delta[:, 0:1]
    y = base.y_ndc + DELTA_FACTOR_XY * delta[:, 1:2]
    inverse_z = F.softplus(inverse_softplus(base.inverse_z) + DELTA_FACTOR_Z * delta[:, 2:3])
    z = 1.0 / (inverse_z + 1e-3)
    means = torch.cat([z * x, z * y, z], dim=1)
    a, b = _scale_constants()
    scales = (base.scales * base.inverse_z * z) * (MAX_SCALE * torch.sigmoid(a * delta[:, 3:6] + b))
    one = torch.tensor([1.0, 0.0, 0.0, 0.0], device=delta.device, dtype=delta.dtype)
    quaternions = one[None, :, None, None, None] + delta[:, 6:10]
    color_base = base.colors.clamp(0.01, 0.99)
    colors = srgb_to_linear(torch.sigmoid(inverse_sigmoid(color_base) + DELTA_FACTOR_COLOR * delta[:, 10:13]))
    opacities = torch.sigmoid(delta[:, 13])  # base opacity 0.5: inverse_sigmoid(0.5) = 0

    def flat(t: torch.Tensor) -> torch.Tensor:  # (N, C, L, h, w) -> (N, L*h*w, C)
        return t.permute(0, 2, 3, 4, 1).flatten(1, 3)

    scale = base.global_scale[:, None, None]
    return NdcGaussians(
        means=scale * flat(means),
        scales=scale * flat(scales),
        quaternions=flat(quaternions),
        colors=flat(colors),
        opacities=opacities.flatten(1, 3),
    )


# --------------------------------------------------------------------------- unprojection


def unprojection_matrix(focal_px: float, width: int, height: int, size: int) -> torch.Tensor:
    """3x4 float32 affine map from SHARP's NDC space to metres (official `get_unprojection_matrix`
    with intrinsics [[f, 0, W/2], [0, f, H/2]] scaled to the size x size network input)."""
    k = torch.tensor(
        [[focal_px, 0, width / 2, 0], [0, focal_px, height / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=torch.float32,
    )
    k[0] *= size / width
    k[1] *= size / height
    ndc = torch.tensor(
        [[2.0 / size, 0.0, -1.0, 0.0], [0.0, 2.0 / size, -1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    return torch.linalg.inv(ndc @ k)[:3]


def rotations_from_quaternions(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) w x y z (normalised here) -> (..., 3, 3) rotation matrices."""
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def quaternions_from_rotations(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) proper rotations -> (..., 4) unit w x y z, by the largest of the trace and the
    diagonal (the branch scipy's `Rotation.from_matrix` takes, so signs follow it too)."""
    diag = torch.diagonal(m, dim1=-2, dim2=-1)
    trace = diag.sum(-1)
    decision = torch.cat([diag, trace[..., None]], dim=-1)
    choice = decision.argmax(-1)
    xyzw = torch.empty(m.shape[:-2] + (4,), dtype=m.dtype, device=m.device)
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        sel = choice == i
        mm = m[sel]
        q = torch.empty(mm.shape[:-2] + (4,), dtype=m.dtype, device=m.device)
        q[..., i] = 1 - trace[sel] + 2 * mm[..., i, i]
        q[..., j] = mm[..., j, i] + mm[..., i, j]
        q[..., k] = mm[..., k, i] + mm[..., i, k]
        q[..., 3] = mm[..., k, j] - mm[..., j, k]
        xyzw[sel] = q
    sel = choice == 3
    mm = m[sel]
    xyzw[sel] = torch.stack(
        [
            mm[..., 2, 1] - mm[..., 1, 2],
            mm[..., 0, 2] - mm[..., 2, 0],
            mm[..., 1, 0] - mm[..., 0, 1],
            1 + trace[sel],
        ],
        dim=-1,
    )
    xyzw = xyzw / torch.linalg.norm(xyzw, dim=-1, keepdim=True)
    return xyzw[..., [3, 0, 1, 2]]


def covariances(quaternions: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Sigma = R(q) diag(s)^2 R(q)^T."""
    r = rotations_from_quaternions(quaternions)
    return (r * scales.square()[..., None, :]) @ r.transpose(-1, -2)


def decompose_covariances(cov: torch.Tensor, chunk: int = 1 << 18) -> tuple[torch.Tensor, torch.Tensor]:
    """(quaternions w x y z, standard deviations sorted descending) of covariance matrices:
    float64 SVD on the CPU as the official code, reflections turned into rotations by
    negating the last column. Runs in chunks to bound the float64 temporaries."""
    quats, stds = [], []
    flat = cov.reshape(-1, 3, 3)
    for start in range(0, flat.shape[0], chunk):
        c = flat[start : start + chunk].detach().cpu().to(torch.float64)
        u, s2, _ = torch.linalg.svd(c)
        reflected = torch.linalg.det(u) < 0
        u[reflected, :, -1] *= -1
        quats.append(quaternions_from_rotations(u).to(cov.dtype))
        stds.append(s2.sqrt().to(cov.dtype))
    shape = cov.shape[:-2]
    return torch.cat(quats).reshape(*shape, 4).to(cov.device), torch.cat(stds).reshape(*shape, 3).to(cov.device)


def unproject(g: NdcGaussians, index: int, transform: torch.Tensor) -> SplatTensors:
    """Image `index` of a batch of NDC Gaussians -> metres (official `apply_transform`)."""
    linear, offset = transform[:, :3].to(g.means.device), transform[:, 3].to(g.means.device)
    means = g.means[index] @ linear.T + offset
    cov = linear @ covariances(g.quaternions[index], g.scales[index]) @ linear.T
    quaternions, scales = decompose_covariances(cov)
    return SplatTensors(means, scales, quaternions, g.colors[index], g.opacities[index])
