"""Everything downstream of `predict` on Depth Anything 3 results (issue 19, "One photo").

The DA3 mono test preset (`depth-anything-3-mono-tiny`, the parity fixture's stand-in weights)
gives depth up to scale, a sky mask and (with a focal) intrinsics. Its results go through the
depth files (every format, read back), the metric-only geometry (refused in one line), the
effects, eval, video (per frame and stabilised) and the HTTP service. The metric rule runs on
the same tiny network as a test-local metric spec (`metric_name`): DA3 metric = the mono
network + the focal rule, so metres, point clouds, normals and measurements are checked on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

import sharpdepth
from sharpdepth import registry
from sharpdepth.cli.main import main
from sharpdepth.io.depth_files import read_depth_result
from sharpdepth.models.depth_anything_3 import FAMILY, configs
from sharpdepth.models.depth_anything_3.processor import METRIC_FOCAL_PX
from sharpdepth.result import OutputKind

from conftest import assert_close_rel, data_dir, fixture_state_dict, fixtures_dir

MONO = "depth-anything-3-mono-tiny"
METRIC = "test-depth-anything-3-metric-tiny"
SIZE = "112"
FOCAL = 150.0
RELATIVE_REFUSAL = "predicts depth up to an unknown scale"  # both RelativeDepthError messages


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("da3_w") / "model.safetensors"
    save_file({"model." + k: v.contiguous() for k, v in fixture_state_dict("depth_anything_3/mono_tiny").items()},
              str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's photo at 160x120 (its stand-in sky head marks about a fifth of it as sky)."""
    rgb = Image.open(fixtures_dir() / "depth_anything_3" / "mono_tiny" / "a_336" / "image.png").convert("RGB")
    path = tmp_path_factory.mktemp("da3_photo") / "room.png"
    rgb.resize((160, 120), Image.Resampling.BILINEAR).save(path)
    return path


