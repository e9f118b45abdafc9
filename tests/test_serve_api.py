"""`sharpdepth serve` through a real server process on a loopback port (tiny Depth Pro, fixture weights).

What is checked against an independent expectation:
- the bytes of /v1/depth (npz, exr, json fields) and of every effect equal the files the CLI writes
  for the same photo and options (`sharpdepth predict`, `dof`, `portrait`, `pointcloud`, `measure`);
- every error status of the issue, each with a JSON `{"error": ...}` body;
- a burst against a queue of 2 gets 429s with Retry-After at once, and every admitted request gets
  exactly the single-request answer (none lost, none wrong);
- /metrics counts what the client saw; the API key guards /v1; nothing is left in the server's TMPDIR.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from sharpdepth.cli.main import main

from conftest import REPO, fixture_state_dict, make_input_image

FOCAL = 600.0


class Server:
    """`python -m sharpdepth serve ...` on a free loopback port, with its own TMPDIR; stopped on exit."""

    def __init__(self, workdir: Path, weights: Path, *flags: str, env: dict[str, str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        cmd = [sys.executable, "-m", "sharpdepth", "serve", "--model", "depth-pro-tiny", "--weights", str(weights),
               "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", *flags]  # fmt: skip
        full_env = {k: v for k, v in os.environ.items() if k != "SHARPDEPTH_API_KEY"}
        full_env.update({"TMPDIR": str(self.tmpdir), "PYTHONPATH": str(REPO / "src"), **(env or {})})
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("server never became ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()

    def post(
        self, path: str, params: dict | list | None = None, timeout: float = 300.0, **files: tuple
    ) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", params=params, files=files or None, timeout=timeout)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), path)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "scene.png"
    Image.fromarray(make_input_image(120, 160)).save(path)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, weights):
    srv = Server(tmp_path_factory.mktemp("srv"), weights, "--max-queue", "2", "--max-batch", "2",
                 "--max-upload-mb", "2", "--max-wait-ms", "50")  # fmt: skip
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def cli_out(tmp_path_factory, weights, photo) -> Path:
    """What the CLI writes for the photo: the reference for every byte comparison."""
    out = tmp_path_factory.mktemp("cli")
    base = ["--model", "depth-pro-tiny", "--weights", str(weights)]
    assert main(["predict", str(photo), "-o", str(out), *base, "--focal-px", str(FOCAL), "-f", "npz,png16,exr,npy",
                 "--quiet"]) == 0  # fmt: skip
    npz = str(out / "scene.npz")
    assert main(["dof", str(photo), "--depth", npz, "--focus-m", "2", "-N", "2.8", "-o", str(out / "dof.jpg")]) == 0
    assert main(["portrait", str(photo), "--depth", npz, "-N", "2", "-o", str(out / "portrait.jpg")]) == 0
    assert main(["pointcloud", str(photo), "--depth", npz, "--stride", "2", "-o", str(out / "cloud.glb")]) == 0
    return out


def _upload(path: Path, name: str | None = None, kind: str = "image/png") -> tuple:
    return (name or path.name, path.read_bytes(), kind)


def _zip_members(data: bytes) -> list[tuple]:
    """Every member's name, CRC, sizes, method and compressed bytes: a zip's content without its timestamps."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            local = info.header_offset
            name_len, extra_len = struct.unpack("<HH", data[local + 26 : local + 30])
            start = local + 30 + name_len + extra_len
            payload = data[start : start + info.compress_size]
            out.append((info.filename, info.CRC, info.file_size, info.compress_type, payload))
    return out


