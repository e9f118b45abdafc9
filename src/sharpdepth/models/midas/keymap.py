"""MiDaS DPT: transformers `DPTForDepthEstimation` files <-> official MiDaS checkpoints.

The Intel repositories on the hub (`Intel/dpt-large`, `Intel/dpt-hybrid-midas`,
`Intel/dpt-beit-large-512`) hold the official weights renamed into the layout
transformers 4.x wrote (and 5.x still writes with `save_pretrained`):

* ViT / ViT-Hybrid: `dpt.embeddings.*` (cls token, position grid, patch projection or the
  BiT ResNet `dpt.embeddings.backbone.bit.*`), `dpt.encoder.layer.N.*`, `dpt.layernorm`;
* BEiT: `backbone.embeddings.*`, `backbone.encoder.layer.N.*` (LayerScale `lambda_1/2`);
* all: `neck.reassemble_stage.*`, `neck.convs.*`, `neck.fusion_stage.layers.*`, `head.head.*`.

`key_table(cfg)` spells out every official key of a model with its transformers
counterpart(s), so a key nobody expected is an error, never a silent skip. Non-renames:

* fused `attn.qkv` (rows q, k, v) <-> `attention.attention.{query,key,value}`; BEiT has no
  key bias: its official `q_bias` / `v_bias` are the query / value biases;
* the fusion ladder runs the other way: official `refinenet{n}` <-> `fusion_stage.layers.{4-n}`;
* official keys transformers dropped because nothing reads them: the ImageNet classifier
  `pretrained.model.head.*` (all), BEiT's `fc_norm`. `hf_to_official` fills them with
  neutral placeholders (zeros; LayerNorm ones/zeros) so the official model loads strictly;
  `official_to_hf` drops them. BEiT `relative_position_index` buffers, which MiDaS
  recomputes, are ignored if a file has them.

* Swin-V2 (`Intel/dpt-swinv2-tiny-256`): `backbone.embeddings.*`, `backbone.encoder.layers.S.blocks.B.*`
  (`attention.self.{query,key,value,logit_scale,continuous_position_bias_mlp}`), the same
  end-of-stage `downsample`; no reassemble stage. The official final `norm` / `head` are
  unused placeholders; the shifted-window `attn_mask` buffers are computed (see
  `models.midas.computed_buffers`) and `relative_coords_table` / `relative_position_index`
  are ignored if a file has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from ...family import KeyMapError, StateDict


@dataclass(frozen=True)
class MidasKeyLayout:
    """The architecture numbers the key table depends on (and nothing else)."""

    kind: Literal["vit", "vit_hybrid", "beit", "swin2"]
    depth: int
    """Transformer blocks (ViT / BEiT); unused for Swin."""
    token_dim: int
    """Width of the final tokens (Swin: the last stage's width), for the placeholders."""
    stage_depths: tuple[int, ...] = ()
    """Blocks per Swin stage."""
    hybrid_layers: tuple[int, ...] = ()
    """ResNet stage depths of a ViT-Hybrid patch embedding."""
    num_classes: int = 1000


class HasKeyLayout(Protocol):
    """A MiDaS config (`models.midas.MidasDPTConfig`): the key map needs only its layout."""

    @property
    def key_layout(self) -> MidasKeyLayout: ...


# (official suffix, hf suffix) inside one ViT block (after "pretrained.model.blocks.{i}." / "<hf>.encoder.layer.{i}.").
VIT_BLOCK_PAIRS: tuple[tuple[str, str], ...] = (
    ("norm1.weight", "layernorm_before.weight"),
    ("norm1.bias", "layernorm_before.bias"),
    ("attn.proj.weight", "attention.output.dense.weight"),
    ("attn.proj.bias", "attention.output.dense.bias"),
    ("norm2.weight", "layernorm_after.weight"),
    ("norm2.bias", "layernorm_after.bias"),
    ("mlp.fc1.weight", "intermediate.dense.weight"),
    ("mlp.fc1.bias", "intermediate.dense.bias"),
    ("mlp.fc2.weight", "output.dense.weight"),
    ("mlp.fc2.bias", "output.dense.bias"),
)
BEIT_BLOCK_EXTRA: tuple[tuple[str, str], ...] = (
    ("gamma_1", "lambda_1"),
    ("gamma_2", "lambda_2"),
    ("attn.q_bias", "attention.attention.query.bias"),
    ("attn.v_bias", "attention.attention.value.bias"),
    ("attn.relative_position_bias_table", "attention.attention.relative_position_bias.relative_position_bias_table"),
)
QKV_HF = ("attention.attention.query.{p}", "attention.attention.key.{p}", "attention.attention.value.{p}")

# ResNet (BiT) stem of ViT-Hybrid: official "pretrained.model.patch_embed.backbone." <-> hf "...backbone.bit.".
RESNET_BLOCK_PARTS = ("conv1.weight", "norm1.weight", "norm1.bias", "conv2.weight", "norm2.weight", "norm2.bias",
                      "conv3.weight", "norm3.weight", "norm3.bias")  # fmt: skip
RESNET_DOWNSAMPLE_PARTS = ("downsample.conv.weight", "downsample.norm.weight", "downsample.norm.bias")

# Reassemble stage of level n (1-based official, 0-based hf).
REASSEMBLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("pretrained.act_postprocess{n}.0.project.0.{p}", "neck.reassemble_stage.readout_projects.{m}.0.{p}"),
    ("pretrained.act_postprocess{n}.3.{p}", "neck.reassemble_stage.layers.{m}.projection.{p}"),
)
RESAMPLE_PAIR = ("pretrained.act_postprocess{n}.4.{p}", "neck.reassemble_stage.layers.{m}.resize.{p}")
FUSION_PARTS = ("out_conv", "resConfUnit1.conv1", "resConfUnit1.conv2", "resConfUnit2.conv1", "resConfUnit2.conv2")
FUSION_HF = {
    "out_conv": "projection",
    "resConfUnit1.conv1": "residual_layer1.convolution1",
    "resConfUnit1.conv2": "residual_layer1.convolution2",
    "resConfUnit2.conv1": "residual_layer2.convolution1",
    "resConfUnit2.conv2": "residual_layer2.convolution2",
}

