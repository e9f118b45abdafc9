"""`sharpdepth video`: depth for video clips and image sequences (see sharpdepth.video.job).

Flags only build a `VideoSettings`; the defaults live there. A clip that
fails (corrupt file, no frames, ...) is reported in one line and the others
go on; the command then exits with status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..engine.settings import FocalSettings, ModelSettings
from ..io.outputs import parse_formats
from ..io.video import FrameSelection
from ..video.settings import VideoSettings
from .options import FOCAL_OPTIONS, LOCAL_RUN, MODEL_OPTIONS, NO_FOCAL, RAY_OPTIONS, RayFlags, bundled

if TYPE_CHECKING:
    from ..video.job import VideoSummary

console = Console(stderr=True)
_DEFAULT = VideoSettings()
"""Flag defaults are read from the settings object, the one place where they live."""


def register(app: typer.Typer) -> None:
    @app.command("video")
    @bundled(model=MODEL_OPTIONS, focal=FOCAL_OPTIONS, ray=RAY_OPTIONS)
    def video(
        inputs: Annotated[list[str], typer.Argument(help="Video files, folders of frames (or of videos), globs.")],
        model: ModelSettings,
        output: Annotated[Path, typer.Option("-o", "--output", help="Output directory (one folder per clip).")] = (
            Path("out")
        ),
        mode: Annotated[str, typer.Option(help="offline (look-ahead, best) or streaming (causal).")] = (_DEFAULT.mode),
        format: Annotated[str, typer.Option("--format", "-f", help="npy,npz,png16,exr,pfm (comma list).")] = (
            ",".join(_DEFAULT.formats)
        ),
        fps: Annotated[float | None, typer.Option(help="Frame rate of image-sequence inputs (default 24).")] = None,
        start: Annotated[float, typer.Option(help="Start time in seconds.")] = 0.0,
        end: Annotated[float | None, typer.Option(help="End time in seconds.")] = None,
        every: Annotated[int, typer.Option(help="Use every N-th frame.")] = 1,
        max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
        side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Also write input|depth video.")] = False,
        no_stabilize: Annotated[bool, typer.Option("--no-stabilize", help="Raw per-frame depth.")] = False,
        stabilize: Annotated[
            bool, typer.Option("--stabilize", help="Stabilise a video model too (off by default for VDA).")
        ] = False,
        no_preview: Annotated[bool, typer.Option("--no-preview", help="No preview video.")] = False,
        skip_existing: Annotated[
            bool, typer.Option("--skip-existing", help="Resume: keep frames already written.")
        ] = False,
        focal: FocalSettings = NO_FOCAL,  # --focal-px, --fov-deg (FOCAL_OPTIONS)
        colormap: Annotated[str, typer.Option(help="Preview colours: inferno, turbo, viridis, ...")] = (
            _DEFAULT.colormap
        ),
        png_scale: Annotated[float, typer.Option(help="16-bit PNG: metres per unit (0.001 = mm).")] = (
            _DEFAULT.png16_scale_m
        ),
        batch_size: Annotated[int, typer.Option(help="Frames per forward pass (image models).")] = (
            _DEFAULT.batch_size
        ),
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
        ray: RayFlags = LOCAL_RUN,  # the --ray* flags (RAY_OPTIONS)
    ) -> None:
        """Depth for every frame of videos or image sequences: depth files, preview video, JSON sidecar."""
        if no_stabilize and stabilize:
            raise typer.BadParameter("give --stabilize or --no-stabilize, not both")
        settings = VideoSettings(
            model=model,
            focal=focal,
            mode=mode,
            stabilize=False if no_stabilize else (True if stabilize else None),
            selection=FrameSelection(start_s=start, end_s=end, every=every, max_frames=max_frames),
            fps=fps,
            formats=parse_formats(format),
            colormap=colormap,
            png16_scale_m=png_scale,
            preview=not no_preview,
            side_by_side=side_by_side,
            skip_existing=skip_existing,
            batch_size=batch_size,
        )  # fmt: skip
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} frames"),
                   TimeElapsedColumn())  # fmt: skip
        with Progress(*columns, console=console, disable=quiet, transient=True) as progress:
            task = progress.add_task(model.name, total=None)

            def done(summary: VideoSummary) -> None:
                if not quiet:
                    note = f" ({summary.reused} reused)" if summary.reused else ""
                    console.print(f"{summary.source}: {summary.frames} frames{note} -> {summary.folder}")

            on_ray = ray.settings(model.threads)
            if on_ray is not None:  # one Ray task per clip, each the local job below
                from ..distributed.ray_video import run_videos_on_ray

                batch = run_videos_on_ray(inputs, output, settings, on_ray, on_done=done)
            else:
                from ..video.job import run_videos

                batch = run_videos(inputs, output, settings, on_done=done,
                                   on_frame=lambda n: progress.advance(task, n))  # fmt: skip
        if batch.failures:
            lines = [f"{len(batch.failures)} failed:"] + [f"  {f.source}: {f.reason}" for f in batch.failures]
            typer.echo("\n".join(lines), err=True)
            raise typer.Exit(1)
