"""Resizing written as matrix products, so an exported graph keeps following the input size.

Why: DINOv2-style encoders stretch their stored position grid to the patch grid
of each input with `F.interpolate(scale_factor=...)`. A traced ONNX export turns
that scale factor — a Python number computed from the input shape — into a
constant, so a `--dynamic` graph silently applies the export size's stretch to
every other size. Here the same interpolation is a product of two small weight
matrices built with tensor ops from the traced sizes (`arange`, `floor`,
`one_hot`), which the exporter records as ops that depend on the input shape.

The weights are PyTorch's own (`upsample_bicubic2d` with a = -0.75 and clamped
border taps; `upsample_bilinear2d` with half-pixel centres), so the result equals
`F.interpolate` up to float rounding (summation order); the normal PyTorch path
keeps calling `F.interpolate` and is unchanged.

>>> grid = torch.arange(16.0).reshape(1, 1, 4, 4)
>>> ours = resize_bicubic_scale(grid, torch.tensor(6), torch.tensor(7), 6.1 / 4, 7.1 / 4)
>>> ref = torch.nn.functional.interpolate(grid, scale_factor=(6.1 / 4, 7.1 / 4), mode="bicubic", align_corners=False)
>>> bool(torch.allclose(ours, ref, atol=1e-5))
True
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution coefficient


def _positions(length: torch.Tensor | int) -> torch.Tensor:
    """0..length-1 as float32; `length` may be a traced 0-dim tensor (arange accepts it; its stubs say Number)."""
    return torch.arange(cast(int, length), dtype=torch.float32)


def is_exporting() -> bool:
    """True while torch.onnx / torch.export traces the model."""
    return bool(torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting())


def _cubic_near(x: torch.Tensor) -> torch.Tensor:
    """Kernel for |x| <= 1."""
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cubic_far(x: torch.Tensor) -> torch.Tensor:
    """Kernel for 1 < |x| < 2."""
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


def bicubic_matrix(out_len: torch.Tensor | int, in_len: int, inv_scale: torch.Tensor | float) -> torch.Tensor:
    """(out_len, in_len) weights of PyTorch's bicubic resize along one axis, source = inv_scale * (i + 0.5) - 0.5."""
    inv = torch.as_tensor(inv_scale, dtype=torch.float32)
    real = inv * (_positions(out_len) + 0.5) - 0.5
    base = torch.floor(real)
    t = real - base
    weights = torch.stack([_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t)], dim=-1)
    taps = (base.to(torch.int64)[:, None] + torch.arange(-1, 3)[None, :]).clamp(0, in_len - 1)
    return (weights[..., None] * F.one_hot(taps, in_len).to(torch.float32)).sum(dim=1)


def bilinear_matrix(out_len: torch.Tensor | int, in_len: int) -> torch.Tensor:
    """(out_len, in_len) weights of PyTorch's bilinear resize to a size (align_corners=False) along one axis."""
    out_f = torch.as_tensor(out_len).to(torch.float32)
    real = ((in_len / out_f) * (_positions(out_len) + 0.5) - 0.5).clamp(min=0)
    low = torch.floor(real).to(torch.int64).clamp(max=in_len - 1)
    high = (low + 1).clamp(max=in_len - 1)
    frac = real - low.to(torch.float32)
    eye = F.one_hot(torch.stack([low, high], dim=-1), in_len).to(torch.float32)
    return ((1 - frac)[:, None] * eye[:, 0] + frac[:, None] * eye[:, 1]).reshape(-1, in_len)


def _apply(grid: torch.Tensor, rows_w: torch.Tensor, cols_w: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, rows, cols) with separable weights."""
    out = torch.matmul(rows_w.to(grid.dtype), grid)
    return torch.matmul(out, cols_w.to(grid.dtype).transpose(0, 1))


def resize_bicubic_scale(
    grid: torch.Tensor,
    rows: torch.Tensor | int,
    cols: torch.Tensor | int,
    scale_rows: torch.Tensor | float,
    scale_cols: torch.Tensor | float,
) -> torch.Tensor:
    """`F.interpolate(grid, scale_factor=(scale_rows, scale_cols), mode="bicubic")` to a rows x cols output."""
    in_h, in_w = int(grid.shape[-2]), int(grid.shape[-1])
    rows_w = bicubic_matrix(rows, in_h, 1.0 / torch.as_tensor(scale_rows, dtype=torch.float64))
    cols_w = bicubic_matrix(cols, in_w, 1.0 / torch.as_tensor(scale_cols, dtype=torch.float64))
    return _apply(grid, rows_w, cols_w)


def resize_bilinear_size(grid: torch.Tensor, rows: torch.Tensor | int, cols: torch.Tensor | int) -> torch.Tensor:
    """`F.interpolate(grid, size=(rows, cols), mode="bilinear", align_corners=False)`."""
    in_h, in_w = int(grid.shape[-2]), int(grid.shape[-1])
    return _apply(grid, bilinear_matrix(rows, in_h), bilinear_matrix(cols, in_w))
