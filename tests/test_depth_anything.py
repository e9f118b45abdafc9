"""Depth Anything V1/V2 (relative and metric): parity with the official code, key maps, presets.

Every folder under fixtures/depth_anything/ was made by the official code (V1:
LiheYoung/Depth-Anything, V2: DepthAnything/Depth-Anything-V2 incl. metric_depth) with
stand-in weights. Our network must load them strictly and reproduce `net_output_depth`
from `net_input`; our adapter must turn `image.png` (read with Pillow) into the same
network input (the official cv2.INTER_CUBIC resize, reproduced without OpenCV) and into
`pipeline_depth`. transformers' `DepthAnythingForDepthEstimation` is an independent
oracle for the key map.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sharpdepth.errors import RelativeDepthError, WeightsError
from sharpdepth.family import KeyMapError, NetworkOutput, Processor
from sharpdepth.models.depth_anything import DepthAnything, DepthAnythingConfig, network_size
from sharpdepth.models.depth_anything.keymap import hf_to_official, key_pairs, official_to_hf
from sharpdepth.models.resize import resize_cubic_cv2
from sharpdepth.models.vit import count_params
from sharpdepth.registry import get_spec, list_specs
from sharpdepth.result import OutputKind

from conftest import (
    _fixture_weights_module,
    assert_close_rel,
    fixture_expected,
    fixture_manifest,
    fixture_state_dict,
    fixtures_dir,
)

# fixture folder -> our preset. Slow: vitl (25-45 s per forward on these 2 cores), vitg (100-170 s, ~5 GB).
FIXTURES = {
    "v2_vits": "depth-anything-v2-small",
    "v2_vitb": "depth-anything-v2-base",
    "v2_metric_vits": "depth-anything-v2-metric-indoor-small",
    "v1_vits": "depth-anything-v1-small",
    "v2_vitl": "depth-anything-v2-large",
    "v1_vitl": "depth-anything-v1-large",
    "v2_vitg": "depth-anything-v2-giant",
}
SLOW = {"v2_vitl", "v1_vitl", "v2_vitg"}
STREAM_WEIGHTS = {"v2_vitg"}  # generate weights key by key: the full numpy dict would double peak memory


def _folder(name: str) -> str:
    return f"depth_anything/{name}"


def _load_fixture_weights(net: DepthAnything, folder: str) -> None:
    """The fixture's stand-in weights, strictly (every manifest key, nothing else)."""
    if folder.rsplit("/", 1)[-1] not in STREAM_WEIGHTS:
        net.load_state_dict(fixture_state_dict(folder), strict=True)
        return
    manifest = fixture_manifest(folder)
    make_tensor = _fixture_weights_module().make_tensor
    target = net.state_dict()
    assert sorted(k for k, _ in manifest["state_dict"]) == sorted(target)
    with torch.no_grad():
        for key, shape in manifest["state_dict"]:
            value = manifest.get("overrides", {}).get(key)
            value = np.asarray(value, np.float32).reshape(shape) if value is not None else make_tensor(key, shape)
            target[key].copy_(torch.from_numpy(value))


@dataclasses.dataclass
class Loaded:
    folder: str
    adapter: Processor
    net: DepthAnything
    build_s: float
    outputs: dict[bytes, torch.Tensor] = dataclasses.field(default_factory=dict)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for an (N, 3, h, w) input, computed once per distinct input (the
        forward is a pure function of it): the network and pipeline tests share one pass of the
        full-size models when the pipeline's pre-processing gives the official input bit for bit."""
        key = x.numpy().tobytes() + bytes(str(tuple(x.shape)), "ascii")
        if key not in self.outputs:
            with torch.inference_mode():
                self.outputs[key] = self.net(x)
        return self.outputs[key]


@pytest.fixture(
    scope="module",
    params=[pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FIXTURES],
)
def loaded(request) -> Loaded:
    """One model per fixture folder, shared by the network and pipeline tests."""
    name = request.param
    start = time.perf_counter()
    spec = get_spec(FIXTURES[name])
    adapter = spec.processor()
    net = spec.build().eval()
    _load_fixture_weights(net, _folder(name))
    return Loaded(_folder(name), adapter, net, time.perf_counter() - start)


