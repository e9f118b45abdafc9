"""The service's limits in-process: ranges and empty results are 4xx JSON, memory is bounded by
pixels in flight and by answer size, a client that hangs up mid-upload is one log line."""

from __future__ import annotations

import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sharpdepth.engine.model import DepthModel
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.errors import OutOfRangeError
from sharpdepth.service import runtime
from sharpdepth.service.app import create_app
from sharpdepth.service.settings import ServeSettings
from test_serve_batching import GatedModel


def _png(h: int, w: int, value: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _npz(depth: np.ndarray, focal: float = 100.0) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, depth=depth.astype(np.float32), focal_px=np.float32(focal), output_kind="metric_depth")
    return buf.getvalue()


def _ready(settings: ServeSettings, model: GatedModel | None = None) -> tuple[TestClient, GatedModel]:
    model = model or GatedModel()
    app = create_app(settings, ModelSettings(name="depth-pro-tiny"), loader=lambda: cast(DepthModel, model))
    client = TestClient(app)
    client.__enter__()
    while client.get("/readyz").status_code != 200:
        time.sleep(0.02)
    return client, model


@pytest.fixture
def client():
    c, model = _ready(ServeSettings())
    model.gate.set()
    yield c
    c.__exit__(None, None, None)


def _metric(client: TestClient, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{want}}} " if want else f"{name} "):
            return float(line.split()[-1])
    return 0.0


H, W = 48, 64
DEPTH = np.linspace(1.0, 3.0, H * W).reshape(H, W)


@pytest.mark.parametrize(
    ("path", "params", "depth", "says"),
    [
        ("/v1/pointcloud", {"format": "ply"}, np.where(np.arange(H)[:, None] % 2 == 0, np.inf, DEPTH), "empty"),
        (
            "/v1/pointcloud",
            {"format": "ply", "mesh": "true"},
            np.where(np.arange(H)[:, None] % 2 == 0, np.inf, DEPTH),
            "empty",
        ),  # fmt: skip
        ("/v1/dof", {"focus_m": "1e308"}, DEPTH, "focus distance"),
        ("/v1/pointcloud", {"voxel": "1e-30"}, DEPTH, "voxel"),
        ("/v1/portrait", {"f_number": "1e9"}, DEPTH, "f-number"),
        ("/v1/depth", {"focal_px": "1e300", "format": "npy"}, DEPTH, "focal length"),
    ],
)
def test_empty_results_and_values_outside_their_range_are_422_json(client, path, params, depth, says):
    files = {"image": ("a.png", _png(H, W), "image/png"), "depth": ("a.npz", _npz(depth), "application/octet-stream")}
    r = client.post(path, params=params, files=files)
    assert r.status_code == 422, r.text
    assert set(r.json()) == {"error"} and says in r.json()["error"] and "\n" not in r.json()["error"]


def test_every_documented_range_refuses_its_far_side():
    from sharpdepth.apps.settings import DofSettings, ParallaxSettings, StereoSettings

    for bad in (dict(focus_m=1e308), dict(focus_m=2.0, f_number=0.01), dict(focus_m=2.0, sensor_width_mm=1e6),
                dict(focus_m=2.0, highlight_boost=1e9), dict(focus_m=2.0, max_blur_px=1e12)):  # fmt: skip
        with pytest.raises(OutOfRangeError):
            DofSettings(**bad)
    for bad in (dict(duration_s=1e9), dict(fps=1e6), dict(max_size_px=10**6), dict(amplitude=5.0)):
        with pytest.raises(OutOfRangeError):
            ParallaxSettings(**bad)
    for bad in (dict(interaxial_mm=1e9), dict(convergence_m=1e300), dict(max_disparity=-0.1)):
        with pytest.raises(OutOfRangeError):
            StereoSettings(**bad)
    for bad in (dict(max_batch=10**9), dict(max_inflight_mpx=0), dict(max_response_mb=-1)):
        with pytest.raises(OutOfRangeError):
            ServeSettings(**bad)


