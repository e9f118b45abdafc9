"""The web page of `sharpdepth serve` in a real browser: Playwright driving Debian's Chromium.

Uploads the bundled example and checks what the user sees against independent numbers: the hover
readout against the depth file the page's own download button saves, the two-point distance against
the distance between the two back-projected points of that file, the refocused picture changing with
the focus slider, a colour view per colormap, and a 3D view that draws points. No console errors.
Screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sharpdepth.geometry.measure import measure_distance
from sharpdepth.io.depth_files import read_depth_result
from test_serve_api import Server

from conftest import REPO, fixture_state_dict

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)


def _metres(text: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*(cm|m)\b", text)
    assert match, f"{text!r} has no depth with a unit"
    return float(match.group(1)) / (100.0 if match.group(2) == "cm" else 1.0)


def _pixel(fx: float, fy: float, width: int, height: int) -> tuple[float, float]:
    """The image pixel under a point of the depth view, as the page computes it (pixel centres at .5)."""
    return fx * width - 0.5, fy * height - 0.5


def test_page_upload_hover_measure_refocus_and_3d(tmp_path):
    weights = tmp_path / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), weights)
    server = Server(tmp_path / "srv", weights)
    errors: list[str] = []
    try:
        server.wait_ready()
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/", timeout=60000)
            page.get_by_test_id("upload").set_input_files(str(REPO / "examples" / "room.jpg"))
            view = page.get_by_test_id("depth-view")
            view.wait_for(state="visible", timeout=300000)
            page.screenshot(path=str(tmp_path / "1_view.png"))

            with page.expect_download() as info:
                page.get_by_test_id("download-npz").click()
            npz = tmp_path / "download.npz"
            info.value.save_as(npz)
            result = read_depth_result(npz)
            height, width = result.depth.shape
            assert (width, height) == Image.open(REPO / "examples" / "room.jpg").size

            page.evaluate("window.scrollTo(0, 0)")  # the download button is further down the page
            box = view.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            page.wait_for_timeout(300)
            readout = page.get_by_test_id("readout")
            x, y = (int(v) for v in (readout.get_attribute("data-pixel") or "").split(","))
            near = _pixel(0.5, 0.5, width, height)
            assert abs(x - near[0]) <= 2 and abs(y - near[1]) <= 2  # the pixel under the mouse
            assert _metres(readout.inner_text()) == pytest.approx(float(result.depth[y, x]), rel=0.006, abs=0.002)

            picks = [(0.3, 0.4), (0.7, 0.6)]
            for fx, fy in picks:
                page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            distance = page.get_by_test_id("distance")
            page.wait_for_function("() => /\\d\\s*(m|cm)\\b/.test(document.querySelector('#distance').textContent)")
            a, b = (tuple(float(v) for v in p.split(",")) for p in distance.get_attribute("data-pixels").split())
            for (fx, fy), got in zip(picks, (a, b), strict=True):
                want = _pixel(fx, fy, width, height)
                assert abs(got[0] - want[0]) <= 2 and abs(got[1] - want[1]) <= 2
            truth = measure_distance(result, a, b)
            assert _metres(distance.inner_text()) == pytest.approx(truth.distance_m, rel=0.01, abs=0.002)
            assert math.isfinite(truth.distance_m)

            refocused = page.get_by_test_id("refocused")
            before = refocused.get_attribute("src") or ""
            slider = page.get_by_test_id("focus-slider")
            slider.fill("0.2")
            slider.dispatch_event("change")
            page.wait_for_function(
                "(b) => { const i = document.querySelector('[data-testid=refocused]');"
                " return i.src && i.src !== b && i.complete && i.naturalWidth > 0; }",
                arg=before, timeout=300000,
            )  # fmt: skip
            assert refocused.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [width, height]
            page.screenshot(path=str(tmp_path / "2_refocus.png"))

            old_view = view.get_attribute("src")
            page.select_option("#colormap", "gray")
            page.wait_for_function("(s) => document.querySelector('#depthview').src !== s", arg=old_view)

            viewer = page.get_by_test_id("viewer-3d")
            viewer.scroll_into_view_if_needed()
            assert viewer.locator("canvas").count() == 1
            lit = 0
            for _ in range(120):  # the point cloud arrives after the view; wait until points are drawn
                shot = np.asarray(Image.open(io.BytesIO(viewer.screenshot())).convert("L"))
                lit = int(np.count_nonzero(shot > 40))  # background is #111
                if lit > 500:
                    break
                page.wait_for_timeout(500)
            assert lit > 500, f"the 3D view shows no points ({lit} lit pixels)"
            box3 = viewer.bounding_box()
            assert box3 is not None
            page.mouse.move(box3["x"] + 300, box3["y"] + 200)
            page.mouse.down()
            page.mouse.move(box3["x"] + 500, box3["y"] + 260, steps=5)  # orbit
            page.mouse.up()
            page.screenshot(path=str(tmp_path / "3_viewer.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
    assert errors == [], errors
    assert list(server.tmpdir.iterdir()) == []
