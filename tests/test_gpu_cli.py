"""`predict --compile / --cuda-graphs` and the CUDA batch-size default, on a CPU-only machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from sharpdepth.cli import predict as predict_cli
from sharpdepth.cli.main import main
from sharpdepth.engine import accelerate, runtime
from sharpdepth.engine.model import DepthModel
from sharpdepth.engine.settings import DEFAULT_BATCH_SIZE, ModelSettings

MODEL = "depth-anything-v2-tiny"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "da_tiny.pt"
    torch.save(sharpdepth.load(MODEL, random_weights=True).net.state_dict(), path)
    return path


def _photo(path: Path, seed: int) -> Path:
    rgb = (np.random.default_rng(seed).random((50, 70, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def _run(*args: object) -> int:
    return main([str(a) for a in args])


def test_cuda_graphs_on_cpu_is_one_clear_line(tmp_path, weights, capsys):
    code = _run("predict", _photo(tmp_path / "a.png", 0), "-o", tmp_path / "out", "--model", MODEL,
                "--weights", weights, "--cuda-graphs", "--quiet")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "CUDA graphs need a CUDA device" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "out" / "a.npz").exists()


def test_compile_flag_reaches_the_model_and_gives_the_eager_result(tmp_path, weights, monkeypatch):
    monkeypatch.setattr(accelerate, "_compile_backend", "eager")
    loaded: list[DepthModel] = []
    real_load = ModelSettings.load

    def recording_load(self: ModelSettings) -> DepthModel:
        model = real_load(self)
        loaded.append(model)
        return model

    monkeypatch.setattr(ModelSettings, "load", recording_load)
    image = _photo(tmp_path / "a.png", 1)
    base = ["--model", MODEL, "--weights", weights, "--input-size", "70", "--format", "npz", "--no-view", "--quiet"]
    assert _run("predict", image, "-o", tmp_path / "eager", *base) == 0
    assert _run("predict", image, "-o", tmp_path / "compiled", "--compile", *base) == 0
    eager, compiled = loaded
    assert not eager.acceleration.compile and compiled.acceleration.compile
    assert len(compiled.runner.stats.compiled_shapes) == 1
    got = np.load(tmp_path / "compiled" / "a.npz")["disparity"]
    want = np.load(tmp_path / "eager" / "a.npz")["disparity"]
    assert want.std() > 0  # a real map, not a constant that any path would reproduce
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_batch_size_default_depends_on_the_device(monkeypatch):
    assert predict_cli._default_batch_size("cpu") == DEFAULT_BATCH_SIZE
    assert predict_cli._default_batch_size("mps") == DEFAULT_BATCH_SIZE
    if not torch.cuda.is_available():
        assert predict_cli._default_batch_size("auto") == DEFAULT_BATCH_SIZE  # auto -> cpu here
    # Named CUDA devices get the GPU default without a GPU here (with --ray they may be on the workers).
    assert predict_cli._default_batch_size("cuda:0") == runtime.DEFAULT_CUDA_BATCH_SIZE > DEFAULT_BATCH_SIZE
    assert predict_cli._default_batch_size("CUDA") == runtime.DEFAULT_CUDA_BATCH_SIZE
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert predict_cli._default_batch_size("auto") == runtime.DEFAULT_CUDA_BATCH_SIZE
