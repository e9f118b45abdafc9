"""`sharpdepth scene` and its writers on real data: TUM RGB-D fr2_desk ground truth.

Ground-truth depth and poses go through our fusion and must land on the dataset's own
back-projection (written here independently); the COLMAP text export is read back with a
small independent parser; the command runs end to end with stand-in DA3-Small weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file
from scipy.spatial import cKDTree

from sharpdepth.cli.main import main
from sharpdepth.errors import OptionError
from sharpdepth.export.scene import colmap_texts, fuse, read_cameras_file
from sharpdepth.result import DepthResult, OutputKind, SceneResult

from conftest import data_dir, fixture_state_dict

SEQ = "rgbd/sequences/tum_fr2_desk"
FRAMES = (0, 10, 20)


def _seq() -> Path:
    return data_dir() / SEQ


def _tum_c2w(index: int) -> np.ndarray:
    """The dataset's pose (T_world_cam) of frame `index`, from poses.txt (quaternion x y z w)."""
    rows = [ln.split() for ln in (_seq() / "poses.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    tx, ty, tz, qx, qy, qz, qw = map(float, rows[index][1:])
    n = np.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    x, y, z, w = qx / n, qy / n, qz / n, qw / n
    m = np.eye(4)
    m[:3, :3] = [
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
    ]
    m[:3, 3] = (tx, ty, tz)
    return m


def _tum_k() -> np.ndarray:
    k = json.loads((_seq() / "intrinsics.json").read_text())
    return np.array([[k["fx"], 0, k["cx"]], [0, k["fy"], k["cy"]], [0, 0, 1.0]])


def _tum_depth(index: int) -> np.ndarray:
    return np.asarray(Image.open(_seq() / "depth" / f"{index:06d}.png"), dtype=np.float64) / 5000.0


def _dataset_points(index: int) -> np.ndarray:
    """TUM's documented back-projection: X = (u - cx) Z / fx, Y = (v - cy) Z / fy, then T_world_cam."""
    z = _tum_depth(index)
    k, c2w = _tum_k(), _tum_c2w(index)
    v, u = np.nonzero(z > 0)
    zz = z[v, u]
    cam = np.stack([(u - k[0, 2]) * zz / k[0, 0], (v - k[1, 2]) * zz / k[1, 1], zz, np.ones_like(zz)])
    return (c2w @ cam)[:3].T


@pytest.fixture(scope="module")
def gt_scene() -> SceneResult:
    views = [
        DepthResult(prediction=_tum_depth(i).astype(np.float32), kind=OutputKind.METRIC_DEPTH, intrinsics=_tum_k())
        for i in FRAMES
    ]
    return SceneResult(views, np.stack([_tum_k()] * 3), np.stack([_tum_c2w(i) for i in FRAMES]), "ground truth")


def test_fusion_of_ground_truth_lands_on_the_dataset_back_projection(gt_scene: SceneResult):
    cloud = fuse(gt_scene, percentile=0.0, max_points=10**8)
    expected = np.concatenate([_dataset_points(i) for i in FRAMES])
    assert cloud.points.shape == expected.shape
    # float32 depth maps (as every DepthResult holds them) -> well under a millimetre
    assert np.abs(cloud.points - expected).max() < 1e-3


def test_ground_truth_views_agree_in_the_world_frame(gt_scene: SceneResult):
    """Frames 0 and 20 fused with their poses overlap: most points of one have a neighbour in the
    other within 2 cm (a wrong pose convention puts them decimetres apart)."""
    a, b = _dataset_points(0)[::7], _dataset_points(20)
    dist, _ = cKDTree(b).query(a)
    assert np.median(dist) < 0.02


def _read_colmap(folder: dict[str, str]) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray], int]:
    """Independent reader: cameras (K, COLMAP pixel convention undone), camera-to-world per image name."""
    cams = {}
    for line in folder["cameras.txt"].splitlines():
        if line and not line.startswith("#"):
            cid, model, _w, _h, fx, fy, cx, cy = line.split()
            assert model == "PINHOLE"
            cams[int(cid)] = np.array([[float(fx), 0, float(cx) - 0.5], [0, float(fy), float(cy) - 0.5], [0, 0, 1]])
    poses = {}
    lines = [ln for ln in folder["images.txt"].split("\n") if not ln.startswith("#")]
    for head in lines[0::2]:
        if not head:
            continue
        e = head.split()
        qw, qx, qy, qz, tx, ty, tz = map(float, e[1:8])
        r = np.array(
            [
                [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
                [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
                [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
            ]
        )
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = r.T, -r.T @ np.array([tx, ty, tz])
        poses[e[9]] = (c2w, cams[int(e[8])])
    points = [ln for ln in folder["points3D.txt"].splitlines() if ln and not ln.startswith("#")]
    return cams, poses, len(points)


def test_colmap_export_reads_back(gt_scene: SceneResult):
    names = [f"{i:06d}.png" for i in FRAMES]
    cloud = fuse(gt_scene, 0.0, 5000)
    cams, poses, n_points = _read_colmap(colmap_texts(gt_scene, names, cloud))
    assert len(cams) == 3 and n_points == 5000
    for name, c2w in zip(names, gt_scene.cam_to_world, strict=True):
        got, k = poses[name]
        np.testing.assert_allclose(got, c2w, atol=1e-9)
        np.testing.assert_allclose(k, _tum_k(), atol=1e-9)


def test_poses_files(tmp_path: Path):
    gt = np.stack([_tum_c2w(i) for i in FRAMES])
    tum = tmp_path / "poses.txt"
    rows = [ln for ln in (_seq() / "poses.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    tum.write_text("# t tx ty tz qx qy qz qw\n" + "\n".join(rows[i] for i in FRAMES) + "\n")
    np.testing.assert_allclose(read_cameras_file(tum, "poses", 3), gt, atol=1e-12)
    js = tmp_path / "poses.json"
    js.write_text(json.dumps({"cam_to_world": gt.tolist()}))
    np.testing.assert_allclose(read_cameras_file(js, "poses", 3), gt)
    k = read_cameras_file(_seq() / "intrinsics.json", "intrinsics", 3)
    np.testing.assert_allclose(k[2], _tum_k())
    with pytest.raises(OptionError, match="expected 2"):
        read_cameras_file(js, "poses", 2)


@pytest.fixture(scope="module")
def anyview_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("da3") / "model.safetensors"
    save_file({"model." + k: v.contiguous() for k, v in fixture_state_dict("depth_anything_3/anyview_small").items()},
              str(path))  # fmt: skip
    return path


def test_scene_command(tmp_path: Path, anyview_file: Path, capsys: pytest.CaptureFixture[str]):
    frames = [str(_seq() / "rgb" / f"{i:06d}.png") for i in FRAMES[:2]]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot a picture")
    out = tmp_path / "scene"
    opts = ["--weights", str(anyview_file), "--input-size", "84", "-o", str(out)]
    assert main(["scene", *frames, str(bad), *opts]) == 1
    assert "broken.png" in capsys.readouterr().err
    cams = json.loads((out / "cameras.json").read_text())["cameras"]
    assert [c["name"] for c in cams] == ["000000.png", "000010.png"]
    assert (out / "scene.glb").stat().st_size > 0
    assert {p.name for p in (out / "colmap").iterdir()} == {"cameras.txt", "images.txt", "points3D.txt"}
    with np.load(out / "000000.npz") as data:
        assert data["relative_depth"].shape == data["confidence"].shape == (480, 640)
        assert data["intrinsics"].shape == (3, 3)
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    one = tmp_path / "one"
    assert main(["scene", frames[0], "--output-size", "network", "--weights", str(anyview_file),
                 "--input-size", "84", "-o", str(one)]) == 0  # fmt: skip
    assert json.loads((one / "cameras.json").read_text())["cameras"][0]["width"] == 84


def test_scene_from_a_video_at_a_rate(tmp_path: Path, anyview_file: Path):
    import av

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(10):
            rgb = np.asarray(Image.open(_seq() / "rgb" / f"{i:06d}.png").convert("RGB").resize((320, 240)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    out = tmp_path / "video_scene"
    assert main(["scene", str(clip), "--fps", "5", "--weights", str(anyview_file), "--input-size", "56",
                 "-o", str(out)]) == 0  # fmt: skip
    names = [c["name"] for c in json.loads((out / "cameras.json").read_text())["cameras"]]
    assert names == [f"clip_{i:06d}" for i in (0, 2, 4, 6, 8)]
    assert (out / "clip_000004.npz").is_file()


# ---------------------------------------------------------------- edge cases: sizes, one view, duplicates


def _frame(index: int) -> np.ndarray:
    return np.asarray(Image.open(_seq() / "rgb" / f"{index:06d}.png").convert("RGB"))


def _save(path: Path, rgb: np.ndarray) -> str:
    Image.fromarray(rgb).save(path)
    return str(path)


def test_scene_views_of_different_sizes(tmp_path: Path, anyview_file: Path):
    """640x480 and 400x480 at input size 56 run on 56x42 and 42x56 grids; DA3 centre-crops both to 42x42,
    so each view's maps, camera and picture are those of its crop, which cameras.json records."""
    import sharpdepth

    wide, tall = _frame(0), np.ascontiguousarray(_frame(10)[:, :400])
    paths = [_save(tmp_path / "wide.png", wide), _save(tmp_path / "tall.png", tall)]
    out = tmp_path / "scene"
    assert main(["scene", *paths, "--weights", str(anyview_file), "--input-size", "56", "-o", str(out)]) == 0
    cams = {c["name"]: c for c in json.loads((out / "cameras.json").read_text())["cameras"]}
    # 42 of 56 grid columns (wide) or rows (tall), centred: 7 cells of 640/56 or 480/56 pixels cut each side
    want = {"wide.png": (0, 80, 480, 480), "tall.png": (60, 0, 360, 400)}
    for name, (top, left, height, width) in want.items():
        cam = cams[name]
        assert cam["crop"] == {"top": top, "left": left, "height": height, "width": width}
        assert (cam["height"], cam["width"]) == (height, width)
        np.testing.assert_allclose(np.array(cam["intrinsics"])[:2, 2], (width / 2, height / 2))
        with np.load(out / f"{Path(name).stem}.npz") as data:
            assert data["relative_depth"].shape == (height, width)
    lines = [line.split() for line in (out / "colmap" / "cameras.txt").read_text().splitlines() if line[:1] != "#"]
    assert [(int(c[2]), int(c[3])) for c in lines] == [(480, 480), (400, 360)]
    scene = sharpdepth.load("depth-anything-3-small", weights=str(anyview_file), input_size=56).predict_views(
        [wide, tall]
    )
    np.testing.assert_array_equal(scene.views[0].image, wide[:, 80:560])  # the crop, not the squashed photo
    np.testing.assert_array_equal(scene.views[1].image, tall[60:420])


def test_scene_of_a_single_view_with_its_known_camera(tmp_path: Path, anyview_file: Path):
    path = _save(tmp_path / "one.png", _frame(20))
    pose = _tum_c2w(20)
    poses = tmp_path / "pose.json"
    poses.write_text(json.dumps({"cam_to_world": [pose.tolist()]}))
    out = tmp_path / "scene"
    args = ["scene", path, "--poses", str(poses), "--intrinsics", str(_seq() / "intrinsics.json")]
    assert main([*args, "--weights", str(anyview_file), "--input-size", "56", "-o", str(out)]) == 0
    (cam,) = json.loads((out / "cameras.json").read_text())["cameras"]
    np.testing.assert_allclose(cam["cam_to_world"], pose, atol=1e-12)
    np.testing.assert_allclose(cam["intrinsics"], _tum_k(), rtol=1e-9)
    assert "crop" not in cam and (cam["width"], cam["height"]) == (640, 480)
    with np.load(out / "one.npz") as data:
        assert (data["relative_depth"] > 0).all() and np.isfinite(data["relative_depth"]).all()
    images = [line for line in (out / "colmap" / "images.txt").read_text().splitlines() if line and line[0] != "#"]
    assert len(images) == 1 and images[0].endswith(" one.png")


def test_scene_duplicate_views(tmp_path: Path, anyview_file: Path, capsys: pytest.CaptureFixture[str]):
    """One file named twice is one view (said in one line); two copies of a picture are two views, with
    distinct names and, posed at one place, finite depth and the given cameras."""
    frame = _frame(0)
    a, copy = _save(tmp_path / "a.png", frame), _save(tmp_path / "a_copy.png", frame)
    opts = ["--weights", str(anyview_file), "--input-size", "56"]
    assert main(["scene", a, a, *opts, "-o", str(tmp_path / "twice")]) == 0
    assert "a.png is given 2 times: it is one view" in capsys.readouterr().err
    assert [c["name"] for c in json.loads((tmp_path / "twice" / "cameras.json").read_text())["cameras"]] == ["a.png"]
    poses = tmp_path / "same.json"
    poses.write_text(json.dumps({"cam_to_world": [np.eye(4).tolist()] * 2}))
    out = tmp_path / "copies"
    assert main(["scene", a, copy, "--poses", str(poses), *opts, "-o", str(out)]) == 0
    cams = json.loads((out / "cameras.json").read_text())["cameras"]
    assert [c["name"] for c in cams] == ["a.png", "a_copy.png"]
    np.testing.assert_allclose([c["cam_to_world"] for c in cams], [np.eye(4)] * 2, atol=1e-12)
    with np.load(out / "a.npz") as first, np.load(out / "a_copy.npz") as second:
        d1, d2 = first["relative_depth"], second["relative_depth"]
    assert np.isfinite(d1).all() and np.isfinite(d2).all()
    assert np.corrcoef(d1.ravel(), d2.ravel())[0, 1] > 0.99


def test_posed_scale_of_views_predicted_at_one_place_is_left_alone(anyview_file: Path, monkeypatch):
    """Given poses that spread while the network puts every camera at one place (duplicate views) fit
    no scale: depth stays in the network's units (it was divided by a zero scale)."""
    import torch

    import sharpdepth

    model = sharpdepth.load("depth-anything-3-small", weights=str(anyview_file), input_size=28)
    n, grid = 2, (21, 28)

    def at_one_place(net, batch, k_net, cam_to_world):
        eye = torch.eye(4, dtype=torch.float64)[:3][None, None].expand(1, n, 3, 4)
        k = torch.tensor([[20.0, 0, 14], [0, 20.0, 10.5], [0, 0, 1]])[None, None].expand(1, n, 3, 3)
        return {"depth": torch.ones(1, n, *grid), "confidence": torch.ones(1, n, *grid), "world_to_cam": eye,
                "intrinsics": k}  # fmt: skip

    monkeypatch.setattr(model.processor, "_run_views", at_one_place)
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, :3, 3] = (1.0, 0.0, 0.0)
    scene = model.predict_views([np.zeros((60, 80, 3), np.uint8)] * n, poses=poses)
    for view in scene.views:
        np.testing.assert_allclose(view.prediction, 1.0)
    np.testing.assert_allclose(scene.cam_to_world, poses)
