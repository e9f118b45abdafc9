"""Video Depth Anything: parity with the official code, computed buffers, the general windowing rules.

`fixtures/video_depth_anything/` was made by the official code (commit 4f5ae23) with
stand-in weights: one 32-frame network window (vits/net_*), the offline and streaming
pipelines over a 40-frame clip (relative and metric). Our network must load the
stand-ins strictly and reproduce them in float32 on CPU within 1e-4 relative.

Clips longer than the fixture (3+ offline windows, the streaming steady state from
frame 42) are checked against reference implementations written here, straight from
the official algorithm (whole-clip lists, as `infer_video_depth` does; per-frame states
addressed by the closed-form window rule), on a tiny random network.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import sharpdepth
from sharpdepth.engine.model import DepthModel
from sharpdepth.errors import InputImageError, OptionError, WeightsError
from sharpdepth.models.video_depth_anything import (
    VideoDepthAnything,
    computed_buffers,
    make_vda_config,
    sinusoidal_table,
    vda_network_size,
)
from sharpdepth.models.video_depth_anything.video import StreamCache, VideoTrace, offline_window_ids, vda_video_maps
from sharpdepth.registry import get_spec
from sharpdepth.result import OutputKind

from conftest import (
    assert_close_rel,
    fixture_expected,
    fixture_manifest,
    fixture_state_dict,
    fixtures_dir,
    stand_in_state_dict,
)

FOLDER = "video_depth_anything/vits"
FX = fixtures_dir() / "video_depth_anything"
TOL = 1e-4  # expected.json tolerance: max|a-b| <= 1e-4 * max|b|


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a64 - b64).max() / np.abs(b64).max())


@pytest.fixture(scope="module")
def standin_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture weights as an official-layout .pt (no position tables, as fixture_state_dict)."""
    path = tmp_path_factory.mktemp("vda") / "vda_vits_standin.pt"
    torch.save(fixture_state_dict(FOLDER), path)
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.load(FX / "vits/frames.npy")


@pytest.fixture(scope="module")
def small(standin_file: Path) -> DepthModel:
    return sharpdepth.load("video-depth-anything-small", weights=standin_file, input_size=70)


@pytest.fixture(scope="module")
def metric_small(standin_file: Path) -> DepthModel:
    return sharpdepth.load("video-depth-anything-metric-small", weights=standin_file, input_size=70)


# ----------------------------------------------------------------- layout, buffers, loading


def test_state_dict_is_the_official_layout_minus_the_computed_tables():
    manifest = fixture_manifest(FOLDER)
    cfg = make_vda_config("vits")
    net = VideoDepthAnything(cfg)
    computed = set(manifest["computed_buffers"])
    assert set(computed_buffers(cfg)) == computed and len(computed) == 8
    official = [(k, tuple(s)) for k, s in manifest["state_dict"] if k not in computed]
    ours = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert ours == official  # same keys, same order, same shapes


def test_position_tables_are_the_sinusoidal_formula():
    cfg = make_vda_config("vits")
    net = VideoDepthAnything(cfg)
    buffers = dict(net.named_buffers())
    for key, width in zip(computed_buffers(cfg), (192, 192, 384, 384, 64, 64, 64, 64), strict=True):
        table = buffers[key]
        assert tuple(table.shape) == (1, 32, width)
        t = np.arange(32, dtype=np.float64)[:, None]
        i = np.arange(0, width, 2, dtype=np.float64)[None, :]
        angle = t * np.exp(-i * math.log(10000.0) / width)
        want = np.zeros((32, width))
        want[:, 0::2], want[:, 1::2] = np.sin(angle), np.cos(angle)
        # expected.json: the official float32 tables are within 1.6e-6 of the float64 formula
        assert np.abs(table[0].numpy() - want).max() < 5e-6, key
    assert not any(k.endswith("pos_encoder.pe") for k in net.state_dict())


