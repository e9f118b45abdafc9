"""MiDaS v2.1 small: strict loading, parity with the official network, TF-SAME padding.

The fixture `midas/midas_v21_small_256` was made by the official isl-org/MiDaS code
(geffnet EfficientNet-Lite3, exportable mode) with stand-in weights; our network must load
those weights strictly and reproduce its outputs on the stored net input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpdepth.models.backbones.efficientnet_lite import EFFICIENTNET_LITE3, Conv2dSame, tf_same_pad
from sharpdepth.models.midas_small import MIDAS_V21_SMALL_256, MidasNetSmall, MidasSmallConfig

from conftest import assert_close_rel, fixture_expected, fixture_manifest, fixture_state_dict, fixtures_dir

FOLDER = "midas/midas_v21_small_256"


@pytest.fixture(scope="module")
def net() -> MidasNetSmall:
    model = MidasNetSmall(MIDAS_V21_SMALL_256).eval()
    model.load_state_dict(fixture_state_dict(FOLDER), strict=True)
    return model


@pytest.fixture(scope="module")
def net_input() -> torch.Tensor:
    return torch.from_numpy(np.load(fixtures_dir() / FOLDER / "net_input.npy"))


@pytest.fixture(scope="module")
def captured(net: MidasNetSmall, net_input: torch.Tensor) -> dict[str, torch.Tensor]:
    """One forward pass, recording outputs and intermediate maps by fixture name."""
    names = {f"pretrained.layer{i}": f"encoder_layer{i}" for i in range(1, 5)}
    names |= {f"scratch.layer{i}_rn": f"layer{i}_rn" for i in range(1, 5)}
    names |= {f"scratch.refinenet{i}": f"refinenet{i}" for i in range(1, 5)}
    names |= {"scratch.output_conv.0": "output_conv.0", "scratch.output_conv.1": "output_conv.1_interp"}
    names |= {"scratch.output_conv.2": "output_conv.2_pre_relu", "scratch.output_conv.4": "output_conv.4_pre_relu"}
    out: dict[str, torch.Tensor] = {}
    modules = dict(net.named_modules())
    handles = [
        modules[m].register_forward_hook(lambda _m, _i, o, key=key: out.__setitem__(key, o.clone()))
        for m, key in names.items()
    ]
    try:
        with torch.no_grad():
            out["depth"] = net(net_input)
            out["pre_relu"] = net(net_input, pre_relu=True)
    finally:
        for h in handles:
            h.remove()
    return out


def test_state_dict_matches_official_layout() -> None:
    ours = {k: list(v.shape) for k, v in MidasNetSmall(MIDAS_V21_SMALL_256).state_dict().items()}
    official = {k: shape for k, shape in fixture_manifest(FOLDER)["state_dict"]}
    assert ours == official
    assert sum(k.endswith("num_batches_tracked") for k in ours) == 72


def test_strict_load_rejects_missing_key(net: MidasNetSmall) -> None:
    sd = dict(net.state_dict())
    del sd["pretrained.layer3.1.0.conv_dw.weight"]
    with pytest.raises(RuntimeError, match="Missing key"):
        MidasNetSmall(MIDAS_V21_SMALL_256).load_state_dict(sd, strict=True)


def test_depth_matches_official(captured: dict[str, torch.Tensor]) -> None:
    ref = np.load(fixtures_dir() / FOLDER / "net_output_depth.npy")
    rel = fixture_expected(FOLDER)["tolerance"]["net_output_depth"]["rel_max_abs"]
    assert captured["depth"].shape == (1, 192, 256)
    assert_close_rel(captured["depth"].numpy(), ref, rel, "net_output_depth")


def test_pre_relu_head_matches_official(captured: dict[str, torch.Tensor]) -> None:
    ref = np.load(fixtures_dir() / FOLDER / "net_output_head_pre_relu.npy")
    rel = fixture_expected(FOLDER)["tolerance"]["net_output_head_pre_relu"]["rel_max_abs"]
    assert captured["pre_relu"].shape == (1, 1, 192, 256)
    assert_close_rel(captured["pre_relu"].numpy(), ref, rel, "net_output_head_pre_relu")
    # The official output is exactly the ReLU of the head, squeezed.
    assert torch.equal(captured["depth"], captured["pre_relu"][:, 0].clamp_min(0))


def test_intermediate_statistics_match_official(captured: dict[str, torch.Tensor]) -> None:
    """Locates a divergence: every stored intermediate's shape and summary stats."""
    for name, stats in fixture_expected(FOLDER)["intermediate"].items():
        t = captured[name].double().numpy()
        assert list(t.shape) == stats["shape"], name
        scale = max(abs(stats["min"]), abs(stats["max"]))
        for stat in ("mean", "std", "min", "max"):
            assert abs(getattr(t, stat)() - stats[stat]) <= 1e-4 * scale, (name, stat)


