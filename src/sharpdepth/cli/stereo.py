"""`sharpdepth stereo`: 3D from a photo or a video, in the layouts players and headsets read.

`sharpdepth stereo INPUT -o DIR --layout L` writes `DIR/<stem>_<L>.mp4` for a
video (depth from the video pipeline, audio copied) and `DIR/<stem>_<L>.jpg`
(`.heic` for spatial-heic) for a photo. For photos `-o` may also name the
output file itself (an image suffix), as before. The flags only build a
`StereoSettings` (and, for videos, a `VideoSettings`): the defaults live there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from ..apps.settings import STEREO_LAYOUTS, StereoSettings
from ..engine.settings import FocalSettings, ModelSettings
from ..errors import OptionError
from ..io.video import VIDEO_SUFFIXES, FrameSelection
from ..video.settings import VideoSettings
from .depth_source import (
    DEFAULT_MODEL,
    DEPTH_SOURCE_OPTIONS,
    DepthSource,
    check_image_output,
    check_output,
    predict_gaussians,
    save_rgb,
)
from .options import bundled

_STEREO = StereoSettings()
_VIDEO = VideoSettings()
SPLAT_MODULE = "sharpdepth.models.sharp"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif"})


def photo_outputs(image: Path, output: Path | None, settings: StereoSettings) -> list[Path]:
    """Where a photo's layout goes: `<DIR>/<stem>_<layout>.jpg|.heic` (or `-o FILE`); two files for a pair."""
    ext = ".heic" if settings.layout == "spatial-heic" else ".jpg"
    name = f"{image.stem}_{'stereo' if settings.layout == 'pair' else settings.layout}{ext}"
    if output is None:
        out = image.with_name(name)
    elif output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        out = output
    else:
        out = output / name
    if settings.layout != "pair":
        return [out]
    return [out.with_name(f"{out.stem}_{eye}{out.suffix}") for eye in ("left", "right")]


def check_source(settings: StereoSettings) -> None:
    """`--source splat` needs SHARP, and its Gaussians are metric: one line when it cannot work."""
    if settings.source != "splat":
        return
    if importlib.util.find_spec(SPLAT_MODULE) is None:
        raise OptionError("--source splat renders SHARP Gaussians, and SHARP is not available here; use --source depth")
    if settings.max_disparity is not None:
        raise OptionError("--source splat: SHARP's Gaussians are metric; give --interaxial-mm / --convergence-m")


