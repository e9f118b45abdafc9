"""The web page of `sharpdepth serve` in a real browser: Playwright driving Debian's Chromium.

Uploads the bundled example and checks what the user sees against independent numbers: the hover
readout against the depth file the page's own download button saves, the two-point distance against
the distance between the two back-projected points of that file, the refocused picture changing with
the focus slider (and shown at the size of the photo), a colour view per colormap, and a 3D view that
draws points. No console errors. Screenshots go to the test's temporary folder.

Then what a user trips over: a second photo must leave nothing of the first (portrait, a late
answer of the first upload), a failed upload leaves no control working on old data, the page works
behind an API key, a relative model gets readable notes and a focus label that means something, and
a slow portrait shows its progress and can be cancelled. Slow answers are made deterministic by
holding the browser's request (Playwright routing) instead of relying on timing.
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from sharpdepth.geometry.measure import measure_distance
from sharpdepth.io.colormap import COLORMAPS
from sharpdepth.io.depth_files import read_depth_result
from sharpdepth.io.outputs import OutputOptions
from test_serve_api import Server

from conftest import REPO, fixture_state_dict, make_input_image, stand_in_state_dict

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
KEY = "s3cret"
HTTP_ERROR_LOG = "Failed to load resource: the server responded with a status of"
"""What Chromium logs for any answer >= 400, including the ones a test provokes on purpose."""

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)


# ---------------------------------------------------------------- servers, browser, pages
def _serve(workdir: Path, weights: Path, *flags: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(workdir, weights, *flags, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert list(server.tmpdir.iterdir()) == []  # uploads, effects and aborted requests leave nothing on disk


@pytest.fixture(scope="module")
def depth_pro_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "depth_pro_tiny.pt"
    torch.save(fixture_state_dict("depth_pro/tiny"), path)
    return path


@pytest.fixture(scope="module")
def metric_server(tmp_path_factory, depth_pro_weights) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("metric"), depth_pro_weights)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, depth_pro_weights) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("keyed"), depth_pro_weights, "--api-key-env", "MY_KEY",
                      env={"MY_KEY": KEY})  # fmt: skip


@pytest.fixture(scope="module")
def relative_server(tmp_path_factory) -> Iterator[Server]:
    import sharpdepth

    workdir = tmp_path_factory.mktemp("relative")
    weights = workdir / "da_tiny.pt"
    net = sharpdepth.load("depth-anything-v2-tiny", random_weights=True).net
    # A positive final bias keeps the last ReLU from zeroing the map, as the fixtures' overrides do.
    torch.save(stand_in_state_dict(net, {"depth_head.scratch.output_conv2.2.bias": 3.0}), weights)
    yield from _serve(workdir, weights, "--model", "depth-anything-v2-tiny")  # the last --model counts


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


class Tab:
    """A fresh page on the server that records console errors and the API requests still in flight."""

    def __init__(self, browser, server: Server) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.errors: list[str] = []
        self.pending: set[object] = set()
        self.failed: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.pending.add(r) if "/v1/" in r.url else None)
        self.page.on("requestfinished", lambda r: self.pending.discard(r))
        self.page.on("requestfailed", lambda r: self._failed(r))
        self.page.goto(server.url + "/", timeout=60000)

    def _failed(self, request) -> None:
        self.pending.discard(request)
        self.failed.append(request.url)

    def upload(self, path: Path) -> None:
        self.page.get_by_test_id("upload").set_input_files(str(path))

    def wait_ready(self, width: int, height: int, timeout: float = 300000) -> None:
        """The depth of a width x height photo is shown and the page says so."""
        self.page.wait_for_function(
            "(size) => document.querySelector('#status').textContent.includes(size)"
            " && !document.querySelector('#depthview').hidden && !document.querySelector('#portrait').disabled",
            arg=f"{width}×{height}", timeout=timeout,
        )  # fmt: skip

    def settle(self, quiet_s: float = 2.0, timeout_s: float = 300.0) -> None:
        """Wait until no API request has been in flight for quiet_s (late answers are processed by then)."""
        start = last_busy = time.monotonic()
        while time.monotonic() - last_busy < quiet_s:
            assert time.monotonic() - start < timeout_s, f"requests still running: {self.pending}"
            self.page.wait_for_timeout(100)
            if self.pending:
                last_busy = time.monotonic()

    def render_done(self, before: str, timeout: float = 300000) -> None:
        """The refocused image has a new, loaded picture."""
        self.page.wait_for_function(
            "(b) => { const i = document.querySelector('[data-testid=refocused]');"
            " return i.getAttribute('src') && i.src !== b && i.complete && i.naturalWidth > 0; }",
            arg=before, timeout=timeout,
        )  # fmt: skip

    def natural_size(self, test_id: str) -> list[int]:
        return self.page.get_by_test_id(test_id).evaluate("i => [i.naturalWidth, i.naturalHeight]")

    def lit_pixels(self) -> int:
        """Pixels of the 3D view brighter than its #111 background (0 when the view is not shown)."""
        viewer = self.page.get_by_test_id("viewer-3d")
        viewer.scroll_into_view_if_needed()
        canvas = viewer.locator("canvas")
        if canvas.count() == 0 or not canvas.is_visible():
            return 0
        shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"))
        return int(np.count_nonzero(shot > 40))

    def unexpected_errors(self, *allowed: str) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in allowed)]