def test_admission_is_by_pixels_in_flight_not_by_request_count():
    # budget 0.01 Mpx: one 64x96 photo (6144 px) fits, a second at the same time does not; tiny ones still do
    client, model = _ready(ServeSettings(max_inflight_mpx=0.01, max_queue=8))
    try:
        big = {"image": ("big.png", _png(64, 96), "image/png")}
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, "/v1/depth", params={"focal_px": 50}, files=big)
            deadline = time.monotonic() + 20
            while _metric(client, "sharpdepth_pixels_in_flight") == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _metric(client, "sharpdepth_pixels_in_flight") == 64 * 96
            second = client.post("/v1/depth", params={"focal_px": 50}, files=big)
            assert second.status_code == 429 and "Mpx" in second.json()["error"] and second.headers["retry-after"]
            assert _metric(client, "sharpdepth_rejected_total", reason="pixels") == 1
            model.gate.set()
            assert first.result(30).status_code == 200
        assert _metric(client, "sharpdepth_pixels_in_flight") == 0  # given back once answered
        assert client.post("/v1/depth", params={"focal_px": 50}, files=big).status_code == 200
        huge = client.post("/v1/depth", files={"image": ("h.png", _png(120, 120), "image/png")})
        assert huge.status_code == 413 and "--max-inflight-mpx" in huge.json()["error"]  # could never fit
    finally:
        client.__exit__(None, None, None)


def test_an_answer_over_the_response_limit_is_refused_with_a_hint():
    client, model = _ready(ServeSettings(max_response_mb=0.01))  # 10 kB; an npy of 64x96 float32 is 24 kB
    model.gate.set()
    try:
        r = client.post("/v1/depth", params={"format": "npy", "focal_px": 50},
                        files={"image": ("a.png", _png(64, 96), "image/png")})  # fmt: skip
        assert r.status_code == 422 and "--max-response-mb" in r.json()["error"]
        r = client.post("/v1/depth", params={"focal_px": 50}, files={"image": ("a.png", _png(64, 96), "image/png")})
        assert r.status_code == 200  # the JSON fields are small
    finally:
        client.__exit__(None, None, None)


def test_memory_goes_back_to_the_system_once_idle_after_a_burst(monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(runtime, "TRIM_AFTER_PIXELS", 10_000)
    monkeypatch.setattr(runtime, "trim_heap", lambda: trims.append(1) or True)
    client, model = _ready(ServeSettings())
    model.gate.set()
    try:
        files = {"image": ("a.png", _png(64, 96), "image/png")}
        assert client.post("/v1/depth", params={"focal_px": 50}, files=files).status_code == 200
        assert trims == []  # 6144 px so far: below the threshold
        assert client.post("/v1/depth", params={"focal_px": 50}, files=files).status_code == 200
        assert trims == [1]
    finally:
        client.__exit__(None, None, None)


def test_a_client_that_hangs_up_mid_upload_is_one_log_line_and_its_own_counter(client, caplog):
    app = client.app
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + _png(H, W)[:100]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/depth", "raw_path": b"/v1/depth", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="sharpdepth.service"):
        client.portal.call(app, scope, receive, send)
    records = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None and "/v1/depth" in records[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback anywhere
    assert _metric(client, "sharpdepth_client_disconnects_total", route="/v1/depth") == 1
    assert _metric(client, "sharpdepth_requests_total", route="/v1/depth", status="500") == 0


def test_concurrent_small_requests_share_the_budget(client):
    files = {"image": ("a.png", _png(H, W), "image/png")}
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: client.post("/v1/depth", params={"focal_px": 50}, files=files).status_code,
                              range(4)))  # fmt: skip
    assert codes == [200] * 4
    assert _metric(client, "sharpdepth_pixels_in_flight") == 0


def test_effect_routes_keep_their_query_parameters():
    """/v1/dof and /v1/portrait share the lens parameters through one dependency; their names stay."""
    from fastapi import FastAPI

    from sharpdepth.service.routes import effects

    app = FastAPI()
    app.include_router(effects.router)
    paths = app.openapi()["paths"]

    def names(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["post"].get("parameters", []) if p["in"] == "query"}

    lens = {"f_number", "focal_mm", "sensor_mm", "max_blur", "bokeh", "highlights"}
    focal = {"focal_px", "fov_deg"}
    assert names("/v1/dof") == lens | focal | {"focus_m", "focus_px", "format"}
    assert names("/v1/portrait") == lens | focal | {"subject", "format"}
