"""Losses against hand-computed values and the invariances their papers claim."""

from __future__ import annotations

import math

import pytest
import torch

import sharpdepth.train.losses as L


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor([rows], dtype=torch.float64)


def _all(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x, dtype=torch.bool)


# ------------------------------------------------------------------ MiDaS
def test_ssi_is_zero_for_any_affine_function_of_the_target() -> None:
    g = torch.rand(2, 6, 7, dtype=torch.float64) + 0.1
    for scale, shift in ((1.0, 0.0), (3.5, -2.0), (0.01, 7.0)):
        assert float(L.ssi_loss(scale * g + shift, g, _all(g))) == pytest.approx(0.0, abs=1e-12)


def test_ssi_hand_case_where_the_best_fit_is_a_constant() -> None:
    # pred [0 1 0 1] vs target [0 0 1 1]: uncorrelated, so s = 0, t = 0.5, residual^2 = 0.25 everywhere.
    p, g = _t([[0, 1, 0, 1]]), _t([[0, 0, 1, 1]])
    assert float(L.ssi_loss(p, g, _all(g))) == pytest.approx(0.5 * 0.25)


def test_ssi_is_invariant_to_affine_changes_of_the_prediction() -> None:
    torch.manual_seed(0)
    p, g = torch.rand(1, 8, 8, dtype=torch.float64), torch.rand(1, 8, 8, dtype=torch.float64)
    base = float(L.ssi_loss(p, g, _all(g)))
    assert base > 0
    assert float(L.ssi_loss(4 * p - 3, g, _all(g))) == pytest.approx(base, rel=1e-9)


def test_invalid_pixels_do_not_count_and_nan_targets_give_finite_gradients() -> None:
    g = _t([[1, 2, 3, float("nan")]])
    mask = torch.isfinite(g)
    p = _t([[2, 4, 6, 100]]).requires_grad_(True)
    loss = L.ssi_loss(p, g, mask) + L.gradient_matching_loss(p, g, mask) + L.affine_invariant_loss(p, g, mask)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-12)
    assert p.grad is not None and torch.isfinite(p.grad).all()


def test_gradient_matching_hand_case() -> None:
    # Aligned prediction 0.5 everywhere, residual R = [.5 .5 -.5 -.5]:
    # scale 1 sum|dR| = 1, scale 2 (R[::2] = [.5 -.5]) = 1, coarser scales have no pairs; / 4 pixels.
    p, g = _t([[0, 1, 0, 1]]), _t([[0, 0, 1, 1]])
    assert float(L.gradient_matching_loss(p, g, _all(g), scales=4)) == pytest.approx(0.5)
    assert float(L.gradient_matching_loss(p, g, _all(g), scales=1)) == pytest.approx(0.25)


def test_midas_loss_combines_with_alpha() -> None:
    p, g = _t([[0, 1, 0, 1]]), _t([[0, 0, 1, 1]])
    total, parts = L.midas_loss(p, g, _all(g), alpha=0.5, scales=4)
    assert float(total) == pytest.approx(0.125 + 0.5 * 0.5)
    assert set(parts) == {"ssi", "grad"}


# ------------------------------------------------------------------ Depth Anything
def test_affine_invariant_hand_case() -> None:
    # target [1 2 3]: median 2, MAD 2/3 -> [-1.5 0 1.5]; pred [1 3 2] -> [-1.5 1.5 0]; mean |diff| = 1.
    p, g = _t([[1, 3, 2]]), _t([[1, 2, 3]])
    assert float(L.affine_invariant_loss(p, g, _all(g))) == pytest.approx(1.0)


def test_affine_invariant_ignores_positive_scale_and_shift() -> None:
    torch.manual_seed(1)
    p, g = torch.rand(2, 5, 9, dtype=torch.float64), torch.rand(2, 5, 9, dtype=torch.float64)
    base = float(L.affine_invariant_loss(p, g, _all(g)))
    assert float(L.affine_invariant_loss(7 * p + 3, 0.2 * g - 1, _all(g))) == pytest.approx(base, rel=1e-9)
    assert float(L.affine_invariant_loss(g * 5 + 1, g, _all(g))) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ SILog
def test_silog_of_a_scaled_prediction() -> None:
    g = torch.rand(1, 4, 4, dtype=torch.float64) + 0.5
    # d = ln 2 everywhere: sqrt(d^2 - lam d^2) = ln 2 * sqrt(1 - lam).
    assert float(L.silog_loss(2 * g, g, _all(g), lam=0.5)) == pytest.approx(math.log(2) * math.sqrt(0.5), rel=1e-6)
    assert float(L.silog_loss(2 * g, g, _all(g), lam=1.0)) == pytest.approx(0.0, abs=1e-5)
    assert float(L.silog_loss(2 * g, g, _all(g), lam=0.0)) == pytest.approx(math.log(2), rel=1e-6)


