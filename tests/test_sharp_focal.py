"""`splat`'s focal length: user > EXIF > a focal model's FOV head (weights at hand only) > 30 mm.

SHARP's own network is swapped for a recorder of the focal length it is handed (its real
forward is covered by tests/test_sharp.py and takes minutes on a busy CPU); the focal model
(depth-pro-tiny with the fixture's stand-in weights) runs for real, and the expectation is
what that model's own `predict` reports for the same picture.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import sharpdepth
from sharpdepth.engine.splat import FocalModel
from sharpdepth.models.sharp import SharpProcessor
from sharpdepth.models.splats import SplatTensors
from sharpdepth.result import FocalSource

from conftest import fixture_state_dict, fixtures_dir

IMAGE = fixtures_dir() / "sharp" / "tiny" / "image.png"  # 640 x 480, no EXIF
DEFAULT_30MM_PX = 30.0 * math.hypot(640, 480) / math.hypot(36.0, 24.0)  # the 35 mm diagonal rule


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("focal")
    paths = {"sharp": str(folder / "sharp_tiny.pt"), "depth_pro": str(folder / "depth_pro_tiny.pt")}
    torch.save(fixture_state_dict("sharp/tiny"), paths["sharp"])
    torch.save(fixture_state_dict("depth_pro/tiny"), paths["depth_pro"])
    return paths


@pytest.fixture(scope="module")
def sharp(weights: dict[str, str]) -> sharpdepth.DepthModel:
    return sharpdepth.load("sharp-tiny", weights=weights["sharp"])


@pytest.fixture(scope="module")
def depth_pro_focal(weights: dict[str, str]) -> float:
    """What depth-pro-tiny's FOV head says about the picture, through its own public API."""
    result = sharpdepth.load("depth-pro-tiny", weights=weights["depth_pro"]).predict(str(IMAGE))
    assert result.focal_source == FocalSource.MODEL
    return float(result.focal_px)


