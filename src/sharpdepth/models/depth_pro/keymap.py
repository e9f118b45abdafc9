"""Depth Pro key table: official (apple/ml-depth-pro) <-> Hugging Face transformers.

`apple/DepthPro` ships the official state dict (`depth_pro.pt`); `apple/DepthPro-hf`
ships the same weights in transformers' `DepthProForDepthEstimation` layout
(`model.safetensors`). The two differ only in names and in how the ViTs' attention
input projection is stored, never in values, so conversion is a lossless renaming:

- each DINOv2 block's fused `attn.qkv` (3C x C) is three Linear layers in transformers
  (`attention.attention.{query,key,value}`; rows [0:C], [C:2C], [2C:3C]);
- transformers lists the encodings coarse-to-fine where the official decoder counts
  fine-to-coarse: `decoder.convs.i` <-> `feature_projection.projections.{4-i}`,
  `decoder.fusions.i` <-> `fusion_stage.intermediate.{4-i}` (i > 0) and
  `fusion_stage.final` (i = 0); likewise the hooks and pyramid levels are reversed
  (`upsample_latent0` <-> `intermediate.1`, `upsample0` <-> `scaled_images.2`);
- transformers' DINOv2 has a `mask_token` (training only) that the official ViT lacks:
  written as zeros when converting to transformers, dropped when converting back.

The on-hub file uses the transformers 4.x attention names (`attention.attention.query`,
`attention.output.dense`); transformers 5 renames them in memory (`attention.q_proj`,
`attention.o_proj`). `hf_to_official` accepts both; `official_to_hf` writes the hub's
names unless asked for the in-memory ones (`names="transformers5"`).

The table below is the whole mapping: `{p}` is weight|bias, `{i}`/`{j}` are copied
integers and `{ri}` is an integer counted from the other end of the 5-level decoder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from ...family import KeyMapError, StateDict

N_LEVELS = 5
"""Decoder levels of every Depth Pro (3 pyramid levels + 2 hook latents)."""

# ViT encoders: official prefix -> transformers prefix.
VIT_PREFIXES = (
    ("encoder.patch_encoder.", "depth_pro.encoder.patch_encoder.model."),
    ("encoder.image_encoder.", "depth_pro.encoder.image_encoder.model."),
    ("fov.encoder.0.", "fov_model.fov_encoder.model."),
)

# Inside one ViT: timm/DINOv2 names -> transformers Dinov2Model names (hub file).
VIT_RULES = (
    ("cls_token", "embeddings.cls_token"),
    ("pos_embed", "embeddings.position_embeddings"),
    ("patch_embed.proj.{p}", "embeddings.patch_embeddings.projection.{p}"),
    ("blocks.{i}.norm{j}.{p}", "encoder.layer.{i}.norm{j}.{p}"),
    ("blocks.{i}.attn.proj.{p}", "encoder.layer.{i}.attention.output.dense.{p}"),
    ("blocks.{i}.ls{j}.gamma", "encoder.layer.{i}.layer_scale{j}.lambda1"),
    ("blocks.{i}.mlp.fc{j}.{p}", "encoder.layer.{i}.mlp.fc{j}.{p}"),
    ("norm.{p}", "layernorm.{p}"),
)

# Fused qkv (official) <-> three projections (transformers), in this order.
QKV_RULE = (
    "blocks.{i}.attn.qkv.{p}",
    (
        "encoder.layer.{i}.attention.attention.query.{p}",
        "encoder.layer.{i}.attention.attention.key.{p}",
        "encoder.layer.{i}.attention.attention.value.{p}",
    ),
)

_UP = "depth_pro.neck.feature_upsample."
# Everything that is not inside a ViT. Order matters: the first matching rule wins.
MODULE_RULES = (
    ("encoder.upsample_latent0.{i}.weight", _UP + "intermediate.1.layers.{i}.weight"),
    ("encoder.upsample_latent1.{i}.weight", _UP + "intermediate.0.layers.{i}.weight"),
    ("encoder.upsample0.{i}.weight", _UP + "scaled_images.2.layers.{i}.weight"),
    ("encoder.upsample1.{i}.weight", _UP + "scaled_images.1.layers.{i}.weight"),
    ("encoder.upsample2.{i}.weight", _UP + "scaled_images.0.layers.{i}.weight"),
    ("encoder.upsample_lowres.{p}", _UP + "image_block.layers.0.{p}"),
    ("encoder.fuse_lowres.{p}", "depth_pro.neck.fuse_image_with_low_res.{p}"),
    ("decoder.convs.{ri}.weight", "depth_pro.neck.feature_projection.projections.{ri}.weight"),
    ("decoder.fusions.0.resnet{j}.residual.1.{p}", "fusion_stage.final.residual_layer{j}.convolution1.{p}"),
    ("decoder.fusions.0.resnet{j}.residual.3.{p}", "fusion_stage.final.residual_layer{j}.convolution2.{p}"),
    ("decoder.fusions.0.out_conv.{p}", "fusion_stage.final.projection.{p}"),
    (
        "decoder.fusions.{ri}.resnet{j}.residual.1.{p}",
        "fusion_stage.intermediate.{ri}.residual_layer{j}.convolution1.{p}",
    ),
    (
        "decoder.fusions.{ri}.resnet{j}.residual.3.{p}",
        "fusion_stage.intermediate.{ri}.residual_layer{j}.convolution2.{p}",
    ),
    ("decoder.fusions.{ri}.deconv.weight", "fusion_stage.intermediate.{ri}.deconv.weight"),
    ("decoder.fusions.{ri}.out_conv.{p}", "fusion_stage.intermediate.{ri}.projection.{p}"),
    ("head.{i}.{p}", "head.layers.{i}.{p}"),
    ("fov.encoder.1.{p}", "fov_model.fov_encoder.neck.{p}"),
    ("fov.downsample.0.{p}", "fov_model.conv.{p}"),
    ("fov.head.{i}.{p}", "fov_model.head.layers.{i}.{p}"),
)

# transformers 5 in-memory attention names <- hub (4.x) names.
TRANSFORMERS5_NAMES = (
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
)

MASK_TOKEN = "embeddings.mask_token"


# --------------------------------------------------------------------------- machinery


class _Template:
    """A key pattern with fields; matches a key and formats another pattern's fields."""

    _FIELD = re.compile(r"\{(\w+)\}")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts, pos = [], 0
        for m in self._FIELD.finditer(pattern):
            parts.append(re.escape(pattern[pos : m.start()]))
            parts.append(f"(?P<{m[1]}>weight|bias)" if m[1] == "p" else rf"(?P<{m[1]}>\d+)")
            pos = m.end()
        parts.append(re.escape(pattern[pos:]))
        self.regex = re.compile("".join(parts) + r"\Z")

    def match(self, key: str) -> dict[str, str] | None:
        m = self.regex.match(key)
        return m.groupdict() if m else None

    def format(self, fields: dict[str, str]) -> str:
        values = {k: str(N_LEVELS - 1 - int(v)) if k.startswith("r") else v for k, v in fields.items()}
        return self.pattern.format(**values)


