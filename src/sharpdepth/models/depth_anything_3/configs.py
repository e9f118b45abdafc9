"""Architectures of the released Depth Anything 3 models and of the test presets (official yamls)."""

from __future__ import annotations

from dataclasses import replace

from ..vit import DINOV2_SIZES, ViTConfig, VitSize
from .network import DA3Config

Quad = tuple[int, int, int, int]


_ENCODERS = {**DINOV2_SIZES, "tiny": VitSize(64, 4, 4)}  # tiny: the fixtures' 64-wide, 4-block test encoder


def dinov2(encoder: str, alt_start: int = -1) -> ViTConfig:
    """DA3's DINOv2/14: block norms eps 1e-6, final norm 1e-5; QK-norm, RoPE and alternating
    attention all start at `alt_start` in the any-view models."""
    vit = _ENCODERS[encoder].dinov2()
    return replace(vit, final_norm_eps=1e-5, qk_norm_start=alt_start, rope_start=alt_start, alt_start=alt_start)


def mono(encoder: str, taps: Quad, features: int, out_channels: Quad) -> DA3Config:
    """DINOv2 + DPT with a sky head (da3mono-large.yaml, da3metric-large.yaml and test sizes)."""
    return DA3Config(dinov2(encoder), taps, features, out_channels, any_view=False)


def any_view(encoder: str, taps: Quad, alt_start: int, features: int, out_channels: Quad) -> DA3Config:
    """Multi-view DINOv2 + DualDPT + camera decoder/encoder (da3-{small,base,large,giant}.yaml)."""
    return DA3Config(dinov2(encoder, alt_start), taps, features, out_channels, any_view=True)


MONO_LARGE = mono("vitl", (4, 11, 17, 23), 256, (256, 512, 1024, 1024))
MONO_TINY = mono("tiny", (0, 1, 2, 3), 32, (16, 32, 64, 64))
MONO_VITS = mono("vits", (1, 5, 8, 11), 64, (48, 96, 192, 384))
SMALL = any_view("vits", (5, 7, 9, 11), 4, 64, (48, 96, 192, 384))
BASE = any_view("vitb", (5, 7, 9, 11), 4, 128, (96, 192, 384, 768))
LARGE = any_view("vitl", (11, 15, 19, 23), 8, 256, (256, 512, 1024, 1024))
GIANT = any_view("vitg", (19, 27, 33, 39), 13, 256, (256, 512, 1024, 1024))
