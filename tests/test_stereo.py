"""Stereo conversion: parallax sign and size, eye order in every layout, fills, VR180 boxes, video command.

The synthetic scene has known depth: a textured far wall and a near card with a
vertical marker stripe each, so the position of each stripe in each eye can be
measured to a fraction of a pixel and compared with f * B * (1/z - 1/c).
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import ndimage

from sharpdepth.apps.settings import StereoSettings
from sharpdepth.apps.stereo import Equirect180, anaglyph, compose, parallax_map, render_pair, stereo_images
from sharpdepth.apps.stereo_mp4 import add_spherical_metadata
from sharpdepth.apps.stereo_views import empty_runs, nearest_known, render_eye, visible_parallax
from sharpdepth.errors import OptionError, RelativeDepthError
from sharpdepth.result import DepthResult, OutputKind

H, W = 60, 160
F = 100.0
CARD = (slice(15, 45), slice(60, 100))
FAR_Z, NEAR_Z = 8.0, 2.0
BLUE = (30, 40, 230)


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Grey textured wall at 8 m (marker column 30-31), a blue card at 2 m (marker column 80-81)."""
    rng = np.random.default_rng(1)
    noise = ndimage.gaussian_filter(rng.random((H, W)), 1.5)
    grey = (60 + 120 * (noise - noise.min()) / (noise.max() - noise.min())).astype(np.uint8)
    img = np.repeat(grey[..., None], 3, axis=2)
    img[..., 1] = 40
    depth = np.full((H, W), FAR_Z, np.float32)
    depth[CARD] = NEAR_Z
    img[CARD] = BLUE
    img[:, 30:32, 1] = 255
    img[CARD[0], 80:82, 1] = 255
    return img, depth


def metric(depth: np.ndarray, img: np.ndarray) -> DepthResult:
    return DepthResult(depth, OutputKind.METRIC_DEPTH, focal_px=F, image=img, model_name="synthetic")


def stripe_x(rgb: np.ndarray, rows: slice, cols: slice) -> float:
    """Centroid column of the green marker (linear light: mixes linearly under resampling)."""
    g = (rgb[rows, cols, 1].astype(np.float64) / 255.0) ** 2.2
    strength = np.clip(g - (40 / 255) ** 2.2, 0, None)
    x = np.arange(cols.start, cols.stop)
    return float((strength.sum(axis=0) * x).sum() / strength.sum())


FAR_ROWS, FAR_COLS = slice(50, 58), slice(15, 50)
NEAR_ROWS, NEAR_COLS = slice(20, 40), slice(66, 96)


def parallax_of(left: np.ndarray, right: np.ndarray, rows: slice, cols: slice) -> float:
    return stripe_x(left, rows, cols) - stripe_x(right, rows, cols)


# ---------------------------------------------------------------- geometry
@pytest.mark.parametrize("convergence", [math.inf, 4.0])
def test_parallax_is_f_b_times_inverse_depth_minus_screen(convergence):
    img, depth = scene()
    settings = StereoSettings(interaxial_mm=120, convergence_m=convergence)
    left, right = render_pair(img, parallax_map(metric(depth, img), settings), settings)
    screen = 0.0 if math.isinf(convergence) else 1 / convergence
    for rows, cols, z in ((FAR_ROWS, FAR_COLS, FAR_Z), (NEAR_ROWS, NEAR_COLS, NEAR_Z)):
        expected = F * 0.12 * (1 / z - screen)
        assert parallax_of(left.image, right.image, rows, cols) == pytest.approx(expected, abs=0.05)
    # crossed (left eye sees it further right) in front of the screen, uncrossed behind it
    assert parallax_of(left.image, right.image, NEAR_ROWS, NEAR_COLS) > 0
    if not math.isinf(convergence):
        assert parallax_of(left.image, right.image, FAR_ROWS, FAR_COLS) < 0


def test_defaults_are_the_documented_headset_values():
    s = StereoSettings()
    assert s.interaxial_m == pytest.approx(0.063) and s.screen_m == 2.0
    img, depth = scene()
    p = parallax_map(metric(depth, img), s)
    assert p[30, 80] == pytest.approx(F * 0.063 * (1 / 2.0 - 1 / 2.0), abs=1e-6)  # the card is on the screen
    assert p[55, 30] == pytest.approx(F * 0.063 * (1 / 8.0 - 1 / 2.0), abs=1e-5)


