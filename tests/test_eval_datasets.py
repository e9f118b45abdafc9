"""Dataset loaders: the real shared RGB-D data (Middlebury, TUM, SUN) and synthetic copies of
the other layouts written in their documented formats, read back with units checked."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from sharpdepth.errors import InputImageError, OptionError
from sharpdepth.eval.datasets import DATASETS, open_dataset
from sharpdepth.eval.datasets.base import decode_sun_depth, write_dpt
from sharpdepth.eval.datasets.middlebury import parse_calib
from sharpdepth.eval.datasets.rgbd import associate

from conftest import data_dir

RGBD = data_dir() / "rgbd"
MIDDLEBURY = RGBD / "middlebury2014_quarter"
FRAMES = RGBD / "single_frames"


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _pfm_values(path):
    """Independent PFM parse (header by lines, little-endian when scale < 0, rows bottom-up)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n", 3)
    width, height = (int(v) for v in lines[1].split())
    scale = float(lines[2])
    data = np.frombuffer(lines[3], dtype="<f4" if scale < 0 else ">f4", count=width * height)
    return np.flipud(data.reshape(height, width))


# ------------------------------------------------------------------ real data
def test_middlebury_real_scenes_metric_depth():
    ds = open_dataset("middlebury", MIDDLEBURY)
    names = [e.name for e in ds.index()]
    assert len(names) == 15 and "Adirondack" in names and "Teddy" in names
    sample = ds.load(ds.index()[names.index("Adirondack")])
    disp = _pfm_values(MIDDLEBURY / "Adirondack" / "disp0GT.pfm")
    calib = (MIDDLEBURY / "Adirondack" / "calib.txt").read_text()
    assert "1038.018" in calib and "176.252" in calib and "53.271" in calib
    y, x = 200, 300
    assert np.isfinite(disp[y, x])
    expected_m = 176.252 * 1038.018 / (disp[y, x] + 53.271) / 1000.0
    assert sample.depth[y, x] == pytest.approx(expected_m, rel=1e-5)
    assert sample.focal_px == pytest.approx(1038.018)
    assert sample.image.shape == (496, 718, 3) and sample.depth.shape == (496, 718)
    unknown = ~np.isfinite(disp)
    assert unknown.any() and np.array_equal(~sample.valid, unknown)
    assert np.isnan(sample.depth[unknown]).all()
    assert 1.0 < np.nanmedian(sample.depth) < 4.0  # a tabletop scene a couple of metres away


def test_middlebury_nonocc_option_and_single_scene_root():
    full = open_dataset("middlebury", MIDDLEBURY / "Piano")
    nonocc = open_dataset("middlebury", MIDDLEBURY / "Piano", nonocc="true")
    a, b = full.load(full.index()[0]), nonocc.load(nonocc.index()[0])
    mask = np.asarray(Image.open(MIDDLEBURY / "Piano" / "mask0nocc.png")) == 255
    assert b.valid.sum() < a.valid.sum()
    assert np.array_equal(b.valid, a.valid & mask)


