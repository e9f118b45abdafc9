"""Weights resolution against a local fake hub: download, cache, verification, offline errors.

Each scenario runs in a subprocess so that HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE
are read by huggingface_hub at import time exactly as on a user's machine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from fake_hub import FakeHub

SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    from sharpdepth.registry import WeightSource, get_spec, register
    from sharpdepth.weights.hub import resolve_weights
    from sharpdepth.errors import WeightsError
    filename, sha = sys.argv[1], (sys.argv[2] or None)
    spec = register(dataclasses.replace(get_spec("depth-pro-tiny"), name="hubtest",
                                        sources=(WeightSource("org/tiny", filename, sha256=sha),)))
    out = []
    for _ in range(2):
        try:
            r = resolve_weights(spec)
            out.append({"origin": r.origin, "path": str(r.path)})
        except WeightsError as exc:
            out.append({"error": str(exc)})
    print(json.dumps(out))
    """
)


def _checkpoint_bytes(value: float) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.full((4,), value)}, buf)
    return buf.getvalue()


@pytest.fixture()
def hub():
    with FakeHub() as server:
        server.files[("org/tiny", "good.pt")] = _checkpoint_bytes(1.0)
        server.files[("org/tiny", "bad.pt")] = _checkpoint_bytes(2.0)
        server.corrupt.add(("org/tiny", "bad.pt"))
        yield server


def _run(hub: FakeHub, tmp_path, filename: str, sha: str = "", offline: bool = False) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, filename, sha], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_download_then_cache_hit(hub, tmp_path):
    first, second = _run(hub, tmp_path, "good.pt")
    assert first["origin"] == "download"
    assert second["origin"] == "cache" and second["path"] == first["path"]
    assert first["path"].startswith(str(tmp_path / "hf"))  # HF_HOME respected
    assert torch.load(first["path"], weights_only=True)["w"].tolist() == [1.0] * 4
    assert sum(r.startswith("GET /org/tiny/resolve") for r in hub.requests) == 1


def test_corrupted_download_is_rejected_and_evicted(hub, tmp_path):
    first, second = _run(hub, tmp_path, "bad.pt")
    assert "corrupt" in first["error"] and "sha256" in first["error"]
    # Not served from the cache on the next attempt: it was deleted, so it is fetched (and rejected) again.
    assert "corrupt" in second["error"]
    assert not list((tmp_path / "hf").rglob("bad.pt"))


def test_pinned_sha256_mismatch_is_rejected(hub, tmp_path):
    (result, _) = _run(hub, tmp_path, "good.pt", sha="0" * 64)
    assert "corrupt" in result["error"]


def test_offline_gives_instructions(hub, tmp_path):
    (result, _) = _run(hub, tmp_path, "good.pt", offline=True)
    assert "hf download org/tiny good.pt" in result["error"] and "--weights" in result["error"]
    assert not any("resolve" in r for r in hub.requests)


def test_missing_file_on_hub(hub, tmp_path):
    (result, _) = _run(hub, tmp_path, "nope.pt")
    assert "--weights" in result["error"] and "\n" not in result["error"]


def test_unreachable_hub_fails_fast_with_one_line(tmp_path):
    import time

    class Closed:  # an endpoint nobody listens on
        endpoint = "http://127.0.0.1:9"

    start = time.perf_counter()
    (result, _) = _run(Closed(), tmp_path, "good.pt")
    assert "could not download" in result["error"] and "--weights" in result["error"]
    assert "\n" not in result["error"]
    assert time.perf_counter() - start < 60  # no minute-long retry backoff
