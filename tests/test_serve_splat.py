"""POST /v1/splat in-process (tiny SHARP, fixture weights): the bytes `sharpdepth splat` writes, and its errors.

Independent expectations: the answer's bytes equal the `.ply` the CLI writes for the same photo and
focal length; an independent PLY reading (header and vertex count by hand) says it is the 3DGS layout;
a field of view gives the focal length of the pinhole formula; every refusal is JSON with the right status.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import sharpdepth
from sharpdepth.cli.main import main
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.geometry.gaussians import VERTEX_PROPERTIES, load_ply
from sharpdepth.io.images import LoadedImage
from sharpdepth.service import splats
from sharpdepth.service.app import create_app
from sharpdepth.service.batching import BatchQueue, Job, Task
from sharpdepth.service.settings import ServeSettings

from conftest import fixture_state_dict, make_input_image

FOCAL = 150.0
H, W = 96, 128


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "sharp_tiny.pt"
    torch.save(fixture_state_dict("sharp/tiny"), path)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "scene.png"
    Image.fromarray(make_input_image(H, W)).save(path)
    return path


@pytest.fixture(scope="module")
def cli_ply(tmp_path_factory, weights, photo) -> bytes:
    """What `sharpdepth splat` writes for the photo: the reference for the answers' bytes."""
    out = tmp_path_factory.mktemp("cli")
    assert main(["splat", str(photo), "-o", str(out), "--model", "sharp-tiny", "--weights", str(weights),
                 "--focal-px", str(FOCAL)]) == 0  # fmt: skip
    return (out / "scene.ply").read_bytes()


def test_splat_cli_takes_a_precision(tmp_path, weights, photo, cli_ply, capsys):
    """--precision auto (bf16 on a CPU with native bf16, the benchmark's configuration) writes the
    same scene layout; an unknown precision is one line, exit 2, nothing written."""
    import plyfile

    from sharpdepth.engine.runtime import cpu_has_native_bf16

    out = tmp_path / "auto"
    assert main(["splat", str(photo), "-o", str(out), "--model", "sharp-tiny", "--weights", str(weights),
                 "--focal-px", str(FOCAL), "--precision", "auto"]) == 0  # fmt: skip
    ply = (out / "scene.ply").read_bytes()
    ours, fp32 = (plyfile.PlyData.read(io.BytesIO(b))["vertex"] for b in (ply, cli_ply))
    assert ours.count == fp32.count
    assert (ply == cli_ply) != cpu_has_native_bf16()  # bf16 where native: other rounding, else fp32 itself
    depth_ours, depth_fp32 = np.asarray(ours["z"]), np.asarray(fp32["z"])
    assert np.median(np.abs(depth_ours - depth_fp32) / depth_fp32) < 0.05
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["splat", str(photo), "-o", str(bad), "--model", "sharp-tiny", "--weights", str(weights),
                 "--precision", "fp8"]) == 2  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "precision" in err[0] and "Traceback" not in err[0]
    assert not list(bad.glob("*.ply"))


def _client(settings: ServeSettings, model: ModelSettings) -> TestClient:
    client = TestClient(create_app(settings, model))
    client.__enter__()
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the model never loaded"
        time.sleep(0.05)
    return client


@pytest.fixture(scope="module")
def client(weights) -> Iterator[TestClient]:
    c = _client(ServeSettings(max_inflight_mpx=0.1), ModelSettings(name="sharp-tiny", weights=weights))
    yield c
    c.__exit__(None, None, None)


def _post(client: TestClient, photo: Path, **params: object):
    with open(photo, "rb") as f:
        return client.post("/v1/splat", params=params, files={"image": (photo.name, f.read(), "image/png")})


def _vertex_count(ply: bytes) -> int:
    header = ply[: ply.index(b"end_header\n")].decode("ascii").splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    props = [line.split()[2] for line in header[3 : 3 + len(VERTEX_PROPERTIES)]]
    assert props == list(VERTEX_PROPERTIES)  # the INRIA 3DGS vertex layout, in its order
    return int(header[2].split()[2])


def test_splat_answers_the_ply_the_cli_writes(client, photo, cli_ply, tmp_path):
    r = _post(client, photo, model="sharp-tiny", focal_px=FOCAL)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="scene.ply"'
    assert r.content == cli_ply
    n = _vertex_count(r.content)
    (tmp_path / "scene.ply").write_bytes(r.content)
    g = load_ply(tmp_path / "scene.ply")
    assert n == len(g) > 1000 and g.focal_px == pytest.approx(FOCAL) and g.image_size == (W, H)


def test_splat_with_a_field_of_view_uses_the_pinhole_focal(client, photo, tmp_path):
    r = _post(client, photo, model="sharp-tiny", fov_deg=60)
    assert r.status_code == 200, r.text
    (tmp_path / "fov.ply").write_bytes(r.content)
    assert load_ply(tmp_path / "fov.ply").focal_px == pytest.approx(0.5 * W / math.tan(math.radians(30)), rel=1e-5)


