"""One Vision Transformer for every network in the zoo.

DINOv2 (Depth Anything, Depth Pro's encoders) and the original ViT (MiDaS/DPT)
are the same stack of pre-norm blocks; they differ in patch size, LayerScale,
the feed-forward type (GELU MLP or SwiGLU) and how the stored position grid is
stretched to another input size. Those differences are config fields here, so
every family reuses this file and keeps the official state-dict key names
(`patch_embed.proj`, `blocks.N.attn.qkv`, `blocks.N.ls1.gamma`, ...).

Intermediate features are *returned* by `forward_intermediates`, not collected with
forward hooks, so callers see exactly which block outputs they consume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .features import Intermediates, check_indices
from .traceable import is_exporting, resize_bicubic_scale, resize_bilinear_size


@dataclass(frozen=True)
class ViTConfig:
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int = 16
    img_size: int = 384
    """Input size the stored position grid was trained for (grid = img_size // patch_size)."""
    mlp_ratio: float = 4.0
    ffn: Literal["mlp", "swiglu"] = "mlp"
    layer_scale: bool = True
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    num_register_tokens: int = 0
    mask_token: bool = False
    """DINOv2 hub checkpoints store an (unused at inference) mask token; keep the key for strict loading."""
    pos_interp: Literal["dinov2", "bilinear"] = "dinov2"
    """How the position grid follows the input size: DINOv2's bicubic with a +0.1 offset
    scale factor, or the bilinear resize used by MiDaS/DPT."""
    in_chans: int = 3

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def ffn_hidden(self) -> int:
        hidden = int(self.embed_dim * self.mlp_ratio)
        if self.ffn == "swiglu":
            # DINOv2's SwiGLUFFNFused keeps the parameter count of a 4x MLP, rounded to 8.
            hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        return hidden


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens; returns tokens and the (rows, cols) grid."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        rows, cols = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (rows, cols)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        # Fused attention: same maths as softmax(q k^T / sqrt(d)) v, without the n x n matrix in memory.
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as every reference model uses
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    """DINOv2's SwiGLU feed-forward (ViT-g): w3(silu(a) * b) with [a, b] = w12(x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.ls1 = LayerScale(dim) if cfg.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        ffn = SwiGLU if cfg.ffn == "swiglu" else Mlp
        self.mlp = ffn(dim, cfg.ffn_hidden)
        self.ls2 = LayerScale(dim) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Pre-norm ViT with a cls token (and optional register tokens).

    `patch_embed` may be any module with the same call signature (x -> tokens,
    (rows, cols)), passed to the constructor: MiDaS' hybrid model uses a ResNet stem.
    """

    def __init__(self, cfg: ViTConfig, patch_embed: nn.Module | None = None, num_classes: int = 0) -> None:
        """`patch_embed`: a replacement stem (MiDaS' ResNet); `num_classes` > 0 adds timm's
        unused ImageNet classifier `head`, which MiDaS checkpoints keep."""
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid_size**2 + 1, dim))
        if cfg.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, dim))
        if cfg.mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed: nn.Module = (
            patch_embed if patch_embed is not None else PatchEmbed(cfg.patch_size, cfg.in_chans, dim)
        )
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        if num_classes:
            self.head = nn.Linear(dim, num_classes)

    @property
    def num_prefix_tokens(self) -> int:
        """cls + registers: the tokens before the patch tokens."""
        return 1 + self.cfg.num_register_tokens

    def position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """The stored position grid stretched to rows x cols patches, cls entry first."""
        stored = self.cfg.grid_size
        pos = self.pos_embed
        if is_exporting():
            return self._traceable_position_embedding(rows, cols)
        if rows == stored and cols == stored:
            return pos
        cls_pos, grid = pos[:, :1], pos[:, 1:]
        dim = grid.shape[-1]
        grid = grid.float().reshape(1, stored, stored, dim).permute(0, 3, 1, 2)
        if self.cfg.pos_interp == "dinov2":
            # DINOv2 passes a scale factor (with a 0.1 offset against rounding), and torch
            # maps sample positions with that factor, not with out/in size: keep it so.
            scale = ((rows + 0.1) / stored, (cols + 0.1) / stored)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
        else:
            grid = F.interpolate(grid, size=(rows, cols), mode="bilinear", align_corners=False)
        if grid.shape[-2:] != (rows, cols):
            raise RuntimeError(f"position grid resized to {tuple(grid.shape[-2:])}, wanted {(rows, cols)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim).to(pos.dtype)
        return torch.cat([cls_pos, grid], dim=1)

    def _traceable_position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """`position_embedding` with shape-dependent tensor ops only, for exported graphs.

        A trace records `rows`/`cols` as functions of the input shape; Python
        arithmetic and `if` on them would be frozen at the export size (see
        `sharpdepth.models.traceable`). The stored-size shortcut becomes a `where`.
        """
        stored = self.cfg.grid_size
        pos = self.pos_embed
        cls_pos, grid = pos[:, :1], pos[:, 1:]
        dim = grid.shape[-1]
        grid = grid.float().reshape(1, stored, stored, dim).permute(0, 3, 1, 2)
        rows_t, cols_t = torch.as_tensor(rows), torch.as_tensor(cols)
        if self.cfg.pos_interp == "dinov2":
            scale_r = (rows_t.to(torch.float64) + 0.1) / stored
            scale_c = (cols_t.to(torch.float64) + 0.1) / stored
            resized = resize_bicubic_scale(grid, rows_t, cols_t, scale_r, scale_c)
            same = (rows_t == stored) & (cols_t == stored)
            identity = resize_bilinear_size(grid, rows_t, cols_t)  # exact copy when sizes match
            resized = torch.where(same, identity, resized)
        else:
            resized = resize_bilinear_size(grid, rows_t, cols_t)
        resized = resized.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos.dtype)
        return torch.cat([cls_pos, resized], dim=1)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Image -> token sequence [cls, (registers), patches] with position embeddings."""
        tokens, (rows, cols) = self.patch_embed(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.position_embedding(rows, cols)
        if self.cfg.num_register_tokens:
            regs = self.register_tokens.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)
        return tokens, (rows, cols)

    def forward_tokens(
        self, tokens: torch.Tensor, grid: tuple[int, int], indices: Sequence[int] = (), stop_early: bool = False
    ) -> Intermediates:
        """Run the blocks on an embedded sequence (see `embed`); the backbone contract's core.

        `stop_early` stops after the last requested block (no `final`), as MiDaS does.
        """
        wanted = check_indices(list(indices), len(self.blocks), "block")
        last = max(wanted) if stop_early and wanted else len(self.blocks) - 1
        tapped: list[torch.Tensor] = [tokens] * len(wanted)
        for i, block in enumerate(self.blocks[: last + 1]):
            tokens = block(tokens)
            for pos in (p for p, idx in enumerate(wanted) if idx == i):
                tapped[pos] = tokens
        final = self.norm(tokens) if last == len(self.blocks) - 1 else None
        return Intermediates(tapped, [grid] * len(wanted), "tokens", self.num_prefix_tokens, final)

    def forward_intermediates(
        self, x: torch.Tensor, indices: Sequence[int] = (), stop_early: bool = False
    ) -> Intermediates:
        """Raw outputs (prefix tokens included, un-normalised) of the blocks in `indices`, in that
        order, and the final normed sequence (unless `stop_early`)."""
        tokens, grid = self.embed(x)
        return self.forward_tokens(tokens, grid, indices, stop_early)

    def forward_features(
        self, x: torch.Tensor, taps: Sequence[int] = ()
    ) -> tuple[list[torch.Tensor], torch.Tensor, tuple[int, int]]:
        """Former interface, kept for callers: (raw outputs of `taps`, final normed sequence, grid)."""
        tokens, grid = self.embed(x)
        inter = self.forward_tokens(tokens, grid, taps)
        if inter.final is None:  # forward_tokens without stop_early always runs every block
            raise RuntimeError("internal error: the ViT stopped early")
        return inter.features, inter.final, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        final = self.forward_intermediates(x).final
        if final is None:  # forward_intermediates without stop_early always runs every block
            raise RuntimeError("internal error: the ViT stopped early")
        return final


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
    """(B, prefix+rows*cols, C) tokens -> (B, C, rows, cols) feature map (prefix dropped)."""
    rows, cols = grid
    patches = tokens[:, num_prefix:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], -1, rows, cols)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