def _rules(direction: Literal["to_hf", "to_official"]) -> list[tuple[_Template, list[_Template]]]:
    """(source template, target templates) pairs; several targets = a split (qkv)."""
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for off_prefix, hf_prefix in VIT_PREFIXES:
        pairs += [(off_prefix + o, (hf_prefix + h,)) for o, h in VIT_RULES]
        pairs.append((off_prefix + QKV_RULE[0], tuple(hf_prefix + h for h in QKV_RULE[1])))
    pairs += [(o, (h,)) for o, h in MODULE_RULES]
    if direction == "to_hf":
        return [(_Template(o), [_Template(h) for h in hs]) for o, hs in pairs]
    # Back: a split's first part (query) carries the key; the others are gathered from it.
    return [(_Template(hs[0]), [_Template(o), *(_Template(h) for h in hs[1:])]) for o, hs in pairs]


_TO_HF = _rules("to_hf")
_TO_OFFICIAL = _rules("to_official")
_SPLIT_REST = [t for _, targets in _TO_OFFICIAL for t in targets[1:]]


def _convert(
    state: dict[str, torch.Tensor],
    rules: list[tuple[_Template, list[_Template]]],
    emit: Callable[[dict[str, str], list[_Template], torch.Tensor], dict[str, torch.Tensor]],
    skip: Callable[[str], bool],
) -> dict[str, torch.Tensor]:
    """Apply the first matching rule to every key; `emit` builds the target entries."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if skip(key):
            continue
        for source, targets in rules:
            fields = source.match(key)
            if fields is not None:
                out.update(emit(fields, targets, value))
                break
        else:
            raise KeyMapError(f"Depth Pro key map: {key!r} has no counterpart (not a Depth Pro checkpoint?)")
    return out


# --------------------------------------------------------------------------- public API


def official_to_hf(state: StateDict, cfg: object = None, names: Literal["hub", "transformers5"] = "hub") -> StateDict:
    """Official Depth Pro state dict -> transformers layout (tensors shared, qkv split as views)."""

    def split(fields: dict[str, str], targets: list[_Template], value: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(targets) == 1:
            return {targets[0].format(fields): value}
        return {t.format(fields): part for t, part in zip(targets, value.chunk(3, dim=0), strict=True)}

    out = _convert(state, _TO_HF, split, skip=lambda k: False)
    for off_prefix, hf_prefix in VIT_PREFIXES:
        cls = state.get(off_prefix + "cls_token")
        if cls is not None:
            out[hf_prefix + MASK_TOKEN] = torch.zeros_like(cls).reshape(1, -1)
    if names == "transformers5":
        out = {_rename(k, TRANSFORMERS5_NAMES): v for k, v in out.items()}
    return out


def hf_to_official(state: StateDict, cfg: object = None) -> StateDict:
    """transformers layout (hub file or transformers 5 state_dict) -> official keys.

    `cfg` is unused (every Depth Pro shares one table); it keeps the key-map signature
    `(state, cfg) -> state` of every family. Raises KeyMapError on a key the table does
    not know (e.g. another model's checkpoint) or a query without its key/value."""
    state = {_rename(k, [(new, old) for old, new in TRANSFORMERS5_NAMES]): v for k, v in state.items()}

    def gather(fields: dict[str, str], targets: list[_Template], value: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(targets) == 1:
            return {targets[0].format(fields): value}
        names = [t.format(fields) for t in targets[1:]]
        missing = [n for n in names if n not in state]
        if missing:
            raise KeyMapError(f"Depth Pro key map: {missing[0]!r} is missing (needed with its query projection)")
        parts = [value, *(state[n] for n in names)]
        return {targets[0].format(fields): torch.cat(parts, dim=0)}

    def skip(key: str) -> bool:
        # mask tokens are unused at inference; key/value parts are consumed with their query
        return key.endswith(MASK_TOKEN) or any(t.match(key) is not None for t in _SPLIT_REST)

    return _convert(state, _TO_OFFICIAL, gather, skip)


def _rename(key: str, pairs: Sequence[tuple[str, str]]) -> str:
    for old, new in pairs:
        if old in key:
            return key.replace(old, new)
    return key