def test_strict_loading_of_the_fixture_weights_and_of_official_files_with_tables(tmp_path: Path):
    cfg = make_vda_config("vits")
    net = VideoDepthAnything(cfg)
    state = fixture_state_dict(FOLDER)
    net.load_state_dict(state, strict=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        VideoDepthAnything(cfg).load_state_dict({k: v for k, v in state.items() if "proj_out" not in k})
    # Official checkpoints also store the 8 tables: accepted when they are the computed ones ...
    official = {**state, **computed_buffers(cfg)}
    VideoDepthAnything(cfg).load_state_dict(official, strict=True)
    path = tmp_path / "official.pt"
    torch.save(official, path)
    model = sharpdepth.load("video-depth-anything-small", weights=path, input_size=70)
    assert model.spec.name == "video-depth-anything-small"
    # ... and refused (one line, no traceback) when they are not.
    key = next(iter(computed_buffers(cfg)))
    official[key] = official[key] + 0.01
    with pytest.raises(RuntimeError, match="position table"):
        VideoDepthAnything(cfg).load_state_dict(official, strict=True)
    torch.save(official, path)
    with pytest.raises(WeightsError, match="position table"):
        sharpdepth.load("video-depth-anything-small", weights=path, input_size=70)


# ----------------------------------------------------------------- fixture parity


def test_network_window_parity():
    net = VideoDepthAnything(make_vda_config("vits")).eval()
    net.load_state_dict(fixture_state_dict(FOLDER), strict=True)
    x = torch.from_numpy(np.load(FX / "vits/net_input.npy"))
    with torch.inference_mode():
        out = net(x).numpy()
    assert_close_rel(out, np.load(FX / "vits/net_output.npy"), TOL, "net_output")


def test_preprocessing_reproduces_the_network_input(small, frames: np.ndarray):
    assert vda_network_size(54, 96, 70) == (70, 126)
    x = torch.stack([small.processor.preprocess(f) for f in frames[:32]])[None].numpy()
    ref = np.load(FX / "vits/net_input.npy")
    assert x.shape == ref.shape and x.dtype == np.float32
    # cv2 resizes float32 in float32; we emulate it in float64 (torch bicubic would be 1.9e-5 off)
    assert np.abs(x - ref).max() < 3e-5


def test_wide_frames_get_the_official_smaller_input_size():
    # ratio 2 > 1.78: input size int(518 * 1.777 / 2) = 460 -> round(460 / 14) * 14 = 462
    assert vda_network_size(100, 200, 518) == (462, 924)
    # 16:9 (ratio 1.7778) keeps 518: 518 x round(920.9 / 14) * 14 = 518 x 924
    assert vda_network_size(540, 960, 518) == (518, 924)


@pytest.mark.parametrize(
    ("which", "mode", "reference"),
    [
        ("small", "offline", "vits/pipeline_depth.npy"),
        ("small", "streaming", "vits/stream_depth.npy"),
        ("metric_small", "offline", "metric_vits/pipeline_depth.npy"),
    ],
)
def test_predict_video_parity(
    request: pytest.FixtureRequest, frames: np.ndarray, which: str, mode: str, reference: str
) -> None:
    """The public API end to end: one DepthResult per frame, in order, equal to the official pipeline."""
    model = request.getfixturevalue(which)
    results = list(model.predict_video(frames.copy(), mode=mode))
    assert [r.frame_index for r in results] == list(range(len(frames)))
    field = "depth" if which == "metric_small" else "disparity"
    assert all(r.kind is model.spec.output_kind for r in results)
    got = np.stack([getattr(r, field) for r in results])
    assert got.dtype == np.float32
    assert_close_rel(got, np.load(FX / reference), TOL, f"{which} {mode}")


def test_offline_windows_and_alignment_match_the_fixture(small, frames: np.ndarray):
    expected = fixture_expected(FOLDER)["pipeline"]
    assert offline_window_ids(40) == expected["window_frame_indices"]
    trace = VideoTrace()
    list(vda_video_maps(small, iter(frames), "offline", trace))
    assert trace.windows == expected["window_frame_indices"]
    np.testing.assert_allclose(trace.scale_shift, expected["scale_shift_per_window_after_first"], rtol=1e-5)


def test_stream_windows_match_the_fixture_and_the_closed_form():
    expected = fixture_expected(FOLDER)["stream"]["window_frame_ids"]
    cache, windows = StreamCache(), []
    for step in range(120):
        ids, _ = cache.window()
        windows.append(ids + [step])
        cache.push([torch.full((1, 1, 1), float(step))])
        assert len(cache.entries) <= 42  # bounded: memory does not grow with the clip
    assert windows[:40] == expected
    assert windows == [_closed_form_stream_window(k) for k in range(120)]
    assert windows[42][:3] == [0, 1, 13] and windows[100][:3] == [0, 59, 71]


def test_metric_offline_is_never_rescaled(metric_small, frames: np.ndarray):
    trace = VideoTrace()
    list(vda_video_maps(metric_small, iter(frames[:23]), "offline", trace))
    assert trace.scale_shift == [(1.0, 0.0)]


# ----------------------------------------------------------------- general rules (tiny network)


def _official_offline_plan(n: int) -> list[list[int]]:
    """Slot -> frame index per window, simulating the official code on a list of frame ids."""
    step, overlap, keyframes = 22, 10, [0, 12, 24, 25, 26, 27, 28, 29, 30, 31]
    padded = list(range(n)) + [n - 1] * ((step - n % step) % step + overlap)
    plan: list[list[int]] = []
    for start in range(0, n, step):
        window = padded[start : start + 32]
        if plan:
            window[:overlap] = [plan[-1][k] for k in keyframes]
        plan.append(window)
    return plan


def _closed_form_stream_window(k: int) -> list[int]:
    """The README's description: [0, k-41, k-29 .. k], with frame 0 standing in before the clip start."""
    if k == 0:
        return [0]
    return [0, max(k - 41, 0)] + [max(j, 0) for j in range(k - 29, k)] + [k]


@pytest.fixture(scope="module")
def tiny() -> DepthModel:
    model = sharpdepth.load("video-depth-anything-tiny", random_weights=True, input_size=28)
    model.net.load_state_dict(stand_in_state_dict(model.net), strict=True)
    return model


def _clip(n: int, h: int = 20, w: int = 36, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3)).astype(np.float64)
    drift = np.linspace(0, 60, n)[:, None, None, None]
    return np.clip(base[None] + drift + rng.normal(0, 8, (n, h, w, 3)), 0, 255).astype(np.uint8)


