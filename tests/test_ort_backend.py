"""`--backend onnxruntime`: the same results as the torch path, a graph cache that is reused and repaired.

The reference is always the torch backend on the same checkpoint and picture: the
onnxruntime forward pass must agree within the fixtures' parity bound
(max|a-b| <= 1e-4 * max|b|) after the identical pre- and post-processing.
"""

from __future__ import annotations

import json
import logging
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from sharpdepth.cli.main import main
from sharpdepth.engine import ort_backend
from sharpdepth.engine.onnx_graph import ExportError, export_graph
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.errors import OptionError
from sharpdepth.family import decode_output

from conftest import assert_close_rel, fixture_state_dict, stand_in_state_dict

pytest.importorskip("onnxruntime")
PARITY = 1e-4
DA = "depth-anything-v2-tiny"
DA_SIZE = "70"  # network input short side: a small graph that still has 5x5+ patches


def _photo(path: Path, size: tuple[int, int] = (120, 90)) -> Path:
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([xx * 255 // size[0], yy * 255 // size[1], rng.integers(0, 255, (size[1], size[0]))], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path, quality=95)
    return path


@pytest.fixture
def da_weights(tmp_path) -> Path:
    """Stand-in weights for the tiny Depth Anything, in a folder of its own (the graph cache goes beside it)."""
    net = sharpdepth.load(DA, random_weights=True).net
    path = tmp_path / "weights" / "da_tiny.pt"
    path.parent.mkdir()
    torch.save(stand_in_state_dict(net, {"depth_head.scratch.output_conv2.2.bias": 3.0}), path)
    return path


@pytest.fixture
def count_exports(monkeypatch) -> list[tuple[int, int] | None]:
    """Every export the backend makes, by requested input (None: dynamic); the real export still runs."""
    calls: list[tuple[int, int] | None] = []

    def counted(model, output, **kw):
        calls.append(None if kw.get("dynamic") else kw.get("input_hw") or (-1, -1))
        return export_graph(model, output, **kw)

    monkeypatch.setattr(ort_backend, "export_graph", counted)
    return calls


def run(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.mark.slow  # a 1536x1536 export with its parity check: ~25 s alone, ~50 s on a busy 2-core machine
def test_cli_onnxruntime_equals_torch_depth_pro(tmp_path):
    """Depth Pro tiny (fixture weights), a photo, both backends through the CLI: same depth, focal, files."""
    weights = tmp_path / "w" / "depth_pro_tiny.pt"
    weights.parent.mkdir()
    torch.save(fixture_state_dict("depth_pro/tiny"), weights)
    img = _photo(tmp_path / "in" / "a.jpg")
    base = ["predict", img, "--model", "depth-pro-tiny", "--weights", weights, "-q", "--format", "npy"]
    assert run(*base, "-o", tmp_path / "torch") == 0
    assert run(*base, "-o", tmp_path / "ort", "--backend", "onnxruntime") == 0
    ref, got = np.load(tmp_path / "torch" / "a_depth.npy"), np.load(tmp_path / "ort" / "a_depth.npy")
    assert_close_rel(got, ref, PARITY, "depth")
    side_ref = json.loads((tmp_path / "torch" / "a.json").read_text())
    side = json.loads((tmp_path / "ort" / "a.json").read_text())
    assert (side_ref["backend"], side["backend"]) == ("torch", "onnxruntime")
    assert side["focal_px"] == pytest.approx(side_ref["focal_px"], rel=PARITY)
    assert sorted(side["files"]) == sorted(side_ref["files"])
    assert side["job"] == side_ref["job"]  # the numbers agree, so resuming either way is right


def test_cli_depth_anything_both_aspect_ratios_one_dynamic_graph(tmp_path, da_weights, count_exports):
    """Two aspect ratios in one batch: one dynamic export serves both, each equal to torch."""
    imgs = [_photo(tmp_path / "in" / "wide.jpg", (120, 80)), _photo(tmp_path / "in" / "tall.jpg", (70, 110))]
    base = ["predict", *imgs, "--model", DA, "--weights", da_weights, "--input-size", DA_SIZE, "-q", "-f", "npy"]
    assert run(*base, "-o", tmp_path / "torch") == 0
    assert run(*base, "-o", tmp_path / "ort", "--backend", "onnxruntime", "--batch-size", "2") == 0
    for stem in ("wide", "tall"):
        ref = np.load(tmp_path / "torch" / f"{stem}_disparity.npy")
        assert_close_rel(np.load(tmp_path / "ort" / f"{stem}_disparity.npy"), ref, PARITY, stem)
    assert count_exports == [None]


def test_cache_is_reused_and_keyed(tmp_path, da_weights, count_exports):
    settings = ModelSettings(name=DA, weights=da_weights, input_size=70, backend="onnxruntime")
    rgb = np.asarray(Image.open(_photo(tmp_path / "a.jpg")))
    first = settings.load().predict(rgb).prediction
    second = settings.load().predict(rgb).prediction
    assert count_exports == [None]  # the second load read the cached graph
    np.testing.assert_array_equal(first, second)
    (entry,) = (da_weights.parent / ort_backend.CACHE_FOLDER).iterdir()
    manifest = json.loads((entry / ort_backend.MANIFEST_FILE).read_text())
    assert manifest["key"]["model"] == DA and manifest["key"]["input_hw"] is None
    assert manifest["key"]["checkpoint_sha256"][:16] in entry.name
    assert all(err <= PARITY for _, err in manifest["checks"]) and len(manifest["checks"]) == 2
    # Other weights are another key: a new export, not the old graph.
    state = torch.load(da_weights, weights_only=True)
    state["depth_head.scratch.output_conv2.2.bias"] += 1.0
    other = da_weights.with_name("other.pt")
    torch.save(state, other)
    ModelSettings(name=DA, weights=other, input_size=70, backend="onnxruntime").load()
    assert count_exports == [None, None]


def test_damaged_cache_entry_is_exported_again(tmp_path, da_weights, count_exports, caplog):
    settings = ModelSettings(name=DA, weights=da_weights, input_size=70, backend="onnxruntime")
    rgb = np.asarray(Image.open(_photo(tmp_path / "a.jpg")))
    ref = settings.load().predict(rgb).prediction
    (entry,) = (da_weights.parent / ort_backend.CACHE_FOLDER).iterdir()
    graph = entry / ort_backend.GRAPH_FILE
    for n, damage in enumerate(("truncated", "same-size garbage", "manifest removed"), start=2):
        data = graph.read_bytes()
        if damage == "truncated":
            graph.write_bytes(data[: len(data) // 2])
        elif damage == "same-size garbage":
            mid = len(data) // 2
            graph.write_bytes(data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 4096]) + data[mid + 4096 :])
        else:
            (entry / ort_backend.MANIFEST_FILE).unlink()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sharpdepth"):
            again = settings.load().predict(rgb).prediction
        assert count_exports == [None] * n, damage
        assert any("damaged" in r.getMessage() for r in caplog.records), damage
        np.testing.assert_allclose(again, ref, rtol=0, atol=PARITY * float(np.abs(ref).max()))
        assert ort_backend.damage(entry, settings_key(settings, da_weights)) is None


def settings_key(settings: ModelSettings, weights: Path) -> ort_backend.GraphKey:
    from sharpdepth.weights.checkpoint import sha256_file

    return ort_backend.GraphKey(settings.name, sha256_file(weights), None, ort_backend.OPSET, sharpdepth.__version__)


def test_midas_small_one_static_graph_per_shape(tmp_path, count_exports):
    """MiDaS small's graph cannot follow the size: one static export per network-input shape, equal to torch."""
    weights = tmp_path / "w" / "midas_small.pt"
    weights.parent.mkdir()
    torch.save(fixture_state_dict("midas/midas_v21_small_256"), weights)
    model = sharpdepth.load("midas-v21-small-256", weights=weights, input_size=64, backend="onnxruntime")
    reference = sharpdepth.load("midas-v21-small-256", weights=weights, input_size=64)
    pictures = [np.asarray(Image.open(_photo(tmp_path / n, s))) for n, s in (("a.jpg", (160, 60)), ("b.jpg", (90, 90)))]
    for rgb in [*pictures, pictures[0]]:
        assert_close_rel(model.predict(rgb).prediction, reference.predict(rgb).prediction, PARITY, "disparity")
    assert count_exports == [(32, 64), (64, 64)]  # the third picture reused the first graph


def test_explicit_onnx_file(tmp_path, da_weights, count_exports, capsys):
    """An exported .onnx given as --weights runs as it is; a static one refuses other network sizes in one line."""
    img = _photo(tmp_path / "a.jpg")
    dynamic, static = tmp_path / "da_dyn.onnx", tmp_path / "da_static.onnx"
    export = ["export", "onnx", "--model", DA, "--weights", da_weights]
    assert run(*export, "-o", dynamic, "--dynamic", "--input-size", DA_SIZE) == 0
    assert run(*export, "-o", static, "--input-size", "70x70") == 0
    base = ["predict", img, "--model", DA, "--input-size", DA_SIZE, "-q", "-f", "npy"]
    assert run(*base, "--weights", da_weights, "-o", tmp_path / "torch") == 0
    assert run(*base, "--weights", dynamic, "--backend", "onnxruntime", "-o", tmp_path / "ort") == 0
    ref = np.load(tmp_path / "torch" / "a_disparity.npy")
    assert_close_rel(np.load(tmp_path / "ort" / "a_disparity.npy"), ref, PARITY, "disparity")
    side = json.loads((tmp_path / "ort" / "a.json").read_text())
    assert side["backend"] == "onnxruntime" and side["weights_sha256"] != json.loads(
        (tmp_path / "torch" / "a.json").read_text()
    ).get("weights_sha256")
    capsys.readouterr()
    assert run(*base, "--weights", static, "--backend", "onnxruntime", "-o", tmp_path / "bad") == 1  # 120x90 -> 70x98
    err = capsys.readouterr().err
    assert "takes 70x70 network inputs" in err and "Traceback" not in err
    assert count_exports == []  # `export onnx` made the files; the backend exported nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "onnxruntime", "--precision", "bf16"], "runs the fp32 graph"),
        (["--backend", "tensorrt"], "unknown --backend"),
        (["--weights", "{onnx}"], "is an ONNX graph: run it with --backend onnxruntime"),
        (["--model", "video-depth-anything-small", "--backend", "onnxruntime"], "cannot run on onnxruntime"),
        (["--backend", "onnxruntime", "--weights", "{missing}"], "no such file"),
        pytest.param(
            ["--backend", "onnxruntime", "--device", "cuda"],
            "no CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU"),
        ),
    ],
)
def test_bad_combinations_exit_2_one_line(tmp_path, da_weights, capsys, args, message):
    fake_onnx = tmp_path / "x.onnx"
    fake_onnx.write_bytes(b"not a graph")
    args = [a.format(onnx=fake_onnx, missing=tmp_path / "none.onnx") for a in args]
    if "--weights" not in args:
        args += ["--weights", str(da_weights)]
    img = _photo(tmp_path / "a.jpg")
    code = run("predict", img, "-o", tmp_path / "o", "--model", DA, "-q", *args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err


def test_unreadable_onnx_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00garbage")
    code = run("predict", _photo(tmp_path / "a.jpg"), "-o", tmp_path / "o", "--model", DA, "-q",
               "--backend", "onnxruntime", "--weights", bad)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "onnxruntime cannot load this graph" in err and "Traceback" not in err


def test_missing_onnxruntime_and_cuda_provider(tmp_path, da_weights, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    code = run("predict", _photo(tmp_path / "a.jpg"), "-o", tmp_path / "o", "--model", DA, "-q",
               "--weights", da_weights, "--backend", "onnxruntime")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "sharpdepth[onnx]"' in err and len(err.strip().splitlines()) == 1

    class CpuOnly:
        @staticmethod
        def get_available_providers() -> list[str]:
            return ["CPUExecutionProvider"]

    with pytest.raises(OptionError, match="needs onnxruntime-gpu"):
        ort_backend.providers_for(torch.device("cuda"), CpuOnly)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="cpu or cuda, not mps"):
        ort_backend.providers_for(torch.device("mps"), CpuOnly)  # type: ignore[arg-type]


def test_onnxruntime_model_is_not_exported_again(tmp_path, da_weights):
    model = sharpdepth.load(DA, weights=da_weights, input_size=70, backend="onnxruntime")
    assert model.backend == "onnxruntime" and model.dtype == torch.float32
    with pytest.raises(ExportError, match="load it with the torch backend"):
        export_graph(model, tmp_path / "again.onnx")
    with pytest.raises(OptionError, match="save random weights"):
        sharpdepth.load(DA, random_weights=True, backend="onnxruntime")


class _FakeSession:
    """Stands in for an InferenceSession: records the batches it is given, answers like Depth Pro's graph."""

    def __init__(self, shape: list[object]) -> None:
        self.shape = shape
        self.batches: list[int] = []

    def get_inputs(self) -> list[object]:
        return [type("Input", (), {"shape": self.shape, "name": "image"})()]

    def get_outputs(self) -> list[object]:
        return [type("Output", (), {"shape": [1, 8, 8], "name": n})() for n in ("inverse_depth", "fov_deg")]

    def run(self, _names: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed["image"]
        self.batches.append(len(x))
        return [x[:, 0] * 2.0, x[:, 0, 0, 0] + 50.0]


@pytest.mark.parametrize(("batch_dim", "runs"), [(1, [1, 1, 1]), ("batch", [3])])
def test_onnx_network_returns_what_the_network_returns(batch_dim, runs):
    """(N, h, w) maps and the (N,) FOV, read by the one decoder as the torch network's output is; a graph
    with a fixed batch of 1 runs image by image; a graph with one output has no FOV."""
    session = _FakeSession([batch_dim, 3, 8, 8])
    source = ort_backend.FileGraph(Path("g.onnx"), session)
    net = ort_backend.OnnxNetwork(source, device=torch.device("cpu"))
    x = torch.randn(3, 3, 8, 8)
    maps, fov = decode_output(net(x))
    assert maps.shape == (3, 8, 8) and fov is not None and fov.shape == (3,)
    torch.testing.assert_close(maps, x[:, 0] * 2.0)
    torch.testing.assert_close(fov, x[:, 0, 0, 0] + 50.0)
    assert session.batches == runs
    one = _FakeSession([batch_dim, 3, 8, 8])
    one.run = lambda names, feed: _FakeSession.run(one, names, feed)[:1]  # type: ignore[method-assign]
    plain = ort_backend.OnnxNetwork(ort_backend.FileGraph(Path("g.onnx"), one), device=torch.device("cpu"))
    plain_maps, plain_fov = decode_output(plain(x))
    assert plain_maps.shape == (3, 8, 8) and plain_fov is None
    with pytest.raises(OptionError, match="takes 8x8 network inputs"):
        net(torch.randn(1, 3, 8, 12))


def test_a_graph_of_another_model_is_refused():
    from sharpdepth.registry import get_spec

    session = _FakeSession([1, 3, 8, 8])  # two outputs, like Depth Pro's graph
    ort_backend.check_file_graph(Path("dp.onnx"), session, get_spec("depth-pro-tiny"))
    with pytest.raises(OptionError, match="does not look like an export of depth-anything-v2-tiny"):
        ort_backend.check_file_graph(Path("dp.onnx"), session, get_spec(DA))


def test_torch_speedups_are_refused_with_onnxruntime(tmp_path):
    """--compile/--cuda-graphs only act on the torch network: with onnxruntime they would be ignored."""
    import sharpdepth
    from sharpdepth.errors import OptionError

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    with pytest.raises(OptionError, match="torch backend"):
        sharpdepth.load("depth-pro-tiny", weights=weights, backend="onnxruntime", compile=True)
