"""Depth Anything: transformers `DepthAnythingForDepthEstimation` layout <-> official layout.

The `-hf` repositories on the hub (e.g. `depth-anything/Depth-Anything-V2-Small-hf`,
`LiheYoung/depth-anything-small-hf`) store `model.safetensors` in the layout that
transformers 4.x wrote: DINOv2 under `backbone.*` with attention split into
query/key/value, the DPT head under `neck.*` and `head.*`. The table below is
explicit (every official key has one named counterpart) rather than a set of
regular expressions, so that a key nobody expected is an error, not a silent skip.

Three non-renames:

* the fused `attn.qkv` (3*dim rows: q, k, v) <-> `attention.attention.{query,key,value}`;
* the fusion ladder is numbered in opposite directions: official `refinenet{n}`
  (n=4 is the coarsest, run first) <-> `neck.fusion_stage.layers.{4-n}`;
* `resize_layers.2` is an Identity in both layouts and has no keys.

transformers 5.x renamed some DINOv2 modules (`attention.q_proj`, `mlp.gate_proj` +
`mlp.up_proj`, ...) and converts the hub files on load. State dicts taken from a 5.x
model in memory use those names; `hf_to_official` accepts them too.

Neither layout records whether a checkpoint is V1 or V2 (the tapped blocks live in
the model config, not in the weights), so conversion never guesses a version.
"""

from __future__ import annotations

import re

import torch

from ...family import KeyMapError, StateDict

OFFICIAL_BLOCK = "pretrained.blocks.{i}."
HF_BLOCK = "backbone.encoder.layer.{i}."

# (official suffix, hf suffix) inside one transformer block.
BLOCK_PAIRS: tuple[tuple[str, str], ...] = (
    ("norm1.weight", "norm1.weight"),
    ("norm1.bias", "norm1.bias"),
    ("attn.proj.weight", "attention.output.dense.weight"),
    ("attn.proj.bias", "attention.output.dense.bias"),
    ("ls1.gamma", "layer_scale1.lambda1"),
    ("norm2.weight", "norm2.weight"),
    ("norm2.bias", "norm2.bias"),
    ("mlp.fc1.weight", "mlp.fc1.weight"),  # GELU MLP (vits, vitb, vitl)
    ("mlp.fc1.bias", "mlp.fc1.bias"),
    ("mlp.fc2.weight", "mlp.fc2.weight"),
    ("mlp.fc2.bias", "mlp.fc2.bias"),
    ("mlp.w12.weight", "mlp.weights_in.weight"),  # SwiGLU (vitg)
    ("mlp.w12.bias", "mlp.weights_in.bias"),
    ("mlp.w3.weight", "mlp.weights_out.weight"),
    ("mlp.w3.bias", "mlp.weights_out.bias"),
    ("ls2.gamma", "layer_scale2.lambda1"),
)

# The fused projection, split into three equal row blocks in this order.
QKV_OFFICIAL = "attn.qkv.{p}"
QKV_HF = ("attention.attention.query.{p}", "attention.attention.key.{p}", "attention.attention.value.{p}")

STEM_PAIRS: tuple[tuple[str, str], ...] = (
    ("pretrained.cls_token", "backbone.embeddings.cls_token"),
    ("pretrained.mask_token", "backbone.embeddings.mask_token"),
    ("pretrained.pos_embed", "backbone.embeddings.position_embeddings"),
    ("pretrained.patch_embed.proj.weight", "backbone.embeddings.patch_embeddings.projection.weight"),
    ("pretrained.patch_embed.proj.bias", "backbone.embeddings.patch_embeddings.projection.bias"),
    ("pretrained.norm.weight", "backbone.layernorm.weight"),
    ("pretrained.norm.bias", "backbone.layernorm.bias"),
)


def _head_pairs() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for i in range(4):
        for p in ("weight", "bias"):
            pairs.append((f"depth_head.projects.{i}.{p}", f"neck.reassemble_stage.layers.{i}.projection.{p}"))
            if i != 2:  # resize_layers.2 is an Identity
                pairs.append((f"depth_head.resize_layers.{i}.{p}", f"neck.reassemble_stage.layers.{i}.resize.{p}"))
        pairs.append((f"depth_head.scratch.layer{i + 1}_rn.weight", f"neck.convs.{i}.weight"))
    for n in range(1, 5):
        ours, theirs = f"depth_head.scratch.refinenet{n}.", f"neck.fusion_stage.layers.{4 - n}."
        for p in ("weight", "bias"):
            pairs.append((f"{ours}out_conv.{p}", f"{theirs}projection.{p}"))
            for unit in (1, 2):
                for conv in (1, 2):
                    pairs.append(
                        (
                            f"{ours}resConfUnit{unit}.conv{conv}.{p}",
                            f"{theirs}residual_layer{unit}.convolution{conv}.{p}",
                        )
                    )
    for p in ("weight", "bias"):
        pairs.append((f"depth_head.scratch.output_conv1.{p}", f"head.conv1.{p}"))
        pairs.append((f"depth_head.scratch.output_conv2.0.{p}", f"head.conv2.{p}"))
        pairs.append((f"depth_head.scratch.output_conv2.2.{p}", f"head.conv3.{p}"))
    return pairs