def _reference_offline(model: DepthModel, clip: np.ndarray) -> np.ndarray:
    """`infer_video_depth` written out on whole-clip lists (no streaming, no early output)."""
    net = model.net
    inputs = [model.processor.preprocess(f) for f in clip]
    h, w = clip.shape[1:3]
    raw: list[np.ndarray] = []
    for ids in _official_offline_plan(len(clip)):
        x = torch.stack([inputs[i] for i in ids])[None]
        with torch.inference_mode():
            d = net(x)[0][:, None]
        raw += list(torch.nn.functional.interpolate(d, (h, w), mode="bilinear", align_corners=True)[:, 0].numpy())
    out: list[np.ndarray] = []
    ref: list[np.ndarray] = []
    for s in range(0, len(raw), 32):
        if not out:
            out += raw[:32]
            ref = [raw[0], raw[12]]
            continue
        p, q = np.concatenate(raw[s : s + 2]).ravel(), np.concatenate(ref).ravel()
        a = np.stack([p, np.ones_like(p)], 1).astype(np.float64)
        scale, shift = np.linalg.lstsq(a, q.astype(np.float64), rcond=None)[0]
        fix = [np.maximum(m * scale + shift, 0) for m in raw[s : s + 32]]
        weights = np.linspace(0, 1, 8)
        out[-8:] = [b * (1 - wt) + a * wt for b, a, wt in zip(out[-8:], fix[2:10], weights, strict=True)]
        out += fix[10:]
        ref = [ref[0], fix[12]]
    return np.stack(out[: len(clip)])


def test_offline_general_rule_on_four_windows(tiny):
    clip = _clip(70)  # windows start at 0, 22, 44, 66: the reference keyframes are re-chained twice
    trace = VideoTrace()
    got = np.stack(list(vda_video_maps(tiny, iter(clip), "offline", trace)))
    assert trace.windows == _official_offline_plan(70) == offline_window_ids(70)
    assert trace.windows[3][:2] == [0, trace.windows[2][12]]  # frame 0 forever, then the chained keyframe
    assert len(trace.scale_shift) == 3
    ref = _reference_offline(tiny, clip)
    assert got.shape == ref.shape == (70, 20, 36)
    assert (ref > 0).mean() > 0.5  # the stand-in network is not clipped to zero by its last ReLU
    assert _rel(got, ref) < 1e-5


@pytest.mark.parametrize("n", [1, 22, 23, 45])
def test_offline_keeps_frame_count_and_order(tiny, n: int):
    clip = _clip(n)
    trace = VideoTrace()
    got = list(vda_video_maps(tiny, iter(clip), "offline", trace))
    assert len(got) == n and all(m.shape == (20, 36) for m in got)
    assert trace.windows == _official_offline_plan(n)


