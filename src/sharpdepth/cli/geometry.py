"""`sharpdepth pointcloud` and `sharpdepth measure`: metric geometry from one photo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError
from .depth_source import DepthOpt, DeviceOpt, FocalOpt, ModelOpt, WeightsOpt, obtain_result


def _default_output(image: Path, mesh: bool, file_type: str | None) -> Path:
    suffix = file_type or "ply"
    return image.with_name(f"{image.stem}_{'mesh' if mesh else 'cloud'}.{suffix}")


def run_pointcloud(
    image: Path,
    output: Path | None = None,
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    focal_px: float | None = None,
    mesh: bool = False,
    file_type: str | None = None,
    stride: int = 1,
    voxel: float | None = None,
    max_jump: float = 0.05,
    max_grazing: float = 88.0,
    normals: bool = True,
    axes: str = "opengl",
) -> tuple[Path, int, int]:
    """Write the cloud/mesh; returns (path, vertex count, face count)."""
    from ..geometry import pointcloud as pc

    if file_type is not None and file_type.lower() not in pc.FORMATS:
        raise OptionError(f"unknown format {file_type!r}; choose from {', '.join(pc.FORMATS)}")
    if voxel is not None and mesh:
        raise OptionError("--voxel applies to point clouds; use --stride to thin a mesh")
    out = output or _default_output(image, mesh, file_type)
    kind = (file_type or out.suffix.lstrip(".") or "ply").lower()
    if kind not in pc.FORMATS:
        raise OptionError(f"{out}: unsupported 3D format {kind!r}; use .ply or .glb (or --format)")
    result = obtain_result(image, depth, model, weights, focal_px, device)
    options = {"stride": stride, "max_rel_jump": max_jump, "max_grazing_deg": max_grazing}
    if mesh:
        built = pc.result_to_mesh(result, **options)
        pc.save_mesh(out, built, kind, axes)
        return out, len(built.vertices), len(built.faces)
    cloud = pc.result_to_point_cloud(result, voxel_size=voxel, with_normals=normals, **options)
    pc.save_point_cloud(out, cloud, kind, axes)
    return out, len(cloud), 0


def run_measure(
    image: Path,
    pixels: list[str],
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    device: str = "cpu",
    focal_px: float | None = None,
    window: int = 5,
) -> dict:
    """Measurements as a JSON-ready dict (one pixel: distance from camera; two: distance between)."""
    from ..geometry.measure import measure_distance, measure_point, parse_pixel

    if len(pixels) not in (1, 2):
        raise OptionError(f"give one pixel (distance from the camera) or two (distance between), got {len(pixels)}")
    picks = [parse_pixel(p) for p in pixels]
    result = obtain_result(image, depth, model, weights, focal_px, device)
    if len(picks) == 1:
        return {"point": _point_dict(measure_point(result, picks[0], window)), "focal_px": result.focal_px}
    m = measure_distance(result, picks[0], picks[1], window)
    return {
        "distance_m": m.distance_m,
        "a": _point_dict(m.a),
        "b": _point_dict(m.b),
        "focal_px": result.focal_px,
    }


def _point_dict(p) -> dict:
    return {
        "pixel": list(p.pixel),
        "depth_m": p.depth_m,
        "distance_from_camera_m": p.distance_m,
        "xyz_m": list(p.point),
        "spread_m": p.spread_m,
    }


def register(app: typer.Typer) -> None:
    @app.command("pointcloud")
    def pointcloud(
        image: Annotated[Path, typer.Argument(help="The photo.")],
        output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .ply or .glb.")] = None,
        depth: DepthOpt = None,
        model: ModelOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "cpu",
        focal_px: FocalOpt = None,
        mesh: Annotated[bool, typer.Option("--mesh", help="Triangle mesh instead of points.")] = False,
        file_type: Annotated[str | None, typer.Option("--format", help="ply or glb (default: from -o).")] = None,
        stride: Annotated[int, typer.Option(help="Keep every n-th pixel.")] = 1,
        voxel: Annotated[float | None, typer.Option(help="Average points per voxel of this size (m).")] = None,
        max_jump: Annotated[float, typer.Option(help="Drop across relative depth jumps above this.")] = 0.05,
        max_grazing: Annotated[float, typer.Option(help="Drop surfaces seen more edge-on than this (deg).")] = 88.0,
        no_normals: Annotated[bool, typer.Option("--no-normals", help="Point cloud without normals.")] = False,
        axes: Annotated[str, typer.Option(help="opengl (y up, viewers) or opencv (camera frame).")] = "opengl",
    ) -> None:
        """Coloured 3D point cloud or mesh (metres) without flying pixels across depth edges."""
        path, n_vertices, n_faces = run_pointcloud(
            image, output, depth, model, weights, device, focal_px, mesh, file_type, stride, voxel,
            max_jump, max_grazing, not no_normals, axes,
        )  # fmt: skip
        what = f"{n_vertices} vertices, {n_faces} triangles" if mesh else f"{n_vertices} points"
        typer.echo(f"wrote {path} ({what})")

    @app.command("measure")
    def measure(
        image: Annotated[Path, typer.Argument(help="The photo.")],
        pixels: Annotated[list[str] | None, typer.Argument(help="Pixels as x,y (column,row).")] = None,
        points: Annotated[
            list[str] | None, typer.Option("--points", "-p", help="Pixel x,y; repeat, or list after it.")
        ] = None,
        depth: DepthOpt = None,
        model: ModelOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "cpu",
        focal_px: FocalOpt = None,
        window: Annotated[int, typer.Option(help="Median over this many pixels square.")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Distance from the camera to one pixel, or the 3D distance between two (metric models)."""
        picks = list(points or []) + list(pixels or [])
        data = run_measure(image, picks, depth, model, weights, device, focal_px, window)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        if "distance_m" in data:
            a, b = data["a"], data["b"]
            typer.echo(f"distance: {data['distance_m']:.3f} m")
            for label, p in (("A", a), ("B", b)):
                typer.echo(f"  {label} {_fmt_pixel(p)}: {p['distance_from_camera_m']:.3f} m from camera")
        else:
            p = data["point"]
            typer.echo(
                f"{_fmt_pixel(p)}: {p['distance_from_camera_m']:.3f} m from camera (z-depth {p['depth_m']:.3f} m)"
            )


def _fmt_pixel(p: dict) -> str:
    x, y = p["pixel"]
    return f"({x:g}, {y:g})"
