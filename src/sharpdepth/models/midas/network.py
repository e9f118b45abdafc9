"""MiDaS 3.x DPT models (isl-org/MiDaS `DPTDepthModel`) with the official state-dict keys.

One network class, `MidasDPT`, covers every DPT backbone MiDaS ships that we support:

* `dpt_large_384`: ViT-L/16 (the shared `vit.VisionTransformer`, bilinear position-grid
  resize, no LayerScale), hooks on blocks 5/11/17/23;
* `dpt_hybrid_384`: ViT-B/16 whose patch embedding is a ResNet-50 (`backbones.resnetv2`);
  the two finest levels are the ResNet's stage-0/1 outputs, hooks 8/11 give the rest;
* `dpt_beit_large_512`: BEiT-L/16 with MiDaS' size-adaptive relative position bias
  (`backbones.beit`), hooks 5/11/17/23;
* `dpt_swin2_tiny_256`: Swin-V2-T (`backbones.swin2`), the last block of each stage.

Keys: `pretrained.model.*` (backbone, timm names), `pretrained.act_postprocessN.*`
(reassemble: `.0.project.0` readout Linear, `.3` 1x1 conv, `.4` resample; official
indices 1/2 are weightless Transpose/Unflatten), `scratch.*` (the shared `dpt.Scratch`)
and `scratch.output_conv.{0,2,4}` (head). Official checkpoints also hold a few buffers
we compute instead (BEiT `relative_position_index`, Swin `attn_mask`; `computed_buffers`):
`MidasDPT.load_state_dict(..., strict=True)` accepts them (verifying the Swin masks), and
`drop_computed_keys` removes them for loaders that compare key sets before loading (the
engine's key check; see `convert_official`). Fixture state dicts, which leave the
Swin masks out, load strictly as they are.

The decoder follows MiDaS 3.x: fusion blocks upsample bilinearly (align_corners=True) to
the next skip's size, refinenet1 by x2, and refinenet4 sees only the coarsest map (its
`resConfUnit1` is unused but kept for strict loading). Output: (N, h, w) relative inverse
depth, clamped >= 0 by the final ReLU.

Each preset also carries the official pre-processing (`midas.model_loader.load_model`):
net size, resize rule, multiple-of-32 constraint and mean/std; `midas_resize_hw` is the
official `Resize.get_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...family import (
    DataConfig,
    Family,
    KeyMapError,
    ModelSpec,
    OnnxExport,
    SizeRule,
    StateDict,
    Training,
    WeightSource,
)
from ...result import OutputKind
from ..backbones.beit import COMPUTED_KEYS as BEIT_COMPUTED_KEYS
from ..backbones.beit import Beit, BeitConfig
from ..backbones.resnetv2 import HybridEmbed
from ..backbones.swin2 import Swin2Config, SwinTransformerV2, computed_masks
from ..dpt import Scratch
from ..features import Intermediates
from ..processing import MapProcessor, midas_data, official_resize_hw
from ..vit import VisionTransformer, ViTConfig
from . import keymap
from .keymap import MidasKeyLayout

ResizeMethod = Literal["minimal", "upper_bound", "lower_bound"]


@dataclass(frozen=True)
class MidasDPTConfig:
    """Architecture and official pre-processing of one MiDaS DPT model."""

    backbone: ViTConfig | BeitConfig | Swin2Config
    hooks: tuple[int, int, int, int]
    """ViT/BEiT: tapped block indices (hybrid: the first two are ResNet stages). Swin: block index per stage."""
    reassemble_features: tuple[int, int, int, int]
    """Channels of the four maps entering `scratch.layerN_rn`."""
    hybrid_layers: tuple[int, ...] = ()
    """ResNet stage depths of a ViT-Hybrid patch embedding; empty for a plain ViT."""
    features: int = 256
    head_features_2: int = 32
    non_negative: bool = True
    use_bn: bool = False
    align_corners: bool = True
    num_classes: int = 1000
    """Width of the unused ImageNet classifier the official ViT checkpoints keep."""
    # --- official pre-processing (`midas.transforms.Resize` arguments) ---
    net_size: int = 384
    resize_method: ResizeMethod = "minimal"
    keep_aspect_ratio: bool = True
    multiple_of: int = 32
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def kind(self) -> Literal["vit", "vit_hybrid", "beit", "swin2"]:
        if isinstance(self.backbone, BeitConfig):
            return "beit"
        if isinstance(self.backbone, Swin2Config):
            return "swin2"
        return "vit_hybrid" if self.hybrid_layers else "vit"

    @property
    def fixed_input_size(self) -> bool:
        """Swin-V2's window masks are built for one grid, as in timm 0.6 (which asserts the size)."""
        return self.kind == "swin2"

    def net_input_hw(self, height: int, width: int, net_size: int | None = None) -> tuple[int, int]:
        size = net_size or self.net_size
        return midas_resize_hw(height, width, size, size, self.resize_method, self.keep_aspect_ratio, self.multiple_of)

    @property
    def key_layout(self) -> MidasKeyLayout:
        """What the key table (`keymap` in this package) needs to know about this architecture."""
        bb = self.backbone
        if isinstance(bb, Swin2Config):
            return MidasKeyLayout("swin2", 0, bb.stage_dim(len(bb.depths) - 1), bb.depths, (), self.num_classes)
        return MidasKeyLayout(self.kind, bb.depth, bb.embed_dim, (), self.hybrid_layers, self.num_classes)


