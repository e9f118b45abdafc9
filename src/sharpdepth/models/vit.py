"""One Vision Transformer for every network in the zoo.

DINOv2 (Depth Anything, Depth Pro's encoders) and the original ViT (MiDaS/DPT)
are the same stack of pre-norm blocks; they differ in patch size, LayerScale,
the feed-forward type (GELU MLP or SwiGLU) and how the stored position grid is
stretched to another input size. Those differences are config fields here, so
every family reuses this file and keeps the official state-dict key names
(`patch_embed.proj`, `blocks.N.attn.qkv`, `blocks.N.ls1.gamma`, ...).

Intermediate features are *returned* by `forward_intermediates`, not collected with
forward hooks, so callers see exactly which block outputs they consume.

Depth Anything 3's any-view encoder is the same DINOv2 with four switches, all config
fields here (off by default, so every other family is unchanged): QK-norm and 2D RoPE
from a given block on, and from `alt_start` on a learned camera token in the cls slot and
attention that alternates between one view (even blocks) and all views together (odd
blocks). `forward_views` runs that multi-view stack on (B, S, 3, H, W).
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
class VitSize:
    """The shape of one ViT size: width, blocks, heads and feed-forward type."""

    dim: int
    depth: int
    heads: int
    ffn: Literal["mlp", "swiglu"] = "mlp"

    def dinov2(self) -> ViTConfig:
        """DINOv2/14 of this size as the Depth Anything models build it: LayerScale, block norms
        eps 1e-6, a 37x37 stored position grid (518) stretched by DINOv2's interpolation."""
        return ViTConfig(
            embed_dim=self.dim, depth=self.depth, num_heads=self.heads, patch_size=14, img_size=518, ffn=self.ffn,
            layer_scale=True, norm_eps=1e-6, pos_interp="dinov2",
        )  # fmt: skip


DINOV2_SIZES: dict[str, VitSize] = {
    "vits": VitSize(384, 12, 6),
    "vitb": VitSize(768, 12, 12),
    "vitl": VitSize(1024, 24, 16),
    "vitg": VitSize(1536, 40, 24, "swiglu"),
}
"""The released DINOv2 encoders by their official names (every Depth Anything family, Video Depth Anything)."""


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
    final_norm_eps: float | None = None
    """eps of the final `norm` when it differs from the blocks' (the any-view encoder: the torch default 1e-5)."""
    qk_norm_start: int = -1
    """Blocks from this index on LayerNorm q and k per head (-1: never)."""
    qk_norm_eps: float = 1e-5
    rope_start: int = -1
    """Blocks from this index on rotate q and k by 2D RoPE of the patch positions (-1: never)."""
    rope_freq: float = 100.0
    alt_start: int = -1
    """From this block on: camera token in the cls slot, odd blocks attend across views (-1: never)."""

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


