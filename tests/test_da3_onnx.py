"""Depth Anything 3 mono/metric as ONNX: one dynamic graph, checked against the official outputs
and against PyTorch at two network input sizes, and the onnxruntime backend through the CLI.

The graph is the network up to the sky fill (`models.depth_anything_3.onnx`): its outputs are the
fixture's `net_output_depth_raw` and `net_output_sky`; the fill runs after it, so the onnxruntime
pipeline must reproduce the fixture's `pipeline_depth` / `pipeline_sky` exactly as torch does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import sharpdepth
from sharpdepth.cli.main import main
from sharpdepth.errors import OptionError

from conftest import assert_close_rel, fixture_state_dict, fixtures_dir

ort = pytest.importorskip("onnxruntime")
TOL = 1e-4
MONO = "depth-anything-3-mono-tiny"
FX = fixtures_dir() / "depth_anything_3" / "mono_tiny"
CASES = ("a_336", "b_518")  # 252x336 (position grid interpolated) and 518x518 (stored grid, no interpolation)


@pytest.fixture(scope="module")
def mono_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's stand-ins as the hub ships them (`model.`-prefixed keys), in a folder of their own."""
    path = tmp_path_factory.mktemp("da3_mono_tiny") / "model.safetensors"
    save_file({"model." + k: v.contiguous() for k, v in fixture_state_dict("depth_anything_3/mono_tiny").items()},
              str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def exported(mono_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("da3_onnx") / "mono.onnx"
    args = ["export", "onnx", "--model", MONO, "--weights", str(mono_file), "--input-size", "336", "--dynamic"]
    return out, _cli([*args, "-o", str(out)])


def _cli(args: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(args)
    assert code == 0, buffer.getvalue()
    return buffer.getvalue()


def test_cli_export_is_dynamic_with_a_sky_output(exported: tuple[Path, str]):
    path, printed = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["relative_depth", "sky"]
    shape = session.get_inputs()[0].shape
    assert all(isinstance(d, str) for d in (shape[0], shape[2], shape[3]))  # batch, height, width free
    assert "dynamic input" in printed and printed.count("onnxruntime vs PyTorch") == 2


@pytest.mark.parametrize("case", CASES)
def test_graph_equals_official_and_torch_at_two_sizes(exported: tuple[Path, str], mono_file: Path, case: str):
    """One graph exported at 336 runs the fixture's 252x336 and 518x518 inputs: official raw depth and
    sky within the fixture tolerance, and PyTorch's own forward within float rounding."""
    session = ort.InferenceSession(str(exported[0]), providers=["CPUExecutionProvider"])
    x = np.load(FX / case / "net_input.npy").astype(np.float32)  # (1, 3, h, w)
    depth, sky = session.run(None, {session.get_inputs()[0].name: x})
    assert depth.shape == sky.shape == (1, *x.shape[-2:])
    assert_close_rel(depth.reshape(-1), np.load(FX / case / "net_output_depth_raw.npy").reshape(-1), TOL, "raw depth")
    assert_close_rel(sky.reshape(-1), np.load(FX / case / "net_output_sky.npy").reshape(-1), TOL, "sky")
    net = sharpdepth.load(MONO, weights=str(mono_file)).net
    with torch.inference_mode():
        ref = net.forward_maps(torch.from_numpy(x)[:, None])
    assert_close_rel(depth, ref["depth"][:, 0].numpy(), 1e-5, "raw depth vs torch")
    assert_close_rel(sky, ref["sky"][:, 0].numpy(), 1e-5, "sky vs torch")


@pytest.mark.parametrize("case", CASES)
def test_onnxruntime_backend_reproduces_the_pipeline(mono_file: Path, tmp_path: Path, case: str):
    """`predict --backend onnxruntime` (graph exported on first use, sky fill after it) writes what
    `--backend torch` writes, and both are the official pipeline's depth and sky."""
    size = case.split("_")[1]
    image = str(FX / case / "image.png")
    common = ["predict", image, "--model", MONO, "--weights", str(mono_file), "--input-size", size,
              "--output-size", "network", "--format", "npz", "-q"]  # fmt: skip
    maps = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        _cli([*common, "--backend", backend, "-o", str(out)])
        with np.load(out / "image.npz") as data:
            maps[backend] = (data["relative_depth"], data["sky"])
    ref_depth = np.load(FX / case / "pipeline_depth.npy")[0]
    for depth, sky in maps.values():
        assert_close_rel(depth, ref_depth, TOL, "pipeline depth")
        np.testing.assert_array_equal(sky, np.load(FX / case / "pipeline_sky.npy")[0])
    assert_close_rel(maps["onnxruntime"][0], maps["torch"][0], 1e-5, "onnxruntime vs torch")
    assert list((mono_file.parent / ".sharpdepth-onnx").glob("*-dyn-*"))  # one dynamic graph serves both sizes


def test_an_exported_file_runs_as_weights(exported: tuple[Path, str]):
    """`--weights mono.onnx --backend onnxruntime`: the user's dynamic graph at a size it was not exported at."""
    model = sharpdepth.load(MONO, weights=str(exported[0]), input_size=518, backend="onnxruntime")
    r = model.predict(str(FX / "b_518" / "image.png"), output_size="network")
    assert_close_rel(r.prediction, np.load(FX / "b_518" / "pipeline_depth.npy")[0], TOL, "pipeline depth")
    np.testing.assert_array_equal(r.sky, np.load(FX / "b_518" / "pipeline_sky.npy")[0])


def test_metric_rule_runs_after_the_same_graph(mono_file: Path):
    """The metric preset exports the mono network (depth + sky); its metres are the focal rule applied
    after the graph, so the metric processor on the onnxruntime network gives the torch result."""
    from sharpdepth.engine.onnx_graph import graph_outputs
    from sharpdepth.models.depth_anything_3.processor import DA3Processor

    assert graph_outputs(sharpdepth.registry.get_spec("depth-anything-3-metric-large")) == ("depth", "sky")
    ort_model = sharpdepth.load(MONO, weights=str(mono_file), input_size=336, backend="onnxruntime")
    torch_model = sharpdepth.load(MONO, weights=str(mono_file), input_size=336)
    metric = DA3Processor(torch_model.spec, 336, metric=True)
    rgb = np.asarray(Image.open(FX / "a_336" / "image.png").convert("RGB"))
    x = metric.preprocess(rgb)[None]
    results = []
    for net in (ort_model.net, torch_model.net):
        (out,) = metric.forward(net, x)
        results.append(metric.postprocess(out, 480, 640, 500.0))
    got, want = results
    assert_close_rel(got.map, want.map, 1e-5, "metric depth")
    np.testing.assert_array_equal(got.sky, want.sky)
    assert got.focal_px == want.focal_px == 500.0


def test_any_view_models_refuse_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = main(["export", "onnx", "--model", "depth-anything-3-small", "-o", str(tmp_path / "s.onnx")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert "any-view models" in err and "do not export to ONNX" in err
    assert not list(tmp_path.iterdir())
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(OptionError, match="depth-anything-3-small cannot run on onnxruntime"):
        sharpdepth.load("depth-anything-3-small", weights=weights, backend="onnxruntime")


@pytest.mark.slow  # ViT-L: minutes per export and check on a 2-core CPU
def test_metric_large_through_onnxruntime_is_the_official_metric_depth(tmp_path_factory: pytest.TempPathFactory):
    """The released metric architecture on onnxruntime: the fixture's metric rule case (K given, 336 px)."""
    path = tmp_path_factory.mktemp("da3_metric_large") / "model.safetensors"
    save_file({"model." + k: v.contiguous() for k, v in fixture_state_dict("depth_anything_3/metric_large").items()},
              str(path))  # fmt: skip
    model = sharpdepth.load("depth-anything-3-metric-large", weights=str(path), input_size=336, backend="onnxruntime")
    folder = fixtures_dir() / "depth_anything_3" / "metric_large"
    r = model.predict(str(folder / "image.png"), focal_px=500.0, output_size="network")
    assert r.is_metric and r.focal_px == pytest.approx(262.5)
    assert_close_rel(r.prediction, np.load(folder / "pipeline_metric_depth.npy")[0], TOL, "metric depth")
    np.testing.assert_array_equal(r.sky, np.load(folder / "pipeline_sky.npy")[0])