def test_parse_calib_handles_middlebury_spacing(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("cam0=[1500 0 199 ; 0 1500 187 ; 0 0 1]\n doffs= 52\nbaseline=80\nwidth= 450 ")
    calib = parse_calib(path)
    assert calib["cam0"][0, 0] == 1500 and calib["cam0"][1, 2] == 187
    assert calib["doffs"] == 52 and calib["baseline"] == 80 and calib["width"] == 450


def _tum_sequence(tmp_path):
    """A TUM sequence folder whose single frame is the shared real frame (symlinks, no copy)."""
    seq = tmp_path / "rgbd_dataset_freiburg1_desk"
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    (seq / "rgb" / "100.000000.png").symlink_to(FRAMES / "TUM_color.png")
    (seq / "depth" / "100.010000.png").symlink_to(FRAMES / "TUM_depth.png")
    (seq / "rgb.txt").write_text("# color images\n100.000000 rgb/100.000000.png\n")
    (seq / "depth.txt").write_text("# depth\n100.010000 depth/100.010000.png\n")
    pose = "99.995 1.0 2.0 3.0 0 0 0.7071068 0.7071068"  # 90 degrees about z
    (seq / "groundtruth.txt").write_text(f"# timestamp tx ty tz qx qy qz qw\n{pose}\n")
    return seq


def test_tum_real_frame_in_sequence_layout(tmp_path):
    seq = _tum_sequence(tmp_path)
    ds = open_dataset("tum", tmp_path)
    assert len(ds) == 1
    s = ds.load(ds.index()[0])
    raw = np.asarray(Image.open(FRAMES / "TUM_depth.png")).astype(np.float64)
    np.testing.assert_allclose(s.depth[raw > 0], raw[raw > 0] / 5000.0, rtol=1e-6)
    assert np.isnan(s.depth[raw == 0]).all()
    assert s.focal_px == pytest.approx(517.3) and s.K[1, 2] == pytest.approx(255.3)  # freiburg1
    assert s.sequence == seq.name
    np.testing.assert_allclose(s.pose_c2w[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(s.pose_c2w[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)  # 90 deg about z
    assert 0.5 < np.nanmedian(s.depth) < 5.0


def test_tum_and_sun_flat_single_frames():
    tum = open_dataset("tum", FRAMES, match="TUM_*")
    sun = open_dataset("sun", FRAMES, match="SUN_*")
    assert [e.name for e in tum.index()] == ["TUM_color"] and [e.name for e in sun.index()] == ["SUN_color"]
    t = tum.load(tum.index()[0])
    raw = np.asarray(Image.open(FRAMES / "TUM_depth.png")).astype(np.float64)
    assert np.nanmax(t.depth) == pytest.approx(raw.max() / 5000.0)
    s = sun.load(sun.index()[0])
    v = np.asarray(Image.open(FRAMES / "SUN_depth.png")).astype(np.uint32)
    mm = ((v >> 3) | (v << 13)) & 0xFFFF
    np.testing.assert_allclose(s.depth[mm > 0], mm[mm > 0] / 1000.0, rtol=1e-6)
    assert 0.5 < np.nanmedian(s.depth) < 6.0 and np.nanmax(s.depth) < 12.0  # indoor metres after decoding
    naive = v[v > 0] / 1000.0  # without the bit rotation the numbers would be tens of metres
    assert np.median(naive) > 10.0


def test_sun_frame_folder_layout(tmp_path):
    frame = tmp_path / "kv2" / "scene_0001"
    (frame / "image").mkdir(parents=True)
    (frame / "depth").mkdir()
    (frame / "image" / "0001.jpg").symlink_to(FRAMES / "SUN_color.jpg")
    (frame / "depth" / "0001.png").symlink_to(FRAMES / "SUN_depth.png")
    (frame / "intrinsics.txt").write_text("529.5 0 365\n0 529.5 265\n0 0 1\n")
    ds = open_dataset("sun-rgbd", tmp_path)
    s = ds.load(ds.index()[0])
    assert s.name == "kv2__scene_0001" and s.focal_px == 529.5 and s.K[0, 2] == 365
    assert s.image.shape == (480, 640, 3)


def test_decode_sun_depth_bit_rotation():
    mm = np.array([0, 1, 1000, 8000, 65535], dtype=np.uint32)
    stored = ((mm << 3) | (mm >> 13)) & 0xFFFF  # how SUN RGB-D writes them
    np.testing.assert_allclose(decode_sun_depth(stored), mm / 1000.0)


def test_tum_association_is_closest_first():
    pairs = associate([1.00, 1.03, 1.10], [1.005, 1.031, 1.5])
    assert pairs == [(0, 0), (1, 1)]  # 1.10 has no partner within 0.02 s


# ------------------------------------------------------------------ synthetic layouts
def test_nyu_extracted_png_layout(tmp_path):
    depth_mm = np.random.default_rng(0).integers(500, 9000, size=(480, 640)).astype(np.uint16)
    depth_mm[0, 0] = 0
    _png(tmp_path / "bathroom" / "rgb_00045.jpg", _rgb(480, 640))
    _png(tmp_path / "bathroom" / "sync_depth_00045.png", depth_mm)
    _png(tmp_path / "kitchen" / "rgb_00100.png", _rgb(480, 640, 1))
    _png(tmp_path / "kitchen" / "depth_00100.png", depth_mm)
    ds = open_dataset("nyu", tmp_path)
    assert [e.name for e in ds.index()] == ["bathroom__rgb_00045", "kitchen__rgb_00100"]
    s = ds.load(ds.index()[0])
    assert s.depth[1, 1] == pytest.approx(depth_mm[1, 1] / 1000.0) and np.isnan(s.depth[0, 0])
    assert s.focal_px == pytest.approx(518.8579)


def test_nyu_mat_without_h5py_says_how_to_fix(tmp_path, monkeypatch):
    (tmp_path / "nyu_depth_v2_labeled.mat").write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py -> ImportError
    with pytest.raises(OptionError, match="pip install h5py"):
        open_dataset("nyuv2", tmp_path).index()


def test_nyu_mat_with_h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 3, 640, 480), dtype=np.uint8)  # MATLAB order N x 3 x W x H
    depths = rng.uniform(0.5, 9.0, size=(3, 640, 480)).astype(np.float32)
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"], f["depths"] = images, depths
    savemat(tmp_path / "splits.mat", {"testNdxs": np.array([[2], [3]])})
    ds = open_dataset("nyuv2", tmp_path)
    assert [e.name for e in ds.index()] == ["nyu_0002", "nyu_0003"]
    s = ds.load(ds.index()[0])
    assert s.image.shape == (480, 640, 3) and s.image[10, 20, 1] == images[1, 1, 20, 10]
    assert s.depth[10, 20] == depths[1, 20, 10]


def test_kitti_eigen_filelist(tmp_path):
    h, w = 375, 1242
    img_rel = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    gt_rel = "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    _png(tmp_path / "raw" / img_rel, _rgb(h, w))
    gt = np.zeros((h, w), np.uint16)
    gt[300, 600] = 256 * 12 + 128  # 12.5 m
    _png(tmp_path / "gt" / "val" / gt_rel, gt)
    listing = tmp_path / "eigen.txt"
    listing.write_text(f"{img_rel} {gt_rel} 721.5377\n{img_rel.replace('69', '70')} None 721.5377\n")
    ds = open_dataset("kitti", tmp_path / "raw", filelist=str(listing), gt_root=str(tmp_path / "gt"))
    assert len(ds) == 1
    s = ds.load(ds.index()[0])
    assert s.depth[300, 600] == pytest.approx(12.5) and np.isnan(s.depth[0, 0])
    assert s.focal_px == pytest.approx(721.5377)
    kb = open_dataset("kitti", tmp_path / "raw", filelist=str(listing), gt_root=str(tmp_path / "gt"), kb_crop="1")
    c = kb.load(kb.index()[0])
    assert c.depth.shape == (352, 1216) and c.image.shape == (352, 1216, 3)
    assert c.depth[300 - (h - 352), 600 - (w - 1216) // 2] == pytest.approx(12.5)


def test_kitti_missing_filelist_is_a_clear_error(tmp_path):
    with pytest.raises(OptionError, match="filelist"):
        open_dataset("kitti", tmp_path).index()


def test_eth3d_raw_float_and_colmap(tmp_path):
    scene = tmp_path / "courtyard"
    h, w = 40, 60
    _png(scene / "images" / "dslr_images_undistorted" / "DSC_0001.JPG", _rgb(h, w))
    depth = np.random.default_rng(2).uniform(1, 30, size=(h, w)).astype("<f4")
    depth[0, :5] = np.inf
    (scene / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
    depth.tofile(scene / "ground_truth_depth" / "dslr_images" / "DSC_0001.JPG")
    calib = scene / "dslr_calibration_undistorted"
    calib.mkdir()
    (calib / "cameras.txt").write_text("# cams\n0 PINHOLE 60 40 50.5 51.5 30 20\n")
    (calib / "images.txt").write_text("# imgs\n1 1 0 0 0 0.5 0 0 0 dslr_images_undistorted/DSC_0001.JPG\n\n")
    ds = open_dataset("eth3d", tmp_path)
    s = ds.load(ds.index()[0])
    np.testing.assert_allclose(s.depth[1:], depth[1:])
    assert np.isnan(s.depth[0, :5]).all() and s.focal_px == 50.5
    np.testing.assert_allclose(s.pose_c2w[:3, 3], [-0.5, 0, 0])  # camera centre = -R^T t


def test_sintel_dpt_and_cam(tmp_path):
    base = tmp_path / "training"
    depth = np.random.default_rng(3).uniform(1, 50, size=(20, 30)).astype(np.float32)
    for i in (1, 2):
        _png(base / "final" / "alley_1" / f"frame_{i:04d}.png", _rgb(20, 30, i))
        (base / "depth" / "alley_1").mkdir(parents=True, exist_ok=True)
        write_dpt(base / "depth" / "alley_1" / f"frame_{i:04d}.dpt", depth * i)
        cam = base / "camdata_left" / "alley_1" / f"frame_{i:04d}.cam"
        cam.parent.mkdir(parents=True, exist_ok=True)
        with open(cam, "wb") as fh:
            np.array([202021.25], "<f4").tofile(fh)
            np.array([[100, 0, 15], [0, 100, 10], [0, 0, 1]], "<f8").tofile(fh)
            np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float(i)]], "<f8").tofile(fh)
    ds = open_dataset("sintel", tmp_path)
    assert [e.name for e in ds.index()] == ["alley_1__frame_0001", "alley_1__frame_0002"]
    s = ds.load(ds.index()[1])
    np.testing.assert_allclose(s.depth, depth * 2)
    assert s.sequence == "alley_1" and s.focal_px == 100
    np.testing.assert_allclose(s.pose_c2w[:3, 3], [0, 0, -2])  # inverse of world-to-camera


def test_ibims_png_scale_masks_and_calib(tmp_path):
    raw = np.full((12, 16), 65535 // 5, np.uint16)  # 10 m
    _png(tmp_path / "rgb" / "corridor_01.png", _rgb(12, 16))
    _png(tmp_path / "depth" / "corridor_01.png", raw)
    invalid = np.full((12, 16), 255, np.uint8)
    invalid[0, 0] = 0
    transp = np.full((12, 16), 255, np.uint8)
    transp[1, 1] = 0
    _png(tmp_path / "mask_invalid" / "corridor_01.png", invalid)
    _png(tmp_path / "mask_transp" / "corridor_01.png", transp)
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "corridor_01.txt").write_text("559.6,559.6,320,240")
    (tmp_path / "imagelist.txt").write_text("corridor_01\n")
    s = open_dataset("ibims", tmp_path).load(open_dataset("ibims", tmp_path).index()[0])
    assert s.depth[5, 5] == pytest.approx(13107 * 50 / 65535)
    assert np.isnan(s.depth[0, 0]) and np.isnan(s.depth[1, 1]) and s.valid.sum() == 12 * 16 - 2
    assert s.focal_px == pytest.approx(559.6)


def test_diode_npy_and_mask(tmp_path):
    scan = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00183"
    _png(scan / "00019_00183_indoors_000_010.png", _rgb(768, 1024))
    depth = np.random.default_rng(4).uniform(0.6, 20, size=(768, 1024, 1)).astype(np.float32)
    np.save(scan / "00019_00183_indoors_000_010_depth.npy", depth)
    mask = np.ones((768, 1024), np.float32)
    mask[:10] = 0
    np.save(scan / "00019_00183_indoors_000_010_depth_mask.npy", mask)
    ds = open_dataset("diode", tmp_path)
    s = ds.load(ds.index()[0])
    assert np.isnan(s.depth[:10]).all() and s.depth[20, 20] == depth[20, 20, 0]
    assert s.focal_px == pytest.approx(886.81)
    assert len(open_dataset("diode", tmp_path, subset="indoors")) == 1
    with pytest.raises(InputImageError, match="no samples"):
        open_dataset("diode", tmp_path, subset="outdoor").index()


def test_generic_folder_formats_and_scales(tmp_path):
    a = tmp_path / "a"
    _png(a / "images" / "x.png", _rgb(8, 8))
    _png(a / "depth" / "x.png", np.full((8, 8), 2500, np.uint16))
    b = tmp_path / "b"
    _png(b / "y_color.jpg", _rgb(8, 8))
    np.save(b / "y_depth.npy", np.full((8, 8), 4.0, np.float32))
    ds = open_dataset("folder", tmp_path)
    assert [e.name for e in ds.index()] == ["a__images__x", "b__y_color"]
    assert ds.load(ds.index()[0]).depth[0, 0] == pytest.approx(2.5)  # PNG default: millimetres
    assert ds.load(ds.index()[1]).depth[0, 0] == pytest.approx(4.0)  # float formats: metres
    tum_like = open_dataset("folder", a, depth_scale="0.0002", focal_px="500")
    s = tum_like.load(tum_like.index()[0])
    assert s.depth[0, 0] == pytest.approx(0.5) and s.focal_px == 500.0
    with pytest.raises(OptionError, match="not a float"):
        open_dataset("folder", a, depth_scale="mm").load(tum_like.index()[0])


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(OptionError, match="unknown dataset"):
        open_dataset("nyu3", tmp_path)
    with pytest.raises(InputImageError, match="does not exist"):
        open_dataset("middlebury", tmp_path / "nope")
    with pytest.raises(InputImageError, match="no samples"):
        open_dataset("middlebury", tmp_path).index()
    assert {"middlebury", "nyuv2", "kitti", "eth3d", "sintel", "ibims", "diode", "tum", "sun-rgbd", "folder"} == set(
        DATASETS
    )
