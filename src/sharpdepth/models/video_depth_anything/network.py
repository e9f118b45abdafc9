"""Video Depth Anything (Chen et al. 2025): Depth Anything V2 plus a temporal DPT head.

The per-frame part is Depth Anything V2 unchanged: the shared DINOv2 encoder
(`pretrained.*`, same taps, final LayerNorm on every tapped block, cls token
dropped) and the shared DPT reassemble/fusion blocks. What makes it a video model
is four *motion modules* in the head (`head.motion_modules.0-3`, AnimateDiff
style): at each spatial position they run self-attention along time, with a
sinusoidal temporal position table added to the attention input. They sit on
layer_3 and layer_4 (before the 3x3 `layerN_rn` projections) and on the outputs
of refinenet4 and refinenet3; the finer levels are purely per frame.

Official key names are kept (note the head prefix is `head.`, not Depth Anything's
`depth_head.`). The position tables `...pos_encoder.pe` are persistent buffers in
the official code, so official checkpoints carry them; here they are computed at
construction (non-persistent) and a stored table is accepted only if it equals the
computed one (`PositionalEncoding._load_from_state_dict`, `drop_computed_keys`).

Two ways to run the network, matching the two official inference modes:

* `forward(x)`: (B, T, 3, h, w) -> (B, T, h, w), attention over the T frames of a window
  (offline mode: T = 32);
* `forward_frames(x, past)`: the streaming step. Each temporal attention block also
  returns its *state* for the new frames (its LayerNorm'd input before the position
  table, (B*h*w, T, C)); given the states of earlier frames as `past`, the new frames
  attend over [past, new] with positions 0..P+T-1, and only the new frames are queried.

Metric and relative checkpoints share this exact network (the final ReLU included);
they differ in the weights and in the offline pipeline (metric skips scale/shift
alignment, see `video.py` in this package).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..depth_anything.network import PATCH, DepthAnythingConfig, DPTHead
from ..processing import official_resize_hw
from ..vit import VisionTransformer, tokens_to_map

WINDOW = 32
"""Frames per temporal window (official num_frames / INFER_LEN): also the length of the position table."""

MICRO_BATCH = 4
"""The official head runs its per-frame high-resolution tail in chunks of 4 frames (memory only)."""


@dataclass(frozen=True)
class VideoDepthAnythingConfig:
    """One Video Depth Anything checkpoint: the Depth Anything V2 layout plus the temporal head."""

    base: DepthAnythingConfig
    """Encoder, taps, DPT widths: identical to Depth Anything V2 of the same size (relative head)."""
    metric: bool = False
    """Metric checkpoints (metres): same network, no scale/shift alignment between windows."""
    num_frames: int = WINDOW
    temporal_heads: int = 8
    group_norm_groups: int = 32
    input_size: int = 518
    """Shorter side of the network input (official default); `input_size=` overrides it."""

    def __post_init__(self) -> None:
        if self.base.is_metric:
            raise ValueError("the base config must be the relative (ReLU) Depth Anything head")
        for width in self.motion_widths:
            if width % self.temporal_heads or width % self.group_norm_groups:
                raise ValueError(f"motion module width {width} must divide by heads and GroupNorm groups")

    @property
    def encoder(self) -> str:
        return self.base.encoder

    @property
    def motion_widths(self) -> tuple[int, int, int, int]:
        """Channels of the four motion modules: layer_3, layer_4, path_4, path_3."""
        oc, feats = self.base.out_channels, self.base.features
        return (oc[2], oc[3], feats, feats)


# ----------------------------------------------------------------- temporal blocks


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """(1, length, dim) table: sin at even channels, cos at odd ones, wavelengths 2pi..10000*2pi.

    Computed in float32 with the same operations as the official constructor
    (exp of a float32 ramp, then float32 products), so the values are the ones an
    official checkpoint stores.
    """
    inv_freq = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    angles = torch.arange(length).float()[:, None] * inv_freq[None, :]
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2] = torch.sin(angles)
    table[0, :, 1::2] = torch.cos(angles)
    return table


class PositionalEncoding(nn.Module):
    """Adds the temporal position table; the table is computed, never learned."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(max_len, dim), persistent=False)
        self.pe: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.pe.shape[1]:
            raise ValueError(f"{length} frames in one temporal window; the table has {self.pe.shape[1]}")
        return x + self.pe[:, :length].to(x.dtype)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # Official checkpoints store the table; accept it only if it is the computed one.
        given = state_dict.pop(prefix + "pe", None)
        if given is not None and not _same_table(given, self.pe):
            error_msgs = args[-1] if args else kwargs["error_msgs"]
            assert isinstance(error_msgs, list)
            error_msgs.append(f"{prefix}pe: stored temporal position table differs from the computed one")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _same_table(given: torch.Tensor, computed: torch.Tensor) -> bool:
    """Equal up to float32 rounding of sin/cos (another torch build may differ in the last bit)."""
    if tuple(given.shape) != tuple(computed.shape):
        return False
    return bool(torch.allclose(given.float().cpu(), computed.float().cpu(), rtol=0.0, atol=1e-5))


