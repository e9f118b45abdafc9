"""`predict_video` on image models: order, frame fields, batching, stabiliser default, focal lock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sharpdepth
from sharpdepth.errors import OptionError
from sharpdepth.io.video import FrameSelection
from sharpdepth.result import FocalSource
from video_clips import make_clip, pattern

from conftest import fixture_state_dict


@pytest.fixture(scope="module")
def da_tiny():
    torch.manual_seed(0)
    return sharpdepth.load("depth-anything-v2-tiny", random_weights=True, input_size=56)


@pytest.fixture(scope="module")
def dp_tiny(tmp_path_factory) -> sharpdepth.engine.model.DepthModel:
    path = tmp_path_factory.mktemp("w") / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), path)
    return sharpdepth.load("depth-pro-tiny", weights=path)


def _frames(n: int = 6, h: int = 40, w: int = 56) -> np.ndarray:
    return np.stack([pattern(i, h, w) for i in range(n)])


def test_one_result_per_frame_in_order_and_unstabilised_equals_per_image(da_tiny, tmp_path):
    frames = _frames(7)
    results = list(da_tiny.predict_video(frames, stabilize=False, batch_size=3))
    assert [r.frame_index for r in results] == list(range(7))
    assert np.allclose([r.timestamp_s for r in results], np.arange(7) / 24)
    singles = [da_tiny.predict(f) for f in frames]
    for r, s in zip(results, singles, strict=True):
        np.testing.assert_allclose(r.disparity, s.disparity, rtol=1e-5, atol=1e-6)
    clip = make_clip(tmp_path / "c.mp4", n=10, w=56, h=40, fps=10)
    got = list(da_tiny.predict_video(str(clip), selection=FrameSelection(every=3)))
    assert [r.frame_index for r in got] == [0, 3, 6, 9] and np.allclose(
        [r.timestamp_s for r in got], [0, 0.3, 0.6, 0.9]
    )
    assert all(r.disparity.shape == (40, 56) for r in got)


def test_image_models_are_stabilised_by_default(da_tiny):
    frames = _frames(6)
    raw = list(da_tiny.predict_video(frames, stabilize=False))
    stab = list(da_tiny.predict_video(frames))
    assert all("stabilizer" in r.extra for r in stab) and not any("stabilizer" in r.extra for r in raw)
    assert any(not np.allclose(a.disparity, b.disparity) for a, b in zip(raw, stab, strict=True))
    with pytest.raises(OptionError):
        list(da_tiny.predict_video(frames, mode="sideways"))


def test_depth_pro_focal_locked_to_median_of_first_estimates(dp_tiny):
    frames = _frames(3, 48, 64)
    # The first 2 frames give the lock (their depth is re-expressed at it); frame 2 is predicted with it.
    video = list(dp_tiny.predict_video(frames, stabilize=False, focal_frames=2, batch_size=1))
    per_frame = dp_tiny.predict_batch(list(frames))
    estimates = [p.focal_px for p in per_frame]
    lock = float(np.median(estimates[:2]))
    assert len({round(e, 3) for e in estimates}) == 3  # the model's own estimates differ per frame
    for r, p in zip(video, per_frame, strict=True):
        assert r.focal_px == pytest.approx(lock) and r.focal_source is FocalSource.MODEL
        assert r.extra["focal_estimate_px"] == pytest.approx(p.focal_px, rel=1e-4)
        # Metric depth is proportional to the focal length: the same map at the locked value.
        np.testing.assert_allclose(r.depth, p.depth * (lock / p.focal_px), rtol=1e-4)
    user = list(dp_tiny.predict_video(frames, stabilize=False, focal_px=77.0, selection=FrameSelection(max_frames=1)))
    assert len(user) == 1 and user[0].focal_px == 77.0 and user[0].focal_source is FocalSource.USER


def test_resume_reuses_finished_frames(da_tiny):
    frames = _frames(6)
    full = list(da_tiny.predict_video(frames))
    done = {0: full[0], 1: full[1], 2: full[2]}
    calls: list[int] = []

    def reuse(frame):
        calls.append(frame.index)
        return done.get(frame.index)

    resumed = list(da_tiny.predict_video(frames, reuse=reuse))
    assert [r.frame_index for r in resumed] == list(range(6)) and calls == list(range(6))
    assert all(resumed[i].extra.get("reused") for i in range(3))
    assert not any(resumed[i].extra.get("reused") for i in range(3, 6))
    for i in range(3):
        assert np.array_equal(resumed[i].prediction, full[i].prediction)


def test_bad_video_sources_are_one_line(da_tiny, tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(sharpdepth.errors.InputImageError, match="not a readable video"):
        next(da_tiny.predict_video(str(bad)))
    with pytest.raises(sharpdepth.errors.InputImageError, match="no such file"):
        next(da_tiny.predict_video(str(Path(tmp_path / "missing.mp4"))))
