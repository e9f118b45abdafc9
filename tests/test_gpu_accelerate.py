"""GPU fast paths, exercised on CPU: the precision guard, torch.compile wiring, CUDA-graph decisions.

No GPU is needed: the guard runs in bf16 on CPU, compile uses the "eager" backend
through the private hook (inductor is one slow test), and the CUDA-graph cache is
driven with a stand-in for the capture (the real capture needs a device).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from torch import nn

import sharpdepth
from sharpdepth.engine import accelerate
from sharpdepth.engine.accelerate import Acceleration, NetworkRunner, graph_key, output_flags, plan
from sharpdepth.engine.model import DepthModel
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.errors import OptionError

MODEL = "depth-anything-v2-tiny"
SIZE = 70


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Random weights from a fixed seed: a random tiny network can also give a constant map in fp32."""
    torch.manual_seed(0)


def _rgb(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _count_calls(net: nn.Module, nan_when: torch.dtype | None = None) -> list[torch.dtype]:
    """Record the input dtype of every forward of `net`; return NaN maps for inputs of `nan_when`."""
    calls: list[torch.dtype] = []
    original = net.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.dtype)
        out = original(x)
        return out * float("nan") if x.dtype == nan_when else out

    net.forward = forward
    return calls


def _fp32_twin(model: DepthModel) -> DepthModel:
    """The same network with its (bf16-rounded) weights in fp32: what the guard's re-run computes."""
    net = copy.deepcopy(model.net).float()
    return DepthModel(model.spec, model.processor, net, model.device, torch.float32, None, None)


# --------------------------------------------------------------------------- the guard


def test_guard_reruns_a_nan_batch_in_fp32_once_and_says_so(caplog):
    model = sharpdepth.load(MODEL, random_weights=True, input_size=SIZE, precision="bf16")
    twin = _fp32_twin(model)
    calls = _count_calls(model.net, nan_when=torch.bfloat16)
    images = [_rgb(1), _rgb(2)]
    with caplog.at_level(logging.WARNING, logger="sharpdepth"):
        got = model.predict_batch(images, batch_size=2)
    want = twin.predict_batch(images, batch_size=2)
    assert calls == [torch.bfloat16, torch.float32]  # one batch, re-run once
    assert model.runner.stats.fp32_reruns == 1
    for g, w in zip(got, want, strict=True):
        assert np.isfinite(g.prediction).all()
        np.testing.assert_allclose(g.prediction, w.prediction, rtol=1e-6, atol=1e-7)
    notes = [r.getMessage() for r in caplog.records if "re-ran it in fp32" in r.getMessage()]
    assert len(notes) == 1 and MODEL in notes[0] and "bf16" in notes[0] and "non-finite" in notes[0]
    # The cast network is untouched by the re-run.
    assert {p.dtype for p in model.net.parameters()} == {torch.bfloat16}


def test_guard_leaves_a_healthy_batch_alone(caplog):
    model = sharpdepth.load(MODEL, random_weights=True, input_size=SIZE, precision="bf16")
    calls = _count_calls(model.net)
    # Loading may warn about the CPU (no native bf16 on AVX2-only machines): that is the loader's
    # concern, not the guard's. What the guard itself says is what the batches below log.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sharpdepth"):
        results = model.predict_batch([_rgb(3), _rgb(4), _rgb(5)], batch_size=2)
    assert calls == [torch.bfloat16, torch.bfloat16]  # two batches, no re-run
    assert model.runner.stats.fp32_reruns == 0
    assert [r.getMessage() for r in caplog.records] == []
    assert all(np.isfinite(r.prediction).all() for r in results)