def _same_pads_at(net: MidasNetSmall, height: int, width: int) -> dict[str, tuple[int, int, int, int]]:
    """(left, right, top, bottom) of every TF-SAME conv of the encoder for one input size."""
    pads: dict[str, tuple[int, int, int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args, name=name: pads.__setitem__(name, mod.same_pads(*args[0].shape[-2:]))
        )
        for name, m in net.pretrained.named_modules()
        if isinstance(m, Conv2dSame)
    ]
    try:
        with torch.no_grad():
            net.pretrained(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
    return pads


def test_dynamic_same_pads_equal_official_frozen_pads(net: MidasNetSmall) -> None:
    """At the fixture size our per-input pads are the ones geffnet's export mode froze."""
    manifest = fixture_manifest(FOLDER)
    frozen = manifest["config"]["tf_same_pads_frozen_at_this_input"]
    height, width = manifest["config"]["net_input_hw"]
    ours = _same_pads_at(net, height, width)
    assert set(ours) == set(frozen)  # exactly the strided convs are TF-SAME convs
    for name, spec in frozen.items():
        conv = net.pretrained.get_submodule(name)
        assert list(conv.kernel_size) == spec["kernel"] and list(conv.stride) == spec["stride"], name
        assert list(ours[name]) == spec["zero_pad_left_right_top_bottom"], name


@pytest.mark.parametrize("size", [97, 130, 191, 256])
def test_same_conv_output_size_is_tf_same(size: int) -> None:
    """TF-SAME keeps ceil(size / stride) samples for any size, odd ones included."""
    conv = Conv2dSame(2, 2, 5, stride=2)
    out = conv(torch.zeros(1, 2, size, size + 1))
    assert out.shape[-2:] == (-(-size // 2), -(-(size + 1) // 2))
    assert tf_same_pad(96, 5, 2) == (1, 2) and tf_same_pad(7, 3, 1) == (1, 1)


def test_network_runs_on_other_sizes(net: MidasNetSmall) -> None:
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 256, 160))
    assert out.shape == (2, 256, 160)
    assert bool((out >= 0).all())


def test_backbone_scaling_and_channels() -> None:
    assert EFFICIENTNET_LITE3.stage_channels() == (24, 32, 48, 96, 136, 232, 384)
    assert EFFICIENTNET_LITE3.stage_repeats() == (1, 3, 3, 5, 5, 6, 1)
    with pytest.raises(ValueError, match="encoder_channels"):
        MidasSmallConfig(encoder_channels=(32, 48, 136, 320))


def test_net_input_size_follows_official_upper_bound_resize() -> None:
    cfg = MIDAS_V21_SMALL_256
    assert cfg.net_input_hw(*fixture_manifest(FOLDER)["config"]["image_hw"]) == (192, 256)
    assert cfg.net_input_hw(640, 480) == (256, 192)
    assert cfg.net_input_hw(1000, 1000) == (256, 256)
    # 1080x1920: short side 144 = 4.5 * 32 rounds half-to-even down to 128 (numpy round).
    assert cfg.net_input_hw(1080, 1920) == (128, 256)