def midas_resize_hw(
    height: int,
    width: int,
    net_h: int,
    net_w: int,
    method: ResizeMethod,
    keep_aspect_ratio: bool,
    multiple_of: int,
) -> tuple[int, int]:
    """Official `midas.transforms.Resize.get_size` -> (new_height, new_width), in its own argument order."""
    rule: SizeRule = method if keep_aspect_ratio else "squash"
    return official_resize_hw(height, width, net_h, net_w, rule, multiple_of)


class ProjectReadout(nn.Module):
    """Readout 'project': each patch token concatenated with the cls token -> Linear -> GELU."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        readout = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat([patches, readout], dim=-1))


class Transpose(nn.Module):
    """Official `Transpose(1, 2)` (index 1 of `act_postprocessN`): tokens (N, L, C) -> (N, C, L)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def make_reassemble(dim: int, out: int, level: int) -> nn.Sequential:
    """`pretrained.act_postprocessN` of token backbones, as the official `nn.Sequential`.

    0 readout, 1 Transpose, 2 Unflatten (official: a fixed-grid `nn.Unflatten`, which
    `forward_flex` skips and replaces by a reshape to the actual grid; an Identity
    here, applied the same way by `reassemble`), 3 1x1 conv, 4 resample (levels 1, 2, 4).
    The checkpoint's index names are the real positions in this Sequential.
    """
    layers: list[nn.Module] = [ProjectReadout(dim), Transpose(), nn.Identity(), nn.Conv2d(dim, out, 1)]
    resample: dict[int, nn.Module] = {
        1: nn.ConvTranspose2d(out, out, kernel_size=4, stride=4),
        2: nn.ConvTranspose2d(out, out, kernel_size=2, stride=2),
        4: nn.Conv2d(out, out, kernel_size=3, stride=2, padding=1),
    }
    if level in resample:
        layers.append(resample[level])
    return nn.Sequential(*layers)


