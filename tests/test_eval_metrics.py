"""Depth metrics, focal metrics and protocol pieces on hand-made arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sharpdepth.errors import OptionError
from sharpdepth.eval.focal import focal_metrics
from sharpdepth.eval.metrics import DEPTH_METRICS, delta_accuracy, depth_metrics, mean_metrics, silog
from sharpdepth.eval.protocols import (
    PROTOCOLS,
    crop_mask,
    eigen_crop_nyu,
    garg_crop_kitti,
    get_protocol,
    resize_bilinear,
)

LN2 = math.log(2.0)


def _reference_compute_errors(gt, pred):
    """Straight transcription of the BTS / AdaBins / ZoeDepth `compute_errors` formulas."""
    thresh = np.maximum(gt / pred, pred / gt)
    err = np.log(pred) - np.log(gt)
    return {
        "delta1": (thresh < 1.25).mean(),
        "delta2": (thresh < 1.25**2).mean(),
        "delta3": (thresh < 1.25**3).mean(),
        "abs_rel": np.mean(np.abs(gt - pred) / gt),
        "sq_rel": np.mean(((gt - pred) ** 2) / gt),
        "rmse": np.sqrt(((gt - pred) ** 2).mean()),
        "rmse_log": np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean()),
        "silog": np.sqrt(np.mean(err**2) - np.mean(err) ** 2) * 100,
        "log10": np.abs(np.log10(gt) - np.log10(pred)).mean(),
    }


def test_hand_computed_values():
    pred = np.array([1.0, 2.0, 4.0])
    gt = np.array([1.0, 1.0, 2.0])
    m = depth_metrics(pred, gt)
    assert m["n_pixels"] == 3
    assert m["abs_rel"] == pytest.approx(2 / 3)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 1 + 4 / 2) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["rmse_log"] == pytest.approx(LN2 * math.sqrt(2 / 3))
    assert m["log10"] == pytest.approx(2 / 3 * math.log10(2))
    assert m["delta1"] == pytest.approx(1 / 3)
    assert m["delta2"] == pytest.approx(1 / 3)  # 2 > 1.5625
    assert m["delta3"] == pytest.approx(1 / 3)  # 2 > 1.953125
    assert m["silog"] == pytest.approx(100 * LN2 * math.sqrt(2 / 3 - 4 / 9))
    assert m["mae"] == pytest.approx(1.0)
    assert m["irmse"] == pytest.approx(1000 * math.sqrt((0 + 0.25 + 0.0625) / 3))
    assert set(DEPTH_METRICS) <= set(m)


def test_silog_conventions():
    d = np.array([0.0, LN2, LN2])  # log errors of the hand case
    pred, gt = np.exp(d), np.ones(3)
    mean_sq, mean = 2 / 3 * LN2**2, 2 / 3 * LN2
    assert silog(pred, gt) == pytest.approx(100 * math.sqrt(mean_sq - mean**2))  # BTS/AdaBins eval, KITTI x100
    assert silog(pred, gt, lam=0.85, scale=10) == pytest.approx(10 * math.sqrt(mean_sq - 0.85 * mean**2))  # loss
    assert silog(pred, gt, lam=0.5, scale=1) == pytest.approx(math.sqrt(mean_sq - 0.5 * mean**2))  # Eigen loss
    assert silog(pred, gt, lam=0.0, scale=1) == pytest.approx(math.sqrt(mean_sq))  # = RMSE-log


def test_delta_threshold_is_strict_and_symmetric():
    gt = np.ones(4)
    pred = np.array([1.25, 1 / 1.25, 1.2, 1.3])
    assert delta_accuracy(pred, gt) == pytest.approx(0.25)  # exactly 1.25 does not count
    assert delta_accuracy(pred, gt) == delta_accuracy(gt, pred)


def test_matches_reference_formulas_on_random_data():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 20, size=(40, 50))
    pred = gt * np.exp(rng.normal(0, 0.3, gt.shape))
    ours = depth_metrics(pred, gt)
    for key, value in _reference_compute_errors(gt, pred).items():
        assert ours[key] == pytest.approx(value, rel=1e-12), key


def test_scale_invariance_and_its_absence():
    rng = np.random.default_rng(1)
    gt = rng.uniform(1, 10, size=1000)
    pred = gt * np.exp(rng.normal(0, 0.2, gt.shape))
    a, b = depth_metrics(pred, gt), depth_metrics(3.0 * pred, gt)
    assert b["silog"] == pytest.approx(a["silog"], rel=1e-9)  # lambda = 1: scale-invariant
    for key in ("abs_rel", "rmse", "rmse_log", "delta1"):
        assert b[key] != pytest.approx(a[key], rel=1e-3), key
    assert silog(3.0 * pred, gt, lam=0.85) != pytest.approx(silog(pred, gt, lam=0.85), rel=1e-3)


def test_pure_scale_gives_closed_form_values():
    gt = np.random.default_rng(2).uniform(0.5, 9, size=(30, 30))
    for s in (0.7, 0.9, 1.1, 1.3, 2.0):  # none within rounding of 1.25^k
        m = depth_metrics(s * gt, gt)
        assert m["abs_rel"] == pytest.approx(abs(s - 1))
        assert m["rmse_log"] == pytest.approx(abs(math.log(s)))
        assert m["log10"] == pytest.approx(abs(math.log10(s)))
        assert m["silog"] == pytest.approx(0.0, abs=1e-5)
        assert m["delta1"] == (1.0 if max(s, 1 / s) < 1.25 else 0.0)
        assert m["delta2"] == (1.0 if max(s, 1 / s) < 1.25**2 else 0.0)


def test_invalid_pixels_and_mask_are_ignored():
    gt = np.array([[1.0, 0.0, np.nan], [np.inf, 2.0, 4.0]])
    pred = np.array([[1.0, 5.0, 5.0], [5.0, np.nan, 4.0]])
    m = depth_metrics(pred, gt)
    assert m["n_pixels"] == 2 and m["abs_rel"] == 0.0
    mask = np.array([[False, True, True], [True, True, True]])
    assert depth_metrics(pred, gt, mask)["n_pixels"] == 1
    empty = depth_metrics(pred, gt, np.zeros_like(mask))
    assert empty["n_pixels"] == 0 and all(math.isnan(empty[k]) for k in DEPTH_METRICS)


def test_torch_inputs_and_shape_errors():
    gt = torch.tensor([1.0, 2.0])
    assert depth_metrics(gt * 2, gt)["abs_rel"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(np.ones(3), np.ones(4))


def test_mean_over_images_skips_empty_images():
    rows = [{"abs_rel": 0.1, "delta1": 1.0}, {"abs_rel": float("nan"), "delta1": float("nan")},
            {"abs_rel": 0.3, "delta1": 0.5}]  # fmt: skip
    assert mean_metrics(rows, ("abs_rel", "delta1")) == pytest.approx({"abs_rel": 0.2, "delta1": 0.75})


def test_focal_metrics_hand_case():
    gt = [1000.0, 1000.0, 1000.0, 1000.0, 500.0]
    pred = [1100.0, 700.0, 1600.0, None, 500.0]  # rel errors 0.1, 0.3, 0.6, skipped, 0
    m = focal_metrics(pred, gt)
    assert m["focal_n"] == 4
    assert m["focal_abs_rel"] == pytest.approx((0.1 + 0.3 + 0.6 + 0.0) / 4)
    assert m["focal_median_rel"] == pytest.approx(0.2)
    assert m["focal_delta25"] == pytest.approx(0.5)
    assert m["focal_delta50"] == pytest.approx(0.75)
    assert math.isnan(focal_metrics([None], [1.0])["focal_abs_rel"])


# ------------------------------------------------------------------ protocols
def test_crops_match_the_reference_indices():
    assert eigen_crop_nyu(480, 640) == (45, 471, 41, 601)
    top, bottom, left, right = garg_crop_kitti(375, 1242)
    assert (top, bottom, left, right) == (int(0.40810811 * 375), int(0.99189189 * 375), 44, 1197)
    mask = crop_mask("eigen-nyu", 480, 640)
    assert mask.sum() == (471 - 45) * (601 - 41)
    assert mask[45, 41] and not mask[44, 41] and not mask[45, 601]
    assert crop_mask(None, 3, 4).all()
    with pytest.raises(OptionError):
        crop_mask("nope", 3, 4)


def test_eval_mask_caps_are_strict():
    p = get_protocol("nyu-eigen")
    gt = np.full((480, 640), 5.0)
    gt[100, 100], gt[101, 100], gt[102, 100] = 10.0, 1e-3, np.nan
    mask = p.eval_mask(gt)
    assert not mask[100, 100] and not mask[101, 100] and not mask[102, 100] and mask[103, 100]
    assert not mask[0, 0]  # outside the Eigen crop


def test_clip_follows_reference_order():
    p = get_protocol("kitti-garg")
    out = p.clip(np.array([np.inf, np.nan, -1.0, 100.0, 5.0]))
    np.testing.assert_allclose(out, [80.0, 1e-3, 1e-3, 80.0, 5.0])
    uncapped = get_protocol("middlebury").clip(np.array([np.inf, 0.0, 3.0]))
    np.testing.assert_allclose(uncapped, [1e4, 1e-3, 3.0])


def test_resize_bilinear_matches_torch_semantics():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert resize_bilinear(a, 3, 4) is not None and np.array_equal(resize_bilinear(a, 3, 4), a)
    up = resize_bilinear(a, 6, 8, align_corners=True)
    assert up[0, 0] == 0 and up[-1, -1] == 11  # corners kept with align_corners
    const = resize_bilinear(np.full((5, 7), 2.5), 11, 3)
    np.testing.assert_allclose(const, 2.5)


def test_every_preset_names_its_source():
    for name, p in PROTOCOLS.items():
        assert p.papers, name
        assert p.describe()["name"] == name
    with pytest.raises(OptionError, match="unknown protocol"):
        get_protocol("kitty")
