"""`sharpdepth scene`: several photos of one scene -> depth per view, cameras, COLMAP text, GLB.

The views run together through an any-view model (Depth Anything 3). An unreadable picture is
reported by name and left out; the scene is written from the others and the command ends with
exit status 1 listing what failed. Known cameras: `--poses` (camera-to-world) and
`--intrinsics`; see `sharpdepth.export.scene.read_cameras_file` for the accepted files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..engine.settings import DEFAULT_DEVICE, DEFAULT_PRECISION
from ..io.images import DEFAULT_MAX_PIXELS
from .options import MaxPixelsOpt, ThreadsOpt

DEFAULT_SCENE_MODEL = "depth-anything-3-small"
console = Console(stderr=True, soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("scene")
    def scene(
        inputs: Annotated[
            list[str], typer.Argument(help="Images, directories of images or videos (one scene, in order).")
        ],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")],
        model: Annotated[str, typer.Option("--model", "-m", help="An any-view model.")] = DEFAULT_SCENE_MODEL,
        weights: Annotated[Path | None, typer.Option(help="Checkpoint file (hub model.safetensors or bare keys).")] = (
            None
        ),
        input_size: Annotated[int | None, typer.Option(help="Network input long side (default 504).")] = None,
        output_size: Annotated[str, typer.Option(help="image (input size) or network (processed grid).")] = "image",
        poses: Annotated[
            Path | None,
            typer.Option(help="Known camera-to-world poses: JSON list of 4x4, cameras.json, TUM text or .npy."),
        ] = None,
        intrinsics: Annotated[
            Path | None, typer.Option(help="Known intrinsics: JSON 3x3 (one or one per view), fx/fy/cx/cy, .npy.")
        ] = None,
        confidence_percentile: Annotated[
            float, typer.Option(help="Drop points below this percentile of each view's confidence.")
        ] = 40.0,
        max_points: Annotated[int, typer.Option(help="At most this many points in scene.glb.")] = 1_000_000,
        fps: Annotated[float, typer.Option(help="Video inputs: views taken at this many frames per second.")] = 1.0,
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = DEFAULT_DEVICE,
        precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16 (GPU).")] = DEFAULT_PRECISION,
        max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
        threads: ThreadsOpt = None,
    ) -> None:
        """Predict several views of one scene together; write cameras.json, colmap/*.txt, scene.glb and depth files."""
        from ..engine.settings import ModelSettings, parse_output_size
        from ..errors import OptionError, SharpDepthError
        from ..export.scene import SceneSettings, SceneView, read_cameras_file, video_views, write_scene
        from ..io.atomic import ensure_writable_dir
        from ..io.images import load_image
        from ..io.inputs import expand_inputs
        from ..io.video import VIDEO_SUFFIXES

        settings = SceneSettings(confidence_percentile=confidence_percentile, max_points=max_points)
        model_settings = ModelSettings(
            name=model, weights=weights, device=device, precision=precision, input_size=input_size,
            max_pixels=max_pixels, threads=threads,
        )  # fmt: skip
        size = parse_output_size(output_size)
        items, failures = expand_inputs(inputs)
        for path, times in _repeated_files(inputs):
            console.print(f"note: {path} is given {times} times: it is one view", markup=False)
        views: list[SceneView] = []
        for item in items:
            try:
                if item.path.suffix.lower() in VIDEO_SUFFIXES:
                    views.extend(video_views(item.path, fps, max_pixels))
                else:
                    views.append(SceneView(load_image(item.path, max_pixels), item.stem, item.path.name))
            except SharpDepthError as exc:
                reason = str(exc).removeprefix(f"{item.path}: ")
                failures.append((str(item.path), reason))
                console.print(f"failed: {item.path}: {reason}", markup=False)
                views.append(SceneView(None, item.stem, item.path.name))
        given_poses = None if poses is None else read_cameras_file(poses, "poses", len(views))
        given_k = None if intrinsics is None else read_cameras_file(intrinsics, "intrinsics", len(views))
        kept = [i for i, view in enumerate(views) if view.image is not None]
        loaded = [image for view in views if (image := view.image) is not None]
        if not loaded:
            raise OptionError("no readable views: nothing to reconstruct")
        ensure_writable_dir(output)
        net = model_settings.load()
        result = net.predict_views(
            loaded,
            intrinsics=None if given_k is None else given_k[kept],
            poses=None if given_poses is None else given_poses[kept],
            output_size=size,
        )
        stems = [views[i].stem for i in kept]
        names = [views[i].name for i in kept]
        write_scene(result, output, stems, names, settings)
        console.print(f"wrote a scene of {len(loaded)} view(s) to {output}", markup=False)
        if failures:
            typer.echo("\n".join([f"{len(failures)} failed:"] + [f"  {n}: {e}" for n, e in failures]), err=True)
            raise typer.Exit(1)


def _repeated_files(inputs: list[str]) -> list[tuple[str, int]]:
    """Files named more than once (`expand_inputs` keeps one view of each), to say so: known poses
    and intrinsics are then counted per view, not per argument."""
    from collections import Counter

    counts = Counter(Path(arg).resolve() for arg in inputs if Path(arg).is_file())
    return [(str(path), n) for path, n in counts.items() if n > 1]