Entry = tuple[str, tuple[str, ...]]
"""(official key, hf keys): one hf key = rename, three = qkv split, none = official-only placeholder."""


SWIN_BLOCK_PAIRS: tuple[tuple[str, str], ...] = (
    ("attn.logit_scale", "attention.self.logit_scale"),
    ("attn.q_bias", "attention.self.query.bias"),
    ("attn.v_bias", "attention.self.value.bias"),
    ("attn.cpb_mlp.0.weight", "attention.self.continuous_position_bias_mlp.0.weight"),
    ("attn.cpb_mlp.0.bias", "attention.self.continuous_position_bias_mlp.0.bias"),
    ("attn.cpb_mlp.2.weight", "attention.self.continuous_position_bias_mlp.2.weight"),
    ("attn.proj.weight", "attention.output.dense.weight"),
    ("attn.proj.bias", "attention.output.dense.bias"),
    ("norm1.weight", "layernorm_before.weight"),
    ("norm1.bias", "layernorm_before.bias"),
    ("mlp.fc1.weight", "intermediate.dense.weight"),
    ("mlp.fc1.bias", "intermediate.dense.bias"),
    ("mlp.fc2.weight", "output.dense.weight"),
    ("mlp.fc2.bias", "output.dense.bias"),
    ("norm2.weight", "layernorm_after.weight"),
    ("norm2.bias", "layernorm_after.bias"),
)
SWIN_QKV_HF = ("attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight")
SWIN_DOWNSAMPLE_PARTS = ("downsample.reduction.weight", "downsample.norm.weight", "downsample.norm.bias")


def key_table(cfg: HasKeyLayout) -> list[Entry]:
    """Every official key of the model `cfg` describes, with its transformers counterpart(s)."""
    lay = cfg.key_layout
    table = _swin_table(lay) if lay.kind == "swin2" else _backbone_table(lay)
    first_token_level = {"vit": 1, "beit": 1, "vit_hybrid": 3}.get(lay.kind, 5)  # Swin: no reassemble weights
    for n in range(first_token_level, 5):
        for official, hf in REASSEMBLE_PAIRS + ((RESAMPLE_PAIR,) if n in (1, 2, 4) else ()):
            table += [(official.format(n=n, p=p), (hf.format(m=n - 1, p=p),)) for p in ("weight", "bias")]
    for n in range(1, 5):
        table.append((f"scratch.layer{n}_rn.weight", (f"neck.convs.{n - 1}.weight",)))
        for part in FUSION_PARTS:
            hf = f"neck.fusion_stage.layers.{4 - n}.{FUSION_HF[part]}"
            table += [(f"scratch.refinenet{n}.{part}.{p}", (f"{hf}.{p}",)) for p in ("weight", "bias")]
    for k in (0, 2, 4):
        table += [(f"scratch.output_conv.{k}.{p}", (f"head.head.{k}.{p}",)) for p in ("weight", "bias")]
    return table


def _backbone_table(cfg: MidasKeyLayout) -> list[Entry]:
    beit = cfg.kind == "beit"
    root = "backbone." if beit else "dpt."
    emb, enc = root + "embeddings.", root + "encoder.layer."
    o = "pretrained.model."
    table: list[Entry] = [(o + "cls_token", (emb + "cls_token",))]
    if not beit:
        table.append((o + "pos_embed", (emb + "position_embeddings",)))
    if cfg.kind == "vit_hybrid":
        table += _resnet_table(cfg, emb)
        table += [(f"{o}patch_embed.proj.{p}", (f"{emb}projection.{p}",)) for p in ("weight", "bias")]
    else:
        table += [(f"{o}patch_embed.proj.{p}", (f"{emb}patch_embeddings.projection.{p}",)) for p in ("weight", "bias")]
    for i in range(cfg.depth):
        ob, hb = f"{o}blocks.{i}.", f"{enc}{i}."
        pairs = VIT_BLOCK_PAIRS + (BEIT_BLOCK_EXTRA if beit else ())
        table += [(ob + a, (hb + b,)) for a, b in pairs]
        for p in ("weight",) if beit else ("weight", "bias"):
            table.append((f"{ob}attn.qkv.{p}", tuple(hb + q.format(p=p) for q in QKV_HF)))
    if beit:
        table += [(f"{o}fc_norm.{p}", ()) for p in ("weight", "bias")]
    else:
        table += [(f"{o}norm.{p}", (f"dpt.layernorm.{p}",)) for p in ("weight", "bias")]
    table += [(f"{o}head.{p}", ()) for p in ("weight", "bias")]
    return table