def test_guard_catches_a_blank_map_and_the_fp32_run_is_used():
    model = sharpdepth.load(MODEL, random_weights=True, input_size=SIZE, precision="bf16")
    twin = _fp32_twin(model)
    original = model.net.forward

    def blank_in_bf16(x: torch.Tensor) -> torch.Tensor:
        out = original(x)
        return torch.zeros_like(out) if x.dtype == torch.bfloat16 else out

    model.net.forward = blank_in_bf16
    got = model.predict(_rgb(6)).prediction
    want = twin.predict(_rgb(6)).prediction
    assert model.runner.stats.fp32_reruns == 1
    assert got.std() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_guard_stops_checking_constant_maps_when_fp32_is_constant_too(caplog):
    net = nn.Conv2d(3, 1, 1).to(torch.bfloat16)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(0.5)  # a constant map in every precision
    runner = NetworkRunner(net, name="flat")
    x = torch.rand(2, 3, 8, 8).to(torch.bfloat16)
    with caplog.at_level(logging.WARNING, logger="sharpdepth"), torch.inference_mode():
        runner(x)
        runner(x)
    assert runner.stats.fp32_reruns == 1  # the second batch is not re-run
    assert any("constant map in fp32 too" in r.getMessage() for r in caplog.records)


def test_guard_is_off_in_fp32_and_when_disabled():
    fp32 = sharpdepth.load(MODEL, random_weights=True, input_size=SIZE)
    calls = _count_calls(fp32.net, nan_when=torch.float32)
    assert np.isnan(fp32.predict(_rgb(7)).prediction).all()  # fp32 output is what it is
    assert calls == [torch.float32]
    off = sharpdepth.load(MODEL, random_weights=True, input_size=SIZE, precision="bf16", precision_guard=False)
    calls = _count_calls(off.net, nan_when=torch.bfloat16)
    assert np.isnan(off.predict(_rgb(7)).prediction).all()
    assert calls == [torch.bfloat16]


def test_output_flags_on_maps_scalars_and_tuples():
    ok = torch.rand(2, 5, 6)
    assert [bool(f) for f in output_flags(ok)] == [False, False]
    nan = ok.clone()
    nan[1, 2, 3] = float("nan")
    assert [bool(f) for f in output_flags(nan)] == [True, False]
    inf = ok.clone()
    inf[0, 0, 0] = float("inf")
    assert bool(output_flags((inf, None))[0])
    one_blank = ok.clone()
    one_blank[1] = 0.0  # one image of the batch black
    assert [bool(f) for f in output_flags(one_blank)] == [False, True]
    assert not bool(output_flags(one_blank, check_constant=False)[1])
    # Per-image scalars (Depth Pro's FOV) may be equal across the batch; only finiteness counts.
    fov = torch.full((2,), 60.0)
    assert [bool(f) for f in output_flags((ok[:, None], fov))] == [False, False]
    assert bool(output_flags((ok[:, None], torch.tensor([60.0, float("nan")])))[0])


# --------------------------------------------------------------------------- torch.compile


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 1, 3, padding=1)).eval()


def test_compile_option_is_wired_through_settings_and_load(monkeypatch):
    monkeypatch.setattr(accelerate, "_compile_backend", "eager")
    compiled = sharpdepth.load(MODEL, random_weights=True, input_size=SIZE, compile=True)
    eager = DepthModel(compiled.spec, compiled.processor, compiled.net, compiled.device, torch.float32, None, None)
    images = [_rgb(8), _rgb(9, 64, 48)]
    got = compiled.predict_batch(images)
    want = eager.predict_batch(images)
    assert compiled.acceleration.compile and not eager.acceleration.compile
    assert len(compiled.runner.stats.compiled_shapes) == 2  # one per network input shape
    assert eager.runner.stats.compiled_shapes == set()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.prediction, w.prediction, rtol=1e-5, atol=1e-5)


def test_model_settings_carry_the_acceleration_flags():
    settings = ModelSettings(name=MODEL, compile=True, cuda_graphs=True, precision_guard=False)
    assert (settings.compile, settings.cuda_graphs, settings.precision_guard) == (True, True, False)
    assert (ModelSettings().compile, ModelSettings().cuda_graphs, ModelSettings().precision_guard) == (
        False, False, True,
    )  # fmt: skip


