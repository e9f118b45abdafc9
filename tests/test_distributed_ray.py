"""`sharpdepth predict --ray` on a local Ray instance (127.0.0.1, 2 actors) against a local run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import data_dir, fixture_state_dict

pytest.importorskip("ray")

PHOTOS = ("da2_demo01.jpg", "da2_demo11.jpg", "ml_depth_pro_example.jpg", "moon.jpg")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Some of the shared photos (one in a sub-folder) plus a corrupt JPEG."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    for i, name in enumerate(PHOTOS):
        shutil.copy(data_dir() / "photos" / name, (root / "sub" if i % 2 else root) / name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), path)
    return path


def _cmd(inputs: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sharpdepth", "predict", str(inputs), "-o", str(out), "--model", "depth-pro-tiny",
            "--weights", str(weights), "--format", "npy", "--no-view", "--device", "cpu", "-q", *extra]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)  # never join a cluster that happens to be around
    return env


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_ray_run_equals_local_run_and_reports_the_bad_file(tmp_path, inputs, weights) -> None:
    local = subprocess.run(_cmd(inputs, tmp_path / "local", weights), capture_output=True, text=True, env=_env())
    ray = subprocess.run(
        _cmd(inputs, tmp_path / "ray", weights, "--ray", "--ray-actors", "2"),
        capture_output=True,
        text=True,
        env=_env(),
    )
    for run in (local, ray):
        text = run.stdout + run.stderr
        assert run.returncode == 1, text[-2000:]
        assert "broken.jpg" in text and "Traceback" not in text
    files = _files(tmp_path / "local")
    assert files == _files(tmp_path / "ray")
    assert len([f for f in files if f.endswith("_depth.npy")]) == len(PHOTOS)
    for rel in files:  # every file byte for byte: arrays, npz, views and sidecars (run record included)
        assert (tmp_path / "local" / rel).read_bytes() == (tmp_path / "ray" / rel).read_bytes(), rel


def test_interrupted_ray_job_resumes_without_duplicates(tmp_path, inputs, weights) -> None:
    out = tmp_path / "out"
    job = subprocess.Popen(
        _cmd(inputs, out, weights, "--ray", "--ray-actors", "2", "--batch-size", "1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and job.poll() is None and not list(out.rglob("*.json")):
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and everything it started, mid-job
    job.wait()
    done_before = {p.name for p in out.rglob("*.json")}
    assert len(done_before) < len(PHOTOS), "the job finished before it could be interrupted"
    resumed = subprocess.run(
        _cmd(inputs, out, weights, "--ray", "--ray-actors", "2", "--skip-existing"),
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 1, text[-2000:]
    # Ray's workers may finish an image between the kill of the driver and their own end: at least what
    # was complete when we looked is skipped, and never everything.
    skipped = re.search(r"skipped (\d+) image\(s\)", text)
    assert skipped is not None and len(done_before) <= int(skipped[1]) < len(PHOTOS), text[-2000:]
    files = _files(out)
    assert not [f for f in files if ".part" in f], "a temporary file of the killed run was left behind"
    stems = sorted(Path(f).name.removesuffix(".json") for f in files if f.endswith(".json"))
    assert stems == sorted(Path(p).stem for p in PHOTOS)
    assert len([f for f in files if f.endswith("_depth.npy")]) == len(PHOTOS)
    for rel in files:
        if rel.endswith(".npy"):
            assert np.isfinite(np.load(out / rel)).all()


def test_video_on_ray_one_task_per_clip_same_files(tmp_path) -> None:
    """`sharpdepth video clips/ --ray`: each clip's folder as the local batch writes it; a bad clip reported."""
    import json

    import sharpdepth
    from video_clips import make_clip

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", n=6)
    make_clip(clips / "b.mp4", n=5, w=48, h=32)
    (clips / "c.mp4").write_bytes(b"not a video at all")
    weights = tmp_path / "da_tiny.pt"
    torch.save(sharpdepth.load("depth-anything-v2-tiny", random_weights=True).net.state_dict(), weights)

    def video(out: str, *extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "sharpdepth", "video", str(clips), "-o", str(tmp_path / out), "--model",
               "depth-anything-v2-tiny", "--weights", str(weights), "--input-size", "56", "-q", *extra]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env=_env())

    local, ray = video("local"), video("ray", "--ray", "--ray-actors", "2")
    for run in (local, ray):
        assert run.returncode == 1 and "c.mp4" in run.stderr and "Traceback" not in run.stdout + run.stderr
    files = _files(tmp_path / "local")
    assert files == _files(tmp_path / "ray") and any(f.startswith("b/") for f in files)
    for rel in files:
        a, b = tmp_path / "local" / rel, tmp_path / "ray" / rel
        if rel.endswith(".json"):  # the sidecar: everything but the clock
            side_a, side_b = json.loads(a.read_text()), json.loads(b.read_text())
            for side in (side_a, side_b):
                side.pop("timings", None)
            assert side_a == side_b, rel
        elif not rel.endswith(".mp4"):
            assert a.read_bytes() == b.read_bytes(), rel