def _swin_table(cfg: MidasKeyLayout) -> list[Entry]:
    o, h = "pretrained.model.", "backbone."
    table: list[Entry] = [
        (f"{o}patch_embed.{part}.{p}", (f"{h}embeddings.{hf}.{p}",))
        for part, hf in (("proj", "patch_embeddings.projection"), ("norm", "norm"))
        for p in ("weight", "bias")
    ]
    for s, depth in enumerate(cfg.stage_depths):
        for b in range(depth):
            ob, hb = f"{o}layers.{s}.blocks.{b}.", f"{h}encoder.layers.{s}.blocks.{b}."
            table += [(ob + a, (hb + c,)) for a, c in SWIN_BLOCK_PAIRS]
            table.append((ob + "attn.qkv.weight", tuple(hb + q for q in SWIN_QKV_HF)))
        if s < len(cfg.stage_depths) - 1:
            table += [(f"{o}layers.{s}.{part}", (f"{h}encoder.layers.{s}.{part}",)) for part in SWIN_DOWNSAMPLE_PARTS]
    table += [(f"{o}{name}.{p}", ()) for name in ("norm", "head") for p in ("weight", "bias")]
    return table


def _resnet_table(cfg: MidasKeyLayout, emb: str) -> list[Entry]:
    o, h = "pretrained.model.patch_embed.backbone.", f"{emb}backbone.bit."
    table: list[Entry] = [(o + "stem.conv.weight", (h + "embedder.convolution.weight",))]
    table += [(f"{o}stem.norm.{p}", (f"{h}embedder.norm.{p}",)) for p in ("weight", "bias")]
    for s, depth in enumerate(cfg.hybrid_layers):
        for b in range(depth):
            parts = (RESNET_DOWNSAMPLE_PARTS if b == 0 else ()) + RESNET_BLOCK_PARTS
            ob, hb = f"{o}stages.{s}.blocks.{b}.", f"{h}encoder.stages.{s}.layers.{b}."
            table += [(ob + part, (hb + part,)) for part in parts]
    return table


def _placeholder(key: str, cfg: MidasKeyLayout) -> torch.Tensor:
    """Neutral value for an official key no transformers file stores (never read by the network)."""
    dim = cfg.token_dim
    if key.endswith("head.weight"):
        return torch.zeros(cfg.num_classes, dim)
    if key.endswith("head.bias"):
        return torch.zeros(cfg.num_classes)
    return torch.ones(dim) if key.endswith("weight") else torch.zeros(dim)


_IGNORED_HF = re.compile(r"(relative_position_index|relative_coords_table|attn_mask)$")
"""Computed buffers: ignored in transformers files, dropped by `drop_computed_keys` in official ones."""


def hf_to_official(state: StateDict, cfg: HasKeyLayout) -> StateDict:
    """transformers-layout state dict -> official keys. Raises KeyMapError for a missing or unexpected key."""
    table = key_table(cfg)
    lay = cfg.key_layout
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for official, hf in table:
        if not hf:
            out[official] = _placeholder(official, lay)
            continue
        missing = [k for k in hf if k not in state]
        if missing:
            raise KeyMapError(f"MiDaS key map: {missing[0]!r} is missing from the transformers checkpoint")
        out[official] = state[hf[0]] if len(hf) == 1 else torch.cat([state[k] for k in hf], dim=0)
        used.update(hf)
    extra = [k for k in state if k not in used and not _IGNORED_HF.search(k)]
    if extra:
        raise KeyMapError(f"MiDaS key map: {extra[0]!r} has no official counterpart ({len(extra)} such keys)")
    return out


def official_to_hf(state: StateDict, cfg: HasKeyLayout) -> StateDict:
    """Official state dict -> transformers layout (unused classifier / fc_norm dropped)."""
    table = key_table(cfg)
    known = {official for official, _ in table}
    extra = [k for k in state if k not in known and not _IGNORED_HF.search(k)]
    if extra:
        raise KeyMapError(f"MiDaS key map: {extra[0]!r} is not an official key of this model")
    missing = [official for official, hf in table if hf and official not in state]
    if missing:
        raise KeyMapError(f"MiDaS key map: official key {missing[0]!r} is missing")
    out: dict[str, torch.Tensor] = {}
    for official, hf in table:
        if not hf:
            continue
        value = state[official]
        parts = (value,) if len(hf) == 1 else value.chunk(3, dim=0)
        out.update(zip(hf, parts, strict=True))
    return out
