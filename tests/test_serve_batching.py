"""The service's queue, worker and lifecycle in-process, with a stand-in model whose timing the test controls.

The real server is tested in test_serve_api.py; here the cases that need exact
timing: same-shape batching, capacity, cancelled jobs skipped, 503 while the
model loads, 504 when the answer is late.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sharpdepth.engine.model import DepthModel
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.errors import OptionError
from sharpdepth.io.images import LoadedImage
from sharpdepth.result import DepthResult, FocalSource, OutputKind
from sharpdepth.service.app import create_app
from sharpdepth.service.batching import BatchQueue, Job, ModelWorker, QueueFull
from sharpdepth.service.settings import ServeSettings, api_key_from_env


class GatedModel:
    """Answers depth = 1 + image mean after `gate` is set; records every batch it was given."""

    name = "stand-in"
    device = "cpu"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[int] = []
        self.processor = SimpleNamespace(preprocess=self._no_second_preprocess, network_size=lambda h, w: (h, w))

    @staticmethod
    def _no_second_preprocess(rgb: np.ndarray) -> np.ndarray:
        """The model pre-processes each image once, inside predict_batch; the service must not
        pre-process a blank image of the same size to learn the batching key (it once did)."""
        raise AssertionError("the service pre-processed an image itself")

    def predict_batch(
        self, images: Sequence[LoadedImage], focal_px: Any = None, fov_deg: Any = None, batch_size: int = 1
    ) -> list[DepthResult]:
        assert self.gate.wait(30)
        self.batches.append(len(images))
        return [
            DepthResult(
                prediction=np.full(im.rgb.shape[:2], 1.0 + im.rgb.mean(), np.float32),
                kind=OutputKind.METRIC_DEPTH,
                focal_px=f,
                focal_source=FocalSource.USER,
                model_name="stand-in",
            )  # fmt: skip
            for im, f in zip(images, focal_px, strict=True)
        ]


def _job(value: int, key: object = "a") -> Job:
    return Job(image=LoadedImage(np.full((4, 4, 3), value, np.uint8)), key=key, focal_px=100.0)


def _png(value: int, size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_queue_refuses_beyond_capacity_and_batches_only_equal_keys():
    q = BatchQueue(capacity=3)
    a1, b1, a2 = _job(1, "a"), _job(2, "b"), _job(3, "a")
    for job in (a1, b1, a2):
        q.put(job)
    with pytest.raises(QueueFull):
        q.put(_job(4))
    assert q.take(max_batch=4, max_wait_s=0.0) == [a1, a2]  # b1 keeps its place for the next batch
    assert q.take(max_batch=4, max_wait_s=0.0) == [b1]
    assert len(q) == 0


def test_take_waits_for_a_batch_to_fill_but_not_longer_than_max_wait():
    q = BatchQueue(capacity=8)
    q.put(_job(1))
    threading.Timer(0.05, lambda: q.put(_job(2))).start()
    start = time.monotonic()
    assert len(q.take(max_batch=2, max_wait_s=5.0)) == 2  # full batch: returns as soon as the second arrives
    assert time.monotonic() - start < 2.0
    q.put(_job(3))
    start = time.monotonic()
    assert len(q.take(max_batch=2, max_wait_s=0.1)) == 1
    assert 0.09 <= time.monotonic() - start < 2.0


def test_worker_batches_same_shape_jobs_and_skips_cancelled_ones():
    model = GatedModel()
    q = BatchQueue(capacity=8)
    jobs = [_job(v) for v in (10, 20, 30)]
    for job in jobs:
        q.put(job)
    assert jobs[1].future.cancel()  # its client gave up before the model got to it
    worker = ModelWorker(cast(DepthModel, model), q, max_batch=4, max_wait_s=0.0)
    worker.start()
    model.gate.set()
    assert jobs[0].future.result(10).prediction[0, 0] == pytest.approx(11.0)
    assert jobs[2].future.result(10).prediction[0, 0] == pytest.approx(31.0)
    worker.stop()
    assert model.batches == [2]


def test_not_ready_is_503_and_late_answers_are_504():
    model = GatedModel()
    loaded = threading.Event()

    def loader() -> DepthModel:
        assert loaded.wait(30)
        return cast(DepthModel, model)

    app = create_app(ServeSettings(timeout_s=0.5, max_queue=4), ModelSettings(name="depth-pro-tiny"), loader=loader)
    with TestClient(app) as client:
        files = {"image": ("a.png", _png(5), "image/png")}
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and "loading" in r.json()["error"]
        r = client.post("/v1/depth", files=files)
        assert r.status_code == 503 and r.headers["retry-after"]
        loaded.set()
        for _ in range(100):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        assert client.get("/readyz").json()["model"] == "stand-in"
        r = client.post("/v1/depth", params={"focal_px": 100}, files=files)  # gate closed: the model is "slow"
        assert r.status_code == 504 and "0.5 s" in r.json()["error"]
        model.gate.set()
        r = client.post("/v1/depth", params={"focal_px": 100}, files=files)
        assert r.status_code == 200 and r.json()["depth_m"]["median"] == pytest.approx(6.0)
        metrics = client.get("/metrics").text
        assert 'sharpdepth_rejected_total{reason="timeout"} 1.0' in metrics


def test_concurrent_requests_share_forward_passes():
    model = GatedModel()
    app = create_app(
        ServeSettings(max_batch=4, max_queue=8, max_wait_ms=1000), ModelSettings(name="depth-pro-tiny"),
        loader=lambda: cast(DepthModel, model),
    )  # fmt: skip
    with TestClient(app) as client:
        while client.get("/readyz").status_code != 200:
            time.sleep(0.02)

        def call(value: int) -> float:
            r = client.post("/v1/depth", params={"focal_px": 50}, files={"image": ("a.png", _png(value), "image/png")})
            assert r.status_code == 200, r.text
            return float(r.json()["depth_m"]["median"])

        with ThreadPoolExecutor(4) as pool:
            medians = pool.map(call, (0, 10, 20, 30))
            time.sleep(0.5)
            model.gate.set()
            assert list(medians) == [1.0, 11.0, 21.0, 31.0]  # each answer is its own image's
    assert sum(model.batches) == 4 and len(model.batches) < 4


def test_settings_are_validated_on_construction():
    for bad in ({"max_batch": 0}, {"max_queue": 0}, {"port": -1}, {"max_wait_ms": -1}, {"max_upload_mb": 0},
                {"timeout_s": float("nan")}, {"api_key": " "}, {"cors_origins": ("example.com",)}):  # fmt: skip
        with pytest.raises(OptionError):
            ServeSettings(**bad)
    assert ServeSettings(max_upload_mb=2).max_upload_bytes == 2 * 2**20
    assert "secret" not in repr(ServeSettings(api_key="secret"))
    assert api_key_from_env(None, {"SHARPDEPTH_API_KEY": "k1"}) == "k1"
    assert api_key_from_env("MINE", {"MINE": "k2", "SHARPDEPTH_API_KEY": "k1"}) == "k2"
    assert api_key_from_env(None, {}) is None
    with pytest.raises(OptionError):
        api_key_from_env("MINE", {})


def test_cpu_work_beyond_workers_plus_queue_is_refused_at_once(monkeypatch, tmp_path):
    from sharpdepth.io.depth_files import write_npz
    from sharpdepth.service import dependencies as app_module

    gate = threading.Event()
    real = app_module._saved_result

    def slow(*args: Any) -> DepthResult:
        assert gate.wait(30)
        return real(*args)

    monkeypatch.setattr(app_module, "_saved_result", slow)
    depth = DepthResult(prediction=np.full((6, 8), 2.0, np.float32), kind=OutputKind.METRIC_DEPTH, focal_px=10.0)
    write_npz(tmp_path / "d.npz", depth)
    npz = (tmp_path / "d.npz").read_bytes()
    app = create_app(
        ServeSettings(workers=1, max_queue=1), ModelSettings(name="depth-pro-tiny"),
        loader=lambda: cast(DepthModel, GatedModel()),
    )  # fmt: skip
    with TestClient(app) as client:
        while client.get("/readyz").status_code != 200:
            time.sleep(0.02)

        def call(_: int) -> int:
            files = {"depth": ("d.npz", npz, "application/octet-stream")}
            return client.post("/v1/depth", params={"format": "npy"}, files=files).status_code

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(call, i) for i in range(4)]
            deadline = time.monotonic() + 20
            while sum(f.done() for f in futures) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            early = sorted(f.result() for f in futures if f.done())
            gate.set()
            codes = sorted(f.result() for f in futures)
    assert early == [429, 429]  # one running + one waiting (workers 1 + queue 1); the rest refused at once
    assert codes == [200, 200, 429, 429]


def test_json_answers_never_carry_nan():
    from sharpdepth.service.routes.common import finite as _finite

    assert _finite({"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf"), "e": "x"}}) == {
        "a": None, "b": [1.5, None], "c": {"d": None, "e": "x"},
    }  # fmt: skip
