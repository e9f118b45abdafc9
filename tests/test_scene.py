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
