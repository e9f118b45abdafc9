"""Depth Pro boundary metrics: hand-computed cases, invariances, and equality with a loop oracle.

The oracle below is a plain loop transcription of the algorithm in apple/ml-depth-pro
`src/depth_pro/eval/boundary_metrics.py` (connected runs found pixel by pixel, argmax per
run, per-threshold counting), kept deliberately naive so it can be checked by reading.
"""

from __future__ import annotations

import numpy as np
import pytest

from sharpdepth.eval.boundary import (
    boundary_f1,
    boundary_precision_recall,
    nms_runs,
    si_boundary_f1,
    si_boundary_recall,
    thresholds_and_weights,
)


# ------------------------------------------------------------------ the loop oracle
def _oracle_runs(r, c):
    indices = [0]
    for i in range(1, r.size):
        if r[i] == r[indices[-1]] and c[i] == c[indices[-1]] + 1:
            indices.append(i)
        else:
            yield indices
            indices = [i]
    yield indices


def _oracle_nms_h(ratio, t):
    mask = np.zeros_like(ratio, dtype=bool)
    r, c = np.nonzero(ratio > t)
    if len(r) == 0:
        return mask
    for ids in _oracle_runs(r, c):
        values = [ratio[r[i], c[i]] for i in ids]
        k = int(np.argmax(values))
        mask[r[ids[k]], c[ids[k]]] = True
    return mask


def _oracle_nms_v(ratio, t):
    return np.transpose(_oracle_nms_h(np.transpose(ratio), t))


def _oracle_fgbg(d, t):
    return (
        (d[:, :-1] / d[:, 1:]) > t,
        (d[:-1, :] / d[1:, :]) > t,
        (d[:, 1:] / d[:, :-1]) > t,
        (d[1:, :] / d[:-1, :]) > t,
    )


def _oracle_fgbg_thinned(d, t):
    return (
        _oracle_nms_h(d[:, :-1] / d[:, 1:], t),
        _oracle_nms_v(d[:-1, :] / d[1:, :], t),
        _oracle_nms_h(d[:, 1:] / d[:, :-1], t),
        _oracle_nms_v(d[1:, :] / d[:-1, :], t),
    )


def _oracle_mask_edges(m):
    return (m[:, :-1] & ~m[:, 1:], m[:-1, :] & ~m[1:, :], m[:, 1:] & ~m[:, :-1], m[1:, :] & ~m[:-1, :])


def _oracle_ratio_sum(pairs):
    return 0.25 * sum(np.count_nonzero(a & b) / max(np.count_nonzero(n), 1) for a, b, n in pairs)


def oracle_si_f1(pred, gt, t_min=1.05, t_max=1.25, n=10):
    thresholds = np.linspace(t_min, t_max, n)
    weights = thresholds / thresholds.sum()
    scores = []
    for t in thresholds:
        ap = _oracle_fgbg(1.0 / pred.clip(min=1e-6), t)
        ag = _oracle_fgbg(1.0 / gt.clip(min=1e-6), t)
        r = _oracle_ratio_sum([(p, g, g) for p, g in zip(ap, ag, strict=True)])
        p = _oracle_ratio_sum([(p, g, p) for p, g in zip(ap, ag, strict=True)])
        scores.append(0.0 if r + p == 0 else 2 * r * p / (r + p))
    return float(np.sum(np.array(scores) * weights))


def oracle_si_recall(pred, mask, t_min=1.05, t_max=1.25, n=10, alpha=0.1):
    thresholds = np.linspace(t_min, t_max, n)
    weights = thresholds / thresholds.sum()
    gt = mask > alpha
    scores = []
    for t in thresholds:
        pe = _oracle_fgbg_thinned(1.0 / pred.clip(min=1e-6), float(t))
        ge = _oracle_mask_edges(gt)
        scores.append(_oracle_ratio_sum([(p, g, g) for p, g in zip(pe, ge, strict=True)]))
    return float(np.sum(np.array(scores) * weights))


