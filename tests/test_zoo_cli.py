"""Every registered model runs through `sharpdepth predict` on a real photo and writes every format.

Plumbing, not accuracy: the weights are the model's own random initialisation (saved to a
file and loaded back through the strict loader), with the last bias made positive so the
final ReLU does not zero the map. Parity with the official code is proven per family in
test_depth_pro.py / test_depth_anything.py / test_midas*.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sharpdepth
from sharpdepth.cli.predict import run_predict
from sharpdepth.engine.settings import ModelSettings, PredictSettings
from sharpdepth.io.depth_files import read_depth_result
from sharpdepth.io.outputs import OutputOptions

from conftest import data_dir

FINAL_BIAS = {
    "depth_pro": {"head.4.bias": 0.05, "fov.head.4.bias": 60.0},
    "depth_anything": {"depth_head.scratch.output_conv2.2.bias": 1.0},
    "midas": {"scratch.output_conv.4.bias": 1.0},
    "midas_small": {"scratch.output_conv.4.bias": 1.0},
    "video_depth_anything": {"head.scratch.output_conv2.2.bias": 1.0},
}
# Smaller network inputs where the family allows it keep CI time down; the pipeline is the same.
INPUT_SIZE = {"depth_anything": 196, "video_depth_anything": 196, "midas": None}

PHOTO = "da2_demo01.jpg"


@pytest.mark.slow
@pytest.mark.parametrize("name", sharpdepth.list_models())
def test_predict_every_registered_model(tmp_path, name):
    spec = sharpdepth.registry.get_spec(name)
    model = sharpdepth.load(name, random_weights=True)
    state = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    for key, value in FINAL_BIAS[spec.family].items():
        if key in state:
            state[key] = torch.full_like(state[key], value)
    weights = tmp_path / "w.safetensors"
    save_file(state, str(weights))
    del model, state
    out = tmp_path / "out"
    options = OutputOptions(formats=("npy", "npz", "png16", "exr", "pfm"), side_by_side=True, normals=True)
    settings = PredictSettings(
        model=ModelSettings(name=name, weights=weights, input_size=INPUT_SIZE.get(spec.family)), output=options
    )
    done, failures = run_predict([str(data_dir() / "photos" / PHOTO)], out, settings, show_progress=False)
    assert failures == [] and done == 1
    side = json.loads((out / "da2_demo01.json").read_text())
    assert side["output_kind"] == str(spec.output_kind) and side["model"] == name
    word = "depth" if spec.output_kind == "metric_depth" else "disparity"
    maps = [read_depth_result(out / f"da2_demo01_{word}.{ext}").prediction for ext in ("npy", "exr", "pfm")]
    assert maps[0].shape == (side["height"], side["width"])
    assert all(np.array_equal(m, maps[0]) for m in maps[1:])
    assert np.isfinite(maps[0]).all()
