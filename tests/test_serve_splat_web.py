"""The web page's "3D splat" panel in Chromium: a Gaussian scene opened from a file or made from the photo.

What the user sees is checked against independent facts: the viewer's canvas is not blank (several
distinct colours of the scene on its dark background), dragging the mouse orbits (the picture changes),
the download is byte for byte the scene shown (the opened file, or what POST /v1/splat answers for the
same photo), and a browser without WebGL gets a note instead of a canvas. No console errors.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from test_serve_api import Server
from test_serve_web import CHROMIUM, FLAGS, Tab, _serve, playwright

from conftest import fixture_state_dict, make_input_image

VIEWER = "[data-testid=splat-viewer]"
BACKGROUND = 0x11


@pytest.fixture(scope="module")
def sharp_server(tmp_path_factory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("sharp")
    weights = workdir / "sharp_tiny.pt"
    torch.save(fixture_state_dict("sharp/tiny"), weights)
    yield from _serve(workdir, weights, "--model", "sharp-tiny")  # the last --model counts


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def _blob_ply(path: Path, n: int = 4000) -> Path:
    """A ball of Gaussians 2 m in front of the camera, coloured by position (red left, blue right, green low)."""
    rng = np.random.default_rng(3)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    means = direction * 0.35 * rng.uniform(0, 1, (n, 1)) ** (1 / 3) + np.array([0.0, 0.0, 2.0])
    t = (means[:, :2] + 0.35) / 0.7
    colors = np.stack([1 - t[:, 0], t[:, 1], t[:, 0]], axis=1).clip(0.02, 1)
    sharpdepth.Gaussians(
        means=means, scales=np.full((n, 3), 0.02), quaternions=np.tile([1.0, 0, 0, 0], (n, 1)),
        colors=colors, opacities=np.full(n, 0.9), focal_px=300.0, image_size=(320, 240),
    ).save_ply(path)  # fmt: skip
    return path


def _shot(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator(VIEWER).screenshot())).convert("RGB")).astype(np.int16)


def _colours(shot: np.ndarray) -> int:
    """Distinct colours (in steps of 32 per channel) of the pixels that are not the background."""
    lit = shot[np.abs(shot - BACKGROUND).max(axis=2) > 24]
    return len({tuple(c) for c in (lit // 32).tolist()})


def _wait_drawn(page, timeout_s: float = 15.0, load_timeout_s: float = 300.0) -> np.ndarray:
    """The viewer's picture once the scene is on it (it is sorted and drawn after it loads)."""
    page.wait_for_function(
        f"() => ['shown', 'error', 'no-webgl'].includes(document.querySelector('{VIEWER}').dataset.state)",
        timeout=load_timeout_s * 1000,
    )
    state = page.locator(VIEWER).get_attribute("data-state")
    assert state == "shown", f"{state}: {page.get_by_test_id('splat-note').inner_text()}"
    shot = _shot(page)
    for _ in range(int(timeout_s / 0.25)):
        if _colours(shot) >= 8:
            break
        page.wait_for_timeout(250)
        shot = _shot(page)
    return shot


def _orbit(page) -> None:
    page.locator(VIEWER).scroll_into_view_if_needed()  # the mouse acts where the viewer is on screen
    box = page.locator(VIEWER).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.6, steps=8)
    page.mouse.up()


def _changed(page, before: np.ndarray, timeout_s: float = 10.0) -> float:
    """Mean absolute change of the viewer's picture once the orbit has been drawn."""
    change = 0.0
    for _ in range(int(timeout_s / 0.25)):
        page.wait_for_timeout(250)
        change = float(np.abs(_shot(page) - before).mean())
        if change > 2.0:
            break
    return change


