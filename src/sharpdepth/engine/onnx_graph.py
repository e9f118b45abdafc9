"""The network of a loaded model as an ONNX graph, proven equal to PyTorch before the file is kept.

This is the export core, at engine level so that the engine's own onnxruntime
backend (`engine.ort_backend`) can export on first use without importing the
user-facing `sharpdepth export onnx` job (`export.onnx`, a layer above), which is
a thin settings wrapper around `export_graph`.

The graph is the raw network: it takes the official network input (the family's
pre-processing: resize + normalise, `N x 3 x h x w` float32) and returns its raw
outputs (Depth Pro: canonical inverse depth and the FOV in degrees; the others:
disparity or metric depth at network resolution; a family may declare more, e.g.
Depth Anything 3's sky, through `OnnxExport.traced`). Pre- and post-processing stay
with the caller, exactly as `sharpdepth` itself runs them.

Every export is checked: onnxruntime runs the graph on a real network input and
must agree with PyTorch within the parity bound (`max|a-b| <= 1e-4 * max|b|`),
and a dynamic graph is also checked at a second, different size — a dynamic
DINOv2 graph that froze its position-embedding interpolation at trace time would
fail there (see `sharpdepth.models.traceable`). The file is written to a
temporary name and only renamed into place once the check passed.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..errors import OptionError, SharpDepthError, first_line
from ..family import FOV_FIELD, LoadedNetwork, OnnxExport, decode_output
from ..io.atomic import atomic_path
from ..models.processing import check_network_input
from ..registry import AnySpec

PARITY_BOUND = 1e-4
"""Relative bound (to max|reference|) of the parity fixtures, used for the export check."""
INPUT_NAME = "image"
DEFAULT_EXAMPLE_SIDE = 518
"""Side of the square example picture when neither the family nor the caller names one."""


class ExportableModel(LoadedNetwork, Protocol):
    """A loaded model as the exporter reads it (`DepthModel` is one)."""

    backend: str


class ExportError(SharpDepthError):
    """The network could not be exported, or the exported graph does not compute what PyTorch computes."""


@dataclass
class ExportReport:
    path: Path
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    dynamic: bool
    seconds: float
    checks: list[tuple[tuple[int, ...], float]] = field(default_factory=list)
    """(input shape, max relative error vs PyTorch) per verified size."""


class _Graph(nn.Module):
    """The network with plain tensor outputs (no None), named by what they hold."""

    def __init__(self, net: nn.Module, has_fov: bool) -> None:
        super().__init__()
        self.net = net
        self.has_fov = has_fov

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps, fov = decode_output(self.net(x))
        return (maps, fov) if self.has_fov and fov is not None else (maps,)


def onnx_support(spec: AnySpec) -> OnnxExport:
    """The family's export facts, or ExportError for a family (or a preset of it) that does not export."""
    support = spec.model_family.onnx
    if support is None:
        raise ExportError(f"{spec.name}: the {spec.family} family cannot be exported to ONNX")
    if reason := support.refusal(spec):
        raise ExportError(f"{spec.name}: {reason}")
    return support


def graph_outputs(spec: AnySpec) -> tuple[str, ...]:
    """Every output a full graph of this preset has, by name: the raw fields, then the family's extras."""
    return spec.output_fields + onnx_support(spec).extra_outputs(spec)


def traced_module(model: LoadedNetwork) -> nn.Module:
    """The module exported for this model: the family's `traced` wrapper, else the network's map (and FOV)."""
    net = model.net.float().cpu().eval()
    wrap = onnx_support(model.spec).traced
    return wrap(net).eval() if wrap is not None else _Graph(net, has_fov=has_fov_output(model))


def has_fov_output(model: LoadedNetwork) -> bool:
    """True when the graph has a second output, the FOV head's field of view."""
    return FOV_FIELD in model.spec.output_fields


def static_only_reason(spec: AnySpec) -> str | None:
    """Why this network cannot take other input sizes in one graph, or None if it can."""
    return onnx_support(spec).dynamic_refusal(spec)


def output_names(model: LoadedNetwork, n_outputs: int) -> tuple[str, ...]:
    return graph_outputs(model.spec)[:n_outputs]