class RotaryEmbedding2D(nn.Module):
    """2D rotary position embedding (RoPE-2D as in VGGT-style any-view encoders): the first half of each head's
    channels rotates with the token's row, the second half with its column.

    Within each half, channel pairs (i, i + d/2) rotate by position * base^(-2i/d)."""

    def __init__(self, base: float = 100.0) -> None:
        super().__init__()
        self.base = base

    def _tables(self, dim: int, count: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, dim, 2, device=like.device).float() / dim
        inv_freq = 1.0 / (self.base**exponents)
        angles = torch.arange(count, device=like.device, dtype=inv_freq.dtype)[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1).to(like.dtype)
        return angles.cos(), angles.sin()

    @staticmethod
    def _rotate_1d(x: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos[pos][:, None] + rotated * sin[pos][:, None]

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x: (B, heads, N, d); pos: (B, N, 2) integer (row, col) positions."""
        rows, cols = x.chunk(2, dim=-1)
        cos, sin = self._tables(rows.shape[-1], int(pos.max()) + 1, x)
        return torch.cat(
            (self._rotate_1d(rows, pos[..., 0], cos, sin), self._rotate_1d(cols, pos[..., 1], cos, sin)), dim=-1
        )


class Attention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool,
        qk_norm_eps: float | None = None,
        rope: RotaryEmbedding2D | None = None,
    ) -> None:
        """`qk_norm_eps`: LayerNorm q and k per head with this eps (None: no QK-norm);
        `rope`: rotate q and k by the positions given to `forward`."""
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if qk_norm_eps is not None:
            self.q_norm = nn.LayerNorm(dim // num_heads, eps=qk_norm_eps)
            self.k_norm = nn.LayerNorm(dim // num_heads, eps=qk_norm_eps)
        self.qk_norm = qk_norm_eps is not None
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None and pos is not None:
            q, k = self.rope(q, pos), self.rope(k, pos)
        # Fused attention: same maths as softmax(q k^T / sqrt(d)) v, without the n x n matrix in memory.
        x = F.scaled_dot_product_attention(q, k, v)
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
    def __init__(self, cfg: ViTConfig, index: int = 0, rope: RotaryEmbedding2D | None = None) -> None:
        """`index`: the block's place in the stack (QK-norm and RoPE start at a given block)."""
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        qk_eps = cfg.qk_norm_eps if 0 <= cfg.qk_norm_start <= index else None
        block_rope = rope if 0 <= cfg.rope_start <= index else None
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias, qk_eps, block_rope)
        self.ls1 = LayerScale(dim) if cfg.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        ffn = SwiGLU if cfg.ffn == "swiglu" else Mlp
        self.mlp = ffn(dim, cfg.ffn_hidden)
        self.ls2 = LayerScale(dim) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), pos))
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
        if cfg.alt_start >= 0:  # [reference view, other views]
            self.camera_token = nn.Parameter(torch.zeros(1, 2, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid_size**2 + 1, dim))
        if cfg.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, dim))
        if cfg.mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed: nn.Module = (
            patch_embed if patch_embed is not None else PatchEmbed(cfg.patch_size, cfg.in_chans, dim)
        )
        self.rope = RotaryEmbedding2D(cfg.rope_freq) if cfg.rope_start >= 0 else None
        self.blocks = nn.ModuleList(Block(cfg, i, self.rope) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps if cfg.final_norm_eps is None else cfg.final_norm_eps)
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

    # ------------------------------------------------------------ multi-view (any-view encoders)
    def forward_views(
        self,
        x: torch.Tensor,
        taps: Sequence[int],
        cam_token: torch.Tensor | None = None,
        concat_local: bool = False,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views (B, S, 3, H, W) seen together -> per tap (patch tokens (B, S, h*w, C'), camera token (B, S, C')).

        Tokens are normed by the final `norm` and the prefix is dropped; the camera token is
        the pre-norm cls slot. `concat_local` returns [last single-view output, output] (C' = 2C),
        only the second half normed. Before `alt_start`, and always without it, every view is
        encoded on its own. From `alt_start` on, the cls slot holds the camera token (the
        learned [reference, other] pair, or `cam_token` (B, S, C) from known cameras) and odd
        blocks attend across all views. With 3 or more views and no cameras, the most
        "central" view (`select_reference_view`) is moved first just before `alt_start` and
        the outputs are put back in input order.
        """
        b, s = x.shape[:2]
        tokens, (rows, cols) = self.embed(x.flatten(0, 1))
        tokens = tokens.reshape(b, s, *tokens.shape[1:])
        local_pos, global_pos = self._rope_positions(b * s, rows, cols, x.device)
        alt = self.cfg.alt_start
        order: torch.Tensor | None = None
        local = tokens
        wanted = check_indices(list(taps), len(self.blocks), "block")
        outputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for i, block in enumerate(self.blocks):
            use_rope = 0 <= self.cfg.rope_start <= i
            if alt >= 0 and i == alt - 1 and s >= REFERENCE_VIEW_MIN and cam_token is None:
                order = reference_first_order(select_reference_view(tokens[:, :, 0]), s)
                tokens, local = tokens[:, order], local[:, order]
            if alt >= 0 and i == alt:
                tokens = tokens.clone()
                tokens[:, :, 0] = self._camera_tokens(b, s) if cam_token is None else cam_token
            if alt >= 0 and i >= alt and i % 2 == 1:
                pos = global_pos if use_rope else None
                flat = block(tokens.reshape(b, -1, tokens.shape[-1]), None if pos is None else pos.reshape(b, -1, 2))
                tokens = flat.reshape(tokens.shape)
            else:
                pos = local_pos if use_rope else None
                tokens = block(tokens.flatten(0, 1), pos).reshape(tokens.shape)
                local = tokens
            if i in wanted:
                back = None if order is None else torch.argsort(order)
                outputs[i] = self._tap(local if concat_local else None, tokens, back)
        return [(outputs[i][1], outputs[i][0]) for i in wanted]

    def _tap(
        self, local: torch.Tensor | None, tokens: torch.Tensor, back: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One tap: (camera token (B, S, C'), patch tokens (B, S, h*w, C') after the final norm).

        [`local`, `tokens`] (only `tokens` normed) when `local` is given; `back` puts the views
        back in input order. Built from the patch tokens alone, without an un-normed copy of
        the whole tap: a many-view forward holds four taps until the head has run, so each one
        kept is one contiguous tensor and nothing else (the camera token is copied out)."""
        if back is not None:
            tokens = tokens[:, back]
            local = None if local is None else local[:, back]
        prefix = self.num_prefix_tokens
        normed = self.norm(tokens[:, :, prefix:])
        if local is None:
            return tokens[:, :, 0].clone(), normed
        return torch.cat([local[:, :, 0], tokens[:, :, 0]], dim=-1), torch.cat([local[:, :, prefix:], normed], dim=-1)

    def _camera_tokens(self, b: int, s: int) -> torch.Tensor:
        ref = self.camera_token[:, :1].expand(b, 1, -1)
        others = self.camera_token[:, 1:].expand(b, s - 1, -1)
        return torch.cat([ref, others], dim=1)

    def _rope_positions(self, n: int, rows: int, cols: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(single-view, all-views) RoPE positions (n, prefix + rows*cols, 2): prefix tokens at 0;
        patches at their (row + 1, col + 1) for single-view blocks and all at (1, 1) across views."""
        grid = torch.cartesian_prod(torch.arange(rows, device=device), torch.arange(cols, device=device))
        prefix = torch.zeros(self.num_prefix_tokens, 2, dtype=grid.dtype, device=device)
        local = torch.cat([prefix, grid + 1], dim=0)
        flat = torch.cat([prefix, torch.ones_like(grid)], dim=0)
        return local.expand(n, -1, -1), flat.expand(n, -1, -1)


REFERENCE_VIEW_MIN = 3
"""The any-view encoder picks a reference view only from this many views on (THRESH_FOR_REF_SELECTION)."""


def select_reference_view(cls_tokens: torch.Tensor) -> torch.Tensor:
    """The official "saddle_balanced" choice: per batch, the view whose mean cosine similarity to the
    others, cls-token norm and cls-token variance are each closest to the middle of their range.

    cls_tokens: (B, S, C) -> (B,) view indices."""
    s = cls_tokens.shape[1]
    unit = cls_tokens / cls_tokens.norm(dim=-1, keepdim=True)
    sim = unit @ unit.transpose(1, 2) - torch.eye(s, device=unit.device)[None]
    scores = (sim.sum(dim=-1) / (s - 1), cls_tokens.norm(dim=-1), unit.var(dim=-1))

    def middle_distance(metric: torch.Tensor) -> torch.Tensor:
        low = metric.min(dim=1, keepdim=True).values
        high = metric.max(dim=1, keepdim=True).values
        return ((metric - low) / (high - low + 1e-8) - 0.5).abs()

    return sum((middle_distance(m) for m in scores), torch.zeros_like(scores[0])).argmin(dim=1)


def reference_first_order(ref: torch.Tensor, s: int) -> torch.Tensor:
    """View order with the reference first and the others in input order (batch of one scene:
    the first entry of `ref` decides; the official code runs one scene per forward)."""
    first = int(ref[0])
    return torch.tensor([first] + [v for v in range(s) if v != first], device=ref.device)


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
    """(B, prefix+rows*cols, C) tokens -> (B, C, rows, cols) feature map (prefix dropped)."""
    rows, cols = grid
    patches = tokens[:, num_prefix:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], -1, rows, cols)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
