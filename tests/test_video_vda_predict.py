"""Video Depth Anything through `predict_video` (the public path): the official pipeline outputs.

The fixture frames were made by the official code with stand-in weights (see the fixture README);
`predict_video` must reproduce its offline and streaming outputs within the fixtures' tolerance,
and must not apply the stabiliser to a video model unless asked to.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sharpdepth

from conftest import assert_close_rel, fixture_state_dict, fixtures_dir

FX = fixtures_dir() / "video_depth_anything"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "vda_vits.pt"
    torch.save(fixture_state_dict("video_depth_anything/vits"), path)
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.load(FX / "vits/frames.npy")


@pytest.mark.parametrize(
    "name, mode, reference",
    [
        ("video-depth-anything-small", "offline", "vits/pipeline_depth.npy"),
        pytest.param(
            "video-depth-anything-small", "streaming", "vits/stream_depth.npy", marks=pytest.mark.slow
        ),  # 40 passes over a 32-frame window (the offline case covers the dispatch)
        ("video-depth-anything-metric-small", "offline", "metric_vits/pipeline_depth.npy"),
    ],
)
def test_predict_video_matches_the_official_pipeline(weights, frames, name, mode, reference):
    model = sharpdepth.load(name, weights=weights, input_size=70)
    results = list(model.predict_video(frames, mode=mode))
    assert [r.frame_index for r in results] == list(range(len(frames)))
    assert all("stabilizer" not in r.extra for r in results)  # parity: no stabiliser by default
    got = np.stack([r.depth if r.is_metric else r.disparity for r in results])
    assert_close_rel(got, np.load(FX / reference), 1e-4, f"{name} {mode}")


def test_stabiliser_can_be_asked_for(weights, frames):
    model = sharpdepth.load("video-depth-anything-small", weights=weights, input_size=70)
    plain = np.stack([r.disparity for r in model.predict_video(frames[:12])])
    stab = np.stack([r.disparity for r in model.predict_video(frames[:12], stabilize=True)])
    assert stab.shape == plain.shape and not np.allclose(stab, plain)