def _structured_depth(rng, h, w, dtype=np.float64):
    """Piecewise-constant blocks (real occlusion edges) + smooth ramps + noise: runs of all lengths."""
    blocks = rng.uniform(0.5, 10.0, size=(h // 4 + 1, w // 4 + 1))
    depth = np.kron(blocks, np.ones((4, 4)))[:h, :w]
    depth = depth * (1 + 0.3 * np.linspace(0, 1, w))[None, :]
    depth = depth * np.exp(rng.normal(0, 0.05, size=(h, w)))
    return depth.astype(dtype)


# ------------------------------------------------------------------ hand-computed cases
def test_thresholds_and_weights():
    t, w = thresholds_and_weights()
    np.testing.assert_allclose(t, [1.05 + k * 0.2 / 9 for k in range(10)])
    np.testing.assert_allclose(w.sum(), 1.0)
    np.testing.assert_allclose(w, t / 11.5)  # sum of the 10 thresholds is 10 * 1.15


def test_single_vertical_step_scores_a_quarter():
    """One occluding edge seen from one direction only: per-direction P = R = 1 for "left",
    0 for the three directions without contours, so P = R = F1 = 1/4 at every threshold."""
    depth = np.array([[1.0, 1.0, 2.0, 2.0]] * 3)
    assert si_boundary_f1(depth, depth) == pytest.approx(0.25)
    p, r = boundary_precision_recall(depth, depth, [1.1, 1.9, 1.99])
    np.testing.assert_allclose(p, 0.25)
    np.testing.assert_allclose(r, 0.25)
    # above the ratio 2 no contour is left at all: F1 = 0
    assert boundary_f1(depth, depth, [2.0, 3.0]).tolist() == [0.0, 0.0]


def test_ratio_between_thresholds_counts_only_lower_thresholds():
    """An inverse-depth ratio of exactly 1.1 is a contour for t = 1.05, 1.0722, 1.0944 only."""
    depth = np.array([[1.1, 1.1, 1.0, 1.0]] * 2)  # inverse 1/1.1 | 1: right pixel nearer by 1.1
    t, _ = thresholds_and_weights()
    expected = 0.25 * t[:3].sum() / t.sum()
    assert si_boundary_f1(depth, depth) == pytest.approx(expected)
    assert si_boundary_f1(depth, depth) == pytest.approx(oracle_si_f1(depth, depth))


def test_missed_edge_halves_recall_and_keeps_precision():
    gt = np.array([[1.0, 1.0, 2.0, 2.0, 4.0, 4.0]] * 2)  # two left-nearer steps per row
    pred = np.array([[1.0, 1.0, 2.0, 2.0, 2.0, 2.0]] * 2)  # finds only the first one
    p, r = boundary_precision_recall(pred, gt, [1.5])
    assert p[0] == pytest.approx(0.25 * 1.0)
    assert r[0] == pytest.approx(0.25 * 0.5)
    assert boundary_f1(pred, gt, [1.5])[0] == pytest.approx(2 * 0.25 * 0.125 / 0.375)


def test_nms_keeps_first_maximum_of_each_run():
    ratio = np.array([[1.3, 1.5, 1.0, 1.4, 1.4, 2.0, 1.0, 1.4, 1.4]])
    kept = nms_runs(ratio, 1.25, axis=1)
    assert np.flatnonzero(kept[0]).tolist() == [1, 5, 7]  # run maxima; tie -> first
    vertical = nms_runs(ratio.T, 1.25, axis=0)
    assert np.flatnonzero(vertical[:, 0]).tolist() == [1, 5, 7]
    # runs do not continue across rows
    two_rows = np.array([[1.0, 1.3], [1.6, 1.0]])
    assert nms_runs(two_rows, 1.25, axis=1).tolist() == [[False, True], [True, False]]


def test_mask_recall_hand_case():
    mask = np.zeros((4, 4))
    mask[1:3, 1:3] = 1.0
    depth = np.where(mask > 0, 1.0, 2.0)  # the masked object is nearer: every mask edge is a contour
    assert si_boundary_recall(depth, mask) == pytest.approx(1.0)
    shifted = np.roll(depth, 1, axis=1)  # contours one pixel off: none coincides with the mask's
    assert si_boundary_recall(shifted, mask) < si_boundary_recall(depth, mask)
    far = np.where(mask > 0, 2.0, 1.0)  # object farther: contours point the other way
    assert si_boundary_recall(far, mask) == pytest.approx(0.0)
    flat = np.full((4, 4), 3.0)
    assert si_boundary_recall(flat, mask) == 0.0


def test_blurred_edge_is_thinned_to_its_strongest_step():
    """A soft edge spread over several pixels is one run of above-threshold ratios; NMS keeps
    only its strongest step, which must sit on the mask boundary to count."""
    from sharpdepth.eval.boundary import boundary_recall_mask

    mask = np.zeros((1, 8), dtype=bool)
    mask[0, :4] = True  # the only ground-truth contour: left-nearer pair (3, 4)
    t = [1.05]
    strongest_at_boundary = np.array([[1, 1, 1, 1.0, 1.5, 1.6, 1.7, 1.7]])  # steps 1.5, 1.07, 1.06
    assert boundary_recall_mask(strongest_at_boundary, mask, t)[0] == pytest.approx(0.25)
    strongest_before = np.array([[1, 1, 1, 1.5, 1.6, 1.6, 1.6, 1.6]])  # run (2, 3): max at pair 2
    assert boundary_recall_mask(strongest_before, mask, t)[0] == 0.0
    assert si_boundary_recall(strongest_before, mask) == pytest.approx(oracle_si_recall(strongest_before, mask))


# ------------------------------------------------------------------ invariances
@pytest.mark.parametrize("factor", [2.0, 0.25, 1024.0])
def test_scale_invariance_exact_for_powers_of_two(factor):
    rng = np.random.default_rng(3)
    gt = _structured_depth(rng, 24, 30)
    pred = gt * np.exp(rng.normal(0, 0.1, gt.shape))
    mask = rng.uniform(size=gt.shape)
    assert si_boundary_f1(pred * factor, gt) == si_boundary_f1(pred, gt)
    assert si_boundary_f1(pred, gt * factor) == si_boundary_f1(pred, gt)
    assert si_boundary_recall(pred * factor, mask) == si_boundary_recall(pred, mask)


def test_scale_invariance_approximate_for_any_factor():
    rng = np.random.default_rng(4)
    gt = _structured_depth(rng, 32, 32)
    pred = gt * np.exp(rng.normal(0, 0.1, gt.shape))
    assert si_boundary_f1(pred * 3.7, gt) == pytest.approx(si_boundary_f1(pred, gt), abs=1e-2)


def test_valid_mask_ignores_garbage_in_holes():
    rng = np.random.default_rng(5)
    gt = _structured_depth(rng, 20, 20)
    pred = gt * np.exp(rng.normal(0, 0.05, gt.shape))
    valid = np.ones(gt.shape, bool)
    valid[5:9, 5:12] = False
    gt_holes = gt.copy()
    gt_holes[~valid] = 0.0  # a hole coded as 0 would be a fake contour without the mask
    a = si_boundary_f1(pred, gt_holes, valid=valid)
    pred2 = pred.copy()
    pred2[~valid] = 1e-3
    assert si_boundary_f1(pred2, gt_holes, valid=valid) == a
    assert si_boundary_f1(pred, gt_holes) != a  # unmasked, the hole changes the score


# ------------------------------------------------------------------ equality with the oracle
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f1_matches_loop_oracle(seed, dtype):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 40, size=2)
    gt = _structured_depth(rng, h, w, dtype)
    pred = (gt * np.exp(rng.normal(0, 0.15, gt.shape))).astype(dtype)
    assert si_boundary_f1(pred, gt) == pytest.approx(oracle_si_f1(pred, gt), abs=1e-12)
    assert si_boundary_f1(gt, gt) == pytest.approx(oracle_si_f1(gt, gt), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recall_matches_loop_oracle(seed, dtype):
    rng = np.random.default_rng(100 + seed)
    h, w = rng.integers(5, 40, size=2)
    pred = _structured_depth(rng, h, w, dtype)
    mask = (rng.uniform(size=(h // 3 + 1, w // 3 + 1)) > 0.5).repeat(3, 0).repeat(3, 1)[:h, :w].astype(dtype)
    mask = mask * rng.uniform(0.05, 1.0, size=(h, w)).astype(dtype)  # soft alpha, thresholded at 0.1
    assert si_boundary_recall(pred, mask) == pytest.approx(oracle_si_recall(pred, mask), abs=1e-12)


def test_oracle_and_vectorised_agree_on_ties_and_zero_depth():
    rng = np.random.default_rng(7)
    pred = rng.choice([0.0, 1.0, 2.0, 4.0], size=(12, 15))  # zeros clip to 1e-6; many exact ties
    gt = rng.choice([1.0, 2.0, 4.0], size=(12, 15))
    mask = rng.uniform(size=(12, 15))
    assert si_boundary_f1(pred, gt) == pytest.approx(oracle_si_f1(pred, gt), abs=1e-12)
    assert si_boundary_recall(pred, mask) == pytest.approx(oracle_si_recall(pred, mask), abs=1e-12)


def test_vectorised_equals_loops_on_a_large_map():
    """Correctness of the vectorised form on a map big enough to use every code path; speed lives in benchmarks."""
    rng = np.random.default_rng(8)
    pred = _structured_depth(rng, 120, 160)
    mask = rng.uniform(size=pred.shape)
    assert si_boundary_recall(pred, mask) == pytest.approx(oracle_si_recall(pred, mask), abs=1e-12)
