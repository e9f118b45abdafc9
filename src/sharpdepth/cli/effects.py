"""`sharpdepth dof | portrait | parallax`: effects rendered from a photo and its depth.

Each takes the photo plus `--depth FILE` (a saved result: no network) or
`--model NAME` (predict now); see `depth_source`. A command builds its job's
settings object (`sharpdepth.apps.settings`, where the defaults live) and a
`DepthSource` from the flags — both validated on construction — then checks
the output location, and only then decodes the photo and obtains the depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..apps.settings import (
    FULL_FRAME_WIDTH_MM,
    DofSettings,
    LensSettings,
    ParallaxSettings,
    PortraitSettings,
)
from ..errors import OptionError
from ..geometry.measure import parse_pixel
from .depth_source import (
    DEPTH_SOURCE_OPTIONS,
    DepthSource,
    check_image_output,
    check_output,
    predict_gaussians,
    save_rgb,
    write_failed,
)
from .options import bundled

OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Output file.")]

# Flag defaults are the settings' defaults, read from the one place they are defined.
_LENS = LensSettings()
_PORTRAIT_F_NUMBER = PortraitSettings().f_number
_PARALLAX = ParallaxSettings()


def _default(image: Path, suffix: str, ext: str) -> Path:
    return image.with_name(f"{image.stem}_{suffix}{ext}")


def _pixel(text: str | None) -> tuple[float, float] | None:
    return None if text is None else parse_pixel(text)


# ---------------------------------------------------------------- runners (testable without typer)
def run_dof(source: DepthSource, settings: DofSettings, output: Path | None = None) -> tuple[Path, str, float]:
    """Write the refocused photo; returns (path, focus with its unit, largest blur diameter in px)."""
    from ..apps.dof import depth_of_field

    out = check_image_output(output or _default(source.image, "dof", ".jpg"))
    rendered = depth_of_field(source.obtain(), settings)
    save_rgb(out, rendered.image)
    return out, rendered.focus_text, float(abs(rendered.coc_px).max())


def run_portrait(
    source: DepthSource, settings: PortraitSettings, output: Path | None = None, matte_out: Path | None = None
) -> tuple[Path, float]:
    """Write the portrait-mode photo (and optionally the matte); returns (path, subject area fraction)."""
    import numpy as np

    from ..apps.portrait import portrait

    out = check_image_output(output or _default(source.image, "portrait", ".jpg"))
    if matte_out is not None:
        check_image_output(matte_out)
    rendered = portrait(source.obtain(), settings)
    save_rgb(out, rendered.image)
    if matte_out is not None:
        matte = (np.clip(rendered.matte, 0, 1) * 255 + 0.5).astype(np.uint8)
        save_rgb(matte_out, np.repeat(matte[..., None], 3, axis=2))
    return out, float(rendered.subject.mean())


def run_parallax(
    source: DepthSource, settings: ParallaxSettings, output: Path | None = None, show_progress: bool = False
) -> tuple[Path, int]:
    """Write the MP4; returns (path, number of frames)."""
    from rich.progress import Progress

    from ..apps.parallax import parallax_video

    out = output or _default(source.image, f"parallax_{settings.path}", ".mp4")
    if out.suffix.lower() != ".mp4":
        raise OptionError(f"{out}: the parallax video is written as .mp4")
    check_output(out)
    if settings.source == "splat":
        from ..apps.splat_views import splat_parallax_video

        gaussians = predict_gaussians(source)
    else:
        result = source.obtain()
    with Progress(transient=True, disable=not show_progress) as progress:
        task = progress.add_task(f"rendering {settings.path}", total=settings.frames)

        def advance(n: int) -> None:
            progress.update(task, completed=n)

        try:
            if settings.source == "splat":
                return splat_parallax_video(gaussians, out, settings, progress=advance)
            return parallax_video(result, out, settings, progress=advance)
        except OSError as exc:
            raise write_failed(out, exc) from None


# ---------------------------------------------------------------- typer commands
def register(app: typer.Typer) -> None:
    @app.command("dof")
    @bundled(source=DEPTH_SOURCE_OPTIONS)
    def dof(
        source: DepthSource,
        output: OutputOpt = None,
        focus_m: Annotated[float | None, typer.Option("--focus-m", help="Focus distance (metres).")] = None,
        focus_px: Annotated[str | None, typer.Option("--focus-px", help="Focus on the pixel x,y.")] = None,
        f_number: Annotated[float, typer.Option("--f-number", "-N", help="Aperture f-number.")] = _LENS.f_number,
        focal_mm: Annotated[
            float | None, typer.Option("--focal-mm", help="Simulated lens (mm); default: the photo's 35mm-equiv.")
        ] = None,
        sensor_mm: Annotated[
            float, typer.Option("--sensor-mm", help="Width of the 3:2 sensor simulated (mm; its diagonal is used).")
        ] = FULL_FRAME_WIDTH_MM,
        max_blur: Annotated[
            float | None, typer.Option("--max-blur", help="Blur cap in px (relative models: blur at the far end).")
        ] = None,
        bokeh: Annotated[str, typer.Option(help="Bokeh shape: disc or hexagon.")] = _LENS.shape,
        highlights: Annotated[
            float, typer.Option(help="Bright bokeh gain for clipped highlights (0 = off).")
        ] = _LENS.highlight_boost,
    ) -> None:
        """Refocus with a simulated lens: thin-lens blur from metric depth, layered without halos."""
        settings = DofSettings(
            focus_m=focus_m, focus_px=_pixel(focus_px), f_number=f_number, focal_length_mm=focal_mm,
            sensor_width_mm=sensor_mm, max_blur_px=max_blur, shape=bokeh, highlight_boost=highlights,
        )  # fmt: skip
        path, focus, blur = run_dof(source, settings, output)
        typer.echo(f"wrote {path} (focus {focus}, largest blur {blur:.1f} px)")

    @app.command("portrait")
    @bundled(source=DEPTH_SOURCE_OPTIONS)
    def portrait_cmd(
        source: DepthSource,
        output: OutputOpt = None,
        subject: Annotated[str | None, typer.Option(help="A pixel x,y on the subject (default: found).")] = None,
        f_number: Annotated[float, typer.Option("--f-number", "-N", help="Aperture f-number.")] = _PORTRAIT_F_NUMBER,
        focal_mm: Annotated[float | None, typer.Option("--focal-mm", help="Simulated lens (mm).")] = None,
        max_blur: Annotated[float | None, typer.Option("--max-blur", help="Blur cap / strength in px.")] = None,
        bokeh: Annotated[str, typer.Option(help="disc or hexagon.")] = _LENS.shape,
        highlights: Annotated[float, typer.Option(help="Bright bokeh gain (0 = off).")] = _LENS.highlight_boost,
        matte: Annotated[Path | None, typer.Option(help="Also save the subject matte here.")] = None,
    ) -> None:
        """Portrait mode: subject from depth, soft matte on the photo's edges, background blurred by depth."""
        settings = PortraitSettings(
            subject_px=_pixel(subject), f_number=f_number, focal_length_mm=focal_mm, max_blur_px=max_blur,
            shape=bokeh, highlight_boost=highlights,
        )  # fmt: skip
        path, area = run_portrait(source, settings, output, matte)
        typer.echo(f"wrote {path} (subject {100 * area:.0f}% of the picture)")

    @app.command("parallax")
    @bundled(source=DEPTH_SOURCE_OPTIONS)
    def parallax(
        source: DepthSource,
        output: OutputOpt = None,
        path: Annotated[
            str, typer.Option(help="zoom-in, dolly-zoom, circle, swing, horizontal or vertical.")
        ] = _PARALLAX.path,
        duration: Annotated[float, typer.Option(help="Seconds.")] = _PARALLAX.duration_s,
        fps: Annotated[float, typer.Option(help="Frames per second.")] = _PARALLAX.fps,
        amplitude: Annotated[float | None, typer.Option(help="Camera motion as a fraction of the pivot depth.")] = None,
        no_loop: Annotated[bool, typer.Option("--no-loop", help="One way instead of a seamless loop.")] = False,
        size: Annotated[int, typer.Option(help="Longest side of the video (px).")] = _PARALLAX.max_size_px or 1024,
        pivot_m: Annotated[float | None, typer.Option("--pivot-m", help="Depth that stays still.")] = None,
        no_crop: Annotated[bool, typer.Option("--no-crop", help="Do not zoom to hide uncovered borders.")] = False,
        render_from: Annotated[
            str, typer.Option("--source", help="depth (warp the photo), or splat (render SHARP's Gaussians).")
        ] = _PARALLAX.source,
    ) -> None:
        """3D-photo video (MP4, H.264): the picture seen from a moving camera, holes filled from behind."""
        settings = ParallaxSettings(
            path=path, amplitude=amplitude, loop=not no_loop, duration_s=duration, fps=fps, max_size_px=size,
            pivot_m=pivot_m, crop=not no_crop, source=render_from,
        )  # fmt: skip
        out, frames = run_parallax(source, settings, output, show_progress=True)
        typer.echo(f"wrote {out} ({frames} frames)")