def _report(what: str, actual, reference, rel: float, seconds: float) -> None:
    err = float(np.max(np.abs(np.asarray(actual, np.float64) - np.asarray(reference, np.float64))))
    bound = rel * float(np.max(np.abs(reference)))
    print(f"\n{what}: max abs err {err:.3e} (bound {bound:.3e}), {seconds:.1f} s")


def test_state_dict_layout_matches_official(loaded: Loaded) -> None:
    ours = {k: list(v.shape) for k, v in loaded.net.state_dict().items()}
    official = dict(fixture_manifest(loaded.folder)["state_dict"])
    assert ours == official
    assert count_params(loaded.net) == fixture_manifest(loaded.folder)["config"]["n_params"]


def test_network_matches_official(loaded: Loaded) -> None:
    folder = fixtures_dir() / loaded.folder
    x = torch.from_numpy(np.load(folder / "net_input.npy"))
    reference = np.load(folder / "net_output_depth.npy")
    start = time.perf_counter()
    out = loaded.run(x).numpy()
    rel = fixture_expected(loaded.folder)["tolerance"]["net_output_depth"]["rel_max_abs"]
    _report(f"{loaded.folder} net", out, reference, rel, time.perf_counter() - start)
    assert_close_rel(out, reference, rel, what=f"{loaded.folder} net_output_depth")


def test_pipeline_matches_official(loaded: Loaded) -> None:
    folder = fixtures_dir() / loaded.folder
    rgb = np.asarray(Image.open(folder / "image.png").convert("RGB"))
    start = time.perf_counter()
    net_input = loaded.adapter.preprocess(rgb)
    # The cv2.INTER_CUBIC emulation gives the official network input exactly (torch bicubic: 7e-5 off).
    official_input = np.load(folder / "net_input.npy")[0]
    assert net_input.shape == official_input.shape
    assert float(np.max(np.abs(net_input.numpy() - official_input))) <= 1e-6
    # The adapter's own forward (device, dtype, batching) is exercised end to end by the engine tests.
    out = NetworkOutput(map=loaded.run(net_input[None])[0])
    pred = loaded.adapter.postprocess(out, rgb.shape[0], rgb.shape[1], focal_px=1234.5)
    reference = np.load(folder / "pipeline_depth.npy")
    rel = fixture_expected(loaded.folder)["tolerance"]["pipeline_depth"]["rel_max_abs"]
    _report(f"{loaded.folder} pipeline", pred.map, reference, rel, time.perf_counter() - start)
    assert pred.map.dtype == np.float32
    assert pred.focal_px == 1234.5 and not pred.focal_from_model  # the network predicts no focal length
    assert_close_rel(pred.map, reference, rel, what=f"{loaded.folder} pipeline_depth")


def test_post_resize_convention_is_visible_to_the_pipeline_tolerance() -> None:
    """V2 resizes back with align_corners=True, V1 with False; the fixtures tell them apart."""
    for name in ("v2_vits", "v1_vits"):
        folder = fixtures_dir() / _folder(name)
        raw = torch.from_numpy(np.load(folder / "net_output_depth.npy"))[:, None]
        reference = np.load(folder / "pipeline_depth.npy")
        cfg = get_spec(FIXTURES[name]).config
        results = {}
        for corners in (True, False):
            resized = torch.nn.functional.interpolate(raw, size=reference.shape, mode="bilinear", align_corners=corners)
            results[corners] = float(np.max(np.abs(resized[0, 0].numpy() - reference)))
        rel = fixture_expected(_folder(name))["tolerance"]["pipeline_depth"]["rel_max_abs"]
        bound = rel * float(np.abs(reference).max())
        assert results[cfg.output_align_corners] <= bound
        assert results[not cfg.output_align_corners] > 10 * bound


# ---------------------------------------------------------------- pre-processing


