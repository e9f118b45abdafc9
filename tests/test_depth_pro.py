"""Depth Pro parity with the official implementation (apple/ml-depth-pro @ 9efe5c1).

The fixtures were produced by the official code with deterministic stand-in weights
(see /work/shared/fixtures/README.md). `tiny` runs every code path on small widths in
seconds; `full` is the released architecture (ViT-L, ~19 TFLOP per forward) and is
marked slow. Each model is built once per module and each input is run once: the
network output does not depend on the focal length, only the post-processing does.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from sharpdepth.family import NetworkOutput, Processor
from sharpdepth.models.depth_pro import DEPTH_PRO, DEPTH_PRO_TINY, PARAMS_MILLIONS, DepthPro, DepthProConfig
from sharpdepth.registry import get_spec
from sharpdepth.result import OutputKind

from conftest import assert_close_rel, fixture_expected, fixture_manifest, fixture_state_dict, fixtures_dir

TINY = "depth_pro/tiny"
FULL = "depth_pro/full"


# --------------------------------------------------------------------------- helpers


def load_fixture_model(folder: str, cfg: DepthProConfig) -> DepthPro:
    """Build on the meta device and adopt the fixture tensors (no second copy of the weights)."""
    with torch.device("meta"):
        net = DepthPro(cfg)
    net.load_state_dict(fixture_state_dict(folder), strict=True, assign=True)
    return net.eval()


def read_rgb(path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def net_input(folder: str) -> torch.Tensor:
    """image_net.png as the official test fed it: ToTensor (/255), Normalize(0.5, 0.5), no resize."""
    rgb = read_rgb(fixtures_dir() / folder / "image_net.png")
    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)
    return x.sub(0.5).div(0.5)[None]


def run_pipeline(folder: str, net: DepthPro, adapter: Processor):
    """One network pass on image.png through the adapter; post-processed for both focal cases."""
    rgb = read_rgb(fixtures_dir() / folder / "image.png")
    batch = adapter.preprocess(rgb)[None]
    (out,) = adapter.forward(net, batch)
    h, w = rgb.shape[:2]
    return out, adapter.postprocess(out, h, w, None), adapter.postprocess(out, h, w, 600.0)


def check_net(folder: str, inverse_depth: torch.Tensor, fov: torch.Tensor) -> None:
    expected = fixture_expected(folder)
    ref = np.load(fixtures_dir() / folder / "net_output_canonical_inverse_depth.npy")
    rel = expected["tolerance"]["net_output_canonical_inverse_depth"]["rel_max_abs"]
    assert_close_rel(inverse_depth.float().numpy(), ref, rel, "canonical inverse depth")
    assert fov.shape == (1,)
    assert abs(float(fov[0]) - expected["net"]["fov_deg"]) <= expected["tolerance"]["fov_deg"]["abs"]


def check_pipeline(folder: str, results) -> None:
    expected = fixture_expected(folder)
    out, from_fov, given = results
    rel = expected["tolerance"]["pipeline_depth"]["rel_max_abs_on_inverse_depth"]
    for pred, name in ((from_fov, "pipeline_depth_fov"), (given, "pipeline_depth_fpx600")):
        ref = np.load(fixtures_dir() / folder / f"{name}.npy")
        assert pred.map.dtype == np.float32 and pred.map.shape == ref.shape == (480, 640)
        assert_close_rel(1.0 / pred.map, 1.0 / ref, rel, f"{name} (as inverse depth)")
    # focal length: allow what the FOV tolerance allows (f = W / (2 tan(fov / 2)))
    fov_tol = expected["tolerance"]["fov_deg"]["abs"]
    focal_ref = expected["pipeline"]["focallength_px_from_fov"]
    fov_ref = math.degrees(2 * math.atan(320.0 / focal_ref))
    focal_tol = abs(320.0 / math.tan(math.radians(fov_ref - fov_tol) / 2) - focal_ref)
    assert from_fov.focal_from_model and abs(from_fov.focal_px - focal_ref) <= focal_tol
    assert not given.focal_from_model and given.focal_px == 600.0
    assert out.map.shape == (1536, 1536) and out.map.dtype == torch.float32


# --------------------------------------------------------------------------- tiny


@pytest.fixture(scope="module")
def tiny_net() -> DepthPro:
    return load_fixture_model(TINY, DEPTH_PRO_TINY)


@pytest.fixture(scope="module")
def tiny_forward(tiny_net):
    with torch.inference_mode():
        return tiny_net(net_input(TINY))


def test_tiny_manifest_keys_and_shapes():
    manifest = fixture_manifest(TINY)
    ours = DepthPro(DEPTH_PRO_TINY).state_dict()
    assert [(k, list(v.shape)) for k, v in ours.items()] == [(k, s) for k, s in manifest["state_dict"]]


def test_tiny_config_matches_fixture():
    vit = fixture_manifest(TINY)["config"]["vit"]
    cfg = DEPTH_PRO_TINY
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads) == (vit["embed_dim"], vit["depth"], vit["num_heads"])
    assert list(cfg.hook_block_ids) == vit["hook_block_ids"]
    assert list(cfg.encoder_feature_dims) == vit["encoder_feature_dims"]


def test_tiny_network_output(tiny_forward):
    inverse_depth, fov = tiny_forward
    assert inverse_depth.shape == (1, 1, 1536, 1536)
    check_net(TINY, inverse_depth, fov)


def test_tiny_intermediates_match_reference_stats(tiny_net):
    """The official-order path, stage by stage, against the fixture's summary statistics."""
    with torch.inference_mode():
        inverse_depth, fov, rec = tiny_net.forward_with_intermediates(net_input(TINY))
    check_net(TINY, inverse_depth, fov)
    stats = fixture_expected(TINY)["net"]["stats"]
    checked = 0
    for name, st in stats.items():
        if name not in rec:
            continue
        t = rec[name].double()
        scale = max(abs(st["min"]), abs(st["max"]))
        assert list(t.shape) == st["shape"], name
        for stat, value in (("mean", t.mean()), ("std", t.std()), ("min", t.min()), ("max", t.max())):
            assert abs(float(value) - st[stat]) <= 1e-4 * scale, f"{name}.{stat}: {float(value)} vs {st[stat]}"
        checked += 1
    assert checked == 15


