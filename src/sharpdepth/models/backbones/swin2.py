"""Swin Transformer V2 as MiDaS 3.1 uses it (`dpt_swin2_tiny_256`), with timm 0.6's key names.

timm 0.6 layout: `patch_embed.{proj,norm}`, `layers.S.blocks.B.*`, and the PatchMerging
`layers.S.downsample` at the *end* of stage S (newer timm moved it to the start of S+1).
Each block is post-norm (x + norm1(attn(x)), x + norm2(mlp(x))) with cosine window
attention: logits = cos(q, k) * exp(min(logit_scale, log 100)) + 16 * sigmoid(cpb_mlp(table))
[relative index] (+ the shifted-window mask). A block whose stage grid is no larger than
the window uses one window of the grid's size and no shift (timm's `_calc_window_shift`).

Computed buffers. `relative_coords_table` / `relative_position_index` are non-persistent
in timm too. `attn_mask` (shifted blocks only) is *persistent* in timm 0.6, so official
checkpoints contain `layers.0.blocks.1.attn_mask` etc.; the values are fully determined by
the architecture (the standard Swin region masks, -100 across regions, 0 within). We keep
it non-persistent and compute it; loading accepts an `attn_mask` key only if it equals the
computed mask (`SwinBlock._load_from_state_dict`), and `computed_masks(cfg)` lists these keys
so loaders that compare key sets first can verify and drop them.

MiDaS hooks the output of one block per stage (`hooks[i]` = block index in stage i),
before that stage's downsample; `forward_intermediates` returns those (`as_map`: (B, C, H, W)).
The stage grids are fixed at construction (timm 0.6 asserts the input size too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..features import Intermediates, check_indices
from ..vit import Mlp


@dataclass(frozen=True)
class Swin2Config:
    img_size: int = 256
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 16
    mlp_ratio: float = 4.0
    pretrained_window_sizes: tuple[int, ...] = (0, 0, 0, 0)
    """0: the position-bias coordinates are normalised by the window itself (timm default)."""
    num_classes: int = 1000

    def stage_grid(self, stage: int) -> int:
        return self.img_size // self.patch_size // 2**stage

    def stage_dim(self, stage: int) -> int:
        return self.embed_dim * 2**stage


SWIN2_TINY_256 = Swin2Config()


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws*ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(grid: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) mask: 0 between tokens of one region of the rolled map, -100 across."""
    regions = torch.zeros(1, grid, grid, 1)
    bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, rows in enumerate(bounds):
        for j, cols in enumerate(bounds):
            regions[:, rows, cols, :] = 3 * i + j
    labels = window_partition(regions, ws).squeeze(-1)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