def test_relative_results_use_a_fraction_of_the_width():
    img, depth = scene()
    rel = DepthResult(1.0 / depth, OutputKind.RELATIVE_DISPARITY, image=img, model_name="rel")
    settings = StereoSettings(max_disparity=0.05)
    left, right = render_pair(img, parallax_map(rel, settings), settings)
    assert parallax_of(left.image, right.image, NEAR_ROWS, NEAR_COLS) == pytest.approx(0.05 * W, abs=0.1)
    assert parallax_of(left.image, right.image, FAR_ROWS, FAR_COLS) == pytest.approx(0.0, abs=0.05)
    with pytest.raises(RelativeDepthError):
        parallax_map(rel, StereoSettings(interaxial_mm=63))
    with pytest.raises(OptionError):
        parallax_map(metric(depth, img), StereoSettings(max_disparity=0.05))
    for bad in (dict(max_disparity=0.7), dict(interaxial_mm=-1), dict(layout="mpo"), dict(fill="blur")):
        with pytest.raises(OptionError):
            StereoSettings(**bad)


def test_photo_as_left_eye_keeps_it_unchanged():
    img, depth = scene()
    settings = StereoSettings(interaxial_mm=120, convergence_m=math.inf, center=False)
    left, right = render_pair(img, parallax_map(metric(depth, img), settings), settings)
    assert np.array_equal(left.image, img)
    assert parallax_of(left.image, right.image, NEAR_ROWS, NEAR_COLS) == pytest.approx(F * 0.12 / NEAR_Z, abs=0.05)


# ---------------------------------------------------------------- the fast warp's shortcuts
@pytest.mark.parametrize("side", [1.0, -1.0, -2.0, 0.5])
def test_scatter_z_buffer_equals_maximum_at(side):
    """The ordered scatter picks, at every target column, the largest parallax landing there
    (what `np.maximum.at` computes), on rough fields with many collisions and off-picture pixels."""
    rng = np.random.default_rng(int(side * 10) + 20)
    h, w = 40, 90
    p = (ndimage.gaussian_filter(rng.normal(0, 12, (h, w)), 1.0) * 4).astype(np.float32)
    p[10:25, 30:50] += 25.0  # a near block: long occlusions
    best, known = visible_parallax(p, side)
    target = np.rint(np.arange(w, dtype=np.float32) + np.float32(side * 0.5) * p).astype(np.int64)
    ok = (target >= 0) & (target < w)
    ref = np.full(h * w, -np.inf, np.float32)
    np.maximum.at(ref, (np.arange(h)[:, None] * w + target)[ok], p[ok])
    assert np.array_equal(known, np.isfinite(ref.reshape(h, w)))
    assert np.array_equal(best[known], ref.reshape(h, w)[known])
    assert (~known).sum() > 50 and (np.bincount((np.arange(h)[:, None] * w + target)[ok]) > 1).sum() > 50


def test_empty_runs_equal_nearest_known_at_the_empty_pixels():
    rng = np.random.default_rng(3)
    known = rng.random((30, 50)) > 0.4
    known[4] = False  # a row with nothing known
    known[5, :7] = False  # runs touching the row's ends
    known[6, -9:] = False
    left, right = nearest_known(known)
    empty = np.flatnonzero(~known)
    lft, rgt = empty_runs(empty, 50)
    assert np.array_equal(lft, left.reshape(-1)[empty]) and np.array_equal(rgt, right.reshape(-1)[empty])


# ---------------------------------------------------------------- fills
@pytest.mark.parametrize("fill", ["stretch", "depth-aware", "inpaint"])
def test_disocclusions_are_filled_from_the_background(fill):
    """Moving the card 12 px uncovers wall beside it; the depth-aware and stretch fills never draw blue
    (the card) into it; OpenCV's inpainting does (it sees both sides), which is why it is a baseline."""
    img, depth = scene()
    p = np.where(depth == NEAR_Z, 24.0, 0.0).astype(np.float32)
    view = render_eye(img, p, 1.0, fill)  # left eye: the card moves 12 px right, uncovering 60..72
    assert view.holes[CARD[0], 60:72].all() and not view.holes[CARD[0], 20:50].any()
    hole = view.image[view.holes].astype(int)
    blueness = hole[:, 2] - hole[:, 0]
    if fill == "inpaint":
        assert blueness.max() > 40
    else:
        assert blueness.max() < 20, fill
    # the card itself arrives intact at its new place
    assert np.abs(view.image[20:40, 76:108].astype(int) - img[20:40, 64:96].astype(int)).max() <= 1


