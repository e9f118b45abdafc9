"""The temporal stabiliser: its measured effect on real RGB-D frames, causality, cuts, unknown pixels."""

from __future__ import annotations

import numpy as np
import pytest

from sharpdepth.errors import OptionError
from sharpdepth.video import StabilizerSettings, stabilize
from sharpdepth.video.measure import evaluate, gt_disparity, jitter, load_tum_sequence
from video_clips import pattern

from conftest import data_dir


@pytest.fixture(scope="module")
def tum():
    return load_tum_sequence(data_dir() / "rgbd/sequences/tum_fr2_desk", frames=12, size=(160, 120))


def test_one_alignment_per_sequence_after_stabilising_is_close_to_per_frame(tum):
    raw = jitter(gt_disparity(tum.depth), seed=3)
    raw_seq, _ = evaluate(raw, tum.depth, "sequence")
    raw_frame, _ = evaluate(raw, tum.depth, "frame")
    assert raw_seq > 4 * raw_frame  # the jitter is real: one scale/shift cannot fit the raw sequence
    for mode in ("offline", "streaming"):
        stab = stabilize(raw, tum.rgb, mode=mode)
        stab_seq, _ = evaluate(stab, tum.depth, "sequence")
        assert stab_seq < 0.4 * raw_seq, mode
        assert stab_seq < 3.0 * raw_frame, mode


def test_static_scene_with_scale_jitter_becomes_steady():
    rgb = np.stack([pattern(0, 48, 64)] * 10)
    yy, xx = np.mgrid[0:48, 0:64]
    base = (1.0 + xx / 64.0 + yy / 96.0).astype(np.float32)
    scales = np.exp(np.random.default_rng(0).normal(0, 0.2, 10)).astype(np.float32)
    raw = base[None] * scales[:, None, None]
    out = stabilize(raw, rgb, mode="offline")
    ratio_raw = np.std(np.median(raw, axis=(1, 2))) / np.mean(raw)
    ratio_out = np.std(np.median(out, axis=(1, 2))) / np.mean(out)
    assert ratio_out < 0.2 * ratio_raw
    # The shape of each frame is kept (only a global scale/shift and consistent blending are applied).
    for t in range(10):
        assert np.corrcoef(out[t].ravel(), base.ravel())[0, 1] > 0.999


def test_streaming_is_causal_and_offline_looks_ahead():
    rgb = np.stack([pattern(i, 48, 64) for i in range(8)])
    raw = np.stack([np.full((48, 64), 1.0 + 0.1 * (i % 3), np.float32) + np.linspace(0, 1, 64) for i in range(8)])
    changed = raw.copy()
    changed[6:] *= 3.0
    a, b = stabilize(raw, rgb, mode="streaming"), stabilize(changed, rgb, mode="streaming")
    assert np.array_equal(a[:6], b[:6])
    c, d = stabilize(raw, rgb, mode="offline"), stabilize(changed, rgb, mode="offline")
    assert not np.allclose(c[:6], d[:6])


def test_scene_cut_resets_and_unknown_pixels_stay_unknown():
    from sharpdepth.engine.stabilize import stabilize_stream

    rng = np.random.default_rng(1)
    first = [pattern(i, 48, 64) for i in range(4)]
    second = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    rgb = first + second
    disp = [np.full((48, 64), 2.0, np.float32) + np.linspace(0, 1, 64) for _ in rgb]
    disp[1][:5, :5] = 0.0
    disp[2][:5, :5] = np.nan
    outs = list(stabilize_stream(zip(disp, rgb, strict=True), StabilizerSettings(mode="streaming")))
    assert [o.cut for o in outs] == [True, False, False, False, True, True, True]
    assert np.isnan(outs[1].disparity[:5, :5]).all() and np.isnan(outs[2].disparity[:5, :5]).all()
    assert np.isfinite(outs[1].disparity[5:, 5:]).all()


