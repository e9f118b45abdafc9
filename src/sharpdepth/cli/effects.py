"""`sharpdepth dof | portrait | parallax | stereo`: effects rendered from a photo and its depth.

Each takes the photo plus `--depth FILE` (a saved result: no network) or
`--model NAME` (predict now); see `depth_source`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError
from ..geometry.measure import parse_pixel
from ..io.photos import save_image
from .depth_source import DepthOpt, DeviceOpt, FocalOpt, ModelOpt, WeightsOpt, obtain_result

OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Output file.")]


def _default(image: Path, suffix: str, ext: str) -> Path:
    return image.with_name(f"{image.stem}_{suffix}{ext}")


def _pixel(text: str | None) -> tuple[float, float] | None:
    return None if text is None else parse_pixel(text)


# ---------------------------------------------------------------- runners (testable without typer)
def run_dof(
    image: Path,
    output: Path | None = None,
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    focal_px: float | None = None,
    focus_m: float | None = None,
    focus_px: str | None = None,
    f_number: float = 2.0,
    focal_mm: float | None = None,
    sensor_mm: float = 36.0,
    max_blur: float | None = None,
    bokeh: str = "disc",
    highlights: float = 1.0,
) -> tuple[Path, float, float]:
    """Write the refocused photo; returns (path, focus, largest blur diameter in px)."""
    from ..apps.dof import DofSettings, depth_of_field

    settings = DofSettings(
        focus_m=focus_m, focus_px=_pixel(focus_px), f_number=f_number, focal_length_mm=focal_mm,
        sensor_width_mm=sensor_mm, max_blur_px=max_blur, shape=bokeh, highlight_boost=highlights,
    )  # fmt: skip
    out = output or _default(image, "dof", ".jpg")
    result = obtain_result(image, depth, model, weights, focal_px, device)
    rendered = depth_of_field(result, settings)
    save_image(out, rendered.image)
    return out, rendered.focus, float(abs(rendered.coc_px).max())


def run_portrait(
    image: Path,
    output: Path | None = None,
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    focal_px: float | None = None,
    subject: str | None = None,
    f_number: float = 1.4,
    focal_mm: float | None = None,
    max_blur: float | None = None,
    bokeh: str = "disc",
    highlights: float = 1.0,
    matte_out: Path | None = None,
) -> tuple[Path, float]:
    """Write the portrait-mode photo (and optionally the matte); returns (path, subject area fraction)."""
    import numpy as np

    from ..apps.portrait import portrait

    point = _pixel(subject)
    out = output or _default(image, "portrait", ".jpg")
    result = obtain_result(image, depth, model, weights, focal_px, device)
    rendered = portrait(result, point, f_number, max_blur, bokeh, highlights, focal_mm)
    save_image(out, rendered.image)
    if matte_out is not None:
        matte = (np.clip(rendered.matte, 0, 1) * 255 + 0.5).astype(np.uint8)
        save_image(matte_out, np.repeat(matte[..., None], 3, axis=2))
    return out, float(rendered.subject.mean())


def run_parallax(
    image: Path,
    output: Path | None = None,
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    focal_px: float | None = None,
    path: str = "circle",
    duration: float = 3.0,
    fps: float = 30.0,
    amplitude: float | None = None,
    loop: bool = True,
    size: int = 1024,
    pivot_m: float | None = None,
    crop: bool = True,
    show_progress: bool = False,
) -> tuple[Path, int]:
    from rich.progress import Progress

    from ..apps.parallax import CameraPath, parallax_video

    camera_path = CameraPath(path, amplitude, loop)
    out = output or _default(image, f"parallax_{path}", ".mp4")
    if out.suffix.lower() != ".mp4":
        raise OptionError(f"{out}: the parallax video is written as .mp4")
    if size < 16:
        raise OptionError(f"--size must be at least 16 pixels, got {size}")
    result = obtain_result(image, depth, model, weights, focal_px, device)
    total = max(1, round(duration * fps)) if duration > 0 else 1
    with Progress(transient=True, disable=not show_progress) as progress:
        task = progress.add_task(f"rendering {path}", total=total)
        return parallax_video(
            result, out, camera_path, duration, fps, size, pivot_m, crop,
            progress=lambda n: progress.update(task, completed=n),
        )  # fmt: skip


STEREO_FORMATS = ("anaglyph", "sbs", "pair")


def run_stereo(
    image: Path,
    output: Path | None = None,
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    focal_px: float | None = None,
    baseline: float | None = None,
    left_is_input: bool = False,
    convergence: float | None = None,
    max_disparity: float | None = None,
    fmt: str = "anaglyph",
    anaglyph_mode: str = "half-color",
    half_width: bool = False,
) -> list[Path]:
    from ..apps.stereo import anaglyph, side_by_side, stereo_pair

    if fmt not in STEREO_FORMATS:
        raise OptionError(f"unknown stereo format {fmt!r}; choose from {', '.join(STEREO_FORMATS)}")
    out = output or _default(image, fmt if fmt != "pair" else "stereo", ".jpg")
    result = obtain_result(image, depth, model, weights, focal_px, device)
    pair = stereo_pair(result, baseline, not left_is_input, convergence, max_disparity)
    if fmt == "anaglyph":
        return [save_image(out, anaglyph(pair.left, pair.right, anaglyph_mode))]
    if fmt == "sbs":
        return [save_image(out, side_by_side(pair.left, pair.right, half_width))]
    left = out.with_name(f"{out.stem}_left{out.suffix}")
    right = out.with_name(f"{out.stem}_right{out.suffix}")
    return [save_image(left, pair.left), save_image(right, pair.right)]


# ---------------------------------------------------------------- typer commands
def register(app: typer.Typer) -> None:
    @app.command("dof")
    def dof(
        image: Annotated[Path, typer.Argument(help="The photo.")],
        output: OutputOpt = None,
        depth: DepthOpt = None,
        model: ModelOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "cpu",
        focal_px: FocalOpt = None,
        focus_m: Annotated[float | None, typer.Option("--focus-m", help="Focus distance (metres).")] = None,
        focus_px: Annotated[str | None, typer.Option("--focus-px", help="Focus on the pixel x,y.")] = None,
        f_number: Annotated[float, typer.Option("--f-number", "-N", help="Aperture f-number.")] = 2.0,
        focal_mm: Annotated[
            float | None, typer.Option("--focal-mm", help="Simulated lens (mm); default: the photo's 35mm-equiv.")
        ] = None,
        sensor_mm: Annotated[float, typer.Option("--sensor-mm", help="Sensor width assumed (mm).")] = 36.0,
        max_blur: Annotated[
            float | None, typer.Option("--max-blur", help="Blur cap in px (relative models: blur at the far end).")
        ] = None,
        bokeh: Annotated[str, typer.Option(help="Bokeh shape: disc or hexagon.")] = "disc",
        highlights: Annotated[float, typer.Option(help="Bright bokeh gain for clipped highlights (0 = off).")] = 1.0,
    ) -> None:
        """Refocus with a simulated lens: thin-lens blur from metric depth, layered without halos."""
        path, focus, blur = run_dof(
            image, output, depth, model, weights, device, focal_px, focus_m, focus_px, f_number, focal_mm,
            sensor_mm, max_blur, bokeh, highlights,
        )  # fmt: skip
        typer.echo(f"wrote {path} (focus {focus:.3g}, largest blur {blur:.1f} px)")

    @app.command("portrait")
    def portrait_cmd(
        image: Annotated[Path, typer.Argument(help="The photo.")],
        output: OutputOpt = None,
        depth: DepthOpt = None,
        model: ModelOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "cpu",
        focal_px: FocalOpt = None,
        subject: Annotated[str | None, typer.Option(help="A pixel x,y on the subject (default: found).")] = None,
        f_number: Annotated[float, typer.Option("--f-number", "-N", help="Aperture f-number.")] = 1.4,
        focal_mm: Annotated[float | None, typer.Option("--focal-mm", help="Simulated lens (mm).")] = None,
        max_blur: Annotated[float | None, typer.Option("--max-blur", help="Blur cap / strength in px.")] = None,
        bokeh: Annotated[str, typer.Option(help="disc or hexagon.")] = "disc",
        highlights: Annotated[float, typer.Option(help="Bright bokeh gain (0 = off).")] = 1.0,
        matte: Annotated[Path | None, typer.Option(help="Also save the subject matte here.")] = None,
    ) -> None:
        """Portrait mode: subject from depth, soft matte on the photo's edges, background blurred by depth."""
        path, area = run_portrait(
            image, output, depth, model, weights, device, focal_px, subject, f_number, focal_mm, max_blur,
            bokeh, highlights, matte,
        )  # fmt: skip
        typer.echo(f"wrote {path} (subject {100 * area:.0f}% of the picture)")

    @app.command("parallax")
    def parallax(
        image: Annotated[Path, typer.Argument(help="The photo.")],
        output: OutputOpt = None,
        depth: DepthOpt = None,
        model: ModelOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "cpu",
        focal_px: FocalOpt = None,
        path: Annotated[
            str, typer.Option(help="zoom-in, dolly-zoom, circle, swing, horizontal or vertical.")
        ] = "circle",
        duration: Annotated[float, typer.Option(help="Seconds.")] = 3.0,
        fps: Annotated[float, typer.Option(help="Frames per second.")] = 30.0,
        amplitude: Annotated[float | None, typer.Option(help="Camera motion as a fraction of the pivot depth.")] = None,
        no_loop: Annotated[bool, typer.Option("--no-loop", help="One way instead of a seamless loop.")] = False,
        size: Annotated[int, typer.Option(help="Longest side of the video (px).")] = 1024,
        pivot_m: Annotated[float | None, typer.Option("--pivot-m", help="Depth that stays still.")] = None,
        no_crop: Annotated[bool, typer.Option("--no-crop", help="Do not zoom to hide uncovered borders.")] = False,
    ) -> None:
        """3D-photo video (MP4, H.264): the picture seen from a moving camera, holes filled from behind."""
        out, frames = run_parallax(
            image, output, depth, model, weights, device, focal_px, path, duration, fps, amplitude, not no_loop,
            size, pivot_m, not no_crop, show_progress=True,
        )  # fmt: skip
        typer.echo(f"wrote {out} ({frames} frames)")

    @app.command("stereo")
    def stereo(
        image: Annotated[Path, typer.Argument(help="The photo.")],
        output: OutputOpt = None,
        depth: DepthOpt = None,
        model: ModelOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "cpu",
        focal_px: FocalOpt = None,
        baseline: Annotated[float | None, typer.Option(help="Eye distance in metres (default 0.063).")] = None,
        left: Annotated[bool, typer.Option("--left", help="The photo is the left eye (default: the middle).")] = (
            False
        ),
        convergence: Annotated[float | None, typer.Option(help="Depth (m) of the screen plane.")] = None,
        max_disparity: Annotated[
            float | None, typer.Option("--max-disparity", help="Relative models: nearest disparity (px).")
        ] = None,
        fmt: Annotated[str, typer.Option("--format", help="anaglyph, sbs or pair (two files).")] = "anaglyph",
        anaglyph_mode: Annotated[str, typer.Option("--anaglyph", help="color, half-color or gray.")] = "half-color",
        half: Annotated[bool, typer.Option("--half", help="Half-width side-by-side (3D TVs).")] = False,
    ) -> None:
        """Stereo pair from one photo: red-cyan anaglyph, side-by-side (VR) or left/right files."""
        paths = run_stereo(
            image, output, depth, model, weights, device, focal_px, baseline, left, convergence, max_disparity,
            fmt, anaglyph_mode, half,
        )  # fmt: skip
        typer.echo("wrote " + ", ".join(str(p) for p in paths))