def test_the_models_list_says_which_model_the_page_should_ask(client):
    info = client.get("/v1/models").json()
    assert info["splat_model"] == "sharp-tiny"
    by_name = {m["name"]: m for m in info["models"]}
    assert by_name["sharp-tiny"]["splat"] is True and by_name["depth-pro"]["splat"] is False


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"model": "depth-pro"}, 422, "does not predict 3-D Gaussians"),
        ({"model": "no-such-model"}, 400, "no-such-model"),
        ({"model": "sharp-tiny", "focal_px": -3}, 400, "focal"),
        # the default model: the released SHARP, whose weights are not on this server (never downloaded here)
        ({}, 503, "sharp"),
    ],
)
def test_splat_refusals_are_json_with_the_right_status(client, photo, params, status, says):
    r = _post(client, photo, **params)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and says in r.json()["error"] and "\n" not in r.json()["error"]


def test_bad_uploads_are_refused_like_the_other_routes(client, photo):
    missing = client.post("/v1/splat", params={"model": "sharp-tiny"}, files={"other": ("x", b"x", "text/plain")})
    assert missing.status_code == 400 and "image" in missing.json()["error"]
    junk = client.post(
        "/v1/splat", params={"model": "sharp-tiny"}, files={"image": ("a.png", b"not a png", "image/png")}
    )
    assert junk.status_code in (415, 422) and "error" in junk.json()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((400, 400, 3), np.uint8)).save(buf, format="PNG")  # 0.16 Mpx > 0.1 Mpx budget
    huge = client.post(
        "/v1/splat", params={"model": "sharp-tiny"}, files={"image": ("h.png", buf.getvalue(), "image/png")}
    )
    assert huge.status_code == 413 and "--max-inflight-mpx" in huge.json()["error"]


def test_another_splat_model_is_loaded_once_on_first_use(weights, photo, cli_ply, monkeypatch, tmp_path):
    """A server of a depth model makes splats with the model named in the request, loaded from the cache only."""
    calls: list[dict[str, object]] = []

    def cached_only(name: str, **kwargs: object) -> sharpdepth.DepthModel:
        calls.append({"name": name, **kwargs})
        return sharpdepth.load(name, weights=weights)  # stands in for the weights cache

    monkeypatch.setattr(splats, "load", cached_only)
    depth_weights = tmp_path / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), depth_weights)
    client = _client(ServeSettings(), ModelSettings(name="depth-pro-tiny", weights=depth_weights))
    try:
        assert client.get("/v1/models").json()["splat_model"] == "sharp"
        answers = [_post(client, photo, model="sharp-tiny", focal_px=FOCAL) for _ in range(2)]
    finally:
        client.__exit__(None, None, None)
    assert [r.status_code for r in answers] == [200, 200]
    assert answers[0].content == answers[1].content == cli_ply
    assert len(calls) == 1 and calls[0]["name"] == "sharp-tiny" and calls[0]["download"] is False


def test_a_task_in_the_model_queue_is_taken_alone_and_at_once():
    """Gaussians wait in the model thread's queue like depth jobs, but never join (or wait for) a batch."""
    queue = BatchQueue(8)
    first, second = (Job(image=cast(LoadedImage, None), key="same shape") for _ in range(2))
    task = Task(run=lambda model: "done")
    for work in (first, task, second):
        queue.put(work)
    assert queue.take(4, 0.0) == [first, second]  # same-shape jobs batch past the task
    start = time.monotonic()
    assert queue.take(4, 5.0) == [task]
    assert time.monotonic() - start < 1.0


def test_one_focal_model_serves_every_request(weights, photo, monkeypatch):
    """Photos without a focal length share one focal model (loaded at most once per server), not one
    per request: a per-request model would reload Depth Pro for every splat where it is cached."""
    from sharpdepth.engine.model import DepthModel
    from sharpdepth.engine.splat import FocalModel

    seen: list[object] = []

    def recording(self, image, focal_px=None, focal_35mm=None, focal_model="unset"):
        seen.append(focal_model)
        ones = np.ones((2, 3), np.float32)
        quaternions = np.tile(np.array([1, 0, 0, 0], np.float32), (2, 1))
        return sharpdepth.Gaussians(
            means=ones * 2, scales=ones * 0.1, quaternions=quaternions, colors=ones * 0.5,
            opacities=np.ones(2, np.float32), focal_px=100.0, image_size=(W, H),
        )  # fmt: skip

    monkeypatch.setattr(DepthModel, "predict_gaussians", recording)
    client = _client(ServeSettings(), ModelSettings(name="sharp-tiny", weights=weights))
    try:
        answers = [_post(client, photo, model="sharp-tiny") for _ in range(2)]
    finally:
        client.__exit__(None, None, None)
    assert [r.status_code for r in answers] == [200, 200], answers[0].text
    assert len(seen) == 2 and isinstance(seen[0], FocalModel) and seen[0] is seen[1]