def example_input(model: LoadedNetwork, height: int, width: int) -> torch.Tensor:
    """A real network input: a textured picture through the family's own pre-processing."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xx * 7 + yy * 3) % 256, (yy * 5) % 256, ((xx - yy) * 11) % 256], axis=-1).astype(np.uint8)
    return model.processor.preprocess(rgb)[None]


def _pattern_input(height: int, width: int) -> torch.Tensor:
    """A deterministic normalised network input of exactly height x width (no resize)."""
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    planes = [torch.sin(xx / 7.0 + c) * torch.cos(yy / 5.0 - c) for c in range(3)]
    return torch.stack(planes)[None].float()


def _second_size(first: torch.Tensor) -> tuple[int, int]:
    """A different, non-square picture size for checking a dynamic graph (about 4:3 of the first)."""
    h = int(first.shape[-2])
    return h + h // 3, h + 2 * (h // 3)


def _run_onnx(path: Path, x: torch.Tensor) -> list[np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        hint = 'pip install "sharpdepth[onnx]" (or --no-verify)'
        raise ExportError(f"checking the export needs onnxruntime: {hint}") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        return [np.asarray(o) for o in session.run(None, {session.get_inputs()[0].name: x.numpy()})]
    except Exception as exc:  # onnxruntime's own error types; a graph that fails at a size is wrong there
        first = first_line(exc)
        raise ExportError(f"the exported graph fails at input {tuple(x.shape)} ({first}) — file not written") from None


def _relative_error(got: list[np.ndarray], ref: tuple[torch.Tensor, ...]) -> float:
    worst = 0.0
    for a, b in zip(got, ref, strict=True):
        b_np = b.detach().float().numpy()
        if a.shape != b_np.shape:
            return float("inf")
        worst = max(worst, float(np.abs(a - b_np).max() / max(float(np.abs(b_np).max()), 1e-12)))
    return worst


def _example(model: LoadedNetwork, input_hw: tuple[int, int] | None, input_size: int | None) -> torch.Tensor:
    if input_hw is not None:
        check_network_input(model.name, model.spec.data, *input_hw)
        return _pattern_input(*input_hw)
    side = onnx_support(model.spec).example_side or input_size or DEFAULT_EXAMPLE_SIDE
    return example_input(model, side, side)


def export_graph(
    model: ExportableModel,
    output: Path,
    *,
    input_hw: tuple[int, int] | None = None,
    input_size: int | None = None,
    dynamic: bool = False,
    opset: int = 17,
    verify: bool = True,
) -> ExportReport:
    """Export `model`'s network to `output` (fp32, CPU) and check it against PyTorch.

    `input_hw` is the exact network input of the example (a static graph takes only
    that); without it a square picture of `input_size` (default 518) goes through
    the family's pre-processing. `dynamic` frees batch, height and width.
    """
    if model.backend != "torch":
        raise ExportError(f"{model.name} runs on {model.backend}; load it with the torch backend to export it")
    onnx_support(model.spec)
    if dynamic and (reason := static_only_reason(model.spec)):
        raise OptionError(reason)
    graph = traced_module(model)
    x = _example(model, input_hw, input_size)
    with torch.inference_mode():
        ref = graph(x)
    names = output_names(model, len(ref))
    axes: dict[str, dict[int, str]] = {}
    if dynamic:
        axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
        axes.update({name: {0: "batch"} for name in names})
        axes.update({name: {0: "batch", 1: "height", 2: "width"} for name in names if name != "fov_deg"})
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with atomic_path(output) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer chatter about shapes; the check below is the proof
                torch.onnx.export(
                    graph, (x,), str(tmp), input_names=[INPUT_NAME], output_names=list(names),
                    dynamic_axes=axes or None, opset_version=opset, dynamo=False,
                )  # fmt: skip
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ExportError(f"{model.name}: ONNX export failed ({type(exc).__name__}: {str(exc)[:200]})") from None
        report = ExportReport(output, tuple(x.shape), names, dynamic, time.perf_counter() - start)
        if verify:
            report.checks.append((tuple(x.shape), _relative_error(_run_onnx(tmp, x), ref)))
            if dynamic:
                x2 = example_input(model, *_second_size(x))
                with torch.inference_mode():
                    ref2 = graph(x2)
                report.checks.append((tuple(x2.shape), _relative_error(_run_onnx(tmp, x2), ref2)))
            bad = [(shape, err) for shape, err in report.checks if not err <= PARITY_BOUND]
            if bad:
                shape, err = bad[0]
                raise ExportError(
                    f"{model.name}: onnxruntime differs from PyTorch by {err:.2e} (relative) at input {shape}; "
                    f"bound {PARITY_BOUND:g} — file not written"
                )
    return report