@pytest.fixture
def focals_seen(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The focal lengths SHARP's Gaussian step is handed (a 2-Gaussian scene comes back)."""
    seen: list[float] = []

    def record(self, net, x, height, width, focal_px):
        seen.append(focal_px)
        z = torch.zeros(2, 3)
        return SplatTensors(z + 1.0, z + 0.1, torch.tensor([[1.0, 0, 0, 0]] * 2), z + 0.5, torch.ones(2))

    monkeypatch.setattr(SharpProcessor, "predict_gaussians", record)
    return seen


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An empty weights cache, and any download attempt fails the test."""
    import huggingface_hub
    import huggingface_hub.constants

    import sharpdepth.weights.hub as hub

    def forbidden(*args, **kwargs):
        pytest.fail("splat tried to download focal-model weights")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(hub, "download", forbidden)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)


def test_focal_from_the_focal_models_fov_head(sharp, weights, depth_pro_focal, focals_seen):
    estimator = FocalModel("depth-pro-tiny", weights["depth_pro"], loader=sharpdepth.load)
    g = sharp.predict_gaussians(str(IMAGE), focal_model=estimator)
    assert g.focal_source == FocalSource.MODEL and g.focal_model == "depth-pro-tiny"
    assert g.focal_px == pytest.approx(depth_pro_focal, rel=1e-6)
    assert focals_seen == [g.focal_px]  # the scene was built at that focal
    assert g.focal_px != pytest.approx(DEFAULT_30MM_PX, rel=1e-3)  # the estimate is not the default in disguise


def test_no_focal_model_is_the_official_30mm(sharp, focals_seen):
    g = sharp.predict_gaussians(str(IMAGE), focal_model=None)
    assert g.focal_source == FocalSource.DEFAULT and g.focal_model is None and g.focal_notice is None
    assert g.focal_px == pytest.approx(DEFAULT_30MM_PX, rel=1e-9) and focals_seen == [g.focal_px]


def test_the_users_focal_wins_and_the_focal_model_is_not_even_loaded(sharp, weights, focals_seen):
    estimator = FocalModel("depth-pro-tiny", weights["depth_pro"], loader=sharpdepth.load)
    g = sharp.predict_gaussians(str(IMAGE), focal_px=777.0, focal_model=estimator)
    assert g.focal_source == FocalSource.USER and g.focal_px == 777.0 and g.focal_model is None
    assert estimator._model is None and focals_seen == [777.0]


@pytest.mark.usefixtures("no_network")
def test_weights_not_at_hand_fall_back_to_30mm_with_a_notice(sharp, focals_seen):
    g = sharp.predict_gaussians(str(IMAGE))  # the default focal model, depth-pro: not cached here
    assert g.focal_source == FocalSource.DEFAULT and g.focal_px == pytest.approx(DEFAULT_30MM_PX, rel=1e-9)
    assert g.focal_notice is not None and "depth-pro" in g.focal_notice and "cache" in g.focal_notice
    assert "\n" not in g.focal_notice
    tiny = sharp.predict_gaussians(str(IMAGE), focal_model="depth-pro-tiny")  # no published weights at all
    assert tiny.focal_source == FocalSource.DEFAULT and "--focal-weights" in (tiny.focal_notice or "")


def test_a_model_without_a_fov_head_is_refused():
    with pytest.raises(sharpdepth.OptionError, match="field-of-view head"):
        FocalModel("sharp-tiny", loader=sharpdepth.load)
    with pytest.raises(sharpdepth.OptionError, match="no such file"):
        FocalModel("depth-pro-tiny", "/nonexistent/depth_pro.pt", loader=sharpdepth.load)


# --------------------------------------------------------------------------- command line


def test_cli_focal_model_none_and_a_given_focal_model(tmp_path, weights, depth_pro_focal, focals_seen, capsys):
    from sharpdepth.cli.main import main

    base = ["splat", str(IMAGE), "--model", "sharp-tiny", "--weights", weights["sharp"]]
    assert main([*base, "-o", str(tmp_path / "none"), "--focal-model", "none"]) == 0
    side = json.loads((tmp_path / "none" / "image.json").read_text())
    assert side["focal_source"] == "default" and side["focal_px"] == pytest.approx(DEFAULT_30MM_PX, rel=1e-9)
    assert "focal_model" not in side and "focal_notice" not in side

    given = ["--focal-model", "depth-pro-tiny", "--focal-weights", weights["depth_pro"]]
    assert main([*base, "-o", str(tmp_path / "model"), *given]) == 0
    side = json.loads((tmp_path / "model" / "image.json").read_text())
    assert side["focal_source"] == "model" and side["focal_model"] == "depth-pro-tiny"
    assert side["focal_px"] == pytest.approx(depth_pro_focal, rel=1e-6)
    assert (tmp_path / "model" / "image.ply").is_file()


@pytest.mark.usefixtures("no_network")
def test_cli_notice_when_the_focal_model_is_not_at_hand(tmp_path, weights, focals_seen, capsys):
    from sharpdepth.cli.main import main

    args = ["splat", str(IMAGE), "--model", "sharp-tiny", "--weights", weights["sharp"], "-o", str(tmp_path)]
    assert main(args) == 0
    side = json.loads((tmp_path / "image.json").read_text())
    assert side["focal_source"] == "default" and "depth-pro" in side["focal_notice"]
    err = capsys.readouterr().err
    assert err.count("note: focal model depth-pro not used") == 1 and "Traceback" not in err


def test_cli_refuses_a_focal_model_without_a_fov_head(tmp_path, capsys):
    from sharpdepth.cli.main import main

    assert main(["splat", str(IMAGE), "-o", str(tmp_path), "--focal-model", "sharp"]) == 2
    err = capsys.readouterr().err.strip()
    assert "field-of-view head" in err and len(err.splitlines()) == 1
