"""`sharpdepth pointcloud` and `sharpdepth measure`: metric geometry from one photo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..geometry.measure import DistanceMeasurement, Measurement, PointMeasurement, measurement_report, parse_pixel
from ..geometry.settings import (
    DEFAULT_MAX_GRAZING_DEG,
    DEFAULT_MAX_REL_JUMP,
    DEFAULT_WINDOW,
    MeasureSettings,
    PointCloudSettings,
)
from .depth_source import (
    DEPTH_SOURCE_OPTIONS,
    DepthSource,
    check_output,
    write_failed,
)
from .options import bundled


def _default_output(image: Path, settings: PointCloudSettings) -> Path:
    suffix = settings.file_type or "ply"
    return image.with_name(f"{image.stem}_{'mesh' if settings.mesh else 'cloud'}.{suffix}")


def run_pointcloud(
    source: DepthSource, settings: PointCloudSettings, output: Path | None = None
) -> tuple[Path, int, int]:
    """Write the cloud/mesh; returns (path, vertex count, face count)."""
    from ..geometry import pointcloud as pc

    out = output or _default_output(source.image, settings)
    kind = pc.file_type_for(out, settings.file_type)
    check_output(out)
    result = source.obtain()
    try:
        if settings.mesh:
            built = pc.result_to_mesh(result, settings)
            pc.save_mesh(out, built, kind, settings.axes)
            return out, len(built.vertices), len(built.faces)
        cloud = pc.result_to_point_cloud(result, settings)
        pc.save_point_cloud(out, cloud, kind, settings.axes)
    except OSError as exc:
        raise write_failed(out, exc) from None
    return out, len(cloud), 0


def run_measure(source: DepthSource, settings: MeasureSettings) -> tuple[Measurement, float | None]:
    """The measurement (one pixel: distance from camera; two: distance between) and the focal length used."""
    from ..geometry.measure import measure

    result = source.obtain()
    return measure(result, settings), result.focal_px


def register(app: typer.Typer) -> None:
    @app.command("pointcloud")
    @bundled(source=DEPTH_SOURCE_OPTIONS)
    def pointcloud(
        source: DepthSource,
        output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .ply or .glb.")] = None,
        mesh: Annotated[bool, typer.Option("--mesh", help="Triangle mesh instead of points.")] = False,
        file_type: Annotated[str | None, typer.Option("--format", help="ply or glb (default: from -o).")] = None,
        stride: Annotated[int, typer.Option(help="Keep every n-th pixel.")] = 1,
        voxel: Annotated[float | None, typer.Option(help="Average points per voxel of this size (m).")] = None,
        max_jump: Annotated[
            float, typer.Option(help="Drop across relative depth jumps above this.")
        ] = DEFAULT_MAX_REL_JUMP,
        max_grazing: Annotated[
            float, typer.Option(help="Drop surfaces seen more edge-on than this (deg).")
        ] = DEFAULT_MAX_GRAZING_DEG,
        no_normals: Annotated[bool, typer.Option("--no-normals", help="Point cloud without normals.")] = False,
        axes: Annotated[str, typer.Option(help="opengl (y up, viewers) or opencv (camera frame).")] = "opengl",
    ) -> None:
        """Coloured 3D point cloud or mesh (metres) without flying pixels across depth edges."""
        settings = PointCloudSettings(
            mesh=mesh, file_type=file_type, stride=stride, voxel_m=voxel, max_rel_jump=max_jump,
            max_grazing_deg=max_grazing, normals=not no_normals, axes=axes,
        )  # fmt: skip
        path, n_vertices, n_faces = run_pointcloud(source, settings, output)
        what = f"{n_vertices} vertices, {n_faces} triangles" if mesh else f"{n_vertices} points"
        typer.echo(f"wrote {path} ({what})")

    @app.command("measure")
    @bundled(source=DEPTH_SOURCE_OPTIONS)
    def measure(
        source: DepthSource,
        pixels: Annotated[list[str] | None, typer.Argument(help="Pixels as x,y (column,row).")] = None,
        points: Annotated[
            list[str] | None, typer.Option("--points", "-p", help="Pixel x,y; repeat, or list after it.")
        ] = None,
        window: Annotated[int, typer.Option(help="Median over this many pixels square.")] = DEFAULT_WINDOW,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Distance from the camera to one pixel, or the 3D distance between two (metric models)."""
        picks = list(points or []) + list(pixels or [])
        settings = MeasureSettings(pixels=tuple(parse_pixel(p) for p in picks), window=window)
        m, focal = run_measure(source, settings)
        if as_json:
            typer.echo(json.dumps(measurement_report(m, focal), indent=2))
        elif isinstance(m, DistanceMeasurement):
            typer.echo(f"distance: {m.distance_m:.3f} m")
            for label, p in (("A", m.a), ("B", m.b)):
                typer.echo(f"  {label} {_fmt_pixel(p)}: {p.distance_m:.3f} m from camera")
        else:
            typer.echo(f"{_fmt_pixel(m)}: {m.distance_m:.3f} m from camera (z-depth {m.depth_m:.3f} m)")


def _fmt_pixel(p: PointMeasurement) -> str:
    x, y = p.pixel
    return f"({x:g}, {y:g})"
