"""Every backbone answers `forward_intermediates(x, indices)` with the same `Intermediates` structure."""

from __future__ import annotations

import pytest
import torch

from sharpdepth.models.backbones.beit import Beit, BeitConfig
from sharpdepth.models.backbones.efficientnet_lite import EfficientNetLite
from sharpdepth.models.backbones.resnetv2 import ResNetV2
from sharpdepth.models.backbones.swin2 import Swin2Config, SwinTransformerV2
from sharpdepth.models.features import Intermediates
from sharpdepth.models.midas_small import MIDAS_V21_SMALL_256, EfficientNetEncoder
from sharpdepth.models.vit import VisionTransformer, ViTConfig


def _vit() -> tuple[VisionTransformer, torch.Tensor, tuple[int, ...]]:
    cfg = ViTConfig(embed_dim=32, depth=4, num_heads=2, patch_size=8, img_size=32, norm_eps=1e-6)
    return VisionTransformer(cfg), torch.randn(2, 3, 32, 48), (1, 3)


def _beit():
    cfg = BeitConfig(embed_dim=32, depth=3, num_heads=2, img_size=32, num_classes=5)
    return Beit(cfg), torch.randn(2, 3, 32, 48), (0, 2)


def _swin():
    cfg = Swin2Config(img_size=64, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4)
    return SwinTransformerV2(cfg), torch.randn(2, 3, 64, 64), (1, 1, 0, 1)


def _resnet():
    return ResNetV2((1, 1, 1)), torch.randn(2, 3, 64, 96), (0, 2)


def _efficientnet():
    return EfficientNetLite(), torch.randn(2, 3, 64, 96), (1, 4, 6)


def _midas_small_encoder():
    return EfficientNetEncoder(MIDAS_V21_SMALL_256), torch.randn(2, 3, 64, 96), (0, 1, 2, 3)


CASES = {
    "vit": _vit,
    "beit": _beit,
    "swin2": _swin,
    "resnet": _resnet,
    "efficientnet": _efficientnet,
    "midas_small": _midas_small_encoder,
}


@pytest.mark.parametrize("name", list(CASES))
def test_forward_intermediates_has_one_structure(name):
    torch.manual_seed(0)
    net, x, indices = CASES[name]()
    net.eval()
    with torch.inference_mode():
        inter = net.forward_intermediates(x, indices)
    assert isinstance(inter, Intermediates)
    assert len(inter) == len(inter.features) == len(inter.grids) == len(indices)
    assert inter.layout in ("tokens", "maps")
    for i, (feature, (rows, cols)) in enumerate(zip(inter.features, inter.grids, strict=True)):
        fmap = inter.as_map(i)
        assert fmap.ndim == 4 and fmap.shape[0] == x.shape[0] and fmap.shape[-2:] == (rows, cols)
        if inter.layout == "tokens":
            assert feature.shape == (x.shape[0], inter.num_prefix_tokens + rows * cols, fmap.shape[1])
            # as_map is the patch tokens laid out row-major: pixel (r, c) is token P + r * cols + c.
            r, c = rows - 1, cols // 2
            assert torch.equal(fmap[:, :, r, c], feature[:, inter.num_prefix_tokens + r * cols + c])
        else:
            assert inter.num_prefix_tokens == 0 and fmap is feature
    assert [m.shape for m in inter.maps()] == [inter.as_map(i).shape for i in range(len(inter))]


def test_vit_intermediates_are_the_block_outputs():
    torch.manual_seed(0)
    vit, x, _ = _vit()
    vit.eval()
    with torch.inference_mode():
        tokens, grid = vit.embed(x)
        outs = []
        for block in vit.blocks:
            tokens = block(tokens)
            outs.append(tokens)
        inter = vit.forward_intermediates(x, (1, -1))
        early = vit.forward_intermediates(x, (1,), stop_early=True)
        normed = vit.norm(outs[3])
    assert grid == (4, 6) and inter.grids == [grid, grid]
    assert torch.equal(inter.features[0], outs[1]) and torch.equal(inter.features[1], outs[3])
    assert inter.final is not None and torch.equal(inter.final, normed)
    assert early.final is None and torch.equal(early.features[0], outs[1])


def test_cnn_intermediates_are_the_stage_outputs():
    torch.manual_seed(0)
    net, x, _ = _resnet()
    net.eval()
    with torch.inference_mode():
        every = net(x)
        picked = net.forward_intermediates(x, (2, 0))
    assert torch.equal(picked.features[0], every[2]) and torch.equal(picked.features[1], every[0])
    assert [tuple(f.shape[-2:]) for f in every] == [(16, 24), (8, 12), (4, 6)]


@pytest.mark.parametrize("name", ["vit", "beit", "resnet", "efficientnet"])
def test_out_of_range_indices_are_refused(name):
    net, x, _ = CASES[name]()
    with pytest.raises(ValueError, match="out of range"):
        net.forward_intermediates(x, (99,))