@pytest.mark.parametrize(
    ("hw", "size", "expected"),
    [
        ((480, 640), 518, (518, 686)),  # the fixtures' image
        ((640, 480), 518, (686, 518)),
        ((518, 518), 518, (518, 518)),
        ((1080, 1920), 518, (518, 924)),
        ((480, 640), 700, (700, 938)),  # input_size override: finer
        ((480, 640), 510, (518, 686)),  # 510 rounds down to 504 < 510, so the official code takes the ceiling
        ((100, 3000), 518, (518, 15540)),
    ],
)
def test_network_size_lower_bound_rule(hw, size, expected) -> None:
    assert network_size(*hw, size) == expected
    h, w = network_size(*hw, size)
    assert h % 14 == 0 and w % 14 == 0 and min(h, w) >= size


def test_input_size_override_changes_network_input() -> None:
    rgb = np.zeros((480, 640, 3), np.uint8)
    assert get_spec("depth-anything-v2-tiny").processor().preprocess(rgb).shape == (3, 518, 686)
    assert get_spec("depth-anything-v2-tiny").processor(700).preprocess(rgb).shape == (3, 700, 938)


@pytest.mark.parametrize(("shape", "out"), [((37, 53), (518, 742)), ((300, 400), (70, 98)), ((61, 47), (61, 47))])
def test_cubic_resize_is_the_keys_kernel(shape, out) -> None:
    """Same a=-0.75 half-pixel kernel as torch's bicubic; only OpenCV's float32 positions differ.

    (Bit-exactness with OpenCV itself is checked on the fixtures' net_input in the pipeline tests.)
    """
    rng = np.random.default_rng(3)
    image = rng.random((*shape, 3))
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    smooth = np.stack([np.sin(3 * xx + yy), xx * yy, np.cos(2 * yy)], axis=-1)

    def torch_bicubic(img: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(img).permute(2, 0, 1)[None]
        return (
            torch.nn.functional.interpolate(t, size=out, mode="bicubic", align_corners=False)[0]
            .permute(1, 2, 0)
            .numpy()
        )

    np.testing.assert_allclose(resize_cubic_cv2(smooth, *out), torch_bicubic(smooth), rtol=0, atol=2e-6)
    np.testing.assert_allclose(resize_cubic_cv2(image, *out), torch_bicubic(image), rtol=0, atol=5e-4)
    np.testing.assert_allclose(resize_cubic_cv2(np.full((*shape, 3), 0.3721), *out), 0.3721, rtol=0, atol=1e-7)


def test_preprocess_rejects_non_rgb() -> None:
    from sharpdepth.errors import InputImageError

    with pytest.raises(InputImageError):
        get_spec("depth-anything-v2-tiny").processor().preprocess(np.zeros((10, 10), np.uint8))


# ---------------------------------------------------------------- versions and presets


def _tiny_weights(cfg: DepthAnythingConfig) -> dict[str, torch.Tensor]:
    """Well-scaled stand-in weights (the fixtures' generator) with a positive final bias."""
    make_tensor = _fixture_weights_module().make_tensor
    shapes = {k: tuple(v.shape) for k, v in DepthAnything(cfg).state_dict().items()}
    state = {k: torch.from_numpy(make_tensor(k, s)) for k, s in shapes.items()}
    state["depth_head.scratch.output_conv2.2.bias"] = torch.tensor([2.0])
    return state


def test_v1_and_v2_share_keys_but_not_outputs() -> None:
    """Same checkpoint layout, different taps: the version must come from the config, never the keys."""
    v1, v2 = get_spec("depth-anything-v1-tiny").config, get_spec("depth-anything-v2-tiny").config
    assert v1.taps == (2, 3, 4, 5) and v2.taps == (0, 2, 4, 5)
    state = _tiny_weights(v2)
    nets = {}
    for cfg in (v1, v2):
        nets[cfg.version] = DepthAnything(cfg).eval()
        nets[cfg.version].load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 140, 182)
    with torch.no_grad():
        a, b = nets["v1"](x), nets["v2"](x)
    assert a.shape == b.shape == (1, 140, 182)
    assert float((a - b).abs().max()) > 0.05 * float(b.abs().max())


