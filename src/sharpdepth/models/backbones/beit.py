"""BEiT as MiDaS 3.1 runs it (`dpt_beit_large_512`), with timm 0.6's `Beit` key names.

MiDaS replaces timm's BEiT forward so the network runs at any input size: for an
H x W input the attention "window" is the patch grid (H/16, W/16), every block
bilinearly resizes the square part of its `relative_position_bias_table` to
(2*rows-1, 2*cols-1) and indexes it with a relative-position index regenerated
for that grid (timm's `gen_relative_position_index`). This module is that forward
written out: no absolute position embedding, qkv bias = (q_bias, 0, v_bias),
LayerScale as `gamma_1` / `gamma_2`, final `norm` absent (timm uses `fc_norm`
for its classifier, which MiDaS never calls; `fc_norm` / `head` are kept only so
official checkpoints load strictly).

`blocks.N.attn.relative_position_index` (int64 [1025, 1025] for BEiT-L/512) is in
every official checkpoint but MiDaS never reads it (it regenerates the index for
the actual grid). We do not store 24 x 8 MB of dead buffers: loading *accepts and
discards* the key (see `BeitAttention._load_from_state_dict`), and
`COMPUTED_KEYS` names it so loaders that compare key sets first can drop it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..features import Intermediates, check_indices
from ..vit import Mlp, PatchEmbed

COMPUTED_KEYS = ("attn.relative_position_index",)
"""Per-block keys of official checkpoints that this implementation computes instead of storing."""


@dataclass(frozen=True)
class BeitConfig:
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 16
    img_size: int = 512
    """Pre-training size: the stored bias table covers a (img_size / patch_size)^2 window."""
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    num_classes: int = 1000
    """Width of the unused ImageNet classifier `head` (kept for strict loading)."""

    @property
    def window(self) -> int:
        return self.img_size // self.patch_size


BEIT_LARGE_512 = BeitConfig()


def relative_position_index(rows: int, cols: int) -> torch.Tensor:
    """timm's `gen_relative_position_index((rows, cols))`: (n+1, n+1) indices into the bias table.

    Token pairs map to (dy + rows-1) * (2*cols-1) + (dx + cols-1); the three extra table rows
    at the end are cls->token, token->cls and cls->cls.
    """
    n_rel = (2 * rows - 1) * (2 * cols - 1)
    coords = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    index = (rel[..., 0] + rows - 1) * (2 * cols - 1) + (rel[..., 1] + cols - 1)
    out = torch.zeros(rows * cols + 1, rows * cols + 1, dtype=torch.long)
    out[1:, 1:] = index
    out[0, :] = n_rel
    out[:, 0] = n_rel + 1
    out[0, 0] = n_rel + 2
    return out


class BeitAttention(nn.Module):
    def __init__(self, cfg: BeitConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.window = cfg.window
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * self.window - 1) ** 2 + 3, cfg.num_heads))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self._index_cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _index(self, rows: int, cols: int, device: torch.device) -> torch.Tensor:
        key = (rows, cols, str(device))
        if key not in self._index_cache:
            self._index_cache[key] = relative_position_index(rows, cols).to(device)
        return self._index_cache[key]

    def relative_position_bias(self, rows: int, cols: int) -> torch.Tensor:
        """(1, heads, n+1, n+1) additive bias for a rows x cols patch grid (MiDaS `_get_rel_pos_bias`)."""
        side = 2 * self.window - 1
        table: torch.Tensor = self.relative_position_bias_table
        grid = table[: side * side].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(2 * rows - 1, 2 * cols - 1), mode="bilinear", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape((2 * rows - 1) * (2 * cols - 1), -1)
        table = torch.cat([grid, table[side * side :]])
        n = rows * cols + 1
        bias = table[self._index(rows, cols, table.device).view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        qkv_bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, qkv_bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias(*grid).to(qkv.dtype)
        # softmax(q k^T / sqrt(d) + bias) v, with the default 1/sqrt(d) scale timm's BEiT uses.
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # Official checkpoints carry the 512-px index; MiDaS regenerates it per input size.
        state_dict.pop(prefix + "relative_position_index", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class BeitBlock(nn.Module):
    def __init__(self, cfg: BeitConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.gamma_1 = nn.Parameter(torch.ones(dim))
        self.gamma_2 = nn.Parameter(torch.ones(dim))
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = BeitAttention(cfg)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + self.gamma_1 * self.attn(self.norm1(x), grid)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class Beit(nn.Module):
    """BEiT encoder; `forward_intermediates` returns the raw outputs (cls token included) of tapped blocks."""

    def __init__(self, cfg: BeitConfig = BEIT_LARGE_512) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, dim)
        self.blocks = nn.ModuleList(BeitBlock(cfg) for _ in range(cfg.depth))
        self.fc_norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.head = nn.Linear(dim, cfg.num_classes)

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> Intermediates:
        """Raw outputs (cls token first) of the blocks in `indices`; stops after the last one (MiDaS)."""
        wanted = check_indices(list(indices), len(self.blocks), "block")
        patches, grid = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], dim=1)
        tapped: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks[: max(wanted) + 1]):
            tokens = block(tokens, grid)
            if i in wanted:
                tapped[i] = tokens
        return Intermediates([tapped[i] for i in wanted], [grid] * len(wanted), "tokens", num_prefix_tokens=1)
