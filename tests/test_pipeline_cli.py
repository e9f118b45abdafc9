"""Ctrl-C on a pipelined `sharpdepth predict` run: exit 130, "interrupted", only complete files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth


@pytest.mark.timeout(180)
def test_sigint_during_a_pipelined_predict_exits_130_leaving_no_partial_file(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):  # enough work that the signal comes in the middle of the folder
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(src / f"i{i:02d}.png")
    weights = tmp_path / "da_tiny.pt"
    torch.save(sharpdepth.load("depth-anything-v2-tiny", random_weights=True).net.state_dict(), weights)
    cmd = [sys.executable, "-m", "sharpdepth", "predict", str(src), "-o", str(out), "--model",
           "depth-anything-v2-tiny", "--weights", str(weights), "--input-size", "70", "--format", "npz,png16",
           "--side-by-side", "-q"]  # fmt: skip
    child = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.json")) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, "the run ended before it could be interrupted"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert [p.name for p in out.rglob("*") if ".part" in p.name] == []
    done = sorted(out.glob("*.json"))
    assert 1 <= len(done) < 60
    for sidecar in done:  # a sidecar is written last: every file it lists is there and complete
        for name in json.loads(sidecar.read_text())["files"]:
            assert (out / name).is_file()
            if name.endswith(".png"):
                with Image.open(out / name) as img:
                    img.load()
    assert len(list(out.glob("*.npz"))) == len(done)
