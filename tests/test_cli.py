"""The `sharpdepth` command line end to end on the tiny Depth Pro (fixture weights).

Covers: inputs (files, directories mirrored, globs, .txt lists), every output format,
EXIF / user / model focal priority, --skip-existing, per-file errors that do not
stop the batch, and one-line messages (no traceback) for every bad input.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sharpdepth.cli.main import main
from sharpdepth.io.depth_files import read_depth_result

from conftest import fixture_state_dict, stand_in_state_dict


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), path)
    return path


def _photo(path: Path, size=(160, 120), f35: int | None = None, orientation: int | None = None) -> Path:
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))  # the same picture in every process
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([xx * 255 // size[0], yy * 255 // size[1], rng.integers(0, 255, (size[1], size[0]))], -1)
    img = Image.fromarray(rgb.astype(np.uint8))
    exif = img.getexif()
    if f35 is not None:
        exif.get_ifd(0x8769)[0xA405] = f35
    if orientation is not None:
        exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif, quality=95)
    return path


def run(*args: str) -> int:
    return main([str(a) for a in args])


def _base(tiny_weights: Path) -> list[str]:
    return ["--model", "depth-pro-tiny", "--weights", str(tiny_weights), "--quiet"]


def test_predict_every_format_and_view(tmp_path, tiny_weights):
    img = _photo(tmp_path / "in" / "a.jpg", f35=28)
    out = tmp_path / "out"
    fmts = "npy,npz,png16,exr,pfm"
    code = run("predict", img, "-o", out, "--format", fmts, "--colormap", "turbo", "--normals", "--side-by-side",
               *_base(tiny_weights))  # fmt: skip
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    for expected in ("a.npz", "a_depth.npy", "a_depth.png", "a_depth.exr", "a_depth.pfm", "a_turbo.png",
                     "a_sbs.png", "a_normals.png", "a.json"):  # fmt: skip
        assert expected in names
    side = json.loads((out / "a.json").read_text())
    assert side["focal_source"] == "exif"
    assert side["focal_px"] == pytest.approx(28 * math.hypot(160, 120) / math.hypot(36, 24))
    assert side["model"] == "depth-pro-tiny" and len(side["weights_sha256"]) == 64
    ref = np.load(out / "a_depth.npy")
    assert ref.shape == (120, 160) and np.all(ref > 0)
    for name in ("a.npz", "a_depth.exr", "a_depth.pfm"):
        np.testing.assert_array_equal(read_depth_result(out / name).prediction, ref)
    png = read_depth_result(out / "a_depth.png").prediction
    near = ref < 65.5  # millimetre PNGs hold 0..65.535 m; deeper pixels are written as invalid (issue 13)
    np.testing.assert_allclose(png[near], ref[near], atol=6e-4)
    assert np.isnan(png[ref > 65.5355]).all() and (ref > 65.5355).any()
    with Image.open(out / "a_sbs.png") as sbs:
        assert sbs.size == (320, 120)


def test_focal_priority_user_over_exif_over_model(tmp_path, tiny_weights):
    exif_img = _photo(tmp_path / "e.jpg", f35=50)
    plain = _photo(tmp_path / "p.jpg")
    out = tmp_path / "o"
    assert run("predict", exif_img, plain, "-o", out, "--no-view", *_base(tiny_weights)) == 0
    assert json.loads((out / "e.json").read_text())["focal_source"] == "exif"
    model_side = json.loads((out / "p.json").read_text())
    assert model_side["focal_source"] == "model" and model_side["focal_px"] > 0
    assert run("predict", exif_img, "-o", out / "u", "--focal-px", "600", "--no-view", *_base(tiny_weights)) == 0
    user = json.loads((out / "u" / "e.json").read_text())
    assert user["focal_source"] == "user" and user["focal_px"] == 600
    # Depth scales with the focal length: D = f / (W * C).
    d_exif = np.load(out / "e.npz")["depth"]
    d_user = np.load(out / "u" / "e.npz")["depth"]
    f_exif = json.loads((out / "e.json").read_text())["focal_px"]
    ok = (d_exif < 9000) & (d_user < 9000)  # away from the 1e-4 inverse-depth clamp
    np.testing.assert_allclose(d_user[ok] / d_exif[ok], 600 / f_exif, rtol=1e-4)
    assert run("predict", plain, "-o", out / "v", "--fov-deg", "90", "--no-view", *_base(tiny_weights)) == 0
    assert json.loads((out / "v" / "p.json").read_text())["fov_deg"] == pytest.approx(90)


def test_directories_globs_lists_mirror_and_resume(tmp_path, tiny_weights):
    root = tmp_path / "shots"
    _photo(root / "x" / "1.jpg")
    _photo(root / "y" / "1.jpg")
    _photo(root / "2.png")
    out = tmp_path / "out"
    assert run("predict", root, "-o", out, "--no-view", *_base(tiny_weights)) == 0
    assert (out / "x" / "1.json").is_file() and (out / "y" / "1.json").is_file() and (out / "2.json").is_file()
    stamp = (out / "x" / "1.npz").stat().st_mtime_ns
    assert run("predict", root, "-o", out, "--skip-existing", "--no-view", *_base(tiny_weights)) == 0
    assert (out / "x" / "1.npz").stat().st_mtime_ns == stamp
    listing = tmp_path / "list.txt"
    listing.write_text("shots/2.png\n# comment\n\nshots/x/1.jpg\n")
    assert run("predict", listing, "-o", tmp_path / "fromlist", "--no-view", *_base(tiny_weights)) == 0
    assert {p.name for p in (tmp_path / "fromlist").glob("*.json")} == {"2.json", "1.json"}
    pattern = str(root / "*" / "*.jpg")
    assert run("predict", pattern, "-o", tmp_path / "g", "--no-view", *_base(tiny_weights)) == 0
    assert (tmp_path / "g" / "x" / "1.json").is_file() and (tmp_path / "g" / "y" / "1.json").is_file()


def test_batch_continues_past_bad_files(tmp_path, tiny_weights, capsys):
    good = _photo(tmp_path / "good.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code = run("predict", good, tmp_path / "broken.jpg", tmp_path / "empty.png", tmp_path / "missing.jpg",
               "-o", out, "--batch-size", "2", "--no-view", *_base(tiny_weights))  # fmt: skip
    assert code == 1
    assert (out / "good.json").is_file()
    err = capsys.readouterr().err
    assert "3 failed" in err and "broken.jpg" in err and "missing.jpg" in err
    assert "Traceback" not in err
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def test_batched_equals_single(tmp_path, tiny_weights):
    a, b = _photo(tmp_path / "a.jpg"), _photo(tmp_path / "b.jpg", size=(90, 200))
    assert run("predict", a, b, "-o", tmp_path / "one", "--no-view", *_base(tiny_weights)) == 0
    assert run("predict", a, b, "-o", tmp_path / "two", "--batch-size", "2", "--no-view", *_base(tiny_weights)) == 0
    for name in ("a.npz", "b.npz"):
        np.testing.assert_allclose(
            np.load(tmp_path / "one" / name)["depth"], np.load(tmp_path / "two" / name)["depth"], rtol=1e-4
        )


def test_exif_orientation_output_matches_upright_image(tmp_path, tiny_weights):
    img = _photo(tmp_path / "r.jpg", size=(160, 120), orientation=6)  # stored landscape, shown portrait
    assert run("predict", img, "-o", tmp_path / "o", "--no-view", *_base(tiny_weights)) == 0
    assert np.load(tmp_path / "o" / "r.npz")["depth"].shape == (160, 120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "depth-pr0"], "unknown model 'depth-pr0'; did you mean"),
        (["--precision", "fp16"], "fp16 is GPU-only"),
        (["--precision", "int3"], "unknown precision"),
        pytest.param(
            ["--device", "cuda"],
            "no CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU"),
        ),
        (["--format", "jpeg"], "unknown format"),
        (["--colormap", "rainbow"], "unknown colormap"),
        (["--focal-px", "-5"], "focal length must be a positive"),
        (["--weights", "/nonexistent/w.pt"], "no such file"),
    ],
)
def test_bad_options_one_line(tmp_path, tiny_weights, capsys, args, message):
    img = _photo(tmp_path / "a.jpg")
    base = ["--model", "depth-pro-tiny", "--weights", str(tiny_weights), "--quiet"]
    code = run("predict", img, "-o", tmp_path / "o", *base, *args)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err, err
    assert "Traceback" not in err


def test_weights_that_do_not_fit(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    img = _photo(tmp_path / "a.jpg")
    assert run("predict", img, "-o", tmp_path / "o", "--model", "depth-pro-tiny", "--weights", bad, "-q") == 2
    err = capsys.readouterr().err
    assert "does not fit this model" in err and "Traceback" not in err
    pickled = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Evil()}, pickled)
    assert run("predict", img, "-o", tmp_path / "o", "--model", "depth-pro-tiny", "--weights", pickled, "-q") == 2
    assert "refusing to unpickle" in capsys.readouterr().err


class _Evil:
    pass


def test_missing_weights_offline_message(tmp_path):
    img = _photo(tmp_path / "a.jpg")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "sharpdepth.cli.main", "predict", str(img), "-o", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "hf download apple/DepthPro depth_pro.pt" in lines[0] and "--weights" in lines[0]


def test_info_command(tmp_path, capsys):
    img = _photo(tmp_path / "a.jpg", f35=26, orientation=8)
    assert run("info", img, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["orientation"] == 8 and (data["width"], data["height"]) == (120, 160)
    assert data["focal_px"] == pytest.approx(26 * 200 / math.hypot(36, 24))


def test_weights_list_and_convert(tmp_path, tiny_weights, capsys):
    assert run("weights", "list") == 0
    listing = capsys.readouterr().out
    assert "depth-pro" in listing and "metric_depth" in listing
    dest = tmp_path / "tiny.safetensors"
    assert run("weights", "convert", tiny_weights, dest, "--model", "depth-pro-tiny") == 0
    from safetensors.torch import load_file

    original = torch.load(tiny_weights, weights_only=True)
    converted = load_file(dest)
    assert set(converted) == set(original)
    assert all(torch.equal(converted[k], original[k]) for k in original)


@pytest.fixture(scope="module")
def da_tiny_weights(tmp_path_factory) -> Path:
    import sharpdepth

    path = tmp_path_factory.mktemp("w") / "da_tiny.pt"
    net = sharpdepth.load("depth-anything-v2-tiny", random_weights=True).net
    # A positive final bias keeps the last ReLU from zeroing the map, as the fixtures' overrides do.
    torch.save(stand_in_state_dict(net, {"depth_head.scratch.output_conv2.2.bias": 3.0}), path)
    return path


def test_relative_model_outputs_and_align_to(tmp_path, da_tiny_weights, capsys):
    img = _photo(tmp_path / "a.jpg", size=(140, 100))
    base = ["--model", "depth-anything-v2-tiny", "--weights", str(da_tiny_weights), "-q"]
    out = tmp_path / "rel"
    assert run("predict", img, "-o", out, "--format", "npz,npy,png16", *base) == 0
    side = json.loads((out / "a.json").read_text())
    assert side["output_kind"] == "relative_disparity" and "depth_m" not in side
    assert (out / "a_disparity.npy").is_file() and not (out / "a_depth.npy").exists()
    assert read_depth_result(out / "a_disparity.png").kind.value == "relative_disparity"
    # Known depths at a few pixels -> metric output, with the fit recorded.
    disparity = np.load(out / "a_disparity.npy")
    pts = [(10, 10), (100, 20), (60, 80), (130, 90), (30, 60)]
    scale, shift = 0.5, 0.2
    rows = ["x,y,depth_m"] + [f"{x},{y},{1.0 / (scale * disparity[y, x] + shift)}" for x, y in pts]
    csv = tmp_path / "pts.csv"
    csv.write_text("\n".join(rows) + "\n")
    assert run("predict", img, "-o", tmp_path / "met", "--align-to", csv, "--format", "npz", *base) == 0
    side = json.loads((tmp_path / "met" / "a.json").read_text())
    assert side["output_kind"] == "metric_depth"
    assert side["alignment"]["abs_rel_at_points"] < 1e-4
    depth = np.load(tmp_path / "met" / "a.npz")["depth"]
    for x, y in pts:
        assert depth[y, x] == pytest.approx(1.0 / (scale * disparity[y, x] + shift), rel=1e-4)
    capsys.readouterr()
    code = run("predict", img, "-o", tmp_path / "x", "--model", "depth-pro-tiny", "--align-to", csv, "-q",
               "--weights", str(da_tiny_weights))  # fmt: skip
    assert code == 2 and "already predicts metres" in capsys.readouterr().err