def test_streaming_general_rule_past_the_steady_state(tiny):
    clip = _clip(46)
    trace = VideoTrace()
    got = np.stack(list(vda_video_maps(tiny, iter(clip), "streaming", trace)))
    assert trace.windows == [_closed_form_stream_window(k) for k in range(46)]
    assert trace.windows[45][:3] == [0, 4, 16]
    # Reference: each frame's states kept by frame id, the window taken from the closed form.
    net, states = tiny.net, {}
    ref = []
    for k, frame in enumerate(clip):
        x = tiny.processor.preprocess(frame)[None, None]
        ids = _closed_form_stream_window(k)[:-1]
        past = [torch.cat([states[i][j] for i in ids], 1) for j in range(8)] if ids else None
        with torch.inference_mode():
            depth, states[k] = net.forward_frames(x, past)
        ref.append(torch.nn.functional.interpolate(depth, (20, 36), mode="bilinear", align_corners=True)[0, 0].numpy())
    assert _rel(got, np.stack(ref)) < 1e-5


class _Counting:
    """An iterator that counts how many frames were pulled from it."""

    def __init__(self, clip: np.ndarray) -> None:
        self.clip, self.pulled = clip, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self.clip:
            self.pulled += 1
            yield frame


def test_frames_are_read_lazily(tiny):
    source = _Counting(_clip(100))
    maps = vda_video_maps(tiny, source, "offline")
    next(maps)
    assert source.pulled == 32  # one window of look-ahead, not the clip
    for _ in range(24):
        next(maps)
    assert source.pulled == 54
    source = _Counting(_clip(100))
    maps = vda_video_maps(tiny, source, "streaming")
    next(maps), next(maps)
    assert source.pulled == 2


def test_bad_clips_fail_with_one_line(tiny):
    with pytest.raises(InputImageError, match="no frames"):
        list(vda_video_maps(tiny, iter([]), "offline"))
    mixed = [_clip(1)[0], _clip(1, h=22)[0]]
    with pytest.raises(InputImageError, match="frame 1"):
        list(vda_video_maps(tiny, iter(mixed), "streaming"))
    with pytest.raises(OptionError, match="mode"):
        list(vda_video_maps(tiny, iter(_clip(2)), "sideways"))  # type: ignore[arg-type]
    depth_anything = sharpdepth.load("depth-anything-v2-tiny", random_weights=True)
    with pytest.raises(OptionError, match="not a Video Depth Anything"):
        list(vda_video_maps(depth_anything, iter(_clip(2)), "offline"))


# ----------------------------------------------------------------- presets


def test_presets_sources_and_licences():
    expected = {
        "small": ("vits", "Apache-2.0", "Small"),
        "base": ("vitb", "CC-BY-NC-4.0", "Base"),
        "large": ("vitl", "CC-BY-NC-4.0", "Large"),
    }
    for size, (enc, licence, title) in expected.items():
        rel, met = get_spec(f"video-depth-anything-{size}"), get_spec(f"video-depth-anything-metric-{size}")
        assert rel.output_kind is OutputKind.RELATIVE_DISPARITY and met.output_kind is OutputKind.METRIC_DEPTH
        assert rel.license == met.license == licence
        assert not rel.config.metric and met.config.metric and rel.config.encoder == enc
        assert (rel.sources[0].repo_id, rel.sources[0].filename) == (
            f"depth-anything/Video-Depth-Anything-{title}",
            f"video_depth_anything_{enc}.pth",
        )
        assert (met.sources[0].repo_id, met.sources[0].filename) == (
            f"depth-anything/Metric-Video-Depth-Anything-{title}",
            f"metric_video_depth_anything_{enc}.pth",
        )
    assert "video-depth-anything-small" in sharpdepth.list_models()
    assert "video-depth-anything-tiny" not in sharpdepth.list_models()


def test_single_images_run_as_one_frame_clips(small, frames: np.ndarray):
    result = small.predict(frames[0])
    assert result.disparity.shape == (54, 96)
    alone = next(iter(vda_video_maps(small, iter(frames[:1]), "streaming")))  # frame 0 alone: T = 1
    np.testing.assert_allclose(result.disparity, alone, rtol=1e-5, atol=1e-6)
    assert sinusoidal_table(4, 8).shape == (1, 4, 8)