@pytest.fixture
def metric_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A DA3 metric spec on the tiny mono network (the released one is ViT-L), registered for one test."""
    spec = FAMILY.preset(
        name=METRIC, config=configs.MONO_TINY, output_kind=OutputKind.METRIC_DEPTH, license="Apache-2.0",
        license_class="commercial", description="test", test_only=True,
    )  # fmt: skip
    registry.get_spec(MONO)  # the registry is filled before the test entry goes in
    monkeypatch.setitem(registry._REGISTRY, METRIC, spec)
    return METRIC


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory, weights: Path, photo: Path) -> Path:
    """`predict` with every format and the colour view: the files every other test starts from."""
    out = tmp_path_factory.mktemp("da3_out")
    args = ["predict", str(photo), "--model", MONO, "--weights", str(weights), "--input-size", SIZE,
            "--focal-px", str(FOCAL), "--format", "npy,npz,png16,exr,pfm", "-q", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


# ---------------------------------------------------------------- files


def test_every_format_reads_back_as_the_prediction(predicted: Path, weights: Path, photo: Path):
    model = sharpdepth.load(MONO, weights=str(weights), input_size=int(SIZE))
    want = model.predict(str(photo), focal_px=FOCAL)
    assert want.kind is OutputKind.RELATIVE_DEPTH and want.sky is not None and want.sky.any()
    npz = read_depth_result(predicted / "room.npz")
    assert npz.kind is OutputKind.RELATIVE_DEPTH and npz.focal_px == FOCAL
    np.testing.assert_array_equal(npz.prediction, want.prediction)
    np.testing.assert_array_equal(npz.sky, want.sky)
    np.testing.assert_allclose(npz.intrinsics, want.intrinsics)
    written = sorted(p.name for p in predicted.iterdir())
    lossless = [n for n in written if n.endswith((".npy", ".exr", ".pfm")) and "relative_depth" in n]
    assert len(lossless) == 3, written
    for name in lossless:
        back = read_depth_result(predicted / name)
        assert back.kind is OutputKind.RELATIVE_DEPTH, name
        np.testing.assert_array_equal(back.prediction, want.prediction, err_msg=name)
    import OpenEXR

    (exr,) = [n for n in lossless if n.endswith(".exr")]
    with OpenEXR.File(str(predicted / exr)) as f:  # depth (up to scale) is a Z channel, not "disparity"
        assert set(f.channels()) == {"Z"} and f.header()["sharpdepth_kind"] == "relative_depth"
    (png,) = [n for n in written if n.endswith(".png") and "relative_depth" in n]
    back = read_depth_result(predicted / png)
    assert back.kind is OutputKind.RELATIVE_DEPTH
    assert_close_rel(back.prediction, want.prediction, 1e-4, "16-bit PNG")  # quantised to 1/65535 of the range
    side = json.loads((predicted / "room.json").read_text())
    assert side["output_kind"] == "relative_depth" and side["focal_source"] == "user"
    assert side["model"] == MONO and side["intrinsics"][0][0] == FOCAL
    assert any(n.endswith(".png") and "relative_depth" not in n for n in written)  # the colour view


# ---------------------------------------------------------------- geometry: metric only


@pytest.mark.parametrize(
    ("command", "extra"),
    [("pointcloud", ["-o", "{tmp}/c.ply"]), ("measure", ["20,20"]), ("measure", ["20,20", "60,60"])],
)
def test_relative_results_are_refused_by_metric_geometry(
    predicted: Path, weights: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command, extra
):
    extra = [e.format(tmp=tmp_path) for e in extra]
    for source in (["--depth", str(predicted / "room.npz")], ["--model", MONO, "--weights", str(weights)]):
        assert main([command, str(photo), *extra, *source]) == 2
        assert RELATIVE_REFUSAL in _one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_normals_of_a_relative_result_are_refused(predicted: Path, weights: Path, photo: Path, tmp_path: Path):
    """No camera (so no normals, no point cloud) for depth up to scale; `predict --normals` skips the
    view and says why in the sidecar instead of failing the batch."""
    from sharpdepth.errors import RelativeDepthError
    from sharpdepth.geometry.camera import Camera

    with pytest.raises(RelativeDepthError, match="no metric scale"):
        Camera.from_result(read_depth_result(predicted / "room.npz"))
    args = ["predict", str(photo), "--model", MONO, "--weights", str(weights), "--input-size", SIZE, "--focal-px",
            str(FOCAL), "--normals", "-q", "-o", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    assert not list(tmp_path.glob("*normals*"))
    assert "no metric geometry" in json.loads((tmp_path / "room.json").read_text())["normals_skipped"]


def test_metric_rule_gives_metres_for_geometry(metric_name: str, weights: Path, photo: Path, tmp_path: Path, capsys):
    """Metric = mono output * focal of the processed grid / 300; point clouds, normals and
    measurements of that result are in metres."""
    from sharpdepth.geometry.camera import Camera
    from sharpdepth.geometry.normals import surface_normals
    from sharpdepth.geometry.pointcloud import result_to_point_cloud

    mono = sharpdepth.load(MONO, weights=str(weights), input_size=int(SIZE)).predict(str(photo), focal_px=FOCAL)
    metric = sharpdepth.load(metric_name, weights=str(weights), input_size=int(SIZE)).predict(
        str(photo), focal_px=FOCAL
    )
    assert metric.is_metric and metric.focal_px == FOCAL
    focal_net = FOCAL * int(SIZE) / 160  # the 160-wide photo runs on a 112-wide grid
    np.testing.assert_allclose(metric.depth, mono.prediction * focal_net / METRIC_FOCAL_PX, rtol=1e-5)
    cloud = result_to_point_cloud(metric)
    assert len(cloud.points) > 0 and np.isfinite(cloud.points).all()
    normals = surface_normals(metric.depth, Camera.from_result(metric))
    finite = np.isfinite(normals).all(-1)
    np.testing.assert_allclose(np.linalg.norm(normals[finite], axis=-1), 1.0, atol=1e-5)
    np.savez(tmp_path / "m.npz", depth=metric.depth, focal_px=np.float64(FOCAL), output_kind="metric_depth",
             model=metric_name)  # fmt: skip
    assert main(["measure", str(photo), "80,60", "--depth", str(tmp_path / "m.npz"), "--json"]) == 0
    point = json.loads(capsys.readouterr().out)["point"]
    window = metric.depth[55:66, 75:86]  # the measuring window around (80, 60)
    assert window.min() <= point["depth_m"] <= window.max() and point["distance_from_camera_m"] >= point["depth_m"]
    assert main(["pointcloud", str(photo), "--model", metric_name, "--weights", str(weights), "--focal-px",
                 str(FOCAL), "-o", str(tmp_path / "c.ply")]) == 0  # fmt: skip
    assert (tmp_path / "c.ply").stat().st_size > 0


def test_align_to_points_treats_depth_up_to_scale_as_depth(predicted: Path, photo: Path, weights: Path, tmp_path):
    """`predict --align-to`: known depths 2.5x the relative depth at a few pixels give 2.5x the whole map
    (1/(2.5 d) is affine in 1/d: exact). Fitting d itself as disparity could not (and once did)."""
    relative = read_depth_result(predicted / "room.npz").prediction
    pixels = [(10, 100), (40, 20), (80, 60), (150, 110), (120, 30), (60, 90)]
    csv = tmp_path / "points.csv"
    csv.write_text("".join(f"{x},{y},{2.5 * relative[y, x]:.9g}\n" for x, y in pixels))
    out = tmp_path / "aligned"
    args = ["predict", str(photo), "--model", MONO, "--weights", str(weights), "--input-size", SIZE,
            "--focal-px", str(FOCAL), "--align-to", str(csv), "-q", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    aligned = read_depth_result(out / "room.npz")
    assert aligned.is_metric
    np.testing.assert_allclose(aligned.depth, 2.5 * relative, rtol=1e-4)
    side = json.loads((out / "room.json").read_text())
    assert side["alignment"]["abs_rel_at_points"] < 1e-5


# ---------------------------------------------------------------- effects


@pytest.fixture(scope="module")
def predicted_network(tmp_path_factory: pytest.TempPathFactory, weights: Path, photo: Path) -> Path:
    """The same prediction at the network's grid (112x84): effects resample it, sky and K included, to the photo."""
    out = tmp_path_factory.mktemp("da3_net")
    args = ["predict", str(photo), "--model", MONO, "--weights", str(weights), "--input-size", SIZE,
            "--focal-px", str(FOCAL), "--output-size", "network", "-q", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    return out / "room.npz"


def test_a_network_size_result_matches_the_photo(predicted_network: Path, predicted: Path, photo: Path):
    from sharpdepth.io.depth_files import match_result_to_image

    small = read_depth_result(predicted_network)
    assert small.prediction.shape == small.sky.shape == (84, 112)
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    matched = match_result_to_image(small, rgb)
    full = read_depth_result(predicted / "room.npz")
    assert matched.sky.shape == (120, 160) and (matched.sky == full.sky).mean() > 0.9
    np.testing.assert_allclose(matched.intrinsics, full.intrinsics)  # K of the photo, as predict gives it
    assert matched.focal_px == pytest.approx(FOCAL)


@pytest.mark.parametrize(
    ("command", "extra", "output"),
    [
        ("dof", ["--focus-px", "80,60"], "dof.jpg"),
        ("portrait", [], "portrait.png"),
        ("parallax", ["--duration", "0.4", "--fps", "5"], "parallax.mp4"),
        ("stereo", ["--format", "sbs"], "stereo.png"),
    ],
)
@pytest.mark.parametrize("grid", ["image", "network"])
def test_effects_run_on_relative_da3_depth(
    predicted: Path, predicted_network: Path, photo: Path, tmp_path: Path, command, extra, output, grid
):
    """The effects that need no metres take depth up to scale, at the photo's size or the network's."""
    out = tmp_path / output
    depth = predicted / "room.npz" if grid == "image" else predicted_network
    assert main([command, str(photo), *extra, "--depth", str(depth), "-o", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("command", "extra", "hint"),
    [("dof", ["--focus-m", "2"], "--focus-px"), ("stereo", ["--interaxial-mm", "65"], "--max-disparity")],
)
def test_metric_effect_settings_are_refused_with_the_right_words(predicted: Path, photo: Path, tmp_path: Path,
                                                                 capsys, command, extra, hint):  # fmt: skip
    out = tmp_path / "x.png"
    assert main([command, str(photo), *extra, "--depth", str(predicted / "room.npz"), "-o", str(out)]) == 2
    line = _one_line_error(capsys)
    assert "predicts depth up to an unknown scale" in line and hint in line and not out.exists()


# ---------------------------------------------------------------- eval, video, service


TUM = data_dir() / "rgbd" / "sequences" / "tum_fr2_desk"


class _ScaledTruth:
    """A relative-depth model that is the ground truth times an unknown scale: any right alignment scores 0."""

    name = fingerprint = "scaled-truth"
    output_kind = OutputKind.RELATIVE_DEPTH

    def __init__(self, samples) -> None:
        self.truth = {s.image.tobytes(): s.depth for s in samples}

    def predict(self, image, focal_px=None):
        from sharpdepth.result import DepthResult

        return DepthResult(3.7 * self.truth[np.ascontiguousarray(image).tobytes()].astype(np.float32), self.output_kind)


@pytest.mark.parametrize(("align", "space"), [(None, "disparity"), ("median", "depth"), ("lstsq", "depth")])
def test_eval_aligns_depth_up_to_scale_as_depth(align: str | None, space: str):
    """Depth up to scale is depth, not disparity: aligned in disparity space it is inverted first
    (once it was fitted as if it were disparity, with a negative scale)."""
    from sharpdepth.eval.datasets import open_dataset
    from sharpdepth.eval.protocols import get_protocol
    from sharpdepth.eval.runner import Evaluator
    from sharpdepth.eval.settings import EvalSettings

    ds = open_dataset("tum", TUM)
    model = _ScaledTruth([ds.sample(e) for e in ds.index()[:2]])
    settings = EvalSettings(limit=2, boundary=False, align=align, align_space=space if align == "lstsq" else None)
    report = Evaluator(ds, get_protocol("tum"), settings).run(model)
    assert report.alignment["space"] == space
    assert report.summary["abs_rel"] < 1e-4 and report.summary["delta1"] == 1.0
    assert all(r["scale"] > 0 for r in report.rows)


def test_eval_command_on_da3(weights: Path, tmp_path: Path):
    code = main(["eval", "-m", MONO, "--weights", str(weights), "-d", "tum", "--root", str(TUM), "--limit", "2",
                 "--no-boundary", "-o", str(tmp_path), "-q"])  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "tum_tum.json").read_text())
    model = doc["models"][MONO]
    assert model["output_kind"] == "relative_depth" and model["summary"]["n_images"] == 2
    assert all(row["scale"] > 0 for row in model["per_image"])  # 1/depth fitted to 1/GT: a positive scale
    assert 0 < model["summary"]["abs_rel"] < 1 and 0 < model["summary"]["delta1"] <= 1