def test_real_size_v1_and_v2_configs_tap_what_the_official_code_taps() -> None:
    for folder, name in FIXTURES.items():
        cfg = get_spec(name).config
        official = fixture_manifest(_folder(folder))["config"]
        assert list(cfg.taps) == official["intermediate_layer_idx"], name
        assert cfg.version == ("v1" if folder.startswith("v1") else "v2")
        assert cfg.features == official["features"] and list(cfg.out_channels) == official["out_channels"]
        assert cfg.max_depth == official.get("max_depth")


def test_config_requires_explicit_valid_version() -> None:
    cfg = get_spec("depth-anything-v2-tiny").config
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, version="v3")
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, taps=(0, 1, 2, 99))


EXPECTED_PRESETS = {
    "depth-anything-v2-small": ("v2", "vits", None, "Apache-2.0"),
    "depth-anything-v2-base": ("v2", "vitb", None, "CC-BY-NC-4.0"),
    "depth-anything-v2-large": ("v2", "vitl", None, "CC-BY-NC-4.0"),
    "depth-anything-v2-giant": ("v2", "vitg", None, "CC-BY-NC-4.0"),
    "depth-anything-v1-small": ("v1", "vits", None, "Apache-2.0"),
    "depth-anything-v1-base": ("v1", "vitb", None, "Apache-2.0"),
    "depth-anything-v1-large": ("v1", "vitl", None, "Apache-2.0"),
    **{
        f"depth-anything-v2-metric-{scene}-{size}": ("v2", enc, depth, "Apache-2.0")
        for scene, depth in (("indoor", 20.0), ("outdoor", 80.0))
        for size, enc in (("small", "vits"), ("base", "vitb"), ("large", "vitl"))
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_presets(name: str) -> None:
    version, encoder, max_depth, licence = EXPECTED_PRESETS[name]
    spec = get_spec(name)
    cfg = spec.config
    assert spec.family == "depth_anything" and not spec.test_only
    assert (cfg.version, cfg.encoder, cfg.max_depth, spec.license) == (version, encoder, max_depth, licence)
    kind = OutputKind.METRIC_DEPTH if max_depth else OutputKind.RELATIVE_DISPARITY
    assert spec.output_kind is kind
    assert spec.native_resolution == "518 (shorter side)"
    assert cfg.output_align_corners is (version == "v2")
    if version == "v1":
        assert cfg.taps == tuple(range(cfg.vit.depth - 4, cfg.vit.depth))
    assert cfg.vit.ffn == ("swiglu" if encoder == "vitg" else "mlp") and cfg.vit.mask_token
    # Parameter count from the architecture itself (meta device: no memory, no time).
    with torch.device("meta"):
        n = count_params(DepthAnything(cfg))
    assert spec.params_millions == pytest.approx(n / 1e6, abs=1e-6)
    layouts = [s.layout for s in spec.sources]
    if encoder == "vitg":
        assert spec.sources == ()  # not published ("coming soon")
    else:
        assert layouts == ["official", "hf"]
        assert spec.sources[1].repo_id.endswith("-hf") and spec.sources[1].filename == "model.safetensors"


def test_official_source_names() -> None:
    def official(name: str) -> tuple[str, str]:
        src = get_spec(name).sources[0]
        return src.repo_id, src.filename

    assert official("depth-anything-v2-small") == (
        "depth-anything/Depth-Anything-V2-Small",
        "depth_anything_v2_vits.pth",
    )
    assert official("depth-anything-v2-metric-indoor-base") == (
        "depth-anything/Depth-Anything-V2-Metric-Hypersim-Base",
        "depth_anything_v2_metric_hypersim_vitb.pth",
    )
    assert official("depth-anything-v2-metric-outdoor-large") == (
        "depth-anything/Depth-Anything-V2-Metric-VKITTI-Large",
        "depth_anything_v2_metric_vkitti_vitl.pth",
    )
    assert official("depth-anything-v1-large") == ("LiheYoung/depth_anything_vitl14", "pytorch_model.bin")
    assert get_spec("depth-anything-v2-metric-outdoor-small").sources[1].repo_id == (
        "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf"
    )
    assert get_spec("depth-anything-v1-base").sources[1].repo_id == "LiheYoung/depth-anything-base-hf"


def test_test_presets_are_hidden() -> None:
    names = {s.name for s in list_specs()}
    assert "depth-anything-v2-tiny" not in names and "depth-anything-v2-small" in names
    assert {s.name for s in list_specs(include_test_only=True)} >= {
        "depth-anything-v2-tiny",
        "depth-anything-v1-tiny",
        "depth-anything-v2-metric-tiny",
    }


# ---------------------------------------------------------------- engine plumbing


def test_engine_relative_and_metric_tiny() -> None:
    import sharpdepth
    from sharpdepth.engine.model import load

    rgb = np.asarray(Image.open(fixtures_dir() / _folder("v2_vits") / "image.png").convert("RGB"))[::4, ::4]
    rel = load("depth-anything-v2-tiny", random_weights=True, input_size=140).predict(rgb, focal_px=500.0)
    assert rel.prediction.shape == rgb.shape[:2] and rel.kind is OutputKind.RELATIVE_DISPARITY
    assert rel.focal_px == 500.0
    with pytest.raises(RelativeDepthError):
        _ = rel.depth
    metric = load("depth-anything-v2-metric-tiny", random_weights=True, input_size=140).predict(rgb)
    assert metric.kind is OutputKind.METRIC_DEPTH and metric.focal_px is None
    assert np.all((metric.depth > 0) & (metric.depth < 20.0))  # sigmoid x max_depth
    assert hasattr(sharpdepth, "load")


# ---------------------------------------------------------------- key map


@pytest.mark.parametrize("name", list(FIXTURES))
def test_key_map_round_trip_on_every_official_layout(name: str) -> None:
    """official -> hf -> official restores every key and shape (meta tensors: no memory)."""
    manifest = fixture_manifest(_folder(name))["state_dict"]
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in manifest}
    hf = official_to_hf(state)
    depth = fixture_manifest(_folder(name))["config"]["backbone"]["depth"]
    assert len(hf) == len(state) + 4 * depth  # each fused qkv weight and bias becomes three tensors
    assert all(k.startswith(("backbone.", "neck.", "head.")) for k in hf)
    back = hf_to_official(hf)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in state.items()}


