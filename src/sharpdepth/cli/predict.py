"""`sharpdepth predict` and `sharpdepth info`.

A batch never stops at a bad file: each failure is printed when it happens
(with or without a terminal, so a crash later loses nothing), the remaining
images are processed, and the command ends with the list of failures and exit
status 1. Things worth knowing about results that were written (depth beyond a
16-bit PNG's range, a skipped normal view, a clamped map) are said once.

The engine (and torch with it) is imported inside the commands: `--help` and
`info` must answer at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ..engine.settings import (
    DEFAULT_ALIGN_METHOD,
    DEFAULT_BATCH_SIZE,
    FocalSettings,
    ModelSettings,
    PredictSettings,
    parse_output_size,
)
from ..io.depth_files import DEFAULT_PNG16_SCALE_M, Notice
from ..io.images import DEFAULT_MAX_PIXELS, load_image
from ..io.outputs import OutputOptions, parse_formats
from ..result import fov_from_focal
from .options import FOCAL_OPTIONS, LOCAL_RUN, MODEL_OPTIONS, NO_FOCAL, RAY_OPTIONS, MaxPixelsOpt, RayFlags, bundled

if TYPE_CHECKING:
    from ..distributed.settings import RaySettings
    from ..engine.jobs import Failure

console = Console(stderr=True, soft_wrap=True, highlight=False)
ONCE_KINDS = ("png16_saturated", "normals_skipped", "depth_clamped")
"""Notices said once per run (with how many images they concern), not once per image."""


class _Reporter:
    """Prints failures and notes as they happen and the once-per-run warnings at the end."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.grouped: dict[str, list[Notice]] = {}

    def failure(self, failure: Failure) -> None:
        self.out.print(f"failed: {failure.source}: {failure.reason}", markup=False)

    def notice(self, notice: Notice) -> None:
        if notice.kind in ONCE_KINDS:
            self.grouped.setdefault(notice.kind, []).append(notice)
        else:
            self.out.print(f"note: {notice.source}: {notice.message}", markup=False)

    def finish(self) -> None:
        for notices in self.grouped.values():
            worst = max(notices, key=lambda n: n.share or 0.0)
            where = worst.source if len(notices) == 1 else f"{len(notices)} images, worst {worst.source}"
            self.out.print(f"warning: {worst.message} ({where})", markup=False)