def _short_clip(tmp_path: Path) -> Path:
    import av

    source = data_dir() / "videos" / "davis_dolphins.mp4"
    clip = tmp_path / "clip.mp4"
    with av.open(str(source)) as src, av.open(str(clip), "w") as dst:
        stream = dst.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 4:
                break
            rgb = frame.to_image().convert("RGB").resize((160, 96))
            dst.mux(stream.encode(av.VideoFrame.from_image(rgb)))
        dst.mux(stream.encode())
    return clip


def test_video_per_frame_and_stabilised(weights: Path, tmp_path: Path):
    clip = _short_clip(tmp_path)
    common = ["video", str(clip), "--model", MONO, "--weights", str(weights), "--input-size", SIZE,
              "--format", "npy", "--no-preview", "-q"]  # fmt: skip
    assert main([*common, "--no-stabilize", "-o", str(tmp_path / "raw")]) == 0
    assert main([*common, "-o", str(tmp_path / "stable")]) == 0
    raw = sorted((tmp_path / "raw").rglob("*.npy"))
    stable = sorted((tmp_path / "stable").rglob("*.npy"))
    assert len(raw) == len(stable) == 4
    sidecar = tmp_path / "raw" / "clip" / "clip.json"
    facts = json.loads(sidecar.read_text())
    assert facts["output_kind"] == "relative_depth" and facts["unit"] == "relative depth (unitless, up to scale)"
    model = sharpdepth.load(MONO, weights=str(weights), input_size=int(SIZE))
    first_frame = np.asarray(_first_frame(clip))
    np.testing.assert_allclose(np.load(raw[0]), model.predict(first_frame).prediction, rtol=1e-5, atol=1e-6)
    for a, b in zip(raw, stable, strict=True):
        r, st = np.load(a), np.load(b)
        assert "relative_depth" in b.name and r.shape == st.shape == (96, 160) and (st > 0).all()
        # still depth (the stabiliser works on 1/depth and must hand depth back): near stays near
        assert np.corrcoef(np.log(r).ravel(), np.log(st).ravel())[0, 1] > 0.9


