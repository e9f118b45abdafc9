"""SHARP against the official apple/ml-sharp outputs (fixtures/sharp, README there).

Network outputs (two disparity layers, raw prediction head, Gaussians before unprojection) and
final metric Gaussians, for a given focal length and for the default focal (no EXIF: a 30 mm
lens, as `sharp predict`). Per-Gaussian files are subsampled on a grid; rotations are compared
as covariances. The full configuration is slow (minutes per forward): marked slow.
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from sharpdepth.models.sharp.checkpoint import unused_shapes
from sharpdepth.models.sharp.compose import covariances, unproject, unprojection_matrix
from sharpdepth.registry import get_spec
from sharpdepth.result import FocalSource

from conftest import fixture_manifest, fixture_state_dict, fixtures_dir

FIELDS = {
    "mean_vectors": "means",
    "singular_values": "scales",
    "quaternions": "quaternions",
    "colors": "colors",
    "opacities": "opacities",
}


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def expected(folder: str) -> dict:
    return json.loads((fixtures_dir() / "sharp" / folder / "expected.json").read_text())


def subsample_index(grid: list[int], side: int) -> np.ndarray:
    """Flat indices of the stored grid: [l, i, j] -> l * side^2 + grid[i] * side + grid[j]."""
    g = np.asarray(grid)
    return np.arange(2)[:, None, None] * side * side + g[None, :, None] * side + g[None, None, :]


def assert_gaussians_match(got: dict[str, np.ndarray], folder: str, prefix: str) -> None:
    """got: field -> (G, C) arrays of all Gaussians; compared on the fixture's grid."""
    exp = expected(folder)
    idx = subsample_index(exp["subsample"]["gaussian_grid"], 768)
    ref = {f: np.load(fixtures_dir() / "sharp" / folder / f"{prefix}{f}.npy") for f in FIELDS}
    sub = {f: np.asarray(got[f])[idx].reshape(ref[f].shape) for f in FIELDS}
    for f in ("mean_vectors", "singular_values", "colors", "opacities"):
        assert rel_err(sub[f], ref[f]) <= 1e-4, f
    cov_a = covariances(
        torch.from_numpy(sub["quaternions"]).double(), torch.from_numpy(sub["singular_values"]).double()
    )
    cov_b = covariances(
        torch.from_numpy(ref["quaternions"]).double(), torch.from_numpy(ref["singular_values"]).double()
    )
    assert rel_err(cov_a.numpy(), cov_b.numpy()) <= 1e-4
    s = ref["singular_values"].reshape(-1, 3)
    separated = np.ones(len(s), bool)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        separated &= np.abs(s[:, i] - s[:, j]) > 1e-3 * np.maximum(s[:, i], s[:, j])
    qa = sub["quaternions"].reshape(-1, 4)
    qb = ref["quaternions"].reshape(-1, 4)
    dots = np.abs((qa / np.linalg.norm(qa, axis=1, keepdims=True) * qb).sum(1))
    assert ((dots < 1 - 1e-4) & separated).sum() <= 1e-4 * separated.sum()


@cache
def tiny_checkpoint(tmp: str) -> str:
    path = f"{tmp}/sharp_tiny.pt"
    torch.save(fixture_state_dict("sharp/tiny"), path)
    return path


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_checkpoint(str(tmp_path_factory.mktemp("sharp")))


def image(folder: str) -> np.ndarray:
    return np.asarray(Image.open(fixtures_dir() / "sharp" / folder / "image.png").convert("RGB"))


def run_network(name: str, folder: str, focal: float):
    model = sharpdepth.load(name, weights=None, random_weights=True)
    model.net.load_state_dict(model.spec.convert_state_dict(fixture_state_dict(f"sharp/{folder}"), "official"))
    rgb = image(folder)
    x = model.processor.preprocess(rgb)
    with torch.inference_mode():
        out = model.net(x[None], torch.tensor([focal / rgb.shape[1]]).float())
    return out, rgb