def _photo(path: Path, width: int, height: int) -> Path:
    Image.fromarray(make_input_image(height, width)).save(path)
    return path


def _metres(text: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*(cm|m)\b", text)
    assert match, f"{text!r} has no depth with a unit"
    return float(match.group(1)) / (100.0 if match.group(2) == "cm" else 1.0)


def _pixel(fx: float, fy: float, width: int, height: int) -> tuple[float, float]:
    """The image pixel under a point of the depth view, as the page computes it (pixel centres at .5)."""
    return fx * width - 0.5, fy * height - 0.5


def _luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""

    def linear(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(fg: tuple[float, float, float], bg: tuple[float, float, float]) -> float:
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


COLOURS_JS = """(el) => {
  const rgba = (c) => { const v = c.match(/[\\d.]+/g).map(Number); return v.length === 3 ? [...v, 1] : v; };
  let node = el, bg = [255, 255, 255, 1];
  while (node) {  // the nearest ancestor that paints a background
    const c = rgba(getComputedStyle(node).backgroundColor);
    if (c[3] > 0) { bg = c; break; }
    node = node.parentElement;
  }
  return { fg: rgba(getComputedStyle(el).color), bg };
}"""


def _text_contrast(locator) -> float:
    """Contrast ratio of an element's text against the background it is drawn on, from computed styles."""
    colours = locator.evaluate(COLOURS_JS)
    fg, bg = colours["fg"], colours["bg"]
    assert bg[3] == 1, f"translucent background {bg}"
    alpha = fg[3]  # translucent text is blended with the background
    blended = tuple(alpha * f + (1 - alpha) * b for f, b in zip(fg[:3], bg[:3], strict=True))
    return _contrast(blended, tuple(bg[:3]))


# ---------------------------------------------------------------- the happy path
def test_page_upload_hover_measure_refocus_and_3d(tmp_path, metric_server, browser):
    tab = Tab(browser, metric_server)
    page = tab.page
    tab.upload(REPO / "examples" / "room.jpg")
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
    tab.render_done(before)
    assert tab.natural_size("refocused") == [width, height]
    page.screenshot(path=str(tmp_path / "2_refocus.png"))

    # The refocused photo is shown at the size of the photo (it was shown at its own pixel size: larger).
    photo_box, refocused_box = page.locator("#photo").bounding_box(), refocused.bounding_box()
    assert photo_box is not None and refocused_box is not None
    assert refocused_box["width"] == pytest.approx(photo_box["width"], abs=1)
    assert refocused_box["height"] == pytest.approx(photo_box["height"], abs=1)

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
    tab.settle()
    page.close()
    assert tab.errors == [], tab.errors


# ---------------------------------------------------------------- a new photo leaves nothing of the old one
def test_a_new_upload_clears_the_previous_portrait(tmp_path, metric_server, browser):
    tab = Tab(browser, metric_server)
    page = tab.page
    tab.upload(_photo(tmp_path / "first.png", 160, 120))
    tab.wait_ready(160, 120)
    page.get_by_test_id("portrait").click()
    tab.render_done("")
    assert tab.natural_size("refocused") == [160, 120]

    tab.upload(_photo(tmp_path / "second.png", 96, 72))
    tab.wait_ready(96, 72)
    tab.settle()
    refocused = page.get_by_test_id("refocused")
    assert not refocused.is_visible(), "the first photo's portrait is still shown for the second photo"
    assert not refocused.get_attribute("src")
    page.close()
    assert tab.errors == [], tab.errors


def test_a_failed_upload_leaves_no_control_on_the_old_photo(tmp_path, metric_server, browser):
    tab = Tab(browser, metric_server)
    page = tab.page
    tab.upload(_photo(tmp_path / "good.png", 160, 120))
    tab.wait_ready(160, 120)
    page.get_by_test_id("portrait").click()
    tab.render_done("")
    for _ in range(120):  # the point cloud arrives after the view
        if tab.lit_pixels() > 200:
            break
        page.wait_for_timeout(500)
    assert tab.lit_pixels() > 200, "the first photo's 3D view never showed points"

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture\n" * 20)
    tab.upload(broken)
    page.wait_for_function("() => document.querySelector('#status').classList.contains('error')", timeout=120000)
    tab.settle()
    assert "Could not" in page.locator("#status").inner_text()
    for test_id in ("portrait", "focus-slider", "download-npz", "download-png16", "download-exr", "download-glb"):
        assert page.get_by_test_id(test_id).is_disabled(), f"{test_id} still works on the previous photo's depth"
    assert not page.get_by_test_id("depth-view").is_visible()
    assert not page.get_by_test_id("refocused").is_visible()
    assert tab.lit_pixels() < 20, "the 3D view still shows the previous photo"
    page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
    page.close()
    assert tab.unexpected_errors(HTTP_ERROR_LOG) == [], tab.errors


def test_two_quick_uploads_the_later_one_wins(tmp_path, metric_server, browser):
    tab = Tab(browser, metric_server)
    page = tab.page
    held = []  # the first photo's depth request, answered only after the second photo is done

    def hold_first(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/v1/depth\?format=npz"), hold_first)
    tab.upload(_photo(tmp_path / "big.png", 600, 600))
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('Computing')")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the first upload sent no depth request"
    tab.upload(_photo(tmp_path / "small.png", 64, 48))
    tab.wait_ready(64, 48)
    try:
        held[0].continue_()  # now the first answer arrives late (unless the page has aborted it)
    except playwright.Error:
        pass
    tab.settle(quiet_s=3.0)

    status = page.locator("#status")
    assert "64×48" in status.inner_text() and "error" not in (status.get_attribute("class") or ""), status.inner_text()
    assert tab.natural_size("depth-view") == [64, 48]
    assert page.locator("#photo").evaluate("i => [i.naturalWidth, i.naturalHeight]") == [64, 48]
    with page.expect_download() as info:
        page.get_by_test_id("download-npz").click()
    info.value.save_as(tmp_path / "got.npz")
    assert read_depth_result(tmp_path / "got.npz").depth.shape == (48, 64)
    page.close()
    assert tab.errors == [], tab.errors


# ---------------------------------------------------------------- slow work: progress and cancel
def test_a_slow_portrait_shows_progress_and_can_be_cancelled(tmp_path, metric_server, browser):
    tab = Tab(browser, metric_server)
    page = tab.page
    tab.upload(_photo(tmp_path / "photo.png", 160, 120))
    tab.wait_ready(160, 120)
    held = []
    # The server "takes" as long as the test wants: the request waits in the browser.
    page.route(re.compile(r"/v1/portrait"), lambda route: held.append(route))
    page.get_by_test_id("portrait").click()
    progress = page.get_by_test_id("render-progress")
    progress.wait_for(state="visible", timeout=10000)
    elapsed = page.get_by_test_id("render-elapsed")
    page.wait_for_function(
        "() => /\\b([2-9]|\\d{2,}) s\\b/.test(document.querySelector('[data-testid=render-elapsed]').textContent)",
        timeout=20000,
    )  # the time spent so far is shown and counts up
    assert "portrait" in elapsed.inner_text().lower()

    page.get_by_test_id("cancel-render").click()
    progress.wait_for(state="hidden", timeout=10000)
    for _ in range(50):
        if any("/v1/portrait" in url for url in tab.failed):
            break
        page.wait_for_timeout(100)
    assert any("/v1/portrait" in url for url in tab.failed), "the portrait request was not aborted"
    assert "cancel" in page.locator("#status").inner_text().lower()
    assert not page.get_by_test_id("refocused").get_attribute("src")
    assert page.get_by_test_id("portrait").is_enabled()

    page.unroute(re.compile(r"/v1/portrait"))
    for route in held:
        try:
            route.abort()
        except playwright.Error:
            pass
    page.get_by_test_id("portrait").click()  # and it still works afterwards
    tab.render_done("")
    assert not progress.is_visible()
    tab.settle()
    page.close()
    assert tab.errors == [], tab.errors


# ---------------------------------------------------------------- relative model, API key
def test_relative_model_note_over_the_3d_view_is_readable(tmp_path, relative_server, browser):
    tab = Tab(browser, relative_server)
    page = tab.page
    tab.upload(_photo(tmp_path / "photo.png", 160, 120))
    tab.wait_ready(160, 120)
    note = page.get_by_test_id("viewer-3d").get_by_text(re.compile("needs a metric model"))
    note.wait_for(state="visible", timeout=10000)
    ratio = _text_contrast(note)
    assert ratio >= 4.5, f"'{note.inner_text()}' has a contrast ratio of {ratio:.2f} (WCAG AA needs 4.5)"
    page.screenshot(path=str(tmp_path / "relative.png"), full_page=True)
    tab.settle()
    page.close()
    assert tab.errors == [], tab.errors


def test_relative_model_focus_label_is_a_relative_depth(tmp_path, relative_server, browser):
    tab = Tab(browser, relative_server)
    page = tab.page
    tab.upload(_photo(tmp_path / "photo.png", 160, 120))
    tab.wait_ready(160, 120)
    label = page.locator("#focuslabel")
    slider = page.get_by_test_id("focus-slider")
    for fraction in (0.5, 0.8):
        slider.fill(str(fraction))
        slider.dispatch_event("input")
        text = label.inner_text()
        assert not re.search(r"pixel|\d+\s*,\s*\d+", text), f"focus label {text!r} is a pixel position"
        percent = re.search(r"(\d+(?:\.\d+)?)\s*%", text)
        assert percent, f"focus label {text!r} gives no relative depth"
        assert float(percent.group(1)) == pytest.approx(100 * fraction, abs=1)  # 0 % near .. 100 % far

    slider.dispatch_event("change")  # refocusing still works on a relative map
    tab.render_done("")
    assert "pixel" not in page.locator("#status").inner_text()
    tab.settle()
    page.close()
    assert tab.errors == [], tab.errors


def test_behind_an_api_key_the_page_shows_model_and_colormaps(tmp_path, keyed_server, browser):
    tab = Tab(browser, keyed_server)
    page = tab.page
    page.locator("#apikey").fill(KEY)
    page.locator("#apikey").press("Tab")  # leaving the field commits the key
    page.wait_for_function("() => document.querySelector('#model').textContent.includes('depth-pro-tiny')",
                           timeout=10000)  # fmt: skip
    options = page.locator("#colormap option").evaluate_all("os => os.map(o => o.value)")
    assert options == list(COLORMAPS)
    assert page.locator("#colormap").input_value() == OutputOptions().colormap

    tab.upload(_photo(tmp_path / "photo.png", 160, 120))
    tab.wait_ready(160, 120)
    old_view = page.get_by_test_id("depth-view").get_attribute("src")
    page.select_option("#colormap", "gray")
    page.wait_for_function("(s) => document.querySelector('#depthview').src !== s", arg=old_view)
    tab.settle()
    page.close()
    assert tab.unexpected_errors(HTTP_ERROR_LOG) == [], tab.errors  # the first look-up, before the key, is a 401

    # The key still guards the API; a page opened without it says what is missing.
    assert httpx.get(f"{keyed_server.url}/v1/models", timeout=10).status_code == 401
    bare = Tab(browser, keyed_server)
    bare.page.wait_for_function("() => /API key/.test(document.querySelector('#status').textContent)", timeout=10000)
    bare.page.close()