def test_silog_hand_case_with_varying_error() -> None:
    g = _t([[1, 1]])
    p = torch.tensor([[[math.e, 1.0]]], dtype=torch.float64)  # d = [1, 0]: mean d^2 = .5, mean d = .5
    assert float(L.silog_loss(p, g, _all(g), lam=0.5)) == pytest.approx(math.sqrt(0.5 - 0.5 * 0.25), rel=1e-6)


# ------------------------------------------------------------------ Depth Pro
def test_canonical_inverse_depth() -> None:
    depth = torch.full((1, 2, 2), 2.0)
    c = L.canonical_inverse_depth(depth, torch.tensor([500.0]), torch.tensor([1000.0]))
    assert torch.allclose(c, torch.full_like(c, 0.25))


def test_depth_pro_mae_discards_the_largest_errors() -> None:
    g = torch.zeros(1, 1, 5, dtype=torch.float64)
    p = _t([[1, 2, 3, 4, 10]])
    total, parts = L.depth_pro_loss(p, g, _all(g), trim=0.2, derivative_weight=0.0)
    assert float(total) == pytest.approx(2.5)  # the 10 is the top 20 %
    total, _ = L.depth_pro_loss(p, g, _all(g), trim=0.0, derivative_weight=0.0)
    assert float(total) == pytest.approx(4.0)


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    return x[None], y[None]


def test_derivative_losses_of_a_ramp_and_a_parabola() -> None:
    x, _ = _grid(16)
    g = torch.rand(1, 16, 16, dtype=torch.float64)
    mask = _all(g)
    a = 0.3
    # A ramp a*x: Scharr x-response exactly a, y-response 0, Laplacian 0.
    assert float(L.derivative_loss(g + a * x, g, mask, "mage", scales=1)) == pytest.approx(a)
    assert float(L.derivative_loss(g + a * x, g, mask, "msge", scales=1)) == pytest.approx(a * a)
    assert float(L.derivative_loss(g + a * x, g, mask, "male", scales=1)) == pytest.approx(0.0, abs=1e-12)
    # Each coarser level halves the grid: the ramp's slope per pixel doubles -> mean(a, 2a).
    assert float(L.derivative_loss(g + a * x, g, mask, "mage", scales=2)) == pytest.approx(1.5 * a)
    # A parabola a*x^2 has discrete Laplacian 2a.
    assert float(L.derivative_loss(g + a * x * x, g, mask, "male", scales=1)) == pytest.approx(2 * a)


def test_derivative_losses_ignore_a_constant_offset_and_respect_the_mask() -> None:
    g = torch.rand(2, 12, 12, dtype=torch.float64)
    mask = _all(g)
    for kind in ("mage", "male", "msge"):
        assert float(L.derivative_loss(g + 5.0, g, mask, kind, scales=3)) == pytest.approx(0.0, abs=1e-12)
    # Garbage outside the mask (plus a one-pixel margin, where stencils would reach it) is not seen.
    p = g.clone()
    p[:, :, :4] = 1e6
    mask[:, :, :5] = False
    assert float(L.derivative_loss(p, g, mask, "mage", scales=1)) == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ FOV
def test_fov_loss_is_the_log_focal_error() -> None:
    target = torch.tensor([90.0])
    pred = torch.rad2deg(2 * torch.atan(torch.tensor([0.5])))  # tan(half) 0.5 vs 1: focal twice as long
    assert float(L.fov_loss(pred, target)) == pytest.approx(math.log(2), rel=1e-5)
    assert float(L.fov_loss(target.clone(), target)) == pytest.approx(0.0, abs=1e-6)


def test_fov_from_focal_and_out_of_range_predictions_are_pushed_back() -> None:
    assert float(L.fov_from_focal(torch.tensor([500.0]), torch.tensor([1000.0]))) == pytest.approx(90.0)
    pred = torch.tensor([-10.0], requires_grad=True)
    loss = L.fov_loss(pred, torch.tensor([60.0]))
    loss.backward()
    assert pred.grad is not None and float(pred.grad) < 0  # increasing the FOV lowers the loss
    unknown = L.fov_loss(torch.tensor([50.0]), torch.tensor([float("nan")]))
    assert float(unknown) == 0.0