def check_network(folder: str, name: str) -> None:
    out, rgb = run_network(name, folder, 600.0)
    exp = expected(folder)
    grid = exp["subsample"]["gaussian_grid"]
    base = fixtures_dir() / "sharp" / folder
    disparity = np.load(base / "net_output_monodepth_disparity.npy")
    assert rel_err(out.disparity.numpy()[:, :, ::5, ::5], disparity) <= 1e-4
    delta = out.delta.numpy()[..., grid, :][..., grid]
    assert rel_err(delta, np.load(base / "net_output_delta_values.npy")) <= 1e-4
    idx = subsample_index(grid, 768)
    g = out.gaussians
    for f, attr in FIELDS.items():
        ref = np.load(base / f"net_output_{f}.npy")
        assert rel_err(getattr(g, attr)[0].numpy()[idx].reshape(ref.shape), ref) <= 1e-4, f
    # the pipeline's unprojection of these very outputs
    h, w = rgb.shape[:2]
    metric = unproject(g, 0, unprojection_matrix(600.0, w, h, 1536))
    assert_gaussians_match({f: getattr(metric, a).numpy() for f, a in FIELDS.items()}, folder, "pipeline_fpx600_")


def test_tiny_network_and_pipeline_at_given_focal():
    check_network("tiny", "sharp-tiny")


def test_tiny_default_focal_through_the_public_api(tiny_pt: str):
    """No EXIF: the official 30 mm assumption, reported as the default (not the user's)."""
    model = sharpdepth.load("sharp-tiny", weights=tiny_pt)
    g = model.predict_gaussians(str(fixtures_dir() / "sharp" / "tiny" / "image.png"))
    assert isinstance(g, sharpdepth.Gaussians)
    assert g.focal_source == FocalSource.DEFAULT
    assert g.focal_px == pytest.approx(expected("tiny")["pipeline"]["exif"]["f_px"], rel=1e-9)
    assert len(g) == 2 * 768 * 768 and g.image_size == (640, 480)
    assert_gaussians_match({f: getattr(g, a) for f, a in FIELDS.items()}, "tiny", "pipeline_exif_")


@pytest.mark.parametrize(("name", "folder"), [("sharp-tiny", "tiny"), ("sharp", "full")])
def test_checkpoint_layout_is_the_official_one(name: str, folder: str):
    """Network keys + the checked-and-dropped never-read keys = the official state dict, shapes too."""
    spec = get_spec(name)
    with torch.device("meta"):
        net = spec.build()
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()} | unused_shapes(spec.config)
    official = {k: tuple(s) for k, s in fixture_manifest(f"sharp/{folder}")["state_dict"]}
    assert ours == official
    manifest_unused = set(fixture_manifest(f"sharp/{folder}")["unused_keys"])
    assert set(unused_shapes(spec.config)) <= manifest_unused


def test_checkpoint_without_the_unused_keys_is_refused(tmp_path):
    state = fixture_state_dict("sharp/tiny")
    state.pop("depth_alignment.scale_map_estimator.conv_out.bias")
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(sharpdepth.WeightsError, match="depth_alignment"):
        sharpdepth.load("sharp-tiny", weights=tmp_path / "bad.pt")


def test_the_networks_own_state_dict_loads_back(tmp_path):
    """What `weights random` or a fine-tune writes (network keys only) loads and predicts the same."""
    from safetensors.torch import save_file

    from sharpdepth.cli.main import main

    weights = tmp_path / "own.safetensors"
    assert main(["weights", "random", "sharp-tiny", str(weights)]) == 0
    model = sharpdepth.load("sharp-tiny", weights=weights)
    again = tmp_path / "again.safetensors"
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(again))
    reloaded = sharpdepth.load("sharp-tiny", weights=again)
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, reloaded.net.state_dict()[key]), key


