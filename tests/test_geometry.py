"""Geometry from depth on synthetic scenes whose geometry is known exactly."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import trimesh

from sharpdepth.cli.main import main
from sharpdepth.errors import EmptyResultError, InputImageError, OptionError, OutOfRangeError, RelativeDepthError
from sharpdepth.geometry.camera import Camera
from sharpdepth.geometry.measure import measure_distance, measure_point, parse_pixel
from sharpdepth.geometry.normals import normals_to_rgb, surface_normals
from sharpdepth.geometry.pointcloud import (
    depth_to_mesh,
    depth_to_point_cloud,
    point_cloud_bytes,
    result_to_point_cloud,
    save_mesh,
    save_point_cloud,
)
from sharpdepth.geometry.settings import PointCloudSettings
from sharpdepth.io.depth_files import read_depth_result as load_depth_result
from sharpdepth.result import DepthResult, OutputKind

H, W, F = 48, 64, 60.0


def plane_depth(camera: Camera, normal, point) -> np.ndarray:
    """z-depth of the plane {X : n.X = n.point} seen through every pixel."""
    n = np.asarray(normal, dtype=np.float64)
    n /= np.linalg.norm(n)
    rays = camera.rays()
    return (n @ np.asarray(point, dtype=np.float64)) / (rays @ n)


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(unit normal, max |distance| of the points from the least-squares plane)."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    normal = vt[-1]
    return normal, float(np.abs(centred @ normal).max())


def metric(depth: np.ndarray, focal: float | None = F, image=None) -> DepthResult:
    return DepthResult(depth.astype(np.float32), OutputKind.METRIC_DEPTH, focal_px=focal, model_name="synthetic",
                       image=image)  # fmt: skip


@pytest.fixture
def camera() -> Camera:
    return Camera.from_focal(F, W, H)


TILTED_NORMAL = np.array([0.3, -0.4, -1.0]) / np.linalg.norm([0.3, -0.4, -1.0])


# ---------------------------------------------------------------- camera
def test_camera_convention_and_roundtrip(camera):
    assert (camera.cx, camera.cy) == ((W - 1) / 2, (H - 1) / 2)
    depth = plane_depth(camera, TILTED_NORMAL, (0, 0, 3.0))
    pts = camera.unproject(depth)
    u, v, z = camera.project(pts)
    uu, vv = camera.pixel_grid()
    assert np.abs(u - uu).max() < 1e-9 and np.abs(v - vv).max() < 1e-9
    assert np.allclose(z, depth)
    # z-depth, not ray length: the corner pixel's range is longer than its depth
    factor = camera.ray_length_factor(0.0, 0.0)
    assert np.isclose(np.linalg.norm(pts[0, 0]), depth[0, 0] * factor)


def test_camera_refuses_relative_and_missing_focal():
    rel = DepthResult(np.ones((4, 4)), OutputKind.RELATIVE_DISPARITY, focal_px=100.0, model_name="da-v2")
    with pytest.raises(RelativeDepthError, match="relative disparity"):
        Camera.from_result(rel)
    with pytest.raises(OptionError, match="focal"):
        Camera.from_result(metric(np.ones((4, 4)), focal=None))


# ---------------------------------------------------------------- point clouds
def test_fronto_parallel_plane_is_planar_at_right_scale(camera):
    depth = np.full((H, W), 2.5)
    cloud = depth_to_point_cloud(depth, camera)
    assert len(cloud) == H * W
    normal, residual = fit_plane(cloud.points.astype(np.float64))
    assert residual < 1e-5
    assert abs(abs(normal[2]) - 1) < 1e-6
    assert np.allclose(cloud.points[:, 2], 2.5)
    # scale: the plane spans (W-1)/f * z metres from the first to the last pixel centre
    width_m = cloud.points[:, 0].max() - cloud.points[:, 0].min()
    assert width_m == pytest.approx((W - 1) / F * 2.5, rel=1e-6)


def test_tilted_plane_points_and_normals(camera):
    depth = plane_depth(camera, TILTED_NORMAL, (0, 0, 3.0))
    cloud = depth_to_point_cloud(depth, camera)
    assert len(cloud) == H * W  # a continuous plane loses nothing
    normal, residual = fit_plane(cloud.points.astype(np.float64))
    assert residual < 1e-5
    assert abs(abs(normal @ TILTED_NORMAL) - 1) < 1e-6
    normals = surface_normals(depth, camera)
    err_deg = np.degrees(np.arccos(np.clip(normals.reshape(-1, 3) @ TILTED_NORMAL, -1, 1)))
    assert err_deg.max() < 0.01, err_deg.max()  # facing the camera, matching the analytic normal


def smoothed_step(camera: Camera, near=1.0, far=2.0, ramp=4) -> np.ndarray:
    """Left half at `near`, right half at `far`, joined by a ramp of in-between depths like a network's."""
    depth = np.full((H, W), far)
    depth[:, : W // 2] = near
    ramp_values = np.linspace(near, far, ramp + 2)[1:-1]
    depth[:, W // 2 : W // 2 + ramp] = ramp_values
    return depth


def test_no_points_or_triangles_bridge_a_depth_step(camera):
    depth = smoothed_step(camera)
    cloud = depth_to_point_cloud(depth, camera)
    z = cloud.points[:, 2]
    assert not np.any((z > 1.05) & (z < 1.95)), "flying pixels survived"
    assert np.sum(z == 1.0) == H * W // 2  # the near side keeps its silhouette column
    assert np.sum(np.isclose(z, 2.0)) > 0.8 * H * (W // 2 - 4)
    mesh = depth_to_mesh(depth, camera)
    zf = mesh.vertices[mesh.faces, 2]
    assert (zf.max(axis=1) / zf.min(axis=1)).max() <= 1.05
    assert len(mesh.faces) > 0.8 * 2 * (H - 1) * (W - 6)
    # the same mesh without the filters does bridge the step: the test can see rubber sheets
    naive = depth_to_mesh(depth, camera, max_rel_jump=1e9, max_grazing_deg=90)
    zn = naive.vertices[naive.faces, 2]
    assert np.any((zn > 1.05) & (zn < 1.95)) and (zn.max(axis=1) / zn.min(axis=1)).max() > 1.1


def test_grazing_angle_filter_drops_a_steep_ramp():
    # long lens: one pixel spans z/600 sideways, so a ramp of 1 % depth per pixel (under the 5 % jump
    # threshold) is a surface seen at atan(0.01 * 600) = 80.5 deg from the line of sight
    cam = Camera.from_focal(600.0, W, H)
    depth = np.full((H, W), 10.0)
    cols = np.arange(W)
    depth[:, 20:40] = 10.0 * (1.01 ** (cols[20:40] - 19))[None, :]
    depth[:, 40:] = depth[:, 39:40]
    from sharpdepth.geometry.normals import view_angle_deg

    angle = view_angle_deg(surface_normals(depth, cam), cam)
    assert np.median(angle[:, 22:38]) == pytest.approx(np.degrees(np.arctan(0.01 * 600 / 1.0)), abs=0.5)
    assert len(depth_to_point_cloud(depth, cam)) == H * W  # default 88 deg keeps it
    filtered = depth_to_point_cloud(depth, cam, max_grazing_deg=75)
    assert H * W - H * 21 <= len(filtered) <= H * W - H * 19
    mesh = depth_to_mesh(depth, cam, max_grazing_deg=75)
    assert len(mesh.faces) <= 2 * (H - 1) * (W - 1 - 19)


def test_stride_and_voxel_downsampling(camera):
    depth = np.full((H, W), 2.0)
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = 200
    strided = depth_to_point_cloud(depth, camera, image, stride=4)
    assert len(strided) == (H // 4) * (W // 4)
    assert np.allclose(strided.points[:, 2], 2.0)
    # stride keeps the geometry: the same extent up to the dropped last columns
    assert strided.points[:, 0].min() == pytest.approx(-(W - 1) / 2 / F * 2.0)
    voxel = depth_to_point_cloud(depth, camera, image, voxel_size=0.2)
    extent = (W - 1) / F * 2.0, (H - 1) / F * 2.0
    assert len(voxel) <= (np.ceil(extent[0] / 0.2) + 1) * (np.ceil(extent[1] / 0.2) + 1)
    assert len(voxel) < len(strided) * 2 and np.all(voxel.colors[:, 0] == 200)
    assert np.allclose(np.linalg.norm(voxel.normals, axis=1), 1.0, atol=1e-5)


def test_ply_and_glb_files(tmp_path, camera):
    depth = plane_depth(camera, TILTED_NORMAL, (0, 0, 3.0))
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    result = metric(depth, image=image)
    cloud = result_to_point_cloud(result)
    ply = save_point_cloud(tmp_path / "c.ply", cloud)
    data = ply.read_bytes()
    assert data.startswith(b"ply\nformat binary_little_endian")
    assert b"property float nx" in data and b"property uchar red" in data
    back = trimesh.load(ply, process=False)
    assert len(back.vertices) == H * W
    # OpenGL axes in the file: y and z flipped from the camera frame
    assert np.allclose(back.vertices, cloud.points * [1, -1, -1], atol=1e-6)
    assert np.array_equal(back.colors[:, :3], cloud.colors)
    glb = save_point_cloud(tmp_path / "c.glb", cloud)
    scene = trimesh.load(glb)
    assert sum(len(g.vertices) for g in scene.geometry.values()) == H * W
    mesh = depth_to_mesh(depth, camera, image)
    assert len(mesh.faces) == 2 * (H - 1) * (W - 1)
    for suffix in ("ply", "glb"):
        path = save_mesh(tmp_path / f"m.{suffix}", mesh)
        loaded = trimesh.load(path, force="mesh", process=False)
        assert len(loaded.faces) == len(mesh.faces)
        # counter-clockwise toward the viewer: face normals point to the camera (+z in OpenGL axes)
        assert np.all(loaded.face_normals[:, 2] > 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.glb", "c.ply", "m.glb", "m.ply"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in tmp_path.iterdir())  # not left private
    with pytest.raises(OptionError, match="unsupported 3D format"):
        save_point_cloud(tmp_path / "c.obj", cloud)
    assert point_cloud_bytes(cloud, "ply", "opencv") != data


# ---------------------------------------------------------------- normals view
def test_normals_view_colours(camera):
    rgb = normals_to_rgb(surface_normals(np.full((H, W), 2.0), camera))
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
    assert np.all(np.abs(rgb.astype(int) - [128, 128, 255]) <= 1)  # facing the camera: lavender
    nan_depth = np.full((H, W), np.nan)
    assert not normals_to_rgb(surface_normals(nan_depth, camera)).any()


# ---------------------------------------------------------------- measuring
def test_measure_distance_on_plane_within_one_percent():
    f, z = 500.0, 4.0
    cam = Camera.from_focal(f, 400, 300)
    rng = np.random.default_rng(1)
    depth = np.full((300, 400), z) * (1 + 0.01 * rng.standard_normal((300, 400)))  # 1 % pixel noise
    depth[rng.random(depth.shape) < 0.1] = np.nan  # and holes
    result = metric(depth, focal=f)
    a, b = (50.0, 150.0), (50.0 + f * 1.0 / z, 150.0)  # 1 m apart on the plane (125 px)
    m = measure_distance(result, a, b, window=7, camera=cam)
    assert m.distance_m == pytest.approx(1.0, rel=0.01)
    p = measure_point(result, (199.5, 149.5), window=7)
    assert p.depth_m == pytest.approx(z, rel=0.01) and p.distance_m == pytest.approx(z, rel=0.01)
    corner = measure_point(metric(np.full((300, 400), z), focal=f), (0, 0))
    assert corner.distance_m == pytest.approx(z * np.sqrt(1 + (199.5 / f) ** 2 + (149.5 / f) ** 2), rel=1e-9)


def test_measure_on_edge_takes_majority_and_refuses_bad_input():
    depth = np.full((40, 40), 5.0)
    depth[:, :19] = 1.0
    result = metric(depth, focal=50.0)
    assert measure_point(result, (20, 20), window=5).depth_m == 5.0  # 3 of 5 columns are the far wall
    rel = DepthResult(np.ones((40, 40)), OutputKind.RELATIVE_DISPARITY, model_name="da-v2-small")
    with pytest.raises(RelativeDepthError):
        measure_distance(rel, (1, 1), (5, 5))
    with pytest.raises(OptionError, match="outside"):
        measure_point(result, (40, 3))
    with pytest.raises(OptionError, match="no valid depth"):
        measure_point(metric(np.full((40, 40), np.nan), focal=50.0), (5, 5))
    with pytest.raises(OptionError, match="x,y"):
        parse_pixel("12;40")


# ---------------------------------------------------------------- files and CLI
def _write_photo(path, h=H, w=W):
    from PIL import Image

    rgb = np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def test_load_npz_npy_and_resize(tmp_path):
    # A depth ramp along x at half the photo's size: bilinear upsampling by 2 samples input column
    # (j + 0.5) / 2 - 0.5 for output column j, so the ramp comes back exactly away from the borders.
    ramp = 1.0 + 0.25 * np.arange(W // 2, dtype=np.float32)
    depth = np.tile(ramp, (H // 2, 1))
    np.savez(tmp_path / "p.npz", depth=depth, focal_px=np.float64(30.0), output_kind="metric_depth", model="x")
    image = np.zeros((H, W, 3), np.uint8)
    result = load_depth_result(tmp_path / "p.npz", image=image)
    assert result.is_metric and result.prediction.shape == (H, W) and result.focal_px == pytest.approx(60.0)
    expected = 1.0 + 0.25 * ((np.arange(W) + 0.5) / 2 - 0.5)
    np.testing.assert_allclose(result.depth[H // 2, 2:-2], expected[2:-2], atol=1e-5)
    assert result.image is image
    np.save(tmp_path / "p_disparity.npy", depth)
    assert not load_depth_result(tmp_path / "p_disparity.npy").is_metric
    np.save(tmp_path / "q.npy", depth)
    # One rule for bare arrays (issue 8): the caller says what they hold, else they are refused.
    with pytest.raises(InputImageError, match="bare array"):
        load_depth_result(tmp_path / "q.npy", focal_px=42.0)
    bare = load_depth_result(tmp_path / "q.npy", focal_px=42.0, default_kind="metric_depth")
    assert bare.is_metric and bare.focal_px == 42.0
    with pytest.raises(Exception, match="aspect"):
        load_depth_result(tmp_path / "p.npz", image=np.zeros((H, H, 3), np.uint8))


def test_cli_measure_and_pointcloud(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    _write_photo(photo)
    cam = Camera.from_focal(F, W, H)
    np.savez(tmp_path / "photo.npz", depth=np.full((H, W), 2.0, np.float32), focal_px=np.float64(F),
             output_kind="metric_depth", model="synthetic")  # fmt: skip
    npz = str(tmp_path / "photo.npz")
    # brief's spelling: --points A B ; 30 px apart at 2 m with f = 60 -> 1 m
    assert main(["measure", str(photo), "--points", "10,20", "40,20", "--depth", npz, "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["distance_m"] == pytest.approx(1.0, rel=1e-6)
    assert main(["measure", str(photo), "10,20", "--depth", npz]) == 0
    expected = 2.0 * float(cam.ray_length_factor(10, 20))
    assert f"{expected:.3f} m from camera" in capsys.readouterr().out
    out = tmp_path / "cloud.ply"
    assert main(["pointcloud", str(photo), "--depth", npz, "-o", str(out)]) == 0
    assert len(trimesh.load(out).vertices) == H * W
    out = tmp_path / "mesh.glb"
    assert main(["pointcloud", str(photo), "--depth", npz, "-o", str(out), "--mesh", "--stride", "2"]) == 0
    assert len(trimesh.load(io.BytesIO(out.read_bytes()), file_type="glb", force="mesh").faces) == 2 * 23 * 31
    # user errors are one-line messages with exit status 2
    rel = tmp_path / "rel.npz"
    np.savez(rel, disparity=np.ones((H, W), np.float32), focal_px=np.float64("nan"),
             output_kind="relative_disparity", model="da-v2-small")  # fmt: skip
    assert main(["measure", str(photo), "1,1", "2,2", "--depth", str(rel)]) == 2
    assert "relative disparity" in capsys.readouterr().err
    assert main(["measure", str(photo), "1,1", "2,2", "3,3", "--depth", npz]) == 2
    assert main(["pointcloud", str(photo), "--depth", npz, "-o", str(tmp_path / "x.obj")]) == 2
    assert main(["measure", str(photo), "1,1", "--depth", npz, "--model", "depth-pro"]) == 2


def test_cli_predicts_when_no_depth_file_is_given(tmp_path, capsys, monkeypatch):
    """Without --depth the command runs the network through sharpdepth.load (tiny architecture with
    random weights here: the numbers are meaningless, the wiring is what is tested)."""
    import functools
    import json

    import sharpdepth

    monkeypatch.setattr(sharpdepth, "load", functools.partial(sharpdepth.load, random_weights=True))
    photo = tmp_path / "photo.png"
    _write_photo(photo)
    model = "depth-anything-v2-metric-tiny"
    assert main(["measure", str(photo), "32,24", "--model", model, "--focal-px", "60", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["focal_px"] == 60.0  # the user's focal length wins over the model's
    point = data["point"]
    assert np.isfinite(point["depth_m"]) and point["depth_m"] > 0
    cam = Camera.from_focal(60.0, W, H)
    assert point["distance_from_camera_m"] == pytest.approx(point["depth_m"] * cam.ray_length_factor(32, 24))


def _inf_rows(depth: np.ndarray) -> np.ndarray:
    """Every other row unknown (+inf): no pixel keeps a valid vertical neighbour."""
    depth = depth.astype(np.float32).copy()
    depth[::2] = np.inf
    return depth


def test_empty_cloud_or_mesh_is_a_one_line_error(tmp_path, capsys, camera):
    depth = _inf_rows(np.linspace(1.0, 3.0, H * W).reshape(H, W))
    with pytest.raises(EmptyResultError, match="point cloud is empty"):
        depth_to_point_cloud(depth, camera)
    with pytest.raises(EmptyResultError, match="mesh is empty"):
        depth_to_mesh(depth, camera)
    photo = tmp_path / "photo.png"
    _write_photo(photo)
    npz = tmp_path / "inf_rows.npz"
    np.savez(npz, depth=depth, focal_px=np.float32(F), output_kind="metric_depth")
    for extra in ([], ["--mesh"]):
        out = tmp_path / "cloud.ply"
        assert main(["pointcloud", str(photo), "--depth", str(npz), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: the ") and "is empty" in err and err.count("\n") == 1
        assert "Traceback" not in err and not out.exists()  # no empty file left behind


def test_a_voxel_too_fine_for_the_scene_is_refused_not_wrapped_around(camera):
    depth = plane_depth(camera, (0, 0, -1), (0, 0, 2.0))
    with pytest.raises(OutOfRangeError):
        PointCloudSettings(voxel_m=1e-30)
    with pytest.raises(OutOfRangeError, match="too fine"):
        # inside the documented range, but the grid of a 1 km wide scene at 0.1 mm would overflow int64 keys
        from sharpdepth.geometry.pointcloud import PointCloud, voxel_downsample

        voxel_downsample(PointCloud(np.array([[0, 0, 1], [1e3, 1e3, 1e3]], np.float32)), 1e-4)
    thinned = depth_to_point_cloud(depth, camera, voxel_size=1e-4)
    assert len(thinned) == H * W  # points about 3 cm apart: every voxel holds one


def test_geometry_settings_are_validated_on_construction():
    from sharpdepth.geometry.settings import MeasureSettings, PointCloudSettings

    defaults = PointCloudSettings()
    assert (defaults.stride, defaults.max_rel_jump, defaults.max_grazing_deg, defaults.axes) == (
        1,
        0.05,
        88.0,
        "opengl",
    )
    for bad in (dict(stride=0), dict(stride=1.5), dict(voxel_m=0.0), dict(voxel_m=0.1, mesh=True), dict(axes="up"),
                dict(file_type="obj"), dict(max_rel_jump=0), dict(max_grazing_deg=91), dict(mesh="yes")):  # fmt: skip
        with pytest.raises(OptionError):
            PointCloudSettings(**bad)
    # well-formed numbers outside the documented ranges: OutOfRangeError (HTTP 422)
    for bad in (dict(voxel_m=1e-30), dict(voxel_m=1e9), dict(stride=10**6), dict(max_grazing_deg=0.0)):
        with pytest.raises(OutOfRangeError):
            PointCloudSettings(**bad)
    with pytest.raises(OutOfRangeError):
        MeasureSettings(pixels=((1, 1),), window=10**6)
    assert MeasureSettings(pixels=[[1, 2], [3, 4]]).pixels == ((1.0, 2.0), (3.0, 4.0))
    for bad in (dict(pixels=()), dict(pixels=((1, 1),) * 3), dict(pixels=((1, "a"),)), dict(pixels="1,1"),
                dict(pixels=((1, 1),), window=0)):  # fmt: skip
        with pytest.raises(OptionError):
            MeasureSettings(**bad)


def test_camera_resizing_and_subsampling_keep_pixel_centres():
    cam = Camera.from_focal(F, W, H)
    half = cam.resized(W // 2, H // 2)
    assert half == cam.scaled(0.5)
    # a pixel's area maps onto the same area: the image corner (-0.5, -0.5) stays the corner
    u, v, _ = half.project(cam.unproject(np.array(2.0), np.array(-0.5), np.array(-0.5)))
    assert (float(u), float(v)) == pytest.approx((-0.5, -0.5))
    # subsampling keeps every 3rd pixel centre: source pixel (3j, 3i) is pixel (j, i) of the subsampled grid
    sub = cam.subsampled(3)
    assert (sub.width, sub.height) == (np.zeros((H, W))[::3, ::3].shape[1], np.zeros((H, W))[::3, ::3].shape[0])
    u, v, _ = sub.project(cam.unproject(np.array(2.0), np.array(9.0), np.array(6.0)))
    assert (float(u), float(v)) == pytest.approx((3.0, 2.0))