def _first_frame(clip: Path) -> Image.Image:
    import av

    with av.open(str(clip)) as src:
        return next(src.decode(video=0)).to_image().convert("RGB")


def test_http_service_answers_with_da3(weights: Path, photo: Path, predicted: Path, tmp_path: Path):
    """`/v1/depth` gives the files `predict` writes (sky and K included); metric routes refuse in one JSON line."""
    import time

    from fastapi.testclient import TestClient

    from sharpdepth.engine.settings import ModelSettings
    from sharpdepth.service.app import create_app
    from sharpdepth.service.settings import ServeSettings

    app = create_app(ServeSettings(), ModelSettings(name=MONO, weights=weights, input_size=int(SIZE)))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        files = {"image": ("room.png", photo.read_bytes(), "image/png")}
        r = client.post("/v1/depth", params={"focal_px": FOCAL}, files=files)
        assert r.status_code == 200, r.text
        assert r.json()["output_kind"] == "relative_depth" and r.json()["focal_px"] == FOCAL
        r = client.post("/v1/depth", params={"focal_px": FOCAL, "format": "npz"}, files=files)
        assert r.status_code == 200, r.text
        (tmp_path / "http.npz").write_bytes(r.content)
        got, want = read_depth_result(tmp_path / "http.npz"), read_depth_result(predicted / "room.npz")
        np.testing.assert_array_equal(got.prediction, want.prediction)
        np.testing.assert_array_equal(got.sky, want.sky)
        np.testing.assert_allclose(got.intrinsics, want.intrinsics)
        for route, params in (("/v1/measure", {"points": "20,20"}), ("/v1/pointcloud", {})):
            r = client.post(route, params={"focal_px": FOCAL, **params}, files=files)
            assert r.status_code == 400 and "predicts depth up to an unknown scale" in r.json()["error"], route


@pytest.mark.slow  # starting Ray: ~100 s on a shared 2-core machine (passed there)
def test_predict_on_ray_writes_what_the_local_run_writes(weights: Path, photo: Path, tmp_path: Path):
    """`predict --ray` (a local Ray instance, one actor) with the DA3 preset: the same files, byte for byte."""
    import os
    import subprocess
    import sys

    pytest.importorskip("ray")
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)  # never join a cluster that happens to be around
    base = [sys.executable, "-m", "sharpdepth", "predict", str(photo), "--model", MONO, "--weights", str(weights),
            "--input-size", SIZE, "--focal-px", str(FOCAL), "--format", "npz", "-q"]  # fmt: skip
    for out, extra in (("local", []), ("ray", ["--ray", "--ray-actors", "1"])):
        run = subprocess.run([*base, *extra, "-o", str(tmp_path / out)], capture_output=True, text=True, env=env)
        assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local == sorted(p.name for p in (tmp_path / "ray").iterdir()) and "room.npz" in local
    for name in local:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
