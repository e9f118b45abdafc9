"""`sharpdepth splat` (photos -> 3-D Gaussian scenes) and `sharpdepth render` (scene -> video).

Inputs like `predict`: files, folders, glob patterns and .txt lists. A batch never stops at a
bad file: each failure is printed, the others are processed, and the command ends with exit
status 1 if anything failed. The engine (and torch) is imported inside the commands.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePath
from typing import Annotated

import typer

from ..apps.splat import MAPS, NO_FOCAL_MODEL, SplatSettings, parse_focal_model, parse_maps
from ..engine.settings import DEFAULT_PRECISION
from ..errors import SharpDepthError
from ..geometry.trajectory import DEFAULT_STEPS, DEFAULT_TRAJECTORY, TRAJECTORIES
from ..registry import DEFAULT_FOCAL_MODEL, DEFAULT_SPLAT_MODEL
from .options import OptionBundle, bundled

TrajectoryOpt = Annotated[
    str, typer.Option("--trajectory", help=f"Camera path of the video: {', '.join(TRAJECTORIES)}.")
]
StepsOpt = Annotated[int, typer.Option("--steps", min=1, help="Frames along the camera path.")]
MapsOpt = Annotated[
    str | None,
    typer.Option("--maps", help=f"Also write these maps of the render, comma-separated: {', '.join(MAPS)}."),
]
RenderDeviceOpt = Annotated[
    str | None, typer.Option("--render-device", help="Renderer device: cpu or cuda (default: cuda when present).")
]


def _render_flags(
    trajectory: TrajectoryOpt = DEFAULT_TRAJECTORY,
    steps: StepsOpt = DEFAULT_STEPS,
    render_device: RenderDeviceOpt = None,
    maps: MapsOpt = None,
) -> SplatSettings:
    """Declares the video flags of `splat --render` and `render`, and makes them one settings value."""
    return SplatSettings(render=True, trajectory=trajectory, steps=steps, device=render_device, maps=parse_maps(maps))


RENDER_OPTIONS = OptionBundle.of(_render_flags, _render_flags)
"""--trajectory, --steps, --render-device, --maps: how a scene becomes videos, as `SplatSettings`."""


def register(app: typer.Typer) -> None:
    @app.command("splat")
    @bundled(video=RENDER_OPTIONS)
    def splat(
        inputs: Annotated[list[str], typer.Argument(help="Photos, folders, glob patterns or .txt lists.")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
        video: SplatSettings,
        model: Annotated[str, typer.Option("--model", help="A model that predicts Gaussians.")] = DEFAULT_SPLAT_MODEL,
        weights: Annotated[Path | None, typer.Option("--weights", help="Checkpoint file for --model.")] = None,
        device: Annotated[str, typer.Option("--device", help="cpu, cuda, mps or auto.")] = "cpu",
        precision: Annotated[
            str,
            typer.Option(
                "--precision",
                help="fp32, bf16 (CPU/GPU), fp16 (GPU only) or auto (bf16 where the CPU or GPU runs it natively).",
            ),
        ] = DEFAULT_PRECISION,
        focal_px: Annotated[
            float | None,
            typer.Option("--focal-px", help="Focal length in pixels (default: EXIF, else --focal-model, else 30 mm)."),
        ] = None,
        focal_model: Annotated[
            str,
            typer.Option(
                "--focal-model",
                help=(
                    "Model whose FOV head estimates the focal length when neither --focal-px nor EXIF gives it, "
                    f"used only when its weights are at hand (cache or --focal-weights; never downloaded); "
                    f"{NO_FOCAL_MODEL}: the official 30 mm assumption."
                ),
            ),
        ] = DEFAULT_FOCAL_MODEL,
        focal_weights: Annotated[
            Path | None, typer.Option("--focal-weights", help="Checkpoint file for --focal-model.")
        ] = None,
        render: Annotated[bool, typer.Option("--render", help="Also write <stem>_<trajectory>.mp4.")] = False,
    ) -> None:
        """Metric 3-D Gaussians (SHARP) of each photo: OUT/<stem>.ply (3DGS layout) and OUT/<stem>.json."""
        from ..apps.splat import splat_one
        from ..engine.model import load
        from ..io.inputs import expand_inputs

        settings = replace(
            video, focal_px=focal_px, focal_model=parse_focal_model(focal_model), focal_weights=focal_weights,
            render=render,
        )  # fmt: skip
        items, problems = expand_inputs(inputs)
        failures = [f"{arg}: {why}" for arg, why in problems]
        for line in failures:
            typer.echo(f"error: {line}", err=True)
        if items:
            net = load(model, weights=weights, device=device, precision=precision)
            estimator = settings.focal_estimator(net.device)  # loaded once, on the first picture that needs it
            for item in items:
                try:
                    written = splat_one(net, item.path, output, PurePath(item.stem), settings, estimator)
                except (SharpDepthError, OSError) as exc:
                    failures.append(f"{item.path}: {exc}")
                    typer.echo(f"error: {item.path}: {exc}", err=True)
                    continue
                typer.echo(f"{item.path} -> {', '.join(str(p) for p in written)}")
            if estimator is not None and estimator.notice:
                typer.echo(f"note: {estimator.notice}", err=True)
        if failures:
            typer.echo(f"{len(failures)} input(s) failed", err=True)
            raise typer.Exit(1)

    @app.command("render")
    @bundled(video=RENDER_OPTIONS)
    def render_scene(
        scene: Annotated[Path, typer.Argument(help="A .ply written by `sharpdepth splat`.")],
        video: SplatSettings,
        output: Annotated[
            Path | None, typer.Option("-o", "--output", help="Output .mp4 (default: beside the scene).")
        ] = None,
    ) -> None:
        """Video of a Gaussian scene along a camera path (CPU renderer; CUDA when present)."""
        from ..apps.splat import render_videos
        from ..geometry.gaussians import load_ply

        dest = output or scene.with_name(f"{scene.stem}_{video.trajectory}.mp4")
        paths = render_videos(load_ply(scene), dest, video)
        typer.echo("wrote " + ", ".join(str(p) for p in paths))
