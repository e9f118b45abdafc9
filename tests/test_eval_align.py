"""Scale/shift alignment: exact recovery, robustness to outliers, sparse points, result alignment."""

from __future__ import annotations

import numpy as np
import pytest

from sharpdepth.align import (
    Alignment,
    align_result_to_points,
    align_to_depth,
    fit_alignment,
    fit_median_scale,
    fit_scale_shift,
    load_sparse_points,
)
from sharpdepth.errors import InputImageError, OptionError
from sharpdepth.result import DepthResult, OutputKind


def _scene(seed=0, shape=(40, 60)):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.8, 12.0, size=shape)
    return rng, depth


def test_lstsq_recovers_known_disparity_scale_and_shift():
    _, depth = _scene()
    s, t = 0.37, 0.021
    pred = (1.0 / depth - t) / s  # a relative disparity with that scale and shift
    scale, shift = fit_scale_shift(pred, depth)
    assert scale == pytest.approx(s, rel=1e-10)
    assert shift == pytest.approx(t, abs=1e-12)
    aligned, alignment = align_to_depth(pred, depth)
    np.testing.assert_allclose(aligned, depth, rtol=1e-5)
    assert alignment.n_points == depth.size


def test_lstsq_in_depth_space_and_mask():
    rng, depth = _scene(1)
    pred = (depth - 0.5) / 2.0
    assert fit_scale_shift(pred, depth, space="depth") == pytest.approx((2.0, 0.5))
    corrupted = depth.copy()
    mask = rng.uniform(size=depth.shape) > 0.3
    corrupted[~mask] = 100.0  # only masked-out pixels are wrong
    assert fit_scale_shift(pred, corrupted, mask, space="depth") == pytest.approx((2.0, 0.5))
    assert fit_scale_shift(pred, corrupted, space="depth") != pytest.approx((2.0, 0.5), rel=1e-2)


def test_unknown_targets_are_skipped():
    _, depth = _scene(2)
    pred = 1.0 / depth
    target = depth.copy()
    target[:5] = 0.0
    target[5:10] = np.nan
    target[10:12] = np.inf
    assert fit_scale_shift(pred, target) == pytest.approx((1.0, 0.0), abs=1e-10)


def test_robust_fit_ignores_gross_outliers():
    rng, depth = _scene(3, (80, 80))
    s, t = 2.5, -0.03
    pred = (1.0 / depth - t) / s
    target = depth.copy()
    bad = rng.uniform(size=depth.shape) < 0.3  # 30 % of the pixels are wrong by a lot
    target[bad] *= rng.uniform(3.0, 10.0, size=bad.sum())
    plain = fit_scale_shift(pred, target)
    robust = fit_scale_shift(pred, target, robust=True)
    assert robust == pytest.approx((s, t), rel=1e-6, abs=1e-9)
    assert abs(plain[0] - s) / s > 0.05  # ordinary least squares is pulled away
    # with clean data the robust fit equals least squares
    assert fit_scale_shift(pred, depth, robust=True) == pytest.approx((s, t), rel=1e-9, abs=1e-12)


def test_robust_fit_with_noise_stays_close_to_truth():
    rng, depth = _scene(4, (100, 100))
    pred = 1.0 / depth * np.exp(rng.normal(0, 0.01, depth.shape))
    scale, shift = fit_scale_shift(pred, depth, robust=True)
    assert scale == pytest.approx(1.0, abs=0.02) and shift == pytest.approx(0.0, abs=0.005)


def test_median_scale():
    _, depth = _scene(5)
    assert fit_median_scale(depth / 4.0, depth) == pytest.approx(4.0)
    assert fit_median_scale(1.0 / depth / 4.0, depth, space="disparity") == pytest.approx(4.0)
    a = fit_alignment(depth / 4.0, depth, method="median", space="depth")
    assert (a.scale, a.shift, a.method) == (pytest.approx(4.0), 0.0, "median")