def test_key_map_values_round_trip_and_table_is_one_to_one() -> None:
    state = _tiny_weights(get_spec("depth-anything-v2-tiny").config)
    back = hf_to_official(official_to_hf(state))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    pairs = key_pairs(40)
    assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
    # The fusion ladder runs in opposite directions in the two layouts.
    assert (
        dict(pairs)["depth_head.scratch.refinenet4.out_conv.weight"] == "neck.fusion_stage.layers.0.projection.weight"
    )


def test_key_map_rejects_unknown_keys() -> None:
    state = _tiny_weights(get_spec("depth-anything-v2-tiny").config)
    hf = official_to_hf(state)
    with pytest.raises(WeightsError):
        hf_to_official({**hf, "neck.something_new.weight": torch.zeros(1)})
    with pytest.raises(WeightsError):
        official_to_hf({**state, "pretrained.blocks.0.attn.extra": torch.zeros(1)})
    del hf["backbone.encoder.layer.1.attention.attention.key.weight"]
    with pytest.raises(WeightsError):
        hf_to_official(hf)
    adapter = get_spec("depth-anything-v2-tiny")
    assert set(adapter.convert_state_dict(official_to_hf(state), "hf")) == set(state)
    with pytest.raises(KeyMapError):
        adapter.convert_state_dict(state, "onnx")


# ---------------------------------------------------------------- transformers oracle