class TemporalAttention(nn.Module):
    """Multi-head self-attention along time, independently at every spatial position."""

    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(
        self, x: torch.Tensor, frames: int, past: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B*T, n, C) normed tokens of T frames -> (update (B*T, n, C), state (B*n, T, C)).

        `past`: states of P earlier frames (B*n, P, C). Keys and values cover the
        P + T positions, queries only the T new ones; the position table is added to
        all of them (positions 0..P+T-1), i.e. to q, k and v alike.
        """
        bt, n, c = x.shape
        b = bt // frames
        state = x.reshape(b, frames, n, c).transpose(1, 2).reshape(b * n, frames, c)
        seq = state if past is None else torch.cat([past.to(state.dtype), state], dim=1)
        seq = self.pos_encoder(seq)
        query = self.to_q(seq[:, seq.shape[1] - frames :])
        key, value = self.to_k(seq), self.to_v(seq)
        out = F.scaled_dot_product_attention(self._split(query), self._split(key), self._split(value))
        out = out.transpose(1, 2).reshape(b * n, frames, c)
        out = self.to_out[1](self.to_out[0](out))
        return out.reshape(b, n, frames, c).transpose(1, 2).reshape(bt, n, c), state

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> (N, heads, L, C/heads)."""
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)


class GEGLU(nn.Module):
    """Gated GELU: value * gelu(gate), value = first half of one projection, gate = second half."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU (4x) -> dropout(0) -> linear; `net.{0,2}` as in the official keys."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalBlock(nn.Module):
    """Two pre-norm temporal attentions and a pre-norm GEGLU feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, max_len: int, attentions: int = 2) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(TemporalAttention(dim, heads, max_len) for _ in range(attentions))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attentions))
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)
        self.num_states = attentions
        """One cached state per temporal attention."""

    def forward(
        self, x: torch.Tensor, frames: int, past: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states = []
        for i, (attention, norm) in enumerate(zip(self.attention_blocks, self.norms, strict=True)):
            update, state = attention(norm(x), frames, past[i] if past is not None else None)
            x = x + update
            states.append(state)
        return x + self.ff(self.ff_norm(x)), states


class TemporalTransformer(nn.Module):
    """GroupNorm -> tokens -> linear -> temporal blocks -> linear -> maps, plus the input (residual)."""

    def __init__(self, channels: int, heads: int, max_len: int, groups: int, blocks: int = 1) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.blocks = [TemporalBlock(channels, heads, max_len) for _ in range(blocks)]
        self.transformer_blocks = nn.ModuleList(self.blocks)
        self.proj_out = nn.Linear(channels, channels)
        self.num_states = sum(b.num_states for b in self.blocks)
        """Temporal attention blocks in this module: one cached state each."""

    def forward(
        self, x: torch.Tensor, frames: int, past: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B*T, C, h, w) -> same shape and the attention states (B*h*w, T, C) of the T frames."""
        bt, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(bt, h * w, c))
        states: list[torch.Tensor] = []
        for block in self.blocks:
            mine = past[len(states) : len(states) + block.num_states] if past is not None else None
            tokens, block_states = block(tokens, frames, mine)
            states.extend(block_states)
        out = self.proj_out(tokens).reshape(bt, h, w, c).permute(0, 3, 1, 2)
        return out + x, states


class TemporalModule(nn.Module):
    """Official wrapper name (`motion_modules.N.temporal_transformer.*`)."""

    def __init__(self, channels: int, heads: int, max_len: int, groups: int) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, max_len, groups)
        self.num_states = self.temporal_transformer.num_states

    def forward(
        self, x: torch.Tensor, frames: int, past: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.temporal_transformer(x, frames, past)


# ----------------------------------------------------------------- head and network


class TemporalDPTHead(DPTHead):
    """Depth Anything's DPT head (same modules and keys) with four motion modules interleaved."""

    def __init__(self, cfg: VideoDepthAnythingConfig) -> None:
        super().__init__(cfg.base)
        self.temporal = [
            TemporalModule(width, cfg.temporal_heads, cfg.num_frames, cfg.group_norm_groups)
            for width in cfg.motion_widths
        ]
        self.motion_modules = nn.ModuleList(self.temporal)
        self.num_states = sum(m.num_states for m in self.temporal)

    def _scratch(self, name: str) -> nn.Module:
        layer = getattr(self.scratch, name)
        assert isinstance(layer, nn.Module)
        return layer

    def forward_temporal(
        self,
        maps: list[torch.Tensor],
        out_hw: tuple[int, int],
        frames: int,
        past: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Four (B*T, C, rows, cols) token maps -> ((B*T, 1, *out_hw) pre-resize map, states)."""
        layer_1, layer_2, layer_3, layer_4 = (
            resize(proj(m)) for m, proj, resize in zip(maps, self.projects, self.resize_layers, strict=True)
        )
        states: list[torch.Tensor] = []

        def temporal(index: int, x: torch.Tensor) -> torch.Tensor:
            module = self.temporal[index]
            mine = past[len(states) : len(states) + module.num_states] if past is not None else None
            out, new = module(x, frames, mine)
            states.extend(new)
            return out

        layer_3 = temporal(0, layer_3)
        layer_4 = temporal(1, layer_4)
        s = self._scratch
        rn1, rn2, rn3, rn4 = (s(f"layer{i}_rn")(x) for i, x in enumerate((layer_1, layer_2, layer_3, layer_4), 1))
        path_4 = temporal(2, s("refinenet4")(rn4, size=rn3.shape[-2:]))
        path_3 = temporal(3, s("refinenet3")(path_4, rn3, size=rn2.shape[-2:]))
        # From here on everything is per frame and at high resolution: chunks bound the memory.
        chunks = []
        for start in range(0, path_3.shape[0], MICRO_BATCH):
            part = slice(start, start + MICRO_BATCH)
            path_2 = s("refinenet2")(path_3[part], rn2[part], size=rn1.shape[-2:])
            path_1 = s("refinenet1")(path_2, rn1[part])
            out = F.interpolate(s("output_conv1")(path_1), size=out_hw, mode="bilinear", align_corners=True)
            chunks.append(s("output_conv2")(out))
        return torch.cat(chunks, dim=0), states


class VideoDepthAnything(nn.Module):
    """`pretrained` (DINOv2, shared ViT) + `head` (temporal DPT), official key names."""

    def __init__(self, cfg: VideoDepthAnythingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pretrained = VisionTransformer(cfg.base.vit)
        self.head = TemporalDPTHead(cfg)

    @property
    def num_states(self) -> int:
        """Cached tensors per frame in streaming mode (one per temporal attention block: 8)."""
        return self.head.num_states

    def forward_frames(
        self, x: torch.Tensor, past: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, T, 3, h, w) -> ((B, T, h, w) non-negative map, attention states of these T frames).

        `past`: `num_states` tensors (B*rows*cols_level, P, C_level) from earlier frames
        (concatenated along dim 1), or None for a window on its own.
        """
        if x.ndim != 5:
            raise ValueError(f"expected (B, T, 3, h, w) frames, got shape {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        if past is not None and len(past) != self.num_states:
            raise ValueError(f"expected {self.num_states} cached states, got {len(past)}")
        taps, _, grid = self.pretrained.forward_features(x.flatten(0, 1), self.cfg.base.taps)
        prefix = self.pretrained.num_prefix_tokens
        maps = [tokens_to_map(self.pretrained.norm(tap), grid, prefix) for tap in taps]
        rows, cols = grid
        depth, states = self.head.forward_temporal(maps, (rows * PATCH, cols * PATCH), t, past)
        if depth.shape[-2:] != (h, w):  # identity for multiples of 14, kept for other sizes
            depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=True)
        return F.relu(depth).squeeze(1).unflatten(0, (b, t)), states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, h, w) ImageNet-normalised frames -> (B, T, h, w) disparity (or metres)."""
        return self.forward_frames(x)[0]


def computed_buffers(cfg: VideoDepthAnythingConfig) -> dict[str, torch.Tensor]:
    """Keys official checkpoints carry but this network computes: the 8 temporal position tables."""
    keys: dict[str, torch.Tensor] = {}
    for m, width in enumerate(cfg.motion_widths):
        for a in range(2):
            key = (
                f"head.motion_modules.{m}.temporal_transformer.transformer_blocks.0.attention_blocks.{a}.pos_encoder.pe"
            )
            keys[key] = sinusoidal_table(cfg.num_frames, width)
    return keys


def drop_computed_keys(cfg: VideoDepthAnythingConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` without the position tables; ValueError if a stored table is not the computed one.

    For loaders that compare key sets before `load_state_dict`; plain
    `load_state_dict(official, strict=True)` verifies and accepts the tables by itself.
    """
    computed = computed_buffers(cfg)
    for key in computed.keys() & state.keys():
        if not _same_table(state[key], computed[key]):
            raise ValueError(f"{key}: stored temporal position table differs from the computed one")
    return {k: v for k, v in state.items() if k not in computed}


# ----------------------------------------------------------------- processing


def effective_input_size(height: int, width: int, size: int) -> int:
    """The official wide-frame rule: frames wider (or taller) than 1.78:1 get a smaller input size."""
    ratio = max(height, width) / min(height, width)
    if ratio > 1.78:
        size = int(size * 1.777 / ratio)
        size = round(size / PATCH) * PATCH  # Python round: half to even, as the official code
    return size


def vda_network_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Network input (h, w) for a frame: wide-frame rule, then Depth Anything's lower-bound resize."""
    side = effective_input_size(height, width, size)
    return official_resize_hw(height, width, side, side, "lower_bound", PATCH)


def resize_to_frame(raw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, h, w) network maps -> (N, height, width) float32, bilinear align_corners=True (official)."""
    return F.interpolate(raw.float()[:, None], size=(height, width), mode="bilinear", align_corners=True)[:, 0]