def reassemble(stage: nn.Sequential, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Official `forward_flex` use of an `act_postprocessN`: [0:2], reshape to the grid, [3:]."""
    x = stage[0:2](tokens)
    x = x.reshape(x.shape[0], x.shape[1], *grid)
    return stage[3:](x)


def _build_backbone(cfg: MidasDPTConfig) -> Beit | SwinTransformerV2 | VisionTransformer:
    bb = cfg.backbone
    if isinstance(bb, BeitConfig):
        return Beit(bb)
    if isinstance(bb, Swin2Config):
        return SwinTransformerV2(bb)
    stem = HybridEmbed(bb.embed_dim, cfg.hybrid_layers) if cfg.hybrid_layers else None
    # timm's ImageNet classifier: unused, kept so official checkpoints load strictly.
    return VisionTransformer(bb, patch_embed=stem, num_classes=cfg.num_classes)


class MidasEncoder(nn.Module):
    """`pretrained`: the backbone (`model`) plus the reassemble stage; returns four maps, fine to coarse."""

    def __init__(self, cfg: MidasDPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = _build_backbone(cfg)
        self.num_cnn_levels = 2 if cfg.kind == "vit_hybrid" else 0
        first = 5 if cfg.kind == "swin2" else self.num_cnn_levels + 1  # Swin: Transpose + Unflatten only
        dim = cfg.backbone.embed_dim
        widths = cfg.reassemble_features
        self.act_postprocess1 = make_reassemble(dim, widths[0], 1) if first <= 1 else None
        self.act_postprocess2 = make_reassemble(dim, widths[1], 2) if first <= 2 else None
        self.act_postprocess3 = make_reassemble(dim, widths[2], 3) if first <= 3 else None
        self.act_postprocess4 = make_reassemble(dim, widths[3], 4) if first <= 4 else None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        model = self.model
        if isinstance(model, SwinTransformerV2):
            return model.forward_intermediates(x, self.cfg.hooks).maps()
        skips, inter = self._tokens(model, x)
        stages = [self.act_postprocess1, self.act_postprocess2, self.act_postprocess3, self.act_postprocess4]
        used = [stage for stage in stages if stage is not None]
        tapped = [reassemble(stage, t, g) for stage, t, g in zip(used, inter.features, inter.grids, strict=True)]
        return skips + tapped

    def _tokens(self, model: Beit | VisionTransformer, x: torch.Tensor) -> tuple[list[torch.Tensor], Intermediates]:
        """(CNN skip maps, raw outputs of the tapped blocks incl. cls token)."""
        taps = self.cfg.hooks[self.num_cnn_levels :]
        if isinstance(model, Beit):
            return [], model.forward_intermediates(x, taps)
        stem = model.patch_embed
        if isinstance(stem, HybridEmbed):
            skips, patches, grid = stem.forward_stages(x)
        else:
            (patches, grid), skips = stem(x), []
        # MiDaS `forward_flex`: cls token, then the stored grid resized bilinearly to this input.
        tokens = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), patches], dim=1)
        tokens = tokens + model.position_embedding(*grid)
        return skips, model.forward_tokens(tokens, grid, taps, stop_early=True)


class Interpolate(nn.Module):
    """Weightless resize kept as a module so `output_conv` indices match the official ones."""

    def __init__(self, scale_factor: float, align_corners: bool) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=self.align_corners)


def make_dpt_head(features: int, head_features_2: int, non_negative: bool) -> nn.Sequential:
    """`scratch.output_conv` of DPTDepthModel: conv3x3 -> x2 -> conv3x3 -> ReLU -> conv1x1 -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(features, features // 2, 3, padding=1),
        Interpolate(2, align_corners=True),
        nn.Conv2d(features // 2, head_features_2, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(head_features_2, 1, 1),
        nn.ReLU() if non_negative else nn.Identity(),
        nn.Identity(),
    )


class MidasScratch(Scratch):
    """`scratch`: the shared DPT fusion plus the `output_conv` head of DPTDepthModel."""

    def __init__(self, cfg: MidasDPTConfig) -> None:
        super().__init__(cfg.reassemble_features, cfg.features, cfg.use_bn, False, cfg.align_corners)
        self.output_conv = make_dpt_head(cfg.features, cfg.head_features_2, cfg.non_negative)


class MidasDPT(nn.Module):
    """MiDaS `DPTDepthModel`: (N, 3, h, w) normalised input -> (N, h, w) relative inverse depth."""

    def __init__(self, cfg: MidasDPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pretrained = MidasEncoder(cfg)
        self.scratch = MidasScratch(cfg)

    def forward(self, x: torch.Tensor, pre_relu: bool = False) -> torch.Tensor:
        """Disparity (N, h, w); with `pre_relu` the (N, 1, h, w) last-conv output before the final ReLU."""
        path = self.scratch.fuse(self.pretrained(x), sizes_from_skips=True)
        head = self.scratch.output_conv
        if pre_relu:
            return head[:5](path)
        return head(path).squeeze(1)


def computed_buffers(cfg: MidasDPTConfig) -> dict[str, torch.Tensor | None]:
    """Keys official checkpoints carry but `MidasDPT` computes: key -> required value (None: unused, any value).

    BEiT's `relative_position_index` (MiDaS regenerates it per input size) and Swin-V2's
    shifted-window `attn_mask` (fully determined by the architecture).
    """
    bb = cfg.backbone
    if isinstance(bb, BeitConfig):
        return {f"pretrained.model.blocks.{i}.{k}": None for i in range(bb.depth) for k in BEIT_COMPUTED_KEYS}
    if isinstance(bb, Swin2Config):
        return {f"pretrained.model.{k}": v for k, v in computed_masks(bb).items()}
    return {}


def drop_computed_keys(cfg: MidasDPTConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` without the computed keys; ValueError if a stored Swin mask differs from the computed one.

    Loaders that compare key sets before `load_state_dict` call this first; plain
    `MidasDPT.load_state_dict(official, strict=True)` accepts the keys by itself.
    """
    computed = computed_buffers(cfg)
    for key in computed.keys() & state.keys():
        want = computed[key]
        given = state[key]
        if want is not None and (given.shape != want.shape or not torch.equal(given.float().cpu(), want)):
            raise ValueError(f"{key}: stored values differ from the ones this architecture computes")
    return {k: v for k, v in state.items() if k not in computed}


# ----------------------------------------------------------------------------- presets
def _vit(embed_dim: int, depth: int, num_heads: int) -> ViTConfig:
    return ViTConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        patch_size=16,
        img_size=384,
        layer_scale=False,
        norm_eps=1e-6,
        pos_interp="bilinear",
    )


DPT_LARGE_384 = MidasDPTConfig(
    backbone=_vit(1024, 24, 16), hooks=(5, 11, 17, 23), reassemble_features=(256, 512, 1024, 1024)
)
DPT_HYBRID_384 = MidasDPTConfig(
    backbone=_vit(768, 12, 12),
    hooks=(0, 1, 8, 11),
    reassemble_features=(256, 512, 768, 768),
    hybrid_layers=(3, 4, 9),
)
DPT_BEIT_LARGE_512 = MidasDPTConfig(
    backbone=BeitConfig(), hooks=(5, 11, 17, 23), reassemble_features=(256, 512, 1024, 1024), net_size=512
)
DPT_SWIN2_TINY_256 = MidasDPTConfig(
    backbone=Swin2Config(),
    hooks=(1, 1, 5, 1),
    reassemble_features=(96, 192, 384, 768),
    net_size=256,
    keep_aspect_ratio=False,
)


# ----------------------------------------------------------------------------- family
def data_config(cfg: MidasDPTConfig) -> DataConfig:
    """Official `run.py` pre/post-processing (see `models.processing`): OpenCV cubic in,
    bicubic (align_corners=False) out; Swin-V2 squashes to its one 256x256 grid."""
    size_rule: SizeRule = cfg.resize_method if cfg.keep_aspect_ratio else "squash"
    return midas_data(cfg.net_size, size_rule, cfg.multiple_of, cfg.mean, cfg.std, cfg.fixed_input_size)


def convert_official(state: StateDict, cfg: MidasDPTConfig) -> StateDict:
    """Official checkpoints: verify (Swin masks) and drop the buffers the network computes."""
    try:
        return drop_computed_keys(cfg, state)
    except ValueError as exc:
        raise KeyMapError(f"MiDaS checkpoint: {exc}") from None


def convert_hf(state: StateDict, cfg: MidasDPTConfig) -> StateDict:
    return convert_official(keymap.hf_to_official(state, cfg), cfg)


def _size_dependent_backbone(spec: ModelSpec[MidasDPTConfig]) -> str | None:
    """BEiT's relative-position tables and Swin-V2's windows are laid out for one input size."""
    backbone = spec.config.backbone
    if isinstance(backbone, BeitConfig | Swin2Config):
        return (
            f"{spec.name}: the {type(backbone).__name__.removesuffix('Config')} backbone's attention layout depends "
            "on the input size; export one graph per size with --input-size instead of --dynamic"
        )
    return None


FAMILY = Family[MidasDPTConfig](
    name="midas",
    build=MidasDPT,
    data=data_config,
    converters={"official": convert_official, "hf": convert_hf},
    processor=MapProcessor,
    onnx=OnnxExport(dynamic_refusal=_size_dependent_backbone),
    training=Training(
        parts=(("scratch.output_conv", "head"), ("pretrained.", "encoder"), ("scratch.", "decoder")),
        relative_loss="ssi",
    ),
)

LICENSE = "MIT (isl-org/MiDaS)"
ABOUT = "Relative inverse depth (affine-invariant disparity); MiDaS 3.1 (Ranftl et al., Birkl et al. 2023)."


def _preset(
    name: str, config: MidasDPTConfig, side: int, params: float, description: str, *sources: WeightSource
) -> ModelSpec[MidasDPTConfig]:
    """A MiDaS DPT preset: relative disparity, MIT licence, a square network input of `side`, and
    the official model type (e.g. dpt_large_384) as its alias."""
    return FAMILY.preset(
        name=name,
        config=config,
        output_kind=OutputKind.RELATIVE_DISPARITY,
        license=LICENSE,
        license_class="commercial",
        description=f"{description} {ABOUT}",
        sources=sources,
        native_resolution=f"{side}x{side}",
        params_millions=params,
        aliases=(name.removeprefix("midas-").replace("-", "_"),),
    )


PRESETS = (
    _preset("midas-dpt-beit-large-512", DPT_BEIT_LARGE_512, 512, 345.0,
            "MiDaS 3.1 DPT BEiT-L/16 at 512 (the MiDaS default, highest quality).",
            WeightSource("Intel/dpt-beit-large-512", "model.safetensors", layout="hf")),
    _preset("midas-dpt-large-384", DPT_LARGE_384, 384, 344.1, "MiDaS 3.0 DPT-Large (ViT-L/16) at 384.",
            WeightSource("Intel/dpt-large", "model.safetensors", layout="hf"),
            WeightSource("deforum/MiDaS", "dpt_large-midas-2f21e586.pt", layout="official",
                         sha256="2f21e586477d90cb9624c7eef5df7891edca49a1c4795ee2cb631fd4daa6ca69",
                         size_bytes=1376378527)),
    _preset("midas-dpt-hybrid-384", DPT_HYBRID_384, 384, 123.1, "MiDaS 3.0 DPT-Hybrid (ResNet-50 + ViT-B/16) at 384.",
            WeightSource("Intel/dpt-hybrid-midas", "pytorch_model.bin", layout="hf"),
            WeightSource("lllyasviel/Annotators", "dpt_hybrid-midas-501f0c75.pt", layout="official")),
    _preset("midas-dpt-swin2-tiny-256", DPT_SWIN2_TINY_256, 256, 41.7, "MiDaS 3.1 DPT Swin-V2-T at 256x256 (fast).",
            WeightSource("Intel/dpt-swinv2-tiny-256", "model.safetensors", layout="hf")),
)  # fmt: skip