def run_predict(
    inputs: list[str],
    out_dir: Path,
    settings: PredictSettings,
    show_progress: bool = True,
    ray: RaySettings | None = None,
) -> tuple[int, list[tuple[str, str]]]:
    """Process every input (here, or on Ray with `ray`); returns (number written, [(input, error)])."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..engine.jobs import make_aligner, plan_predict, predict_items
    from ..registry import get_spec

    report = _Reporter(console)
    plan = plan_predict(inputs, out_dir, settings)
    for failure in plan.failures:
        report.failure(failure)
    failures = [(f.source, f.reason) for f in plan.failures]
    if plan.cleaned:
        console.print(f"removed {plan.cleaned} stale temporary file(s) of an interrupted run", markup=False)
    for item in plan.renamed:
        console.print(f"note: {item.path}: another input has the same name; writing {item.stem}.*", markup=False)
    if plan.skipped:
        console.print(f"skipped {plan.skipped} image(s) already done with these settings", markup=False)
    if not plan.items:
        return 0, failures
    # Option errors before the (slow) model load.
    aligner = make_aligner(settings, get_spec(settings.model.name).output_kind, settings.model.name)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    if ray is not None:
        from ..distributed.ray_predict import predict_items_on_ray

        with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:
            task = progress.add_task(f"{settings.model.name} on Ray", total=len(plan.items))
            summary = predict_items_on_ray(
                plan.items,
                out_dir,
                settings,
                ray,
                on_failure=report.failure,
                on_progress=lambda done, _total: progress.update(task, completed=done),
                on_notice=report.notice,
            )
        report.finish()
        failures.extend((f.source, f.reason) for f in summary.failures)
        return summary.written, failures
    model = settings.model.load()
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"{model.name}", total=len(plan.items))
        summary = predict_items(
            model,
            plan.items,
            out_dir,
            settings,
            aligner,
            on_failure=report.failure,
            on_progress=lambda n: progress.advance(task, n),
            on_notice=report.notice,
        )
    report.finish()
    failures.extend((f.source, f.reason) for f in summary.failures)
    return summary.written, failures


def _default_batch_size(device: str) -> int:
    """The settings' default on CPU, more on CUDA (engine.runtime.default_batch_size).

    Decided from the name, without checking the device here: with --ray the GPUs may be on
    the workers only, and a missing GPU is reported by the model load, once. Only "auto"
    asks torch whether this machine has CUDA.
    """
    name = device.lower()
    if name == "auto":
        import torch

        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not name.startswith("cuda"):
        return DEFAULT_BATCH_SIZE
    from ..engine.runtime import DEFAULT_CUDA_BATCH_SIZE

    return max(DEFAULT_BATCH_SIZE, DEFAULT_CUDA_BATCH_SIZE)


def register(app: typer.Typer) -> None:
    @app.command("predict")
    @bundled(model=MODEL_OPTIONS, focal=FOCAL_OPTIONS, ray=RAY_OPTIONS)
    def predict(
        inputs: Annotated[list[str], typer.Argument(help="Images, directories (recursive), globs or .txt lists.")],
        model: ModelSettings,
        output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path("out"),
        focal: FocalSettings = NO_FOCAL,  # --focal-px, --fov-deg (FOCAL_OPTIONS)
        format: Annotated[str, typer.Option("--format", "-f", help="npy,npz,png16,exr,pfm (comma list).")] = (
            ",".join(OutputOptions.formats)
        ),
        colormap: Annotated[str, typer.Option(help="inferno, turbo, viridis, magma, plasma, spectral, gray.")] = (
            OutputOptions.colormap
        ),
        no_view: Annotated[bool, typer.Option("--no-view", help="Skip the colour view.")] = False,
        side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Input and view side by side.")] = False,
        normals: Annotated[bool, typer.Option("--normals", help="Surface-normal view (metric models).")] = False,
        png_scale: Annotated[
            float, typer.Option(help="16-bit PNG: metres per unit (0.001 = mm; deeper than 65535 units = invalid).")
        ] = DEFAULT_PNG16_SCALE_M,
        skip_existing: Annotated[
            bool, typer.Option("--skip-existing", help="Skip images already done with the same model and outputs.")
        ] = False,
        batch_size: Annotated[
            int | None, typer.Option(help=f"Images per forward pass (default {DEFAULT_BATCH_SIZE}; 4 on CUDA).")
        ] = None,
        output_size: Annotated[
            str, typer.Option(help="image (the picture's size) or network (the processed grid, unresized).")
        ] = "image",
        align_to: Annotated[
            Path | None, typer.Option(help="CSV of x,y,depth_m: fit a relative model's output to metres.")
        ] = None,
        align_method: Annotated[str, typer.Option(help="lstsq, lstsq-robust or median (with --align-to).")] = (
            DEFAULT_ALIGN_METHOD
        ),
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        ray: RayFlags = LOCAL_RUN,  # the --ray* flags (RAY_OPTIONS)
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
            model=model,
            focal=focal,
            output=options,
            batch_size=batch_size if batch_size is not None else _default_batch_size(model.device),
            skip_existing=skip_existing,
            align_to=align_to,
            align_method=align_method,
            output_size=parse_output_size(output_size),
        )  # fmt: skip
        on_ray = ray.settings(model.threads)
        done, failures = run_predict(inputs, output, settings, show_progress=not quiet, ray=on_ray)
        console.print(f"wrote {done} result(s) to {output}", markup=False)
        if failures:
            # One plain line per failure (no table): greppable, never wrapped mid-path.
            lines = [f"{len(failures)} failed:"] + [f"  {name}: {error}" for name, error in failures]
            typer.echo("\n".join(lines), err=True)
            raise typer.Exit(1)

    @app.command("info")
    def info(
        image: Annotated[Path, typer.Argument(help="An image file.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    ) -> None:
        """Image size, EXIF orientation, EXIF focal data and the focal length in pixels it implies."""
        loaded = load_image(image, max_pixels)
        data: dict[str, object] = {
            "path": str(image),
            "format": loaded.format,
            "mode": loaded.original_mode,
            "width": loaded.width,
            "height": loaded.height,
            "orientation": loaded.orientation,
            "orientation_applied": loaded.orientation_applied,
            "exif": loaded.exif,
            "focal_px": loaded.exif_focal.focal_px if loaded.exif_focal else None,
            "focal_rule": loaded.exif_focal.rule if loaded.exif_focal else None,
            "notes": loaded.notes,
        }
        fov = fov_from_focal(loaded.exif_focal.focal_px, loaded.width) if loaded.exif_focal else None
        if fov is not None:
            data["fov_deg"] = fov
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        out = Console(soft_wrap=True, highlight=False)
        size = f"{loaded.width}x{loaded.height}"
        out.print(f"{image}  {loaded.format} {loaded.original_mode}  {size} (upright)", markup=False)
        out.print(f"EXIF orientation: {loaded.orientation}; applied: {loaded.orientation_applied}", markup=False)
        for key, value in loaded.exif.items():
            out.print(f"  {key}: {value}", markup=False)
        if loaded.exif_focal and fov is not None:
            out.print(f"focal length: {loaded.exif_focal.focal_px:.1f} px ({loaded.exif_focal.rule}), FOV {fov:.2f}°")
        else:
            out.print("focal length: not in EXIF (Depth Pro will estimate it)")
        for note in loaded.notes:
            out.print(f"note: {note}", markup=False)