def test_predict_gives_metric_depth_at_the_default_focal(tiny_pt: str):
    """`predict` with SHARP: the depth branch's first layer in metres; without a focal length the
    official 30 mm assumption, reported as the default (not as the user's, nor as estimated)."""
    model = sharpdepth.load("sharp-tiny", weights=tiny_pt)
    image = str(fixtures_dir() / "sharp" / "tiny" / "image.png")
    assumed = model.predict(image)
    assert assumed.is_metric and assumed.focal_source == FocalSource.DEFAULT
    assert assumed.focal_px == pytest.approx(30.0 * math.hypot(640, 480) / math.hypot(36, 24), rel=1e-9)
    assert assumed.depth.shape == (480, 640) and np.isfinite(assumed.depth).all() and (assumed.depth > 0).all()


def test_presets_licence_and_listing():
    assert "sharp" in sharpdepth.list_models(license="non-commercial")
    assert "sharp" not in sharpdepth.list_models(license="commercial")
    assert "sharp-tiny" not in sharpdepth.list_models()
    assert "sharp-tiny" in sharpdepth.list_models(include_test_only=True)
    spec = get_spec("sharp")
    assert spec.sources and spec.sources[0].filename == "sharp_2572gikvuh.pt"
    with torch.device("meta"):
        held = sum(p.numel() for p in spec.build().parameters())
    assert spec.params_millions == pytest.approx(held / 1e6, abs=0.005)


def test_depth_pro_is_reused_not_rewritten():
    from sharpdepth.models.depth_pro import DepthPro

    net = get_spec("sharp-tiny").build()
    assert isinstance(net.monodepth_model.monodepth_predictor, DepthPro)
    assert not hasattr(net.monodepth_model.monodepth_predictor, "fov")


@pytest.mark.slow
def test_full_network_and_pipeline_at_given_focal():
    check_network("full", "sharp")


# --------------------------------------------------------------------------- Gaussians, PLY, renderer


def fixture_gaussians() -> sharpdepth.Gaussians:
    """The tiny fixture's stored subsample of final Gaussians (48,050), in stored order."""
    base = fixtures_dir() / "sharp" / "tiny"
    arr = {f: np.load(base / f"pipeline_fpx600_{f}.npy") for f in FIELDS}
    return sharpdepth.Gaussians(
        means=arr["mean_vectors"].reshape(-1, 3),
        scales=arr["singular_values"].reshape(-1, 3),
        quaternions=arr["quaternions"].reshape(-1, 4),
        colors=arr["colors"].reshape(-1, 3),
        opacities=arr["opacities"].reshape(-1),
        focal_px=600.0,
        image_size=(640, 480),
    )


def test_renderer_matches_the_official_reference():
    """Colour/alpha: mean |diff| <= 1e-5 and at most 1e-3 of values off by > 1e-4; depth where alpha > 0.5."""
    render = fixtures_dir() / "sharp" / "render"
    tol = json.loads((render / "expected.json").read_text())["tolerance"]
    g = fixture_gaussians()
    views, ks = np.load(render / "viewmats.npy"), np.load(render / "Ks.npy")
    ref_color = np.load(render / "render_color.npy").transpose(0, 2, 3, 1)
    ref_alpha = np.load(render / "render_alpha.npy")[:, 0]
    ref_depth = np.load(render / "render_depth.npy")[:, 0]
    for i in range(len(views)):
        out = g.render(views[i], ks[i], 160, 120, device="cpu")
        for got, ref, key in ((out.color, ref_color[i], "render_color"), (out.alpha, ref_alpha[i], "render_alpha")):
            diff = np.abs(got.astype(np.float64) - ref)
            assert diff.mean() <= tol[key]["mean_abs"]
            assert (diff > 1e-4).mean() <= tol[key]["frac_abs_above_1e-4_max"]
        sel = ref_alpha[i] > 0.5
        assert np.abs(out.depth[sel] - ref_depth[i][sel]).max() <= 1e-3 * np.abs(ref_depth[i][sel]).max()