def _metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _count(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


# ---------------------------------------------------------------- parity with the CLI
def test_depth_npz_exr_and_json_are_what_predict_writes(server, photo, cli_out):
    r = server.post("/v1/depth", {"format": "npz", "focal_px": FOCAL}, image=_upload(photo))
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == 'attachment; filename="scene.npz"'
    cli_npz = (cli_out / "scene.npz").read_bytes()
    # np.savez stamps each member with the time of writing; everything else is byte-identical.
    assert _zip_members(r.content) == _zip_members(cli_npz)
    assert len(r.content) == len(cli_npz)

    r = server.post("/v1/depth", {"format": "exr", "focal_px": FOCAL}, image=_upload(photo))
    assert r.status_code == 200, r.text
    assert r.content == (cli_out / "scene_depth.exr").read_bytes()

    r = server.post("/v1/depth", {"focal_px": FOCAL}, image=_upload(photo))  # json is the default
    sidecar = json.loads((cli_out / "scene.json").read_text())
    fields = r.json()
    for key in ("model", "weights_sha256", "output_kind", "unit", "width", "height", "focal_px", "fov_deg",
                "focal_source", "depth_m"):  # fmt: skip
        assert fields[key] == sidecar[key], key
    assert (fields["width"], fields["height"]) == (160, 120)


def test_saved_npz_converts_to_every_format_without_the_network(server, cli_out):
    npz = _upload(cli_out / "scene.npz", kind="application/octet-stream")
    for fmt, name in (("png16", "scene_depth.png"), ("exr", "scene_depth.exr"), ("npy", "scene_depth.npy")):
        r = server.post("/v1/depth", {"format": fmt}, depth=npz)
        assert r.status_code == 200, r.text
        assert r.content == (cli_out / name).read_bytes(), fmt
    r = server.post("/v1/view", depth=npz)
    assert r.content == (cli_out / "scene_inferno.png").read_bytes()


def test_effects_are_what_the_cli_writes(server, photo, cli_out, capsys):
    npz = _upload(cli_out / "scene.npz", kind="application/octet-stream")
    img = _upload(photo)
    r = server.post("/v1/dof", {"focus_m": 2, "f_number": 2.8}, image=img, depth=npz)
    assert r.status_code == 200, r.text
    assert r.content == (cli_out / "dof.jpg").read_bytes()
    r = server.post("/v1/portrait", {"f_number": 2}, image=img, depth=npz)
    assert r.content == (cli_out / "portrait.jpg").read_bytes()
    r = server.post("/v1/pointcloud", {"format": "glb", "stride": 2}, image=img, depth=npz)
    assert r.content == (cli_out / "cloud.glb").read_bytes()

    r = server.post("/v1/measure", [("points", "20,30"), ("points", "140,90")], depth=npz)
    assert r.status_code == 200, r.text
    capsys.readouterr()
    assert main(["measure", str(photo), "20,30", "140,90", "--depth", str(cli_out / "scene.npz"), "--json"]) == 0
    assert r.json() == json.loads(capsys.readouterr().out)
    a, b = r.json()["a"]["xyz_m"], r.json()["b"]["xyz_m"]
    assert r.json()["distance_m"] == pytest.approx(float(np.linalg.norm(np.subtract(a, b))), rel=1e-9)


# ---------------------------------------------------------------- errors
def test_every_bad_request_gets_one_json_error_with_its_status(server, photo, cli_out):
    png = photo.read_bytes()
    cases = [
        ("text", {}, {"image": ("a.png", b"hello, not an image\n", "image/png")}, 415),
        ("random", {}, {"image": ("b.jpg", np.random.default_rng(1).bytes(3000), "image/jpeg")}, 415),
        ("empty", {}, {"image": ("c.png", b"", "image/png")}, 400),
        ("truncated", {}, {"image": ("d.png", png[: len(png) // 3], "image/png")}, 422),
        ("oversize", {}, {"image": ("e.png", b"\0" * (3 * 2**20), "image/png")}, 413),
        ("no image field", {}, {"photo": ("f.png", png, "image/png")}, 400),
        ("negative focal", {"focal_px": -3}, {"image": ("g.png", png, "image/png")}, 400),
        ("focal not a number", {"focal_px": "abc"}, {"image": ("h.png", png, "image/png")}, 400),
        ("focal and fov", {"focal_px": 500, "fov_deg": 60}, {"image": ("i.png", png, "image/png")}, 400),
        ("unknown format", {"format": "tiff"}, {"image": ("j.png", png, "image/png")}, 400),
        ("unknown colormap", {"colormap": "rainbow"}, {"image": ("k.png", png, "image/png")}, 400),
        ("garbage npz", {}, {"depth": ("l.npz", b"PK\3\4garbage", "application/octet-stream")}, 422),
        ("depth of unknown type", {}, {"depth": ("m.txt", b"1 2 3", "text/plain")}, 415),
    ]
    for name, params, files, status in cases:
        r = httpx.post(f"{server.url}/v1/depth", params=params, files=files, timeout=120)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert set(r.json()) == {"error"} and r.json()["error"] and "\n" not in r.json()["error"], name
    r = httpx.post(f"{server.url}/v1/depth", content=png, headers={"content-type": "image/png"}, timeout=60)
    assert r.status_code == 415 and "error" in r.json()
    npz = ("scene.npz", (cli_out / "scene.npz").read_bytes(), "application/octet-stream")
    r = httpx.post(f"{server.url}/v1/dof", params={"focus_m": 2}, files={"depth": npz}, timeout=60)
    assert r.status_code == 400 and "image" in r.json()["error"]  # refocusing needs the photo
    r = httpx.post(f"{server.url}/v1/measure", params=[("points", "1,2,3")], files={"depth": npz}, timeout=60)
    assert r.status_code == 400
    r = httpx.post(f"{server.url}/v1/measure", params=[("points", "5000,2"), ("points", "1,1")], files={"depth": npz})
    assert r.status_code == 400 and "outside" in r.json()["error"]
    r = httpx.get(f"{server.url}/v1/nothing-here", timeout=10)
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert server.proc.poll() is None


# ---------------------------------------------------------------- back-pressure and metrics
def test_overload_gets_429_at_once_and_every_admitted_answer_is_right(server, photo, cli_out):
    reference = np.load(cli_out / "scene.npz")["depth"]
    before = _metrics(server)

    def call(_: int) -> tuple[httpx.Response, float]:
        start = time.monotonic()
        r = server.post("/v1/depth", {"format": "npz", "focal_px": FOCAL}, timeout=600, image=_upload(photo))
        return r, time.monotonic() - start

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(16)))
    codes = [r.status_code for r, _ in answers]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) >= 1 and codes.count(200) >= 1, codes
    slowest_ok = max(t for r, t in answers if r.status_code == 200)
    for r, seconds in answers:
        if r.status_code == 200:
            # batched with others, the answer is still exactly the single-image one
            np.testing.assert_array_equal(np.load(io.BytesIO(r.content))["depth"], reference)
        else:
            assert int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"]
            assert seconds < slowest_ok  # refused at once, not after waiting for the model

    after = _metrics(server)
    ok, refused = codes.count(200), codes.count(429)

    def delta(name: str, **labels: str) -> float:
        return _count(after, name, **labels) - _count(before, name, **labels)

    assert delta("sharpdepth_requests_total", route="/v1/depth", status="200") == ok
    assert delta("sharpdepth_requests_total", route="/v1/depth", status="429") == refused
    # refused before decoding (decoders busy) or at the model queue; each counted once
    assert (
        delta("sharpdepth_rejected_total", reason="queue_full") + delta("sharpdepth_rejected_total", reason="busy")
        == refused
    )
    assert delta("sharpdepth_batch_size_sum") == ok  # every admitted image went through the network once
    assert delta("sharpdepth_batch_size_count") < ok  # ... and some shared a forward pass
    assert delta("sharpdepth_request_duration_seconds_count", route="/v1/depth") == 16
    assert _count(after, "sharpdepth_queue_depth") == 0


def test_metrics_count_requests_and_readiness(server):
    before = _metrics(server)
    for _ in range(3):
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
    after = _metrics(server)
    key = ("sharpdepth_requests_total", (("route", "/healthz"), ("status", "200")))
    assert after[key] - before.get(key, 0.0) == 3
    assert after[("sharpdepth_model_ready", ())] == 1.0
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()
    assert models["served"] == "depth-pro-tiny" and models["ready"] is True
    assert [m["name"] for m in models["models"] if m["served"]] == ["depth-pro-tiny"]
    assert (
        "access-control-allow-origin"
        not in httpx.get(f"{server.url}/v1/models", headers={"Origin": "http://elsewhere.test"}, timeout=10).headers
    )  # CORS is off unless asked for


def test_nothing_is_left_on_disk(server):
    # runs after the tests above in this module: uploads, conversions and effects all went through
    assert server.proc.poll() is None
    assert list(server.tmpdir.iterdir()) == []


# ---------------------------------------------------------------- auth, CORS, startup failure
def test_api_key_and_cors(tmp_path, weights, cli_out):
    srv = Server(tmp_path, weights, "--api-key-env", "MY_KEY", "--cors-origin", "http://app.test",
                 env={"MY_KEY": "s3cret"})  # fmt: skip
    try:
        srv.wait_ready()
        npz = {"depth": ("scene.npz", (cli_out / "scene.npz").read_bytes(), "application/octet-stream")}
        url = f"{srv.url}/v1/depth?format=npy"
        assert httpx.post(url, files=npz, timeout=60).status_code == 401
        r = httpx.post(url, files=npz, headers={"Authorization": "Bearer wrong"}, timeout=60)
        assert r.status_code == 401 and "API key" in r.json()["error"]
        r = httpx.post(url, files=npz, headers={"Authorization": "Bearer s3cret"}, timeout=60)
        assert r.status_code == 200 and r.content == (cli_out / "scene_depth.npy").read_bytes()
        assert httpx.get(f"{srv.url}/v1/models", headers={"X-API-Key": "s3cret"}, timeout=10).status_code == 200
        assert httpx.get(f"{srv.url}/healthz", timeout=10).status_code == 200  # probes need no key
        pre = httpx.options(url, headers={"Origin": "http://app.test", "Access-Control-Request-Method": "POST",
                                          "Access-Control-Request-Headers": "authorization"}, timeout=10)  # fmt: skip
        assert pre.headers.get("access-control-allow-origin") == "http://app.test"
        other = httpx.get(f"{srv.url}/healthz", headers={"Origin": "http://evil.test"}, timeout=10)
        assert "access-control-allow-origin" not in other.headers
    finally:
        srv.stop()


def test_unloadable_weights_stop_the_server_with_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "sharpdepth", "serve", "--model", "depth-pro-tiny", "--weights", str(bad),
         "--port", str(port), "--log-level", "error"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_bad_flags_fail_before_loading_anything(capsys, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    cases = [
        (["--max-queue", "0"], "--max-queue"),
        (["--port", "70000"], "--port"),
        (["--cors-origin", "app.test"], "--cors-origin"),
        (["--api-key-env", "NOPE_NOT_SET"], "NOPE"),
        (["--model", "no-such-model"], "no-such-model"),
        (["--timeout", "0"], "--timeout"),
    ]
    for flags, word in cases:
        capsys.readouterr()
        assert main(["serve", *flags]) == 2, flags  # returns before any server or model exists
        err = capsys.readouterr().err
        assert word in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (flags, err)
