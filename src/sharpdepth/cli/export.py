"""`sharpdepth export onnx`: the network as an ONNX graph, checked against PyTorch before it is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine.settings import DEFAULT_MODEL
from .options import model_settings

export_app = typer.Typer(help="Export networks to other runtimes (ONNX).", no_args_is_help=True)


@export_app.command("onnx")
def onnx(
    output: Annotated[Path, typer.Option("-o", "--output", help="The .onnx file to write.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (sharpdepth weights list).")] = (
        DEFAULT_MODEL
    ),
    weights: Annotated[Path | None, typer.Option(help="Checkpoint file (.pt/.pth/.safetensors).")] = None,
    input_size: Annotated[
        str | None,
        typer.Option(help="N: the model's input size (DA/MiDaS), or HxW: the exact network input of the graph."),
    ] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Free input height/width (checked at a second size).")] = (
        False
    ),
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the onnxruntime-vs-PyTorch check.")] = False,
) -> None:
    """Export a model's network (official network input -> raw outputs) to ONNX, fp32."""
    from ..export.onnx import OnnxExportSettings, export_onnx

    size, exact = _parse_size(input_size)
    settings = OnnxExportSettings(
        model=model_settings(model=model, weights=weights, input_size=size),
        input_hw=exact,
        output=output,
        dynamic=dynamic,
        opset=opset,
        verify=not no_verify,
    )
    report = export_onnx(settings.model.load(), settings)
    shape = "x".join(str(s) for s in report.input_shape)
    typer.echo(
        f"wrote {report.path} ({'dynamic' if report.dynamic else 'static'} input, example {shape}; "
        f"outputs {', '.join(report.output_names)}; {report.seconds:.1f} s)"
    )
    for checked, err in report.checks:
        typer.echo(f"  onnxruntime vs PyTorch at {'x'.join(map(str, checked))}: max rel. error {err:.1e}")


def _parse_size(text: str | None) -> tuple[int | None, tuple[int, int] | None]:
    """'518' -> (518, None); '392x518' -> (None, (392, 518))."""
    from ..errors import OptionError

    if text is None:
        return None, None
    parts = text.lower().replace("×", "x").split("x")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise OptionError(f"--input-size must be N or HxW (e.g. 518 or 392x518), got {text!r}") from None
    if len(numbers) == 1:
        return numbers[0], None
    if len(numbers) == 2:
        return None, (numbers[0], numbers[1])
    raise OptionError(f"--input-size must be N or HxW (e.g. 518 or 392x518), got {text!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
