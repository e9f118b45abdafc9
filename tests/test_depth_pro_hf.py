"""Depth Pro key conversion to/from the transformers layout, with transformers as an oracle.

transformers' `DepthProForDepthEstimation` is an independent re-implementation of the
same network. Loading our converted weights into it and getting our outputs back proves
the key table (names, qkv split, reversed level order) and, independently of the
fixtures, the forward pass.

Known, explained differences with transformers, none of which this test hides:
- its config cannot express every official architecture: the latent-1 upsampler's
  projection width is tied to `fusion_hidden_size`, so encoder_feature_dims[0] must equal
  decoder_features (true for the released model, not for the `tiny` fixture). The oracle
  therefore uses its own tiny architecture with dims (32, 32, 64, 64) and decoder 32;
- `predicted_depth` is the head's raw canonical inverse depth (N, H, W) and
  `field_of_view` the raw FOV (N,): that is what we compare. Its image processor's
  post-processing (not used here: it needs torchvision) follows the official `infer`
  except that it cannot take a user focal length;
- its DINOv2 carries an unused `mask_token`, written as zeros by `official_to_hf`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sharpdepth.family import KeyMapError
from sharpdepth.models.depth_pro import DEPTH_PRO_TINY, DepthPro, DepthProConfig
from sharpdepth.models.depth_pro.keymap import hf_to_official, official_to_hf
from sharpdepth.registry import get_spec

from conftest import _fixture_weights_module, assert_close_rel, fixture_state_dict, fixtures_dir

transformers = pytest.importorskip("transformers")

# A tiny architecture transformers can express (see the module docstring).
HF_TINY = DepthProConfig(
    embed_dim=64,
    depth=4,
    num_heads=4,
    hook_block_ids=(1, 2),
    encoder_feature_dims=(32, 32, 64, 64),
    decoder_features=32,
)


def hf_config(cfg: DepthProConfig):
    vit = dict(
        model_type="dinov2",
        hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        patch_size=cfg.vit_patch_size,
        image_size=cfg.patch_size,
        mlp_ratio=int(cfg.mlp_ratio),
        layerscale_value=1.0,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        qkv_bias=True,
        use_swiglu_ffn=False,
    )
    d = cfg.encoder_feature_dims
    return transformers.DepthProConfig(
        fusion_hidden_size=cfg.decoder_features,
        patch_size=cfg.patch_size,
        intermediate_hook_ids=list(reversed(cfg.hook_block_ids)),
        intermediate_feature_dims=[d[0], cfg.decoder_features],
        scaled_images_ratios=[0.25, 0.5, 1],
        scaled_images_overlap_ratios=[0.0, cfg.levels[1].overlap, cfg.levels[0].overlap],
        scaled_images_feature_dims=[d[3], d[2], d[1]],
        merge_padding_value=cfg.levels[0].merge_padding,
        use_batch_norm_in_fusion_residual=False,
        use_bias_in_fusion_residual=True,
        use_fov_model=True,
        num_fov_head_layers=2,
        image_model_config=dict(vit),
        patch_model_config=dict(vit),
        fov_model_config=dict(vit),
    )


def stand_in_weights(net: DepthPro) -> dict[str, torch.Tensor]:
    """The fixtures' deterministic stand-ins for this architecture's keys, with the same
    overrides as the Depth Pro fixtures (so the output is not mostly clipped by the ReLU)."""
    keys = [[k, list(v.shape)] for k, v in net.state_dict().items()]
    state = {k: torch.from_numpy(v) for k, v in _fixture_weights_module().make_state_dict(keys).items()}
    state["head.4.bias"] = torch.tensor([0.05])
    state["fov.head.4.bias"] = torch.tensor([60.0])
    return state


def net_input(folder: str) -> torch.Tensor:
    rgb = np.array(Image.open(fixtures_dir() / folder / "image_net.png").convert("RGB"))
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0).sub(0.5).div(0.5)[None]


# --------------------------------------------------------------------------- key table


def test_round_trip_is_identity_on_fixture_weights():
    official = fixture_state_dict("depth_pro/tiny")
    for names in ("hub", "transformers5"):
        hf = official_to_hf(official, names=names)
        assert not set(hf) & set(official)
        back = hf_to_official(hf)
        assert list(back) == list(official)
        assert all(torch.equal(back[k], official[k]) for k in official), names


def test_hub_names_and_qkv_split():
    official = fixture_state_dict("depth_pro/tiny")
    hf = official_to_hf(official)
    prefix = "depth_pro.encoder.patch_encoder.model.encoder.layer.3.attention."
    qkv = official["encoder.patch_encoder.blocks.3.attn.qkv.weight"]
    parts = [hf[prefix + f"attention.{n}.weight"] for n in ("query", "key", "value")]
    assert torch.equal(torch.cat(parts), qkv) and parts[0].shape == (64, 64)
    assert torch.equal(hf[prefix + "output.dense.bias"], official["encoder.patch_encoder.blocks.3.attn.proj.bias"])
    assert torch.equal(hf["fusion_stage.final.projection.weight"], official["decoder.fusions.0.out_conv.weight"])
    assert torch.equal(hf["fusion_stage.intermediate.0.deconv.weight"], official["decoder.fusions.4.deconv.weight"])
    proj3 = hf["depth_pro.neck.feature_projection.projections.3.weight"]
    assert torch.equal(proj3, official["decoder.convs.1.weight"])
    latent0 = hf["depth_pro.neck.feature_upsample.intermediate.1.layers.3.weight"]
    assert torch.equal(latent0, official["encoder.upsample_latent0.3.weight"])
    assert torch.equal(hf["fov_model.conv.bias"], official["fov.downsample.0.bias"])
    assert hf["fov_model.fov_encoder.model.embeddings.mask_token"].abs().sum() == 0


def test_adapter_converts_hf_layout_for_strict_loading():
    official = fixture_state_dict("depth_pro/tiny")
    spec = get_spec("depth-pro-tiny")
    net = spec.build()
    converted = spec.convert_state_dict(official_to_hf(official), "hf")
    net.load_state_dict(converted, strict=True)
    assert all(torch.equal(net.state_dict()[k], official[k]) for k in official)


def test_unknown_key_is_rejected():
    with pytest.raises(KeyMapError, match="not.a.depth_pro.key"):
        hf_to_official({"not.a.depth_pro.key": torch.zeros(1)})


# --------------------------------------------------------------------------- oracle


@pytest.fixture(scope="module")
def oracle_pair():
    ours = DepthPro(HF_TINY).eval()
    ours.load_state_dict(stand_in_weights(ours), strict=True)
    theirs = transformers.DepthProForDepthEstimation(hf_config(HF_TINY)).eval()
    return ours, theirs


def test_converted_keys_match_transformers_model(oracle_pair):
    ours, theirs = oracle_pair
    converted = official_to_hf(ours.state_dict(), names="transformers5")
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected


def test_transformers_oracle_agrees(oracle_pair):
    ours, theirs = oracle_pair
    theirs.load_state_dict(official_to_hf(ours.state_dict(), names="transformers5"), strict=True)
    x = net_input("depth_pro/tiny")
    with torch.inference_mode():
        inverse_depth, fov = ours(x)
        out = theirs(pixel_values=x)
    assert out.predicted_depth.shape == (1, 1536, 1536) and out.field_of_view.shape == (1,)
    # a structured map, not a constant or mostly clipped one
    assert (
        float(inverse_depth.std()) > 0.2 * float(inverse_depth.mean())
        and float((inverse_depth > 0).float().mean()) > 0.5
    )
    assert_close_rel(inverse_depth[:, 0].numpy(), out.predicted_depth.numpy(), 1e-4, "vs transformers")
    assert abs(float(fov[0]) - float(out.field_of_view[0])) <= 1e-3


def test_official_tiny_is_not_expressible_in_transformers():
    """Documents the config limitation above: the fixture's latent-1 projection is 16
    channels wide; transformers would build it with decoder_features (32)."""
    theirs = transformers.DepthProForDepthEstimation(hf_config(DEPTH_PRO_TINY))
    hf_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    ours = official_to_hf(fixture_state_dict("depth_pro/tiny"), names="transformers5")
    key = "depth_pro.neck.feature_upsample.intermediate.0.layers.0.weight"
    assert tuple(ours[key].shape) == (16, 64, 1, 1) and hf_shapes[key] == (32, 64, 1, 1)