def test_render_of_an_empty_view_is_transparent():
    g = fixture_gaussians()
    behind = np.diag([1.0, 1.0, -1.0, 1.0])  # camera turned around: every Gaussian is behind it
    behind[0, 0] = -1.0
    out = g.render(behind, np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]]), 80, 60)
    assert out.alpha.max() == 0 and out.color.max() == 0


def test_ply_is_the_official_layout_and_reads_back(tmp_path):
    import plyfile

    from sharpdepth.geometry.gaussians import load_ply

    g = fixture_gaussians()
    path = g.save_ply(tmp_path / "scene.ply")
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]  # no temporary file left
    header = expected("tiny")["pipeline"]["ply"]["header"].replace("1179648", str(len(g)))
    assert path.read_bytes().startswith(header.encode())
    data = plyfile.PlyData.read(str(path))  # an independent reader
    v = data["vertex"].data
    assert np.allclose(np.exp(v["scale_1"]), g.scales[:, 1], rtol=1e-6)
    assert np.allclose(1 / (1 + np.exp(-v["opacity"])), g.opacities, atol=1e-6)
    assert list(data["intrinsic"].data["intrinsic"]) == [600.0, 0, 320.0, 0, 600.0, 240.0, 0, 0, 1]
    back = load_ply(path)
    assert back.focal_px == 600.0 and back.image_size == (640, 480)
    for attr in ("means", "quaternions"):
        assert np.array_equal(getattr(back, attr), getattr(g, attr))
    for attr in ("scales", "colors", "opacities"):
        assert np.allclose(getattr(back, attr), getattr(g, attr), rtol=1e-5, atol=1e-6)


def test_gaussians_refuse_mismatched_arrays():
    with pytest.raises(sharpdepth.OptionError, match="differ in length"):
        sharpdepth.Gaussians(
            means=np.zeros((3, 3)), scales=np.ones((3, 3)), quaternions=np.ones((2, 4)),
            colors=np.zeros((3, 3)), opacities=np.ones(3),
        )  # fmt: skip


def test_point_cloud_of_the_centres():
    g = fixture_gaussians()
    cloud = g.to_point_cloud()
    assert len(cloud) == len(g) and cloud.colors is not None and cloud.colors.dtype == np.uint8
    lo, hi = g.bounds()
    assert np.all(lo <= cloud.points.min(0)) and np.all(hi >= cloud.points.max(0))


# --------------------------------------------------------------------------- command line


def test_render_command_writes_a_video_of_the_scene(tmp_path):
    import av

    from sharpdepth.cli.main import main

    g = fixture_gaussians()
    g.image_size = (96, 72)  # a small picture: the video is rendered at this size
    g.focal_px = 90.0
    scene = g.save_ply(tmp_path / "scene.ply")
    assert main(["render", str(scene), "--steps", "3", "--trajectory", "dolly_zoom"]) == 0
    video = tmp_path / "scene_dolly_zoom.mp4"
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (72, 96, 3) and frames[0].max() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.ply", "scene_dolly_zoom.mp4"]


def test_splat_reports_bad_inputs_without_a_traceback(tmp_path, capsys):
    from sharpdepth.cli.main import main

    assert main(["splat", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "missing.jpg" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_trajectories_start_at_the_source_camera():
    from sharpdepth.geometry.trajectory import TRAJECTORIES, trajectory

    depths = np.linspace(1.0, 3.0, 1000)
    for name in ("rotate_forward", "dolly_zoom"):
        views = trajectory(depths, 600.0, 640, 480, name, 10)
        assert np.allclose(views[0].world_to_camera, np.eye(4), atol=1e-12)
        assert views[0].K[0, 2] == pytest.approx(319.5)  # official render principal point (W - 1) / 2
    assert set(TRAJECTORIES) >= {"rotate_forward", "rotate", "swipe", "shake", "dolly_zoom"}
    with pytest.raises(sharpdepth.OptionError, match="unknown trajectory"):
        trajectory(depths, 600.0, 640, 480, "spin")