HEAD_PAIRS: tuple[tuple[str, str], ...] = tuple(_head_pairs())

# transformers 5.x module names (in-memory models) -> the hub-file names above.
_V5_RENAMES: tuple[tuple[str, str], ...] = (
    (".attention.q_proj.", ".attention.attention.query."),
    (".attention.k_proj.", ".attention.attention.key."),
    (".attention.v_proj.", ".attention.attention.value."),
    (".attention.o_proj.", ".attention.output.dense."),
    (".mlp.down_proj.", ".mlp.weights_out."),
)


def key_pairs(depth: int) -> list[tuple[str, str]]:
    """Every one-to-one (official, hf) key pair of a model with `depth` encoder blocks."""
    pairs = list(STEM_PAIRS)
    for i in range(depth):
        ours, theirs = OFFICIAL_BLOCK.format(i=i), HF_BLOCK.format(i=i)
        pairs.extend((ours + a, theirs + b) for a, b in BLOCK_PAIRS)
    pairs.extend(HEAD_PAIRS)
    return pairs


def _depth(keys: list[str], pattern: str) -> int:
    found = [int(m.group(1)) for k in keys if (m := re.match(pattern, k))]
    return max(found) + 1 if found else 0


def _fail(direction: str, keys: list[str]) -> None:
    if keys:
        raise KeyMapError(
            f"Depth Anything {direction}: {len(keys)} key(s) with no counterpart (e.g. {', '.join(sorted(keys)[:3])})"
        )


def official_to_hf(state: StateDict, cfg: object = None) -> StateDict:
    """Official (`pretrained.*`, `depth_head.*`) -> transformers hub-file layout (`cfg` unused: one table)."""
    depth = _depth(list(state), r"pretrained\.blocks\.(\d+)\.")
    table = dict(key_pairs(depth))
    out: dict[str, torch.Tensor] = {}
    left = []
    for key, value in state.items():
        if key in table:
            out[table[key]] = value
            continue
        match = re.fullmatch(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
        if match is None:
            left.append(key)
            continue
        block, p = match.groups()
        for name, part in zip(QKV_HF, value.chunk(3, dim=0), strict=True):
            out[HF_BLOCK.format(i=block) + name.format(p=p)] = part
    _fail("official -> hf", left)
    return out


def _from_transformers_v5(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename transformers-5 module keys to the hub-file names (gate+up -> weights_in)."""
    out: dict[str, torch.Tensor] = {}
    halves: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        new = key
        for old, hub in _V5_RENAMES:
            new = new.replace(old, hub)
        match = re.fullmatch(r"(.*\.mlp\.)(gate_proj|up_proj)\.(weight|bias)", new)
        if match is None:
            out[new] = value
        else:
            halves.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
    for (prefix, p), parts in halves.items():
        if set(parts) != {"gate_proj", "up_proj"}:
            raise KeyMapError(f"Depth Anything hf -> official: {prefix} has only {sorted(parts)} ({p})")
        # SwiGLU: weights_in = [gate; up] along the output rows (official w12 -> x1, x2).
        out[f"{prefix}weights_in.{p}"] = torch.cat([parts["gate_proj"], parts["up_proj"]], dim=0)
    return out


def hf_to_official(state: StateDict, cfg: object = None) -> StateDict:
    """transformers layout (hub file, or a 5.x in-memory model) -> official keys (`cfg` unused: one table)."""
    state = _from_transformers_v5(state)
    depth = _depth(list(state), r"backbone\.encoder\.layer\.(\d+)\.")
    table = {hf: ours for ours, hf in key_pairs(depth)}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    left = []
    for key, value in state.items():
        if key in table:
            out[table[key]] = value
            continue
        match = re.fullmatch(
            r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)", key
        )
        if match is None:
            left.append(key)
            continue
        block, part, p = match.groups()
        qkv.setdefault((block, p), {})[part] = value
    _fail("hf -> official", left)
    for (block, p), parts in qkv.items():
        missing = [n for n in ("query", "key", "value") if n not in parts]
        if missing:
            raise KeyMapError(f"Depth Anything hf -> official: block {block} lacks attention {missing} ({p})")
        fused = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
        out[OFFICIAL_BLOCK.format(i=block) + QKV_OFFICIAL.format(p=p)] = fused
    return out
