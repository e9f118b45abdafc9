"""`sharpdepth.maps`: the one copy of resizing, masks, normalisation and focal checks."""

from __future__ import annotations

import numpy as np
import pytest

from sharpdepth.errors import OptionError
from sharpdepth.maps import (
    check_focal_px,
    fill_invalid_as_far,
    normalize_percentile,
    percentile_range,
    rescale_intrinsics,
    resize_map,
    resize_map_tensor,
    valid_mask,
)

METRIC, RELATIVE = "metric_depth", "relative_disparity"


def test_resize_reproduces_a_linear_ramp():
    # Bilinear interpolation is exact on a linear function away from the borders.
    x = np.arange(8, dtype=np.float32)
    ramp = np.tile(x, (6, 1)) * 2.0 + 1.0
    out = resize_map(ramp, (12, 16), METRIC)
    # Output pixel j (half-pixel centres) samples input coordinate (j + 0.5) / 2 - 0.5.
    u = (np.arange(16) + 0.5) / 2 - 0.5
    expected = 2.0 * u + 1.0
    np.testing.assert_allclose(out[5, 2:-2], expected[2:-2], atol=1e-4)


def test_metric_invalid_pixels_do_not_bleed_and_negatives_are_invalid():
    depth = np.full((8, 8), 4.0, np.float32)
    depth[:, :4] = 0.0  # no depth (left half)
    depth[0, 7] = -1.0  # negative metres: no depth either
    out = resize_map(depth, (16, 16), METRIC)
    assert np.isnan(out[:, :6]).all()
    right = out[:, 10:]
    assert np.allclose(right[np.isfinite(right)], 4.0)  # never pulled towards 0 or -1


def test_relative_zero_disparity_is_a_value_not_a_hole():
    # MiDaS gives exactly 0 for the sky after its ReLU: it must survive a resize as 0, not NaN.
    disp = np.full((8, 8), 0.5, np.float32)
    disp[:4] = 0.0
    out = resize_map(disp, (16, 16), RELATIVE)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:6], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[-6:], 0.5, atol=1e-6)
    nan_disp = disp.copy()
    nan_disp[:, 0] = np.nan
    assert np.isnan(resize_map(nan_disp, (16, 16), RELATIVE)[:, 0]).all()


def test_tensor_resize_matches_numpy_on_upsampling():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, (10, 12)).astype(np.float32)
    depth[2:4, 3:6] = np.nan
    ref = resize_map(depth, (20, 24), METRIC)
    got = resize_map_tensor(torch.from_numpy(depth), (20, 24), METRIC).numpy()
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_array_equal(np.isnan(ref[inner]), np.isnan(got[inner]))
    ok = np.isfinite(ref[inner])
    np.testing.assert_allclose(got[inner][ok], ref[inner][ok], atol=1e-4)
    batch = resize_map_tensor(torch.from_numpy(np.stack([depth, depth])), (20, 24), METRIC)
    assert tuple(batch.shape) == (2, 20, 24)


def test_percentile_normalisation():
    values = np.arange(101, dtype=np.float64)  # percentiles of 0..100 are the values themselves
    lo, hi = percentile_range(values)
    assert (lo, hi) == (1.0, 99.0)
    out = normalize_percentile(values)
    np.testing.assert_allclose(out[50], 49.0 / 98.0, rtol=1e-6)
    assert out[0] == 0.0 and out[100] == 1.0
    holes = values.copy()
    holes[10] = np.nan
    assert normalize_percentile(holes, fill=0.25)[10] == 0.25
    assert (normalize_percentile(np.full(4, np.nan)) == 0).all()
    with pytest.raises(OptionError, match="no valid pixel"):
        percentile_range(np.full(4, np.nan))


def test_fill_invalid_as_far_and_masks():
    depth = np.array([[1.0, np.nan], [0.0, 3.0]], np.float32)
    np.testing.assert_array_equal(fill_invalid_as_far(depth), [[1.0, 3.0], [3.0, 3.0]])
    with pytest.raises(OptionError, match="no valid pixel"):
        fill_invalid_as_far(np.zeros((2, 2)))
    assert valid_mask(np.array([0.0, -1.0, np.nan]), RELATIVE).tolist() == [True, True, False]
    assert valid_mask(np.array([0.0, -1.0, 2.0]), METRIC).tolist() == [False, False, True]


def test_focal_check_and_rescaled_intrinsics():
    assert check_focal_px(300) == 300.0
    for bad in (0, -5.0, float("nan"), float("inf"), None):
        with pytest.raises(OptionError, match="focal length must be a positive number of pixels"):
            check_focal_px(bad)
    # A centred camera of a 10x6 image, doubled: still centred in the 20x12 image.
    fx, fy, cx, cy = rescale_intrinsics(100.0, 100.0, 4.5, 2.5, 2.0, 2.0)
    assert (fx, fy, cx, cy) == (200.0, 200.0, 9.5, 5.5)
