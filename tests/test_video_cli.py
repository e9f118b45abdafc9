"""`sharpdepth video` end to end on a tiny Depth Anything (random weights): outputs, timing, audio,
image sequences, selection, a failing clip in a batch, resuming, unwritable output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from sharpdepth.cli.main import main
from sharpdepth.io.depth_files import read_depth_result
from video_clips import make_clip, pattern, probe


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = sharpdepth.load("depth-anything-v2-tiny", random_weights=True).net
    path = tmp_path_factory.mktemp("w") / "da_tiny.pt"
    torch.save(net.state_dict(), path)
    return path


def run(weights: Path, *args: object) -> int:
    base = ["--model", "depth-anything-v2-tiny", "--weights", str(weights), "--input-size", "56", "-q"]
    return main(["video", *[str(a) for a in args], *base])


def sidecar(folder: Path) -> dict:
    return json.loads((folder / f"{folder.name}.json").read_text())


def test_clip_outputs_keep_count_rate_size_audio(tmp_path, weights):
    clip = make_clip(tmp_path / "clip.mp4", n=12, w=64, h=48, fps=12, audio=True)
    assert run(weights, clip, "-o", tmp_path / "out", "--side-by-side") == 0
    folder = tmp_path / "out" / "clip"
    side = sidecar(folder)
    assert side["fps"] == 12.0 and side["frame_count"] == 12 and (side["width"], side["height"]) == (64, 48)
    assert side["frame_files"]["npz"] == [f"{i:06d}.npz" for i in range(12)]
    assert side["frame_indices"] == list(range(12)) and side["stabilizer"]["enabled"] is True
    assert side["output_kind"] == "relative_disparity" and side["model"] == "depth-anything-v2-tiny"
    assert probe(folder / side["videos"]["preview"]) == (12, 64, 48, 12.0, True)
    assert probe(folder / side["videos"]["side_by_side"]) == (12, 128, 48, 12.0, True)
    result = read_depth_result(folder / "000005.npz")
    assert result.prediction.shape == (48, 64) and np.isfinite(result.prediction).all()
    assert not [p for p in folder.iterdir() if ".part" in p.name]


def test_image_sequence_to_exr_with_fps_and_selection(tmp_path, weights):
    frames = tmp_path / "shot"
    frames.mkdir()
    for i in range(8):
        Image.fromarray(pattern(i, 40, 56)).save(frames / f"f{i + 1}.png")  # f1 .. f8: natural order
    code = run(weights, frames, "-o", tmp_path / "out", "--format", "exr,png16", "--fps", "24", "--every", "2",
               "--start", "0.05", "--no-stabilize")  # fmt: skip
    assert code == 0
    side = sidecar(tmp_path / "out" / "shot")
    assert side["frame_indices"] == [2, 4, 6] and side["fps"] == 12.0 and side["stabilizer"]["enabled"] is False
    assert side["frame_files"]["exr"] == ["000002_disparity.exr", "000004_disparity.exr", "000006_disparity.exr"]
    assert np.allclose(side["timestamps_s"], [2 / 24, 4 / 24, 6 / 24])
    exr = read_depth_result(tmp_path / "out" / "shot" / "000004_disparity.exr")
    assert exr.prediction.shape == (40, 56)
    assert probe(tmp_path / "out" / "shot" / "shot_preview.mp4")[:3] == (3, 56, 40)


def test_a_bad_clip_does_not_stop_the_batch(tmp_path, weights, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    good = make_clip(tmp_path / "good.mp4", n=4)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(weights, bad, empty, good, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "2 failed:" in err and "bad.mp4: " in err and "no image frames" in err and "Traceback" not in err
    assert sidecar(tmp_path / "out" / "good")["frame_count"] == 4
    assert not (tmp_path / "out" / "bad").exists()


def test_resume_keeps_finished_frames_and_adds_missing_ones(tmp_path, weights):
    clip = make_clip(tmp_path / "r.mp4", n=10, w=56, h=40, fps=10)
    out = tmp_path / "out"
    assert run(weights, clip, "-o", out) == 0
    folder = out / "r"
    # Simulate an interruption after frame 6: no sidecar, no preview, frames 7-9 missing.
    (folder / "r.json").unlink()
    (folder / "r_preview.mp4").unlink()
    for i in (7, 8, 9):
        (folder / f"{i:06d}.npz").unlink()
    kept = {i: (folder / f"{i:06d}.npz").stat().st_mtime_ns for i in range(7)}
    before = {i: read_depth_result(folder / f"{i:06d}.npz").prediction for i in range(7)}
    assert run(weights, clip, "-o", out, "--skip-existing") == 0
    side = sidecar(folder)
    assert side["frame_files"]["npz"] == [f"{i:06d}.npz" for i in range(10)] and side["frames_reused"] == 7
    assert all((folder / f"{i:06d}.npz").stat().st_mtime_ns == kept[i] for i in range(7))
    assert probe(folder / "r_preview.mp4")[:3] == (10, 56, 40)
    for i in range(7):
        assert np.array_equal(read_depth_result(folder / f"{i:06d}.npz").prediction, before[i])
    assert sorted(p.name for p in folder.glob("*.npz")) == [f"{i:06d}.npz" for i in range(10)]
    # A finished clip is skipped as a whole (nothing rewritten).
    stamp = (folder / "r.json").stat().st_mtime_ns
    assert run(weights, clip, "-o", out, "--skip-existing") == 0
    assert (folder / "r.json").stat().st_mtime_ns == stamp


def test_unwritable_output_and_pixel_limit(tmp_path, weights, capsys):
    clip = make_clip(tmp_path / "c.mp4", n=3)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run(weights, clip, "-o", blocker) == 1
    assert "cannot write to" in capsys.readouterr().err
    assert run(weights, clip, "-o", tmp_path / "o", "--max-pixels", "100") == 1
    err = capsys.readouterr().err
    assert "over the limit of 100" in err and len([line for line in err.splitlines() if "c.mp4" in line]) == 1


def test_depth_pro_sidecar_records_locked_focal_and_estimates(tmp_path):
    from conftest import fixture_state_dict

    weights = tmp_path / "dp_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), weights)
    clip = make_clip(tmp_path / "dp.mp4", n=2, w=64, h=48)
    code = main(["video", str(clip), "-o", str(tmp_path / "out"), "--model", "depth-pro-tiny", "--weights",
                 str(weights), "--format", "npz,pfm", "-q"])  # fmt: skip
    assert code == 0
    side = sidecar(tmp_path / "out" / "dp")
    estimates = side["focal"]["per_frame_estimates_px"]
    assert len(estimates) == 2 and side["focal"]["source"] == "model"
    assert side["focal"]["locked_px"] == pytest.approx(float(np.median(estimates)))
    assert side["output_kind"] == "metric_depth" and side["frame_files"]["pfm"] == [
        "000000_depth.pfm",
        "000001_depth.pfm",
    ]
    saved = read_depth_result(tmp_path / "out" / "dp" / "000001.npz")
    assert saved.is_metric and saved.focal_px == pytest.approx(side["focal"]["locked_px"])