def _hf_model_from(cfg: DepthAnythingConfig, state: dict[str, torch.Tensor], tmp: Path):
    """Write our weights as a hub-style `-hf` folder and load it with transformers."""
    from safetensors.torch import save_file
    from transformers import DepthAnythingConfig as HFConfig
    from transformers import DepthAnythingForDepthEstimation, Dinov2Config

    vit = cfg.vit
    backbone = Dinov2Config(
        image_size=vit.img_size,
        patch_size=vit.patch_size,
        hidden_size=vit.embed_dim,
        num_hidden_layers=vit.depth,
        num_attention_heads=vit.num_heads,
        mlp_ratio=4,
        use_swiglu_ffn=vit.ffn == "swiglu",
        layer_norm_eps=vit.norm_eps,
        out_indices=[t + 1 for t in cfg.taps],  # stage 0 is the embedding output
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    hf_cfg = HFConfig(
        backbone_config=backbone,
        reassemble_hidden_size=vit.embed_dim,
        patch_size=vit.patch_size,
        neck_hidden_sizes=list(cfg.out_channels),
        fusion_hidden_size=cfg.features,
        head_hidden_size=cfg.head_features_2,
        depth_estimation_type="metric" if cfg.is_metric else "relative",
        max_depth=int(cfg.max_depth) if cfg.is_metric else 1,
    )
    hf_cfg.save_pretrained(tmp)
    save_file({k: v.contiguous() for k, v in official_to_hf(state).items()}, str(tmp / "model.safetensors"))
    model, info = DepthAnythingForDepthEstimation.from_pretrained(tmp, output_loading_info=True)
    assert not any(info.values()), info  # no missing / unexpected / mismatched keys
    return model.eval()


ORACLE_CASES = {
    "v2-tiny": ("depth-anything-v2-tiny", "mlp"),
    "v1-tiny": ("depth-anything-v1-tiny", "mlp"),
    "v2-metric-tiny": ("depth-anything-v2-metric-tiny", "mlp"),
    "v2-tiny-swiglu": ("depth-anything-v2-tiny", "swiglu"),  # the vitg feed-forward
}


@pytest.mark.parametrize("case", list(ORACLE_CASES))
def test_transformers_oracle_tiny(case: str, tmp_path: Path) -> None:
    name, ffn = ORACLE_CASES[case]
    cfg = get_spec(name).config
    cfg = dataclasses.replace(cfg, vit=dataclasses.replace(cfg.vit, ffn=ffn))
    state = _tiny_weights(cfg)
    ours = DepthAnything(cfg).eval()
    ours.load_state_dict(state, strict=True)
    theirs = _hf_model_from(cfg, state, tmp_path)
    x = torch.randn(1, 3, 518, 518)  # the stored 37x37 grid: no position interpolation (see below)
    with torch.no_grad():
        a, b = ours(x), theirs(pixel_values=x).predicted_depth
    print(f"\noracle {case}: max abs err {float((a - b).abs().max()):.3e} of max {float(b.abs().max()):.3f}")
    assert float((b > 0).float().mean()) > 0.5
    assert_close_rel(a, b, 1e-5, what=f"transformers oracle {case}")
    # A transformers 5 model's own state dict (renamed modules) converts back to ours exactly.
    back = hf_to_official(theirs.state_dict())
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_transformers_oracle_small_with_fixture_weights(tmp_path: Path) -> None:
    """Real vits size and V2 taps, the v2_vits stand-in weights, through the hf layout."""
    cfg = get_spec("depth-anything-v2-small").config
    state = fixture_state_dict(_folder("v2_vits"))
    ours = DepthAnything(cfg).eval()
    ours.load_state_dict(state, strict=True)
    theirs = _hf_model_from(cfg, state, tmp_path)
    x = torch.from_numpy(np.load(fixtures_dir() / _folder("v2_vits") / "net_input.npy"))[..., :518, :518]
    with torch.no_grad():
        a, b = ours(x), theirs(pixel_values=x).predicted_depth
    print(f"\noracle vits: max abs err {float((a - b).abs().max()):.3e} of max {float(b.abs().max()):.3f}")
    assert_close_rel(a, b, 1e-4, what="transformers oracle vits")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["backbone_config"]["out_indices"] == [3, 6, 9, 12]  # = transformers' own V2-small config