def test_tiny_banded_equals_whole_maps(tiny_net, tiny_forward):
    """Bands of any height (even ones smaller than the halo) give the whole-map result."""
    x = net_input(TINY)
    ref, _ = tiny_forward
    try:
        for rows in (0, 40):
            tiny_net.band_rows = rows
            with torch.inference_mode():
                y, _ = tiny_net(x)
            assert torch.allclose(y, ref, rtol=0, atol=1e-6 * float(ref.abs().max())), rows
    finally:
        tiny_net.band_rows = DEPTH_PRO_TINY.band_rows


def test_tiny_patch_batches_equal_one_call(tiny_net, tiny_forward):
    """The patch ViT in groups of windows (any size, across image boundaries) gives the one-call result."""
    x = net_input(TINY)
    pair = torch.cat([x, x.flip(-1)])
    ref, _ = tiny_forward
    try:
        tiny_net.encoder.patch_batch = 0
        with torch.inference_mode():
            ref_pair, fov_pair = tiny_net(pair)
        for windows in (1, 7, 12, 35):
            tiny_net.encoder.patch_batch = windows
            with torch.inference_mode():
                y, fov = tiny_net(pair)
            bound = 1e-6 * float(ref.abs().max())
            assert torch.allclose(y[:1], ref, rtol=0, atol=bound), windows
            assert torch.allclose(y, ref_pair, rtol=0, atol=bound), windows
            assert fov is not None and fov_pair is not None and torch.allclose(fov, fov_pair, atol=1e-5)
    finally:
        tiny_net.encoder.patch_batch = DEPTH_PRO_TINY.patch_batch


def test_tiny_pipeline(tiny_net):
    adapter = get_spec("depth-pro-tiny").processor()
    check_pipeline(TINY, run_pipeline(TINY, tiny_net, adapter))