def test_depth_aware_fill_continues_the_background_texture():
    """Mirrored background keeps texture (variance like the wall's); stretching repeats one column."""
    img, depth = scene()
    p = np.where(depth == NEAR_Z, 24.0, 0.0).astype(np.float32)
    ours = render_eye(img, p, 1.0, "depth-aware")
    stretch = render_eye(img, p, 1.0, "stretch")
    rows, cols = slice(16, 44), slice(62, 72)
    wall = img[16:44, 40:50, 0].astype(float)
    assert ours.image[rows, cols, 0].astype(float).std(axis=1).mean() > 0.5 * wall.std(axis=1).mean()
    assert stretch.image[rows, cols, 0].astype(float).std(axis=1).mean() < 1.0


# ---------------------------------------------------------------- layouts and eye order
def test_each_layout_puts_the_left_eye_first():
    img, depth = scene()
    settings = StereoSettings(interaxial_mm=120, convergence_m=4.0)
    p = parallax_map(metric(depth, img), settings)
    left, right = render_pair(img, p, settings)

    def frame(layout: str) -> np.ndarray:
        s = StereoSettings(interaxial_mm=120, convergence_m=4.0, layout=layout)
        return compose(img, p, s, Equirect180.for_view(W, H, F))

    sbs, tb = frame("sbs"), frame("tb")
    assert sbs.shape == (H, 2 * W, 3) and tb.shape == (2 * H, W, 3)
    assert np.array_equal(sbs[:, :W], left.image) and np.array_equal(sbs[:, W:], right.image)
    assert np.array_equal(tb[:H], left.image) and np.array_equal(tb[H:], right.image)
    half_sbs, half_tb = frame("half-sbs"), frame("half-tb")
    assert half_sbs.shape == (H, W, 3) and half_tb.shape == (H, W, 3)
    # the half-width eyes carry half the parallax, each in its own half
    p_half = parallax_of(half_sbs[:, : W // 2], half_sbs[:, W // 2 :], slice(20, 40), slice(33, 48))
    assert p_half == pytest.approx(F * 0.12 * (1 / NEAR_Z - 1 / 4.0) / 2, abs=0.1)
    p_tb = parallax_of(half_tb[: H // 2], half_tb[H // 2 :], slice(10, 20), NEAR_COLS)
    assert p_tb == pytest.approx(F * 0.12 * (1 / NEAR_Z - 1 / 4.0), abs=0.1)
    ana = frame("anaglyph")
    red_l = np.corrcoef(ana[..., 0].ravel(), left.image[..., 0].ravel())[0, 1]
    red_r = np.corrcoef(ana[..., 0].ravel(), right.image[..., 0].ravel())[0, 1]
    assert red_l > red_r
    vr = frame("vr180")
    n = Equirect180.for_view(W, H, F).size
    assert vr.shape == (n, 2 * n, 3)
    centre = vr[n // 2 - 2 : n // 2 + 2, n // 2 - 2 : n // 2 + 2].astype(int)
    assert np.abs(centre - left.image[H // 2 - 2 : H // 2 + 2, W // 2 - 2 : W // 2 + 2]).max() < 30
    assert vr[:, :5].max() == 0  # outside the picture's field of view: black


def test_dubois_anaglyph_routes_each_eye_to_its_filter():
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ana = anaglyph(left, right, "dubois").astype(float)

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    lum_l, lum_r = left.astype(float).mean(-1), right.astype(float).mean(-1)
    assert corr(ana[..., 0], lum_l) > 0.8 and abs(corr(ana[..., 0], lum_r)) < 0.2
    cyan = ana[..., 1:].mean(-1)
    assert corr(cyan, lum_r) > 0.8 and abs(corr(cyan, lum_l)) < 0.2
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert np.abs(anaglyph(grey, grey, "dubois").astype(int) - np.array([128, 128, 128])).max() < 40


def test_photo_pictures_per_layout():
    img, depth = scene()
    result = metric(depth, img)
    for layout, shape in (("sbs", (H, 2 * W, 3)), ("half-sbs", (H, W, 3)), ("tb", (2 * H, W, 3))):
        (picture,) = stereo_images(result, StereoSettings(layout=layout))
        assert picture.shape == shape
    pair = stereo_images(result, StereoSettings(layout="spatial-heic"))
    assert len(pair) == 2 and pair[0].shape == pair[1].shape == img.shape


# ---------------------------------------------------------------- VR180 metadata
def _boxes(buf: bytes, start: int, end: int):
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[i : i + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", buf[i + 8 : i + 16])[0], 16
        yield kind.decode(), i + header, i + size
        i += size


def _find(buf: bytes, start: int, end: int, path: list[str]):
    for kind, s, e in _boxes(buf, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return s, e
            found = _find(buf, s, e, path[1:])
            if found:
                return found
    return None


def _write_clip(path: Path, n: int = 5, w: int = 64, h: int = 32) -> None:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.full((h, w, 3), 20 * i, np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)


@pytest.mark.parametrize("faststart", [False, True])
def test_vr180_boxes_sit_in_the_sample_entry_and_the_video_still_decodes(tmp_path, faststart):
    src = tmp_path / "in.mp4"
    _write_clip(src)
    if faststart:  # moov before mdat: chunk offsets must move with the inserted bytes
        moved = tmp_path / "fs.mp4"
        with av.open(str(src)) as inp, av.open(str(moved), "w", options={"movflags": "faststart"}) as out:
            stream = out.add_stream_from_template(inp.streams.video[0])
            for pkt in inp.demux(inp.streams.video[0]):
                if pkt.dts is not None:
                    pkt.stream = stream
                    out.mux(pkt)
        src = moved
    dest = tmp_path / "vr.mp4"
    add_spherical_metadata(src, dest)
    buf = dest.read_bytes()
    moov = _find(buf, 0, len(buf), ["moov"])
    assert moov is not None
    stsd = _find(buf, *moov, ["trak", "mdia", "minf", "stbl", "stsd"])
    assert stsd is not None
    (entry_kind, es, ee) = next(_boxes(buf, stsd[0] + 8, stsd[1]))
    assert entry_kind == "avc1"
    children = {k: (s, e) for k, s, e in _boxes(buf, es + 78, ee)}
    assert buf[children["st3d"][0] + 4] == 2  # left-right
    equi = _find(buf, *children["sv3d"], ["proj", "equi"])
    assert equi is not None
    bounds = struct.unpack(">IIII", buf[equi[0] + 4 : equi[0] + 20])
    assert bounds == (0, 0, 2**30, 2**30)  # the front 180 x 180 degrees
    with av.open(str(src)) as a, av.open(str(dest)) as b:
        frames_a = [f.to_ndarray(format="rgb24") for f in a.decode(video=0)]
        frames_b = [f.to_ndarray(format="rgb24") for f in b.decode(video=0)]
    assert len(frames_b) == 5 and all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(dest)],
                               capture_output=True, text=True, check=True)  # fmt: skip
        side = json.dumps(json.loads(probe.stdout)["streams"][0].get("side_data_list", []))
        assert "Stereo 3D" in side and "left" in side.lower() and "Spherical Mapping" in side
        assert "equirectangular" in side


# ---------------------------------------------------------------- the video command
def test_stereo_video_keeps_frames_rate_audio_and_resumes(tmp_path, monkeypatch):
    from dataclasses import replace

    import sharpdepth
    from sharpdepth.apps.stereo_video import StereoVideoSettings, run_stereo_video
    from sharpdepth.engine.settings import ModelSettings
    from sharpdepth.video.settings import VideoSettings
    from video_clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", n=6, w=64, h=48, fps=12, audio=True)
    model = sharpdepth.load("depth-anything-v2-metric-tiny", random_weights=True)
    settings = StereoVideoSettings(
        stereo=StereoSettings(layout="sbs"),
        video=VideoSettings(model=ModelSettings(name="depth-anything-v2-metric-tiny")),
    )
    out = tmp_path / "out"
    summary = run_stereo_video(clip, out, settings, model=model)
    assert summary.path == out / "clip_sbs.mp4" and summary.frames == 6
    with av.open(str(summary.path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
        assert float(v.average_rate) == pytest.approx(12.0) and len(c.streams.audio) == 1
    assert len(frames) == 6 and frames[0].shape == (48, 128, 3)
    assert sorted(p.name for p in out.iterdir()) == ["clip_sbs.mp4"]  # the depth folder is gone
    # interrupted after 3 frames: the depth of those is read back, not computed again
    keep = StereoVideoSettings(stereo=settings.stereo, video=settings.video, keep_depth=True)
    run_stereo_video(clip, tmp_path / "again", keep, model=model)
    depth_dir = tmp_path / "again" / "clip_depth"
    for extra in sorted(depth_dir.glob("*.npz"))[3:]:
        extra.unlink()
    calls: list[int] = []
    real = model.predict_batch
    monkeypatch.setattr(model, "predict_batch", lambda frames, **kw: calls.append(len(frames)) or real(frames, **kw))
    resumed = run_stereo_video(clip, tmp_path / "again", keep, model=model)
    assert resumed.reused == 3 and sum(calls) == 3
    # another model (or other depth settings) never reuses those frames: its depth is not theirs
    other = sharpdepth.load("depth-anything-v2-tiny", random_weights=True)
    relative = StereoVideoSettings(
        stereo=settings.stereo, video=VideoSettings(model=ModelSettings(name="depth-anything-v2-tiny")), keep_depth=True
    )
    fresh = run_stereo_video(clip, tmp_path / "again", relative, model=other)
    assert fresh.reused == 0 and fresh.frames == 6
    unstabilised = StereoVideoSettings(
        stereo=settings.stereo, video=replace(relative.video, stabilize=False), keep_depth=True
    )
    assert run_stereo_video(clip, tmp_path / "again", unstabilised, model=other).reused == 0
    assert run_stereo_video(clip, tmp_path / "again", unstabilised, model=other).reused == 6


def test_the_bundled_clip_converts_as_the_readme_says(tmp_path):
    """examples/desk.mp4 (the README's offline example): frame count, rate and audio kept."""
    import sharpdepth
    from sharpdepth.apps.stereo_video import StereoVideoSettings, run_stereo_video
    from sharpdepth.engine.settings import ModelSettings
    from sharpdepth.video.settings import VideoSettings

    clip = Path(__file__).resolve().parents[1] / "examples" / "desk.mp4"
    model = sharpdepth.load("depth-anything-v2-metric-tiny", random_weights=True)
    settings = StereoVideoSettings(
        stereo=StereoSettings(layout="half-sbs"),
        video=VideoSettings(model=ModelSettings(name="depth-anything-v2-metric-tiny")),
    )
    summary = run_stereo_video(clip, tmp_path, settings, model=model)
    with av.open(str(summary.path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
        assert (v.width, v.height) == (320, 240) and float(v.average_rate) == pytest.approx(15.0)
        assert len(c.streams.audio) == 1
    assert summary.frames == n == 30


# ---------------------------------------------------------------- photos through the command line
def test_photo_layouts_from_the_command_line(tmp_path, capsys):
    from PIL import Image

    from sharpdepth.cli.main import main

    img, depth = scene()
    photo = tmp_path / "photo.png"
    Image.fromarray(img).save(photo)
    npz = tmp_path / "photo.npz"
    np.savez(npz, depth=depth, focal_px=np.float64(F), output_kind="metric_depth", model="synthetic")
    out = tmp_path / "out"
    assert main(["stereo", str(photo), "--depth", str(npz), "-o", str(out), "--layout", "half-tb"]) == 0
    assert Image.open(out / "photo_half-tb.jpg").size == (W, H)
    spatial = ["--layout", "spatial-heic", "--interaxial-mm", "50"]
    assert main(["stereo", str(photo), "--depth", str(npz), "-o", str(out), *spatial]) == 0
    import pillow_heif

    heif = pillow_heif.open_heif(str(out / "photo_spatial-heic.heic"))
    eyes = [np.asarray(im.to_pillow().convert("RGB")).astype(int) for im in heif]
    assert len(eyes) == 2 and eyes[0].shape == eyes[1].shape == img.shape
    assert np.abs(eyes[0] - eyes[1]).mean() > 2  # two different views
    # the headset's cameras are the ones the eyes were made with: the depth's focal length, 50 mm apart
    from test_spatial_photo import read_heif

    k = heif[0].info["heif"]["camera_intrinsic_matrix"]
    assert k["focal_length_x"] == pytest.approx(F, rel=1e-4)
    parsed = read_heif((out / "photo_spatial-heic.heic").read_bytes())
    positions = sorted(struct.unpack(">i", dict(props)["cmex"][4:8])[0] for props in parsed["props"].values())
    assert positions == [-25000, 25000]
    capsys.readouterr()
    assert main(["stereo", str(photo), "--depth", str(npz), "-o", str(out), "--source", "splat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splat" in err[0] and "SHARP" in err[0]