def test_errors_are_user_errors():
    with pytest.raises(OptionError, match="at least 2"):
        fit_scale_shift(np.array([1.0]), np.array([2.0]))
    with pytest.raises(OptionError, match="constant"):
        fit_scale_shift(np.ones(5), np.arange(1.0, 6.0))
    with pytest.raises(OptionError, match="unknown alignment"):
        fit_alignment(np.ones(3), np.ones(3), method="ransac")
    with pytest.raises(OptionError, match="space"):
        fit_scale_shift(np.arange(3.0), np.arange(1.0, 4.0), space="log")


def test_apply_caps_and_beyond_infinity():
    a = Alignment(scale=1.0, shift=-0.5, space="disparity", method="lstsq")
    pred = np.array([2.0, 0.5, 0.25, 0.6])  # disparities 1.5, 0, -0.25, 0.1
    out = a.apply(pred)
    assert out[0] == pytest.approx(1 / 1.5) and np.isinf(out[1]) and np.isinf(out[2])
    assert out[3] == pytest.approx(10.0)
    capped = a.apply(pred, min_depth=1.0, max_depth=8.0)  # disparity clamped to [1/8, 1]
    np.testing.assert_allclose(capped, [1.0, 8.0, 8.0, 8.0])
    depth_space = Alignment(2.0, 0.0, "depth").apply(np.array([-1.0, 1.0, 50.0]), max_depth=80.0)
    assert np.isinf(depth_space[0]) and depth_space[1] == 2.0 and depth_space[2] == 80.0


# ------------------------------------------------------------------ sparse points
def test_load_sparse_points(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text("x,y,depth_m\n# a comment\n10,20,1.5\n\n3.6,4.4,2.0\n")
    pts = load_sparse_points(path)
    assert len(pts) == 2
    target = pts.to_target(30, 40)
    assert target[20, 10] == 1.5 and target[4, 4] == 2.0  # rounded to the nearest pixel
    assert np.isnan(target).sum() == 30 * 40 - 2
    headerless = tmp_path / "b.csv"
    headerless.write_text("1,2,3\n")
    assert len(load_sparse_points(headerless)) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("x,y,depth_m\n1,2\n", ":2: expected"),
        ("x,y,depth_m\n1,2,abc\n", "not numbers"),
        ("x,y,depth_m\n1,2,-3\n", "positive"),
        ("x,y,z\n1,2,3\n", "header"),
        ("x,y,depth_m\n", "no depth points"),
    ],
)
def test_bad_sparse_files(tmp_path, text, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(InputImageError, match=message):
        load_sparse_points(path)


def test_points_outside_image(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y,depth_m\n5,5,1\n50,5,1\n")
    with pytest.raises(OptionError, match="outside"):
        load_sparse_points(path).to_target(10, 10)


def test_align_relative_result_to_points(tmp_path):
    rng, depth = _scene(6, (48, 64))
    disparity = (1.0 / depth - 0.01) / 3.0
    result = DepthResult(disparity, OutputKind.RELATIVE_DISPARITY, focal_px=500.0, model_name="rel")
    ys, xs = rng.integers(0, 48, 12), rng.integers(0, 64, 12)
    lines = ["x,y,depth_m"] + [f"{x},{y},{float(depth[y, x])!r}" for x, y in zip(xs, ys, strict=True)]
    path = tmp_path / "p.csv"
    path.write_text("\n".join(lines))
    metric = align_result_to_points(result, load_sparse_points(path))
    assert metric.is_metric and metric.focal_px == 500.0
    np.testing.assert_allclose(metric.depth, depth, rtol=1e-4)
    info = metric.extra["alignment"]
    assert info["scale"] == pytest.approx(3.0) and info["shift"] == pytest.approx(0.01)
    assert info["abs_rel_at_points"] < 1e-5
    with pytest.raises(OptionError, match="already predicts metres"):
        align_result_to_points(metric, load_sparse_points(path))
