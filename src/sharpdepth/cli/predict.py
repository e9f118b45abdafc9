"""`sharpdepth predict` and `sharpdepth info`.

A batch never stops at a bad file: each failure is collected with a one-line
reason, the remaining images are processed, and the command ends with a list of
failures and exit status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..engine.jobs import make_aligner, plan_predict, predict_items
from ..engine.settings import FocalSettings, ModelSettings, PredictSettings
from ..io.images import DEFAULT_MAX_PIXELS, load_image
from ..io.outputs import OutputOptions, parse_formats
from ..registry import get_spec

console = Console(stderr=True)


def run_predict(
    inputs: list[str], out_dir: Path, settings: PredictSettings, show_progress: bool = True
) -> tuple[int, list[tuple[str, str]]]:
    """Process every input; returns (number written, [(input, error)])."""
    plan = plan_predict(inputs, out_dir, settings)
    failures = [(f.source, f.reason) for f in plan.failures]
    if not plan.items:
        return 0, failures
    # Option errors before the (slow) model load.
    aligner = make_aligner(settings, get_spec(settings.model.name).output_kind, settings.model.name)
    model = settings.model.load()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"{model.name}", total=len(plan.items))
        summary = predict_items(
            model, plan.items, out_dir, settings, aligner, on_progress=lambda n: progress.advance(task, n)
        )
    failures.extend((f.source, f.reason) for f in summary.failures)
    return summary.written, failures


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        inputs: Annotated[list[str], typer.Argument(help="Images, directories (recursive), globs or .txt lists.")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path("out"),
        model: Annotated[str, typer.Option("--model", "-m", help="Model name (sharpdepth weights list).")] = (
            "depth-pro"
        ),
        weights: Annotated[Path | None, typer.Option(help="Checkpoint file (.pt/.pth/.safetensors).")] = None,
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
        precision: Annotated[str, typer.Option(help="fp32, bf16 (CPU/GPU) or fp16 (GPU only).")] = "fp32",
        focal_px: Annotated[float | None, typer.Option(help="Focal length in pixels (overrides EXIF/model).")] = None,
        fov_deg: Annotated[float | None, typer.Option(help="Horizontal field of view in degrees.")] = None,
        format: Annotated[str, typer.Option("--format", "-f", help="npy,npz,png16,exr,pfm (comma list).")] = "npz",
        colormap: Annotated[str, typer.Option(help="inferno, turbo, viridis, magma, plasma, spectral, gray.")] = (
            "inferno"
        ),
        no_view: Annotated[bool, typer.Option("--no-view", help="Skip the colour view.")] = False,
        side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Input and view side by side.")] = False,
        normals: Annotated[bool, typer.Option("--normals", help="Surface-normal view (metric models).")] = False,
        png_scale: Annotated[float, typer.Option(help="16-bit PNG: metres per unit (0.001 = mm).")] = 0.001,
        skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip images already done.")] = False,
        batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 1,
        input_size: Annotated[int | None, typer.Option(help="Network input size (DA/MiDaS; higher = finer).")] = (None),
        max_pixels: Annotated[int, typer.Option(help="Refuse images larger than this many pixels.")] = (
            DEFAULT_MAX_PIXELS
        ),
        align_to: Annotated[
            Path | None, typer.Option(help="CSV of x,y,depth_m: fit a relative model's output to metres.")
        ] = None,
        align_method: Annotated[str, typer.Option(help="lstsq, lstsq-robust or median (with --align-to).")] = ("lstsq"),
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        ray: Annotated[bool, typer.Option("--ray", help="Run on a local Ray instance (Ray Data).")] = False,
        ray_address: Annotated[
            str | None, typer.Option(help="Run on a Ray cluster: 'auto' or ray://head:10001 (implies --ray).")
        ] = None,
        ray_actors: Annotated[int, typer.Option(help="Model replicas (Ray actors).")] = 2,
        ray_gpus_per_actor: Annotated[float, typer.Option(help="GPUs per Ray actor.")] = 0.0,
        ray_cpus_per_actor: Annotated[
            float | None, typer.Option(help="CPUs per Ray actor (default: leave one core).")
        ] = (None),
    ) -> None:
        """Predict depth for images and write depth files, views and a JSON sidecar per image."""
        options = OutputOptions(
            formats=parse_formats(format),
            colormap=colormap,
            color_view=not no_view,
            side_by_side=side_by_side,
            normals=normals,
            png16_scale_m=png_scale,
        )
        settings = PredictSettings(
            model=ModelSettings(
                name=model, weights=weights, device=device, precision=precision, input_size=input_size,
                max_pixels=max_pixels,
            ),
            focal=FocalSettings(focal_px=focal_px, fov_deg=fov_deg),
            output=options,
            batch_size=batch_size,
            skip_existing=skip_existing,
            align_to=align_to,
            align_method=align_method,
        )  # fmt: skip
        if ray or ray_address is not None:
            from .distributed_predict import run_predict_ray

            done, failures = run_predict_ray(
                inputs, output, settings, ray_address, ray_actors, ray_cpus_per_actor, ray_gpus_per_actor, not quiet
            )
        else:
            done, failures = run_predict(inputs, output, settings, show_progress=not quiet)
        console.print(f"wrote {done} result(s) to {output}")
        if failures:
            # One plain line per failure (no table): greppable, never wrapped mid-path.
            lines = [f"{len(failures)} failed:"] + [f"  {name}: {error}" for name, error in failures]
            typer.echo("\n".join(lines), err=True)
            raise typer.Exit(1)

    @app.command("info")
    def info(
        image: Annotated[Path, typer.Argument(help="An image file.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Image size, EXIF orientation, EXIF focal data and the focal length in pixels it implies."""
        loaded = load_image(image)
        data = {
            "path": str(image),
            "format": loaded.format,
            "mode": loaded.original_mode,
            "width": loaded.width,
            "height": loaded.height,
            "orientation": loaded.orientation,
            "exif": loaded.exif,
            "focal_px": loaded.exif_focal.focal_px if loaded.exif_focal else None,
            "focal_rule": loaded.exif_focal.rule if loaded.exif_focal else None,
        }
        if loaded.exif_focal:
            from ..result import fov_from_focal

            data["fov_deg"] = fov_from_focal(loaded.exif_focal.focal_px, loaded.width)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        out = Console()
        out.print(f"[bold]{image}[/]  {loaded.format} {loaded.original_mode}  {loaded.width}x{loaded.height} (upright)")
        out.print(f"EXIF orientation: {loaded.orientation}")
        for key, value in loaded.exif.items():
            out.print(f"  {key}: {value}")
        if loaded.exif_focal:
            out.print(f"focal length: {data['focal_px']:.1f} px ({loaded.exif_focal.rule}), FOV {data['fov_deg']:.2f}°")
        else:
            out.print("focal length: not in EXIF (Depth Pro will estimate it)")