def _coords_table(ws: int, pretrained_ws: int) -> torch.Tensor:
    """(1, 2ws-1, 2ws-1, 2) log-spaced relative coordinates fed to the continuous bias MLP."""
    rel = torch.arange(-(ws - 1), ws, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(rel, rel, indexing="ij")).permute(1, 2, 0).unsqueeze(0)
    table = table / ((pretrained_ws if pretrained_ws > 0 else ws) - 1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def _relative_index(ws: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return (rel[..., 0] + ws - 1) * (2 * ws - 1) + (rel[..., 1] + ws - 1)


class WindowAttention(nn.Module):
    relative_coords_table: torch.Tensor
    relative_position_index: torch.Tensor

    def __init__(self, dim: int, ws: int, num_heads: int, pretrained_ws: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("relative_coords_table", _coords_table(ws, pretrained_ws), persistent=False)
        self.register_buffer("relative_position_index", _relative_index(ws), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv_bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, qkv_bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        # Cosine attention, softmax(cos(q, k) * scale + bias + mask) v, as one fused SDPA call: the
        # per-head scale goes into q (scale=1 in SDPA), bias and shift mask into one additive mask.
        # Windows are a batch dimension of their own so that the (nW, heads, n, n) mask broadcasts.
        q = F.normalize(q, dim=-1) * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        k = F.normalize(k, dim=-1)
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = 16 * torch.sigmoid(table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1))
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)
        else:
            windows = (-1, mask.shape[0], self.num_heads, n, q.shape[-1])
            full = (bias.unsqueeze(0) + mask.unsqueeze(1)).to(q.dtype)
            out = F.scaled_dot_product_attention(
                q.reshape(windows), k.reshape(windows), v.reshape(windows), attn_mask=full, scale=1.0
            ).reshape(b, self.num_heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def window_and_shift(cfg: Swin2Config, stage: int, shifted: bool) -> tuple[int, int]:
    """timm's `_calc_window_shift`: a grid no larger than the window is one unshifted window."""
    grid = cfg.stage_grid(stage)
    if grid <= cfg.window_size:
        return grid, 0
    return cfg.window_size, cfg.window_size // 2 if shifted else 0


def computed_masks(cfg: Swin2Config) -> dict[str, torch.Tensor]:
    """The `attn_mask` buffers official checkpoints store, keyed like timm ("layers.S.blocks.B.attn_mask")."""
    masks = {}
    for s, depth in enumerate(cfg.depths):
        for b in range(depth):
            window, shift = window_and_shift(cfg, s, shifted=b % 2 == 1)
            if shift:
                masks[f"layers.{s}.blocks.{b}.attn_mask"] = shifted_window_mask(cfg.stage_grid(s), window, shift)
    return masks


class SwinBlock(nn.Module):
    def __init__(self, cfg: Swin2Config, stage: int, shifted: bool) -> None:
        super().__init__()
        dim, self.grid = cfg.stage_dim(stage), cfg.stage_grid(stage)
        self.window, self.shift = window_and_shift(cfg, stage, shifted)
        if self.shift:
            mask = shifted_window_mask(self.grid, self.window, self.shift)
            self.register_buffer("attn_mask", mask, persistent=False)
        else:
            self.attn_mask = None
        self.attn = WindowAttention(dim, self.window, cfg.num_heads[stage], cfg.pretrained_window_sizes[stage])
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.grid, self.grid, c)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        out = self.attn(window_partition(x, self.window), self.attn_mask)
        out = window_reverse(out, self.window, self.grid, self.grid)
        if self.shift:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        return out.reshape(b, -1, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.norm1(self._attend(x))
        return x + self.norm2(self.mlp(x))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # Official checkpoints store the mask; accept it only if it is exactly the computed one.
        given = state_dict.pop(prefix + "attn_mask", None)
        if given is not None and (self.attn_mask is None or not _same_mask(given, self.attn_mask)):
            error_msgs = args[-1] if args else kwargs["error_msgs"]
            if isinstance(error_msgs, list):
                error_msgs.append(f"{prefix}attn_mask: stored shifted-window mask differs from the computed one")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _same_mask(given: torch.Tensor, computed: torch.Tensor) -> bool:
    return tuple(given.shape) == tuple(computed.shape) and torch.equal(given.float().cpu(), computed.float().cpu())


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: cat(x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]) -> linear -> norm."""

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.grid // 2, 2, self.grid // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, -1, 4 * c)
        return self.norm(self.reduction(x))


class SwinStage(nn.Module):
    def __init__(self, cfg: Swin2Config, stage: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(cfg, stage, shifted=i % 2 == 1) for i in range(cfg.depths[stage]))
        last = stage == len(cfg.depths) - 1
        self.downsample = None if last else PatchMerging(cfg.stage_dim(stage), cfg.stage_grid(stage))

    def forward(self, x: torch.Tensor, tap: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (output of block `tap`, stage output after the downsample)."""
        tapped = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == tap:
                tapped = x
        return tapped, (self.downsample(x) if self.downsample is not None else x)


class SwinPatchEmbed(nn.Module):
    def __init__(self, cfg: Swin2Config) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, stride=cfg.patch_size)
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinTransformerV2(nn.Module):
    def __init__(self, cfg: Swin2Config = SWIN2_TINY_256) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = SwinPatchEmbed(cfg)
        self.layers = nn.ModuleList(SwinStage(cfg, s) for s in range(len(cfg.depths)))
        final = cfg.stage_dim(len(cfg.depths) - 1)
        self.norm = nn.LayerNorm(final)
        self.head = nn.Linear(final, cfg.num_classes)

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> Intermediates:
        """(B, 3, H, W) at the configured size -> per stage s, the (B, h*w, C) tokens of block
        `indices[s]` (before that stage's downsample); `as_map` gives (B, C, h, w)."""
        size = self.cfg.img_size
        if tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"Swin-V2 backbone built for {size}x{size} inputs, got {tuple(x.shape[-2:])}")
        if len(indices) != len(self.layers):
            raise ValueError(f"Swin-V2 takes one block index per stage ({len(self.layers)}), got {tuple(indices)}")
        x = self.patch_embed(x)
        tokens, grids = [], []
        for s, (stage, tap) in enumerate(zip(self.layers, indices, strict=True)):
            (tap,) = check_indices([tap], self.cfg.depths[s], "block")
            tapped, x = stage(x, tap)
            grid = self.cfg.stage_grid(s)
            tokens.append(tapped)
            grids.append((grid, grid))
        return Intermediates(tokens, grids, "tokens", num_prefix_tokens=0)