def test_failed_compilation_warns_once_and_runs_eager(monkeypatch, caplog):
    def broken_backend(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> object:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(accelerate, "_compile_backend", broken_backend)
    torch._dynamo.reset()
    net = _tiny_cnn()
    runner = NetworkRunner(net, name="tiny", options=Acceleration(compile=True))
    x = torch.rand(1, 3, 16, 16)
    with caplog.at_level(logging.WARNING, logger="sharpdepth"), torch.inference_mode():
        first = runner(x)
        second = runner(x)
        want = net(x)
    torch.testing.assert_close(first, want)
    torch.testing.assert_close(second, want)
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "tiny" in warnings[0] and "running it eager" in warnings[0]


def test_a_real_error_under_compile_is_raised_not_hidden(monkeypatch):
    monkeypatch.setattr(accelerate, "_compile_backend", "eager")
    runner = NetworkRunner(_tiny_cnn(), name="tiny", options=Acceleration(compile=True))
    with pytest.raises(RuntimeError), torch.inference_mode():
        runner(torch.rand(1, 5, 16, 16))  # wrong channel count: eager raises too
    assert not runner._compile_failed  # compile stays on for good inputs


@pytest.mark.slow
def test_inductor_compiled_output_equals_eager():
    net = _tiny_cnn()
    runner = NetworkRunner(net, name="tiny", options=Acceleration(compile=True))
    x = torch.rand(2, 3, 24, 24)
    with torch.inference_mode():
        torch.testing.assert_close(runner(x), net(x), rtol=1e-5, atol=1e-5)
    assert not runner._compile_failed


# --------------------------------------------------------------------------- CUDA graphs (decisions)


def test_cuda_graphs_refused_on_an_explicit_cpu_and_dropped_for_auto(caplog):
    cpu = torch.device("cpu")
    with pytest.raises(OptionError, match="CUDA graphs need a CUDA device"):
        plan(cpu, cuda_graphs=True)
    with caplog.at_level(logging.WARNING, logger="sharpdepth"):
        chosen = plan(cpu, cuda_graphs=True, compile=True, device_was_auto=True)
    assert chosen == Acceleration(compile=True, cuda_graphs=False, precision_guard=True)
    assert any("--cuda-graphs ignored" in r.getMessage() for r in caplog.records)
    assert plan(torch.device("cuda"), cuda_graphs=True).cuda_graphs  # plan does not touch the device
    with pytest.raises(OptionError, match="CUDA graphs"):
        sharpdepth.load(MODEL, random_weights=True, device="cpu", cuda_graphs=True)


def test_graph_keys_separate_batch_shape_and_dtype():
    x = torch.zeros(2, 3, 14, 28)
    assert graph_key(x) == graph_key(torch.ones(2, 3, 14, 28))
    others = [torch.zeros(1, 3, 14, 28), torch.zeros(2, 3, 28, 14), torch.zeros(2, 3, 14, 28, dtype=torch.bfloat16)]
    assert len({graph_key(x), *(graph_key(o) for o in others)}) == 4


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replay recomputes into the static output in place."""

    def __init__(self, fn: accelerate.Forward, static_input: torch.Tensor, static_output: torch.Tensor) -> None:
        self.fn, self.static_input, self.static_output = fn, static_input, static_output

    def replay(self) -> None:
        out = self.fn(self.static_input)
        assert isinstance(out, torch.Tensor)
        self.static_output.copy_(out)


def _fake_capture(fn: accelerate.Forward, x: torch.Tensor, pool: object = None) -> accelerate._Graph:
    static_input = x.clone()
    static_output = fn(static_input)
    assert isinstance(static_output, torch.Tensor)
    return accelerate._Graph(
        graph=_FakeGraph(fn, static_input, static_output),  # type: ignore[arg-type]
        static_input=static_input,
        static_output=static_output,
    )


def test_graph_cache_captures_once_per_key_and_copies_outputs_out(monkeypatch):
    monkeypatch.setattr(accelerate, "capture_graph", _fake_capture)
    net = _tiny_cnn()
    runner = NetworkRunner(net, name="tiny", options=Acceleration(cuda_graphs=True))
    monkeypatch.setattr(runner, "_pool", lambda: (0, 0))
    assert not runner.uses_cuda_graphs(torch.zeros(1, 3, 8, 8))  # CPU tensors never use graphs
    with torch.inference_mode():
        a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
        graph = runner._graph_for(net, a)
        assert graph is not None and runner._graph_for(net, b) is graph
        out_a = runner._replay(graph, a)
        out_b = runner._replay(graph, b)  # overwrites the static output; out_a must not change
        torch.testing.assert_close(out_a, net(a))
        torch.testing.assert_close(out_b, net(b))
        assert runner.stats.graph_captures == 1 and runner.stats.graph_replays == 2
        for n in range(1, accelerate.MAX_CUDA_GRAPHS):
            assert runner._graph_for(net, torch.rand(n, 3, 8, 8)) is not None
        assert runner._graph_for(net, torch.rand(1, 3, 32, 32)) is None  # cache full: run without
        assert runner.stats.graph_captures == accelerate.MAX_CUDA_GRAPHS


def test_a_compiler_failure_before_capture_keeps_graphs_and_captures_eager(monkeypatch, caplog):
    def broken_backend(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> object:
        raise RuntimeError("no compiler here")

    captured: list[accelerate.Forward] = []

    def recording_capture(fn: accelerate.Forward, x: torch.Tensor, pool: object = None) -> accelerate._Graph:
        captured.append(fn)
        return _fake_capture(fn, x, pool)

    monkeypatch.setattr(accelerate, "_compile_backend", broken_backend)
    monkeypatch.setattr(accelerate, "capture_graph", recording_capture)
    torch._dynamo.reset()
    net = _tiny_cnn()
    runner = NetworkRunner(net, name="tiny", options=Acceleration(compile=True, cuda_graphs=True))
    monkeypatch.setattr(runner, "_pool", lambda: (0, 0))
    x = torch.rand(1, 3, 16, 16)
    with caplog.at_level(logging.WARNING, logger="sharpdepth"), torch.inference_mode():
        graph = runner._graph_for(runner._callable(x), x)
        assert graph is not None
        torch.testing.assert_close(runner._replay(graph, x), net(x))
    assert captured == [net]  # the eager network was captured, not the broken compiled one
    assert runner._compile_failed and not runner._graphs_failed
    assert len([r for r in caplog.records if "torch.compile failed" in r.getMessage()]) == 1


def test_failed_capture_disables_graphs_with_one_warning(monkeypatch, caplog):
    def failing(fn: accelerate.Forward, x: torch.Tensor, pool: object = None) -> accelerate._Graph:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(accelerate, "capture_graph", failing)
    runner = NetworkRunner(_tiny_cnn(), name="tiny", options=Acceleration(cuda_graphs=True))
    monkeypatch.setattr(runner, "_pool", lambda: (0, 0))
    with caplog.at_level(logging.WARNING, logger="sharpdepth"):
        assert runner._graph_for(runner.net, torch.rand(1, 3, 8, 8)) is None
    assert runner._graphs_failed and runner._graphs == {}
    assert [r.getMessage() for r in caplog.records if "CUDA graph capture failed for tiny" in r.getMessage()]


# --------------------------------------------------------------------------- batching


def test_cpu_batches_are_plain_stacks():
    tensors = [torch.rand(3, 4, 5) for _ in range(3)]
    staged = accelerate.stage_batch(tensors, torch.device("cpu"))
    assert torch.equal(staged, torch.stack(tensors)) and not staged.is_pinned()