def test_bad_arguments():
    with pytest.raises(OptionError):
        stabilize(np.zeros((2, 4, 4)), np.zeros((2, 4, 5, 3), np.uint8))
    with pytest.raises(OptionError):
        stabilize(np.zeros((2, 4, 4)), np.zeros((2, 4, 4, 3), np.uint8), mode="sideways")
    with pytest.raises(OptionError):
        StabilizerSettings(blend=1.5)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (something optical flow can follow), HxWx3 uint8."""
    import cv2

    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def _zoom_clip(zooms: list[float], h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Frames approaching a scene (central 1/k of a texture, resized back) and their true disparity:
    a tilted plane whose disparity grows by the same factor k as the image."""
    import cv2

    big = _texture(2 * h, 2 * w)
    yy, xx = np.mgrid[0 : 2 * h, 0 : 2 * w].astype(np.float32)
    plane = 1.0 + 0.5 * xx / (2 * w) + 0.25 * yy / (2 * h)
    frames, truth = [], []
    for k in zooms:
        ch, cw = round(2 * h / (2 * k)), round(2 * w / (2 * k))
        top, left = h - ch, w - cw
        window = (slice(top, top + 2 * ch), slice(left, left + 2 * cw))
        frames.append(cv2.resize(big[window], (w, h), interpolation=cv2.INTER_AREA))
        truth.append(cv2.resize(plane[window], (w, h), interpolation=cv2.INTER_LINEAR) * k)
    return np.stack(frames), np.stack(truth).astype(np.float32)


def _levels(disparity: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per frame, the least-squares scale s of disparity ~ s * truth (relative to frame 0)."""
    s = np.array([np.sum(d * t) / np.sum(t * t) for d, t in zip(disparity, truth, strict=True)])
    return s / s[0]


@pytest.mark.parametrize("mode", ["offline", "streaming"])
def test_a_real_scale_ramp_is_kept_and_the_jitter_on_it_removed(mode):
    zooms = [1.0 + 0.05 * t for t in range(12)]  # the camera approaches: disparity x1.55 in 12 frames
    rgb, truth = _zoom_clip(zooms)
    jitter_scale = np.exp(np.random.default_rng(2).normal(0, 0.25, len(zooms))).astype(np.float32)
    raw = truth * jitter_scale[:, None, None]
    out = stabilize(raw, rgb, mode=mode)
    kept = _levels(out, truth)  # 1 everywhere when the output is the truth up to one scale
    assert np.abs(np.log(kept)).max() < 0.05, kept
    # Freezing the level (the design before issue 22) would leave the output flat instead of x1.55.
    ramp = np.median(out[-1]) / np.median(out[0])
    assert 1.45 < ramp < 1.65, ramp


def test_pure_jitter_on_a_panning_shot_is_removed():
    w = 128
    big = _texture(96, 2 * w, seed=5)
    rgb = np.stack([big[:, 4 * t : 4 * t + w] for t in range(12)])  # sideways, 4 px per frame
    yy, xx = np.mgrid[0:96, 0 : 2 * w].astype(np.float32)
    scene = 1.0 + xx / (2 * w) + 0.3 * yy / 96
    truth = np.stack([scene[:, 4 * t : 4 * t + w] for t in range(12)])
    rng = np.random.default_rng(4)
    scale = np.exp(rng.normal(0, 0.25, 12))[:, None, None]
    shift = rng.normal(0, 0.08, 12)[:, None, None] * float(np.median(truth))
    raw = (truth * scale + shift).astype(np.float32)
    for mode in ("offline", "streaming"):
        out = stabilize(raw, rgb, mode=mode)
        # One scale and shift for the whole shot must fit every frame (the jitter is gone) ...
        fit = np.polyfit(truth.ravel(), out.ravel(), 1)
        resid = np.abs(np.polyval(fit, truth) - out) / np.abs(out)
        assert float(np.median(resid)) < 0.01, mode
        # ... whereas the raw frames need one each.
        raw_fit = np.polyfit(truth.ravel(), raw.ravel(), 1)
        assert float(np.median(np.abs(np.polyval(raw_fit, truth) - raw) / np.abs(raw))) > 0.1