def run_stereo(source: DepthSource, settings: StereoSettings, output: Path | None = None) -> list[Path]:
    """Write a photo's stereo layout; returns the paths (a pair is written whole or not at all)."""
    from ..apps.stereo import stereo_images

    check_source(settings)
    paths = photo_outputs(source.image, output, settings)
    for p in paths:
        check_output(p) if p.suffix.lower() == ".heic" else check_image_output(p)
    if settings.source == "splat":
        from ..apps.splat_views import splat_stereo_images

        gaussians = predict_gaussians(source)
        focal_px: float | None = gaussians.focal_px
        pictures = splat_stereo_images(gaussians, settings)
    else:
        result = source.obtain()
        focal_px = result.focal_px
        pictures = stereo_images(result, settings)
    if settings.layout == "spatial-heic":
        from ..apps.spatial_photo import save_spatial_heic

        left, right = pictures
        # the headset's cameras are the ones the eyes were made with: the photo's focal length
        # (None: the stereo default field of view) and the interaxial distance asked for
        return [save_spatial_heic(paths[0], left, right, focal_px=focal_px, interaxial_m=settings.interaxial_m,
                                  centered=settings.center)]  # fmt: skip
    written: list[Path] = []
    try:
        for p, picture in zip(paths, pictures, strict=True):
            written.append(save_rgb(p, picture))
    except OptionError:
        for p in written:  # a left eye without its right one is a half-written result
            p.unlink(missing_ok=True)
        raise
    return written


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def register(app: typer.Typer) -> None:
    @app.command("stereo")
    @bundled(photo=DEPTH_SOURCE_OPTIONS)
    def stereo(
        photo: DepthSource,
        output: Annotated[
            Path | None, typer.Option("-o", "--output", help="Output folder (photos: or the output file).")
        ] = None,
        layout: Annotated[
            str | None, typer.Option("--layout", help=f"{', '.join(STEREO_LAYOUTS)} (default {_STEREO.layout}).")
        ] = None,
        fmt: Annotated[str | None, typer.Option("--format", hidden=True, help="Old name of --layout.")] = None,
        half: Annotated[bool, typer.Option("--half", hidden=True, help="Old: --format sbs --half = half-sbs.")] = (
            False
        ),
        interaxial_mm: Annotated[
            float | None, typer.Option("--interaxial-mm", help="Metric models: camera distance (mm, default 63).")
        ] = None,
        convergence_m: Annotated[
            float | None,
            typer.Option("--convergence-m", help="Metric models: screen-plane depth (m, default 2; inf: parallel)."),
        ] = None,
        max_disparity: Annotated[
            float | None,
            typer.Option("--max-disparity", help="Relative models: nearest parallax, fraction of the width (0.03)."),
        ] = None,
        left: Annotated[bool, typer.Option("--left", help="The input is the left eye (default: the middle).")] = False,
        anaglyph_mode: Annotated[
            str, typer.Option("--anaglyph", help="dubois, color, half-color or gray.")
        ] = _STEREO.anaglyph,
        fill: Annotated[str, typer.Option("--fill", help="stretch, inpaint or depth-aware.")] = _STEREO.fill,
        source: Annotated[
            str, typer.Option("--source", help="depth, or splat: render the eyes from SHARP's Gaussians (photos).")
        ] = _STEREO.source,
        mode: Annotated[str, typer.Option(help="Videos: offline (look-ahead) or streaming.")] = _VIDEO.mode,
        no_stabilize: Annotated[bool, typer.Option("--no-stabilize", help="Videos: raw per-frame depth.")] = False,
        batch_size: Annotated[int, typer.Option(help="Videos: frames per forward pass.")] = _VIDEO.batch_size,
        keep_depth: Annotated[
            bool, typer.Option("--keep-depth", help="Videos: keep the per-frame depth folder.")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    ) -> None:
        """3D from a photo or video: side-by-side, top-bottom (full or half), anaglyph, VR180, spatial HEIC.

        The photo argument may also be a video (its depth then comes from the video pipeline).
        """
        if layout is not None and fmt is not None:
            raise OptionError("give --layout (or its old name --format), not both")
        chosen = layout or fmt or _STEREO.layout
        if half and chosen in ("sbs", "tb"):
            chosen = f"half-{chosen}"
        settings = StereoSettings(
            interaxial_mm=interaxial_mm, convergence_m=convergence_m, max_disparity=max_disparity, center=not left,
            layout=chosen, anaglyph=anaglyph_mode, fill=fill, source=source,
        )  # fmt: skip
        if not is_video(photo.image):
            paths = run_stereo(photo, settings, output)
            typer.echo("wrote " + ", ".join(str(p) for p in paths))
            return
        if photo.depth is not None:
            raise OptionError("--depth takes a photo's saved result; a video's depth comes from --model")
        if settings.source == "splat":
            raise OptionError("--source splat renders the eyes of photos only; for a video use --source depth")
        model = ModelSettings(name=photo.model or DEFAULT_MODEL, weights=photo.weights, device=photo.device,
                              max_pixels=photo.max_pixels)  # fmt: skip
        video = VideoSettings(
            model=model, focal=FocalSettings(focal_px=photo.focal_px), mode=mode,
            stabilize=False if no_stabilize else None, selection=FrameSelection(), batch_size=batch_size,
        )  # fmt: skip
        _run_video(photo.image, output, settings, video, keep_depth, quiet)


def _run_video(
    clip: Path, output: Path | None, settings: StereoSettings, video: VideoSettings, keep_depth: bool, quiet: bool
) -> None:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..apps.stereo_video import StereoVideoSettings, check_stereo_video_output, run_stereo_video

    job = StereoVideoSettings(stereo=settings, video=video, keep_depth=keep_depth)
    if not clip.is_file():
        raise OptionError(f"{clip}: no such file")
    out_dir = check_stereo_video_output(output or clip.parent)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} frames"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), disable=quiet, transient=True) as progress:
        task = progress.add_task(f"stereo {settings.layout}", total=None)
        summary = run_stereo_video(clip, out_dir, job, on_frame=lambda n: progress.advance(task, n))
    note = f", {summary.reused} frames' depth reused" if summary.reused else ""
    typer.echo(f"wrote {summary.path} ({summary.frames} frames{note})")
