"""Depth Anything V1 and V2 (relative and metric): DINOv2 encoder + DPT head.

Both versions share one architecture and one state-dict layout (`pretrained.*` for
the DINOv2 encoder, `depth_head.*` for the DPT head), so the version can never be
inferred from a checkpoint: it is an explicit config field. They differ only in
which encoder blocks feed the head and in the official post-resize:

* V1 (LiheYoung/Depth-Anything) calls `get_intermediate_layers(x, 4)`, i.e. the
  LAST four blocks (vits: 8, 9, 10, 11), and its `run.py` resizes the output back
  with bilinear `align_corners=False`;
* V2 (DepthAnything/Depth-Anything-V2) taps spread-out blocks (vits/vitb
  2, 5, 8, 11; vitl 4, 11, 17, 23; vitg 9, 19, 29, 39) and its `infer_image`
  resizes with bilinear `align_corners=True`.

The metric V2 models (`metric_depth/`) end the head in a Sigmoid instead of a ReLU
and multiply by `max_depth` (20 m Hypersim indoor, 80 m Virtual KITTI 2 outdoor).

Network contract: `DepthAnything(cfg)(x)` takes (N, 3, h, w) ImageNet-normalised
input (h, w multiples of 14) and returns (N, h, w): relative disparity (non-negative)
or metres. The encoder is the shared `VisionTransformer` (tapped block outputs go
through its final LayerNorm, cls token dropped) and the fusion is the shared DPT
`Scratch`; this file only wires them and registers the named presets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...family import DataConfig, Family, LicenseClass, ModelSpec, OnnxExport, Training, WeightSource, official_layout
from ...result import OutputKind
from ..dpt import Scratch, reassemble_resizes
from ..processing import IMAGENET_MEAN as IMAGENET_MEAN  # the Depth Anything names of the shared constants
from ..processing import IMAGENET_STD as IMAGENET_STD
from ..processing import MapProcessor, dinov2_data, official_resize_hw
from ..vit import DINOV2_SIZES, VisionTransformer, ViTConfig, VitSize, tokens_to_map
from . import keymap

PATCH = 14


@dataclass(frozen=True)
class DepthAnythingConfig:
    """Everything that tells one Depth Anything checkpoint from another."""

    version: Literal["v1", "v2"]
    """Explicit: V1 and V2 checkpoints have identical keys but tap different blocks."""
    encoder: str
    """Official encoder name (vits, vitb, vitl, vitg) or a test name."""
    vit: ViTConfig
    features: int
    """DPT fusion width (`features` in the official model_configs)."""
    out_channels: tuple[int, int, int, int]
    """Per-level widths after the 1x1 `projects` (official `out_channels`)."""
    taps: tuple[int, int, int, int]
    """Encoder blocks (0-based) whose outputs feed the head, fine to coarse."""
    max_depth: float | None = None
    """Metric models: Sigmoid head scaled to metres. None: relative (ReLU head)."""
    head_features_2: int = 32
    input_size: int = 518
    """Shorter side of the network input (official default; `load(input_size=...)` may change it)."""
    output_align_corners: bool = True
    """Bilinear resize of the raw map back to the image: V2 infer_image True, V1 run.py False."""

    @property
    def is_metric(self) -> bool:
        return self.max_depth is not None

    def __post_init__(self) -> None:
        if self.version not in ("v1", "v2"):
            raise ValueError(f"version must be 'v1' or 'v2', got {self.version!r}")
        if len(self.taps) != 4 or any(not 0 <= t < self.vit.depth for t in self.taps):
            raise ValueError(f"taps {self.taps} must be 4 block indices below depth {self.vit.depth}")
        if self.vit.patch_size != PATCH:
            raise ValueError("Depth Anything uses 14-pixel patches")


class DepthAnythingScratch(Scratch):
    """`depth_head.scratch`: the shared DPT fusion plus this head's `output_conv1` / `output_conv2`."""

    def __init__(self, cfg: DepthAnythingConfig) -> None:
        feats = cfg.features
        super().__init__(cfg.out_channels, feats, use_bn=False, expand=False, align_corners=True)
        self.output_conv1 = nn.Conv2d(feats, feats // 2, kernel_size=3, padding=1)
        final = nn.Sigmoid() if cfg.is_metric else nn.ReLU()
        layers: list[nn.Module] = [
            nn.Conv2d(feats // 2, cfg.head_features_2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cfg.head_features_2, 1, kernel_size=1),
            final,
        ]
        if not cfg.is_metric:
            layers.append(nn.Identity())  # the relative head ends in an Identity; kept for fidelity
        self.output_conv2 = nn.Sequential(*layers)


class DPTHead(nn.Module):
    """The official `depth_head`: reassemble tokens into 4 maps, fuse, regress one channel."""

    def __init__(self, cfg: DepthAnythingConfig) -> None:
        super().__init__()
        dim, oc = cfg.vit.embed_dim, cfg.out_channels
        self.projects = nn.ModuleList(nn.Conv2d(dim, c, kernel_size=1) for c in oc)
        self.resize_layers = reassemble_resizes(oc)
        self.scratch = DepthAnythingScratch(cfg)

    def forward(self, maps: list[torch.Tensor], out_hw: tuple[int, int]) -> torch.Tensor:
        """Four (N, C, rows, cols) token maps -> (N, 1, *out_hw) map."""
        levels = [resize(proj(m)) for m, proj, resize in zip(maps, self.projects, self.resize_layers, strict=True)]
        fused = self.scratch.fuse(levels, sizes_from_skips=True)
        out = self.scratch.output_conv1(fused)
        out = F.interpolate(out, size=out_hw, mode="bilinear", align_corners=True)
        return self.scratch.output_conv2(out)


class DepthAnything(nn.Module):
    """`pretrained` (DINOv2) + `depth_head` (DPT), official key names."""

    def __init__(self, cfg: DepthAnythingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pretrained = VisionTransformer(cfg.vit)
        self.depth_head = DPTHead(cfg)

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        """The four tapped block outputs after the encoder's final LayerNorm, as maps.

        Official `get_intermediate_layers(..., norm=True)`: each tapped output is
        normalised by the shared `norm`, and the cls token is dropped (use_clstoken=False).
        """
        inter = self.pretrained.forward_intermediates(x, self.cfg.taps, stop_early=True)
        grid, prefix = inter.grids[0], inter.num_prefix_tokens
        return [tokens_to_map(self.pretrained.norm(t), grid, prefix) for t in inter.features], grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        maps, (rows, cols) = self.features(x)
        depth = self.depth_head(maps, (rows * PATCH, cols * PATCH))
        if self.cfg.is_metric:
            return (depth * self.cfg.max_depth).squeeze(1)
        if self.cfg.version == "v1" and depth.shape[-2:] != (h, w):
            # V1 resizes the head output to the input size (an identity for multiples of 14).
            depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=True)
        return F.relu(depth).squeeze(1)


# ---------------------------------------------------------------- presets

Quad = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Encoder:
    """One official encoder size (official run.py / dpt.py model_configs)."""

    vit: VitSize
    features: int
    """DPT fusion width."""
    oc: Quad
    """out_channels of the four levels."""
    taps: Quad
    """V2 tapped blocks."""


_ENCODERS: dict[str, _Encoder] = {
    "vits": _Encoder(DINOV2_SIZES["vits"], 64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "vitb": _Encoder(DINOV2_SIZES["vitb"], 128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "vitl": _Encoder(DINOV2_SIZES["vitl"], 256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
    "vitg": _Encoder(DINOV2_SIZES["vitg"], 384, (1536, 1536, 1536, 1536), (9, 19, 29, 39)),
    # Test-only width: same code paths (mask token, LayerScale, pos-embed interpolation) in milliseconds.
    # Six blocks so that V1 (last four: 2..5) and V2 taps differ, as they do at every real size.
    "tiny": _Encoder(VitSize(64, 6, 2), 32, (16, 32, 64, 64), (0, 2, 4, 5)),
}

# Parameter counts of the official models (manifest n_params; metric heads have the same shapes).
_PARAMS_M = {"vits": 24.785089, "vitb": 97.470785, "vitl": 335.315649, "vitg": 1258.132225}


def dinov2_config(encoder: str) -> ViTConfig:
    """DINOv2 /14 as Depth Anything builds it (LayerScale, mask_token, 37x37 stored grid)."""
    return replace(_ENCODERS[encoder].vit.dinov2(), mask_token=True)


def make_config(version: Literal["v1", "v2"], encoder: str, max_depth: float | None = None) -> DepthAnythingConfig:
    """Official configuration of one (version, encoder[, metric]) combination."""
    e = _ENCODERS[encoder]
    depth = e.vit.depth
    # V1: get_intermediate_layers(x, 4) = the last four blocks; V2: the fixed per-size list.
    taps: Quad = (depth - 4, depth - 3, depth - 2, depth - 1) if version == "v1" else e.taps
    return DepthAnythingConfig(
        version=version,
        encoder=encoder,
        vit=dinov2_config(encoder),
        features=e.features,
        out_channels=e.oc,
        taps=taps,
        max_depth=max_depth,
        output_align_corners=version == "v2",
    )


def network_size(height: int, width: int, size: int, multiple: int = PATCH) -> tuple[int, int]:
    """Network input (h, w) of the official 'lower_bound' resize: shorter side >= size, multiples of 14
    (480x640 -> 518x686). `Resize(keep_aspect_ratio=True, ensure_multiple_of=14)` of both versions."""
    return official_resize_hw(height, width, size, size, "lower_bound", multiple)


def data_config(cfg: DepthAnythingConfig) -> DataConfig:
    """Official pipeline (V2 `image2tensor` / `infer_image`, V1 `run.py`; see `models.processing`):
    lower-bound resize to multiples of 14 with OpenCV cubic, ImageNet mean/std, bilinear back
    with align_corners=True (V2) or False (V1)."""
    return dinov2_data(cfg.input_size, "lower_bound", PATCH, cfg.output_align_corners)


FAMILY = Family[DepthAnythingConfig](
    name="depth_anything",
    build=DepthAnything,
    data=data_config,
    converters={"official": official_layout, "hf": keymap.hf_to_official},
    processor=MapProcessor,
    onnx=OnnxExport(),
    training=Training(
        parts=(("depth_head.scratch.output_conv", "head"), ("pretrained.", "encoder"), ("depth_head.", "decoder")),
        relative_loss="affine",
    ),
)

_SIZE_NAMES = {"vits": "small", "vitb": "base", "vitl": "large", "vitg": "giant"}
_V2_LICENSE = {"vits": "Apache-2.0", "vitb": "CC-BY-NC-4.0", "vitl": "CC-BY-NC-4.0", "vitg": "CC-BY-NC-4.0"}
_LICENSE_CLASS: dict[str, LicenseClass] = {"Apache-2.0": "commercial", "CC-BY-NC-4.0": "non-commercial"}
_NATIVE = "518 (shorter side)"

# LFS sha256 of official files, as shown on the authors' own hub repos (others: not verified, left None).
_SHA256 = {
    "depth_anything_v2_vits.pth": "715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",
    "depth_anything_v2_vitb.pth": "0d2b7002e62d39d655571c371333340bd88f67ab95050c03591555aa05645328",
    "depth_anything_v2_metric_hypersim_vitb.pth": "9dc9e274c5eff55c6daf27b660c0ced0eca4e8593a6da90cdcb04d2b4d3f3fa2",
    "depth_anything_v2_metric_hypersim_vitl.pth": "6f82ff2bc543ac02ddff4aa31fa363676a8305dd3ccf04e80e2af115a044cb6d",
    "depth_anything_v2_metric_vkitti_vits.pth": "9203e538d35255c90dda4b7fedb47ff33fe725497bcca3b1e53b3a65ee63f0cb",
    "depth_anything_v2_metric_vkitti_vitb.pth": "4dad67a7cc10b462bca48e6b8569c762b8eb3c1adada170a3851a6d3ba37bb3e",
}


def _official(repo_id: str, filename: str) -> WeightSource:
    return WeightSource(repo_id, filename, sha256=_SHA256.get(filename))


def _v2_relative() -> list[ModelSpec[DepthAnythingConfig]]:
    specs = []
    for enc in ("vits", "vitb", "vitl", "vitg"):
        size = _SIZE_NAMES[enc]
        sources: tuple[WeightSource, ...] = ()
        if enc != "vitg":  # Giant: "coming soon" in the official README, no checkpoint published
            title = size.capitalize()
            sources = (
                _official(f"depth-anything/Depth-Anything-V2-{title}", f"depth_anything_v2_{enc}.pth"),
                WeightSource(f"depth-anything/Depth-Anything-V2-{title}-hf", "model.safetensors", layout="hf"),
            )
        note = "" if sources else " No checkpoint has been published yet; load your own with weights=."
        specs.append(
            FAMILY.preset(
                name=f"depth-anything-v2-{size}",
                config=make_config("v2", enc),
                output_kind=OutputKind.RELATIVE_DISPARITY,
                license=_V2_LICENSE[enc],
                license_class=_LICENSE_CLASS[_V2_LICENSE[enc]],
                description=f"Depth Anything V2 {size} ({enc}): relative disparity, affine-invariant.{note}",
                sources=sources,
                native_resolution=_NATIVE,
                params_millions=_PARAMS_M[enc],
            )
        )
    return specs


def _v2_metric() -> list[ModelSpec[DepthAnythingConfig]]:
    specs = []
    # (our scene name, official dataset file tag, official repo tag, hf repo tag, max depth in metres)
    scenes = (
        ("indoor", "hypersim", "Hypersim", "Indoor", 20.0, "Hypersim"),
        ("outdoor", "vkitti", "VKITTI", "Outdoor", 80.0, "Virtual KITTI 2"),
    )
    for scene, file_tag, repo_tag, hf_tag, max_depth, dataset in scenes:
        for enc in ("vits", "vitb", "vitl"):
            size = _SIZE_NAMES[enc]
            title = size.capitalize()
            specs.append(
                FAMILY.preset(
                    name=f"depth-anything-v2-metric-{scene}-{size}",
                    config=make_config("v2", enc, max_depth=max_depth),
                    output_kind=OutputKind.METRIC_DEPTH,
                    # The authors tag every metric checkpoint repo (all sizes) apache-2.0 on the hub, but
                    # Base/Large are fine-tuned from the CC-BY-NC-4.0 relative models: not cleared for
                    # commercial use until the authors say otherwise.
                    license="Apache-2.0",
                    license_class="commercial" if enc == "vits" else "non-commercial",
                    description=(
                        f"Depth Anything V2 metric {scene} {size} ({enc}), fine-tuned on {dataset}: "
                        f"metres, up to {max_depth:g} m."
                    ),
                    sources=(
                        _official(
                            f"depth-anything/Depth-Anything-V2-Metric-{repo_tag}-{title}",
                            f"depth_anything_v2_metric_{file_tag}_{enc}.pth",
                        ),
                        WeightSource(
                            f"depth-anything/Depth-Anything-V2-Metric-{hf_tag}-{title}-hf",
                            "model.safetensors",
                            layout="hf",
                        ),
                    ),
                    native_resolution=_NATIVE,
                    params_millions=_PARAMS_M[enc],
                )
            )
    return specs


def _v1() -> list[ModelSpec[DepthAnythingConfig]]:
    specs = []
    for enc in ("vits", "vitb", "vitl"):
        size = _SIZE_NAMES[enc]
        specs.append(
            FAMILY.preset(
                name=f"depth-anything-v1-{size}",
                config=make_config("v1", enc),
                output_kind=OutputKind.RELATIVE_DISPARITY,
                license="Apache-2.0",
                license_class="commercial",
                description=f"Depth Anything (V1) {size} ({enc}14): relative disparity, affine-invariant.",
                sources=(
                    # PyTorchModelHubMixin upload of the official model: official keys.
                    WeightSource(f"LiheYoung/depth_anything_{enc}14", "pytorch_model.bin"),
                    WeightSource(f"LiheYoung/depth-anything-{size}-hf", "model.safetensors", layout="hf"),
                ),
                native_resolution=_NATIVE,
                params_millions=_PARAMS_M[enc],
            )
        )
    return specs


def _test_presets(v2: ModelSpec[DepthAnythingConfig], v2_metric: ModelSpec[DepthAnythingConfig],
                  v1: ModelSpec[DepthAnythingConfig]) -> list[ModelSpec[DepthAnythingConfig]]:  # fmt: skip
    """Tiny versions of the small (vits, Apache-2.0) presets of each kind."""
    tiny = (
        (v2, "depth-anything-v2-tiny", make_config("v2", "tiny")),
        (v1, "depth-anything-v1-tiny", make_config("v1", "tiny")),
        (v2_metric, "depth-anything-v2-metric-tiny", make_config("v2", "tiny", max_depth=20.0)),
    )
    description = "Test-only Depth Anything (width 64, 6 blocks): plumbing tests, no weights."
    return [full.test_variant(name=name, config=cfg, description=description) for full, name, cfg in tiny]


_V2, _V2_METRIC, _V1 = _v2_relative(), _v2_metric(), _v1()
PRESETS = (*_V2, *_V2_METRIC, *_V1, *_test_presets(_V2[0], _V2_METRIC[0], _V1[0]))
