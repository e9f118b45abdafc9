"""Video Depth Anything through `predict_video`: no stabiliser by default (the official pipeline's
output, whose parity `test_video_depth_anything.py` checks through this same call), one on request."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sharpdepth

from conftest import assert_close_rel, fixture_state_dict, fixtures_dir

FX = fixtures_dir() / "video_depth_anything"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "vda_vits.pt"
    torch.save(fixture_state_dict("video_depth_anything/vits"), path)
    return sharpdepth.load("video-depth-anything-small", weights=path, input_size=70)


def test_video_model_is_not_stabilised_unless_asked(model):
    frames = np.load(FX / "vits/frames.npy")
    plain = list(model.predict_video(frames))
    assert all("stabilizer" not in r.extra for r in plain)
    assert_close_rel(np.stack([r.disparity for r in plain]), np.load(FX / "vits/pipeline_depth.npy"), 1e-4)
    stab = list(model.predict_video(frames, stabilize=True))
    assert [r.frame_index for r in stab] == list(range(len(frames))) and all("stabilizer" in r.extra for r in stab)
    assert not np.allclose(np.stack([r.disparity for r in stab]), np.stack([r.disparity for r in plain]))