def test_an_opened_ply_is_shown_orbits_and_downloads(tmp_path, sharp_server, browser):
    ply = _blob_ply(tmp_path / "blob.ply")
    tab = Tab(browser, sharp_server)
    page = tab.page
    page.get_by_test_id("open-ply").set_input_files(str(ply))
    viewer = page.get_by_test_id("splat-viewer")
    viewer.scroll_into_view_if_needed()
    shot = _wait_drawn(page)
    assert viewer.locator("canvas").count() == 1 and viewer.locator("canvas").is_visible()
    lit = int(np.count_nonzero(np.abs(shot - BACKGROUND).max(axis=2) > 24))
    assert lit > 2000 and _colours(shot) >= 8, f"the splat viewer looks blank ({lit} lit pixels)"
    assert float(shot.std()) > 10
    assert "4,000 Gaussians" in page.get_by_test_id("splat-info").inner_text()
    page.screenshot(path=str(tmp_path / "1_splat.png"))

    page.locator("#apikey").press_sequentially("iuc")  # the viewer's shortcut keys, typed into a field
    page.wait_for_timeout(500)
    assert float(np.abs(_shot(page) - shot).mean()) < 1.0, "typing in the API key field changed the splat view"
    page.locator("#apikey").fill("")

    _orbit(page)
    assert _changed(page, shot) > 2.0, "dragging the mouse did not orbit the view"
    page.screenshot(path=str(tmp_path / "2_orbit.png"))

    with page.expect_download() as info:
        page.get_by_test_id("download-ply").click()
    assert info.value.suggested_filename == "blob.ply"
    info.value.save_as(tmp_path / "download.ply")
    assert (tmp_path / "download.ply").read_bytes() == ply.read_bytes()
    page.close()
    assert tab.errors == [], tab.errors


def test_a_splat_made_from_the_photo_asks_the_service_and_shows_its_answer(tmp_path, sharp_server, browser):
    """The page sends the photo to /v1/splat with the served splat model and shows and offers the answer.

    SHARP's answer is ~1.2 M Gaussians whatever the photo (66 MB even from sharp-tiny), too many for
    software WebGL on a shared CPU: the browser's request is answered with a small scene instead
    (Playwright routing); that /v1/splat answers the CLI's bytes is test_serve_splat's business."""
    photo = tmp_path / "garden.png"
    Image.fromarray(make_input_image(96, 128)).save(photo)
    ply = _blob_ply(tmp_path / "small.ply")
    asked: list[tuple[str, bytes]] = []

    def answer(route) -> None:
        asked.append((route.request.url, route.request.post_data_buffer or b""))
        route.fulfill(status=200, body=ply.read_bytes(), content_type="application/octet-stream",
                      headers={"Content-Disposition": 'attachment; filename="garden.ply"'})  # fmt: skip

    tab = Tab(browser, sharp_server)
    page = tab.page
    page.route("**/v1/splat*", answer)
    tab.upload(photo)
    make = page.get_by_test_id("make-splat")
    make.scroll_into_view_if_needed()
    make.click()
    shot = _wait_drawn(page)
    assert _colours(shot) >= 8, "the splat of the photo looks blank"
    assert len(asked) == 1
    url, body = asked[0]
    assert url.endswith("/v1/splat?model=sharp-tiny")  # the served model predicts Gaussians: it is asked
    assert b'name="image"; filename="garden.png"' in body  # (Playwright does not show a blob's bytes)
    with page.expect_download() as info:
        page.get_by_test_id("download-ply").click()
    assert info.value.suggested_filename == "garden.ply"
    info.value.save_as(tmp_path / "download.ply")
    assert (tmp_path / "download.ply").read_bytes() == ply.read_bytes()
    page.close()
    assert tab.unexpected_errors() == [], tab.errors


def test_without_webgl_the_panel_says_so_and_still_offers_the_file(tmp_path, sharp_server, browser):
    ply = _blob_ply(tmp_path / "blob.ply", n=500)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.add_init_script(  # WebGL switched off before any of the page's scripts runs
        "const get = HTMLCanvasElement.prototype.getContext;"
        "HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {"
        "  return /webgl/.test(kind) ? null : get.call(this, kind, ...rest); };"
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(sharp_server.url + "/")
    page.get_by_test_id("open-ply").set_input_files(str(ply))
    page.wait_for_function(f"() => document.querySelector('{VIEWER}').dataset.state === 'no-webgl'", timeout=20000)
    note = page.get_by_test_id("splat-note")
    assert note.is_visible() and "no WebGL" in note.inner_text()
    assert page.locator(VIEWER).locator("canvas").count() == 0
    assert page.get_by_test_id("download-ply").is_enabled()
    page.close()
    assert errors == [], errors
