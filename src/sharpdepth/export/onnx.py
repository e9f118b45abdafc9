"""`sharpdepth export onnx`: the job's settings around the engine's export core.

The tracing and the onnxruntime-vs-PyTorch parity check live in
`sharpdepth.engine.onnx_graph` (the engine's onnxruntime backend exports with
them on first use, and the engine may not import this layer); this module holds
the job's one settings object and re-exports the core's names, so callers of
`sharpdepth.export.onnx` keep working. See `engine.onnx_graph` for what the graph
takes and returns and how every export is checked before the file is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engine.model import DepthModel
from ..engine.onnx_graph import PARITY_BOUND, ExportError, ExportReport, example_input, export_graph, onnx_support
from ..engine.settings import ModelSettings
from ..errors import OptionError
from ..registry import get_spec

__all__ = ["PARITY_BOUND", "ExportError", "ExportReport", "OnnxExportSettings", "example_input", "export_onnx"]


@dataclass(frozen=True, kw_only=True)
class OnnxExportSettings:
    model: ModelSettings = field(default_factory=ModelSettings)
    output: Path = Path("model.onnx")
    input_hw: tuple[int, int] | None = None
    """Exact network input (height, width) of the example; default: the family's resize of a square picture."""
    dynamic: bool = False
    """Height and width of the input are free (multiples of the patch size); checked at a second size."""
    opset: int = 17
    verify: bool = True
    """Run the graph in onnxruntime and compare with PyTorch before keeping the file."""

    def __post_init__(self) -> None:
        if not 13 <= self.opset <= 21:
            raise OptionError(f"--opset must be between 13 and 21, got {self.opset}")
        if self.input_hw is not None and min(self.input_hw) < 14:
            raise OptionError(f"network input must be at least 14x14 pixels, got {self.input_hw}")
        if self.output.suffix.lower() != ".onnx":
            raise OptionError(f"output must be a .onnx file, got {self.output}")
        onnx_support(get_spec(self.model.name))  # a model that cannot export is refused before its weights load


def export_onnx(model: DepthModel, settings: OnnxExportSettings) -> ExportReport:
    """Export `model`'s network to `settings.output` (fp32, CPU) and check it against PyTorch."""
    return export_graph(
        model,
        settings.output,
        input_hw=settings.input_hw,
        input_size=settings.model.input_size,
        dynamic=settings.dynamic,
        opset=settings.opset,
        verify=settings.verify,
    )