def test_tiny_bf16_close_to_fp32(tiny_forward):
    net = load_fixture_model(TINY, DEPTH_PRO_TINY).to(torch.bfloat16)
    with torch.inference_mode():
        y, fov = net(net_input(TINY).to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.shape == (1, 1, 1536, 1536)
    ref, ref_fov = tiny_forward
    err = (y.float() - ref).abs()
    scale = float(ref.abs().max())
    # Bounds in units of bf16's machine epsilon (2^-7): measured max 1.5e-2 = 2 eps, mean 1.5e-3 = 0.19 eps,
    # FOV 0.02 degrees on an AMX CPU. A wrong cast or an fp32-only op fed bf16 would exceed them.
    eps = float(torch.finfo(torch.bfloat16).eps)
    assert float(err.max()) <= 4 * eps * scale and float(err.mean()) <= 0.5 * eps * scale
    assert abs(float(fov[0]) - float(ref_fov[0])) <= 0.1


def test_forward_rejects_other_sizes(tiny_net):
    with pytest.raises(ValueError, match="1536"):
        tiny_net(torch.zeros(1, 3, 768, 768))


def test_specs_registered():
    full, tiny = get_spec("depth-pro"), get_spec("depth-pro-tiny")
    assert full.family == tiny.family == "depth_pro"
    assert full.output_kind is tiny.output_kind is OutputKind.METRIC_DEPTH
    assert full.config == DEPTH_PRO and tiny.config == DEPTH_PRO_TINY and tiny.test_only
    assert [(s.repo_id, s.filename, s.layout) for s in full.sources] == [
        ("apple/DepthPro", "depth_pro.pt", "official"),
        ("apple/DepthPro-hf", "model.safetensors", "hf"),
    ]
    assert full.native_resolution == "1536x1536" and not tiny.sources


def test_full_architecture_keys_and_param_count():
    """The official ViT-L model, built on the meta device: keys, shapes and size."""
    with torch.device("meta"):
        net = DepthPro(DEPTH_PRO)
    ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert ours == [(k, s) for k, s in fixture_manifest(FULL)["state_dict"]]
    n = sum(p.numel() for p in net.parameters())
    assert n == 951_991_330 and round(n / 1e6, 2) == PARAMS_MILLIONS


def test_config_validation():
    with pytest.raises(ValueError):
        replace(DEPTH_PRO_TINY, hook_block_ids=(1, 9))
    with pytest.raises(ValueError):
        replace(DEPTH_PRO_TINY, img_size=1024)


def test_adapter_preprocess_official_order():
    """uint8 -> /255 -> normalise -> bilinear resize (align_corners=False, no antialias)."""
    adapter = get_spec("depth-pro-tiny").processor()
    rgb = read_rgb(fixtures_dir() / TINY / "image.png")
    x = adapter.preprocess(rgb)
    assert x.shape == (3, 1536, 1536) and x.dtype == torch.float32
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    ref = torch.nn.functional.interpolate(
        ((t - 0.5) / 0.5)[None], size=(1536, 1536), mode="bilinear", align_corners=False
    )[0]
    assert torch.equal(x, ref)
    same = adapter.preprocess(np.zeros((1536, 1536, 3), np.uint8))
    assert torch.equal(same, torch.full((3, 1536, 1536), -1.0))


def test_adapter_postprocess_scales_inverse_depth():
    """Metric scale is W / f_px on inverse depth; depth is clamped to [1e-4, 1e4] m."""
    adapter = get_spec("depth-pro-tiny").processor()
    canonical = torch.full((1536, 1536), 0.25)
    canonical[0, 0] = 0.0
    out = NetworkOutput(map=canonical, fov_deg=90.0)
    pred = adapter.postprocess(out, 1536, 1536, None)
    assert pred.focal_from_model and pred.focal_px == pytest.approx(768.0, rel=1e-6)
    assert pred.map[5, 5] == pytest.approx(1.0 / (0.25 * 2.0), rel=1e-6)
    assert pred.map[0, 0] == pytest.approx(1e4)
    given = adapter.postprocess(out, 1536, 1536, 3072.0)
    assert given.map[5, 5] == pytest.approx(1.0 / (0.25 * 0.5), rel=1e-6) and not given.focal_from_model


# --------------------------------------------------------------------------- full size


@pytest.fixture(scope="module")
def full_net() -> DepthPro:
    return load_fixture_model(FULL, DEPTH_PRO)


@pytest.mark.slow
def test_full_network_output(full_net):
    with torch.inference_mode():
        inverse_depth, fov = full_net(net_input(FULL))
    check_net(FULL, inverse_depth, fov)


@pytest.mark.slow
def test_full_pipeline(full_net):
    adapter = get_spec("depth-pro").processor()
    check_pipeline(FULL, run_pipeline(FULL, full_net, adapter))
