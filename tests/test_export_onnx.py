"""ONNX export: the graphs compute what the official networks compute (parity fixtures), at other sizes too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import sharpdepth
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.errors import OptionError
from sharpdepth.export.onnx import ExportError, OnnxExportSettings, export_onnx
from sharpdepth.models import traceable
from sharpdepth.models.vit import VisionTransformer

from conftest import assert_close_rel, fixture_state_dict, fixtures_dir

ort = pytest.importorskip("onnxruntime")


def _weights(tmp_path: Path, folder: str) -> Path:
    path = tmp_path / f"{folder.replace('/', '_')}.pt"
    torch.save(fixture_state_dict(folder), path)
    return path


def _export(tmp_path: Path, name: str, folder: str, **kw) -> tuple[Path, object]:
    weights = _weights(tmp_path, folder)
    settings = OnnxExportSettings(
        model=ModelSettings(name=name, weights=weights, input_size=kw.pop("input_size", None)),
        output=tmp_path / f"{name}.onnx",
        **kw,
    )
    model = sharpdepth.load(name, weights=weights, input_size=settings.model.input_size)
    return settings.output, export_onnx(model, settings)


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})


@pytest.mark.parametrize("scale", [(19.1 / 37, 19.1 / 37), (37.1 / 37, 49.1 / 37), (60.1 / 37, 23.1 / 37)])
def test_traceable_bicubic_equals_torch(scale) -> None:
    grid = torch.randn(1, 8, 37, 37)
    rows, cols = int(37 * scale[0]), int(37 * scale[1])
    ref = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    ours = traceable.resize_bicubic_scale(grid, torch.tensor(rows), torch.tensor(cols), *scale)
    assert ours.shape == ref.shape
    assert_close_rel(ours, ref, 1e-5, "bicubic")  # float32 summation order only


@pytest.mark.parametrize("size", [(24, 24), (13, 40), (48, 31)])
def test_traceable_bilinear_equals_torch(size) -> None:
    grid = torch.randn(1, 8, 24, 24)
    ref = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    assert_close_rel(traceable.resize_bilinear_size(grid, *size), ref, 1e-5, "bilinear")


def test_depth_pro_static_graph_matches_official(tmp_path) -> None:
    path, report = _export(tmp_path, "depth-pro-tiny", "depth_pro/tiny")
    fx = fixtures_dir() / "depth_pro" / "tiny"
    x = np.asarray(Image.open(fx / "image_net.png").convert("RGB"), np.float32) / 255.0
    x = ((x - 0.5) / 0.5).transpose(2, 0, 1)[None]
    inverse_depth, fov = _run(path, x)
    ref = np.load(fx / "net_output_canonical_inverse_depth.npy")
    assert_close_rel(inverse_depth.reshape(ref.shape), ref, 1e-4, "canonical inverse depth")
    assert report.output_names == ("canonical_inverse_depth", "fov_deg") and np.isfinite(fov).all()


def test_depth_anything_dynamic_graph_at_another_size(tmp_path) -> None:
    """Exported at 266 px, run at the fixture's 518x686: the position-embedding interpolation must follow."""
    path, report = _export(tmp_path, "depth-anything-v2-small", "depth_anything/v2_vits", input_size=266, dynamic=True)
    fx = fixtures_dir() / "depth_anything" / "v2_vits"
    x = np.load(fx / "net_input.npy")
    assert x.shape[-2:] != report.input_shape[-2:]
    (out,) = _run(path, x)
    ref = np.load(fx / "net_output_depth.npy")
    assert_close_rel(out.reshape(ref.shape), ref, 1e-4, "disparity")
    assert len(report.checks) == 2 and all(err <= 1e-4 for _, err in report.checks)


def test_midas_small_static_graph_matches_official(tmp_path) -> None:
    fx = fixtures_dir() / "midas" / "midas_v21_small_256"
    x = np.load(fx / "net_input.npy")
    path, _ = _export(tmp_path, "midas-v21-small-256", "midas/midas_v21_small_256", input_hw=tuple(x.shape[-2:]))
    (out,) = _run(path, x)
    ref = np.load(fx / "net_output_depth.npy")
    assert_close_rel(out.reshape(ref.shape), ref, 1e-4, "disparity")


def test_frozen_interpolation_is_caught_and_nothing_written(tmp_path, monkeypatch) -> None:
    """Without the traceable path, a dynamic DINOv2 graph is wrong at other sizes: the check must refuse it."""
    eager = VisionTransformer.position_embedding  # sizes read as Python numbers: frozen into the trace
    monkeypatch.setattr("sharpdepth.models.vit.is_exporting", lambda: False)
    monkeypatch.setattr(VisionTransformer, "position_embedding", lambda self, r, c: eager(self, int(r), int(c)))
    with pytest.raises(ExportError, match="differs from PyTorch|fails at input"):
        _export(tmp_path, "depth-anything-v2-small", "depth_anything/v2_vits", input_size=266, dynamic=True)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*part*"))


def test_dynamic_refused_where_the_graph_cannot_follow(tmp_path) -> None:
    model = sharpdepth.load("depth-pro-tiny", random_weights=True)
    with pytest.raises(OptionError, match="fixed at 1536"):
        export_onnx(model, OnnxExportSettings(output=tmp_path / "x.onnx", dynamic=True))
    small = sharpdepth.load("midas-v21-small-256", random_weights=True)
    with pytest.raises(OptionError, match="SAME padding"):
        export_onnx(small, OnnxExportSettings(output=tmp_path / "x.onnx", dynamic=True))
    with pytest.raises(OptionError, match=".onnx"):
        OnnxExportSettings(output=tmp_path / "x.bin")


@pytest.mark.parametrize(
    ("name", "folder", "size", "message"),
    [
        ("midas-v21-small-256", "midas/midas_v21_small_256", "196x294", "multiples of 32; 196x294 is not"),
        ("depth-anything-v2-small", "depth_anything/v2_vits", "70x71", "multiples of 14; 70x71 is not"),
    ],
)
def test_a_network_input_the_network_cannot_take_is_refused_with_the_rule(
    tmp_path, capsys, name, folder, size, message
):
    """`export onnx --input-size HxW` with sides off the network's multiple: one line naming the rule
    (MiDaS small at 196x294 used to end in a traceback deep inside the decoder), nothing written."""
    from sharpdepth.cli.main import main

    out = tmp_path / "m.onnx"
    code = main(["export", "onnx", "--model", name, "--weights", str(_weights(tmp_path, folder)),
                 "--input-size", size, "-o", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not out.exists() and not list(tmp_path.glob("*.onnx*"))


def test_a_fixed_size_network_refuses_another_input(tmp_path):
    model = sharpdepth.load("depth-pro-tiny", random_weights=True)
    with pytest.raises(OptionError, match="fixed 1536x1536 network input"):
        export_onnx(model, OnnxExportSettings(output=tmp_path / "p.onnx", input_hw=(384, 384)))
    assert not (tmp_path / "p.onnx").exists()
