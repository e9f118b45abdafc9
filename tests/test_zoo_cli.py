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
from sharpdepth.engine.settings import FocalSettings, ModelSettings, PredictSettings
from sharpdepth.io.depth_files import read_depth_result
from sharpdepth.io.outputs import OutputOptions

from conftest import data_dir

FINAL_BIAS = {"head": 1.0, "fov": 60.0}
"""Value of the last bias of each part (the map's and the FOV's output layers), by the family's declared parts."""
SMALL_INPUT = 196
"""Network input for patch-14 (DINOv2) families: smaller keeps CI time down; the pipeline is the same."""


def _positive_final_biases(spec, state: dict[str, torch.Tensor]) -> None:
    """The last bias of each output part made positive, so a final ReLU does not zero the map."""
    training = spec.model_family.training
    for part, value in FINAL_BIAS.items():
        keys = [k for k in state if k.endswith(".bias") and training is not None and training.part_of(k) == part]
        if keys:
            state[keys[-1]] = torch.full_like(state[keys[-1]], value)


PHOTO = "da2_demo01.jpg"
FORWARD_IN_PARITY_FROM = 1536
"""Presets fixed at this network input or larger (Depth Pro, SHARP: 19 TFLOP and more per image)
load here through the strict loader, but run their full-size forward only in their slow parity
tests (test_depth_pro.py, test_sharp.py), which compare it with the official output; their
`predict` plumbing is the same code their tiny presets run in the default suite. A second
full-size forward per preset here would add ~8 CPU-minutes to CI and prove nothing more."""
GIVEN_FOCAL_PX = 900.0
"""Given to models without a FOV head: a metric model's own focal fallback (e.g. Depth Anything 3
Metric's estimate by another checkpoint) would need weights this offline test does not have."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sharpdepth.list_models())
def test_predict_every_registered_model(tmp_path, name):
    spec = sharpdepth.registry.get_spec(name)
    model = sharpdepth.load(name, random_weights=True)
    state = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    _positive_final_biases(spec, state)
    weights = tmp_path / "w.safetensors"
    save_file(state, str(weights))
    del model
    if spec.data.input_size_fixed and spec.data.input_size >= FORWARD_IN_PARITY_FROM:
        loaded = sharpdepth.load(name, weights=weights).net.state_dict()
        weights.unlink()
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
        return
    del state
    focal = None if spec.has_fov_head else GIVEN_FOCAL_PX
    out = tmp_path / "out"
    options = OutputOptions(formats=("npy", "npz", "png16", "exr", "pfm"), side_by_side=True, normals=True)
    settings = PredictSettings(
        model=ModelSettings(
            name=name, weights=weights, input_size=SMALL_INPUT if spec.data.multiple_of == 14 else None
        ),
        focal=FocalSettings(focal_px=focal),
        output=options,
    )
    try:
        done, failures = run_predict([str(data_dir() / "photos" / PHOTO)], out, settings, show_progress=False)
    finally:
        weights.unlink()  # up to 4.6 GB each: a CI disk holds a few, not the whole zoo
    assert failures == [] and done == 1
    side = json.loads((out / "da2_demo01.json").read_text())
    assert side["output_kind"] == str(spec.output_kind) and side["model"] == name
    word = spec.output_kind.file_word
    maps = [read_depth_result(out / f"da2_demo01_{word}.{ext}").prediction for ext in ("npy", "exr", "pfm")]
    assert maps[0].shape == (side["height"], side["width"])
    assert all(np.array_equal(m, maps[0]) for m in maps[1:])
    assert np.isfinite(maps[0]).all()


TEST_PRESETS = [s.name for s in sharpdepth.registry.list_specs(include_test_only=True) if s.test_only]


def test_weights_list_names_the_test_presets(capsys):
    """A new user finds the tiny presets the tests use: named under the default list, marked in --all."""
    from sharpdepth.cli.main import main

    assert {"depth-pro-tiny", "depth-anything-v2-tiny"} <= set(TEST_PRESETS)
    assert set(TEST_PRESETS) <= set(sharpdepth.list_models(include_test_only=True))
    assert main(["weights", "list"]) == 0
    listed = capsys.readouterr().out
    assert "Test presets" in listed and all(name in listed for name in TEST_PRESETS)
    assert main(["weights", "list", "--all"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if any(f" {n} " in line for n in TEST_PRESETS)]
    assert len(rows) == len(TEST_PRESETS) and all("test preset" in row for row in rows)


def test_a_test_preset_runs_a_command_offline(tmp_path, capsys, monkeypatch):
    """`weights random` writes a test preset's random initialisation; `predict` then runs on it offline."""
    from sharpdepth.cli.main import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = tmp_path / "tiny.safetensors"
    assert main(["weights", "random", "depth-anything-v2-tiny", str(weights)]) == 0
    assert "meaningless" in capsys.readouterr().out
    photo = str(data_dir() / "photos" / PHOTO)
    out = tmp_path / "out"
    args = ["predict", photo, "-o", str(out), "--model", "depth-anything-v2-tiny", "--weights", str(weights)]
    assert main([*args, "--input-size", "56", "-f", "npy", "-q"]) == 0
    assert np.isfinite(np.load(out / "da2_demo01_disparity.npy")).all()
    assert main(["weights", "random", "depth-anything-v2-tiny", str(tmp_path / "x.pt")]) == 2
