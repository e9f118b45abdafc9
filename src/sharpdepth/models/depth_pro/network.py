"""Depth Pro (Bochkovskii et al. 2024; apple/ml-depth-pro @ 9efe5c1), re-implemented.

What the network computes (official names in brackets, so checkpoints load strictly):

1. A 3-level pyramid of the normalised 1536x1536 input: 1536, 768 and 384 pixels
   (bilinear, align_corners=False, no antialias).
2. Sliding windows of 384x384 (the ViT's native size): 5x5 windows at stride 288 on
   the 1536 level, 3x3 at stride 192 on the 768 level, and the 384 level itself; all
   35 go through the shared patch encoder [encoder.patch_encoder] in one batch.
3. The windows' token grids (24x24) are stitched back into maps by dropping 3 (5x5
   grid) or 6 (3x3 grid) tokens on each interior side: 96x96 and 48x48 maps. The
   raw outputs of two early blocks (hooks, e.g. 5 and 11 of ViT-L) are stitched the
   same way from the 1536-level windows: two "latent" 96x96 maps.
4. A second ViT [encoder.image_encoder] sees the whole 384 image; its map is fused
   with the patch encoder's 384-level map [upsample_lowres, fuse_lowres].
5. Projection + ConvTranspose upsampling [upsample_latent0/1, upsample0/1/2] gives five
   maps at 768, 384, 192, 96, 48 pixels that a DPT-like decoder [decoder.convs,
   decoder.fusions] fuses coarse to fine, each fusion doubling the resolution with a
   2x2 stride-2 deconvolution instead of interpolation.
6. A head [head] doubles once more to 1536 and outputs canonical inverse depth
   (inverse depth for a focal length equal to the image width).
7. A third ViT [fov.encoder] on the 384 image plus the (detached) coarsest decoder
   map predict the horizontal field of view in degrees [fov.downsample, fov.head].

Why the execution differs from the official code while computing the same function:
- Intermediate ViT features are returned by `VisionTransformer.forward_intermediates`,
  not captured with forward hooks.
- The 768- and 1536-pixel stages (last fusion, head, and the two upsampling chains
  feeding them) are purely local: 1x1/3x3 convolutions and 2x2 stride-2
  deconvolutions. `DepthPro.forward` runs them in horizontal bands with a halo wide
  enough that every kept row sees exactly the rows it would see in the full map, so
  the 600 MB-per-tensor full-resolution maps of ViT-L never exist at once. The full
  model's activations stay around 1.2 GB (fp32) instead of the official ~4.5 GB.
- Decoder maps are kept channels_last (as the official code implicitly does through
  its token reshape), which oneDNN convolves fastest on CPU, especially in bf16.
- `DepthPro.forward_with_intermediates` follows the official structure step by step
  (whole maps, official order) and returns named intermediates for diagnosis; tests
  check both paths against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..vit import VisionTransformer, ViTConfig


@dataclass(frozen=True)
class PyramidLevel:
    """How one pyramid level is cut into backbone-sized windows and stitched back."""

    size: int
    """Side of the (square) level image in pixels."""
    grid: int
    """Windows per side."""
    overlap: float
    """Official overlap ratio: window stride = int(window * (1 - overlap))."""
    merge_padding: int
    """Tokens dropped on each interior side of a window when stitching."""

    def stride(self, window: int) -> int:
        return int(window * (1 - self.overlap))


@dataclass(frozen=True)
class DepthProConfig:
    """Architecture of a Depth Pro network; the defaults are the official model."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    vit_patch_size: int = 16
    hook_block_ids: tuple[int, int] = (5, 11)
    """Patch-encoder blocks whose raw outputs feed the two high-resolution latent maps."""
    encoder_feature_dims: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    decoder_features: int = 256
    last_dims: tuple[int, int] = (32, 1)
    use_fov_head: bool = True
    img_size: int = 1536
    patch_size: int = 384
    """Window side in pixels = the ViTs' input size."""
    levels: tuple[PyramidLevel, PyramidLevel] = (
        PyramidLevel(1536, grid=5, overlap=0.25, merge_padding=3),
        PyramidLevel(768, grid=3, overlap=0.5, merge_padding=6),
    )
    band_rows: int = 96
    """Execution only (not architecture): rows of the 768 map per band in the full-resolution
    stages of `DepthPro.forward`; 0 runs them on whole maps. These stages set the forward's
    peak: whole maps need 3.3 GB (fp32), bands of 192 rows 0.9 GB, bands of 96 rows about
    0.5 GB, for 12.5% more work in them (the halos), about 2% of the whole forward."""
    patch_batch: int = 12
    """Execution only: windows per patch-encoder call (0: all 35 per image at once). The ViT's
    activations scale with it (MLP hidden state: 35 windows 331 MB fp32, 12 windows 113 MB),
    while its GEMMs stay large enough (12 x 577 rows) to run at full speed."""

    def __post_init__(self) -> None:
        tokens = self.tokens_per_side
        if self.band_rows < 0 or self.patch_batch < 0:
            raise ValueError("band_rows and patch_batch are counts (0: all at once)")
        if self.patch_size % self.vit_patch_size or self.img_size != 4 * self.patch_size:
            raise ValueError("Depth Pro needs img_size = 4 * patch_size, a multiple of the ViT patch size")
        if len(self.hook_block_ids) != 2 or not all(0 <= i < self.depth for i in self.hook_block_ids):
            raise ValueError(f"need two hook block ids below depth {self.depth}, got {self.hook_block_ids}")
        for level, size in zip(self.levels, (self.img_size, self.img_size // 2), strict=True):
            stride = level.stride(self.patch_size)
            merged = level.grid * tokens - 2 * (level.grid - 1) * level.merge_padding
            if (
                level.size != size
                or (level.grid - 1) * stride + self.patch_size != size
                or merged != size // self.vit_patch_size
            ):
                raise ValueError(f"pyramid level {level} does not tile a {size}px image")

    @property
    def tokens_per_side(self) -> int:
        return self.patch_size // self.vit_patch_size

    @property
    def vit(self) -> ViTConfig:
        """The DINOv2-style ViT shared (as an architecture) by the three encoders."""
        return ViTConfig(
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            patch_size=self.vit_patch_size,
            img_size=self.patch_size,
            mlp_ratio=self.mlp_ratio,
            ffn="mlp",
            layer_scale=True,
            qkv_bias=True,
            norm_eps=1e-6,
        )


DEPTH_PRO = DepthProConfig()
"""The released model: ViT-L/16 (DINOv2) encoders at 384, hooks 5 and 11."""

DEPTH_PRO_TINY = DepthProConfig(
    embed_dim=64,
    depth=4,
    num_heads=4,
    hook_block_ids=(1, 2),
    encoder_feature_dims=(16, 32, 64, 64),
    decoder_features=32,
)
"""Same code paths on small widths: the `depth_pro/tiny` parity fixture."""


# --------------------------------------------------------------------------- encoder


def _project_upsample(dim_in: int, dim_out: int, upsample_layers: int, dim_int: int | None = None) -> nn.Sequential:
    """1x1 projection then `upsample_layers` 2x2 stride-2 deconvolutions (no biases)."""
    dim_int = dim_out if dim_int is None else dim_int
    layers: list[nn.Module] = [nn.Conv2d(dim_in, dim_int, kernel_size=1, bias=False)]
    for i in range(upsample_layers):
        layers.append(nn.ConvTranspose2d(dim_int if i == 0 else dim_out, dim_out, 2, stride=2, bias=False))
    return nn.Sequential(*layers)


@dataclass
class EncoderMaps:
    """Backbone outputs stitched into (N, C, h, w) maps, before any upsampling."""

    latent0: torch.Tensor
    """First hook block, 1536 level (96x96 for the official size)."""
    latent1: torch.Tensor
    """Second hook block, 1536 level."""
    level0: torch.Tensor
    """Final normed tokens, 1536 level (96x96)."""
    level1: torch.Tensor
    """Final normed tokens, 768 level (48x48)."""
    level2: torch.Tensor
    """Final normed tokens, 384 level (24x24)."""
    image: torch.Tensor
    """Image encoder on the 384 image (24x24)."""
    image_input: torch.Tensor
    """The 384x384 pyramid level itself (input of the image and FOV encoders)."""
    patch_tokens: torch.Tensor | None = None
    """All 35N final token sequences; kept only when asked for (diagnosis)."""
    image_tokens: torch.Tensor | None = None


class DepthProEncoder(nn.Module):
    """Multi-resolution encoder: pyramid, sliding windows, shared patch ViT, image ViT."""

    def __init__(self, cfg: DepthProConfig) -> None:
        super().__init__()
        self.cfg = cfg
        vit = cfg.vit
        dims = cfg.encoder_feature_dims
        width = vit.embed_dim
        self.patch_batch = cfg.patch_batch
        self.patch_encoder = VisionTransformer(vit)
        self.image_encoder = VisionTransformer(vit)
        self.upsample_latent0 = _project_upsample(width, cfg.decoder_features, 3, dim_int=dims[0])
        self.upsample_latent1 = _project_upsample(width, dims[0], 2)
        self.upsample0 = _project_upsample(width, dims[1], 1)
        self.upsample1 = _project_upsample(width, dims[2], 1)
        self.upsample2 = _project_upsample(width, dims[3], 1)
        self.upsample_lowres = nn.ConvTranspose2d(width, dims[3], 2, stride=2, bias=True)
        self.fuse_lowres = nn.Conv2d(2 * dims[3], dims[3], kernel_size=1, bias=True)

    # ---- pyramid and windows
    def split(self, x: torch.Tensor, level: PyramidLevel) -> list[torch.Tensor]:
        """Windows of one level, row-major; each (N, 3, p, p) view. Window k of image b is
        item k * N + b once concatenated, as in the official code."""
        p = self.cfg.patch_size
        stride = level.stride(p)
        starts = [k * stride for k in range(level.grid)]
        return [x[..., j : j + p, i : i + p] for j in starts for i in starts]

    def merge(self, tokens: torch.Tensor, first: int, n: int, level: PyramidLevel) -> torch.Tensor:
        """Stitch the level's windows (items first .. first + grid^2 * n of `tokens`, cls
        token included) into one (N, C, S, S) channels_last map, trimming
        `merge_padding` tokens on every side that faces another window."""
        t = self.cfg.tokens_per_side
        g, pad = level.grid, level.merge_padding
        grid = tokens[first : first + g * g * n, 1:].unflatten(1, (t, t))  # (g*g*n, t, t, C) view
        spans = [(0 if k == 0 else pad, t if k == g - 1 else t - pad) for k in range(g)]
        offsets = [0]
        for lo, hi in spans:
            offsets.append(offsets[-1] + hi - lo)
        out = tokens.new_empty(n, offsets[-1], offsets[-1], tokens.shape[-1])
        for j, (r_lo, r_hi) in enumerate(spans):
            for i, (c_lo, c_hi) in enumerate(spans):
                k = j * g + i
                out[:, offsets[j] : offsets[j + 1], offsets[i] : offsets[i + 1]] = grid[
                    k * n : (k + 1) * n, r_lo:r_hi, c_lo:c_hi
                ]
        return out.permute(0, 3, 1, 2)

    def token_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, 1 + t*t, C) -> (N, C, t, t) channels_last copy (cls dropped); a copy, so the
        (possibly much larger) token tensor it came from can be freed."""
        t = self.cfg.tokens_per_side
        return tokens[:, 1:].contiguous().unflatten(1, (t, t)).permute(0, 3, 1, 2)

    def backbone(self, x: torch.Tensor, keep_tokens: bool = False) -> EncoderMaps:
        """Run the patch and image ViTs once and stitch their outputs into maps."""
        n = x.shape[0]
        lvl0, lvl1 = self.cfg.levels
        x1 = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        x2 = F.interpolate(x, scale_factor=0.25, mode="bilinear", align_corners=False)
        patches = torch.cat([*self.split(x, lvl0), *self.split(x1, lvl1), x2], dim=0)
        del x1
        first1 = lvl0.grid**2 * n
        (hook0, hook1), tokens = self.encode_patches(patches, hooked=first1)
        del patches
        latent0 = self.merge(hook0, 0, n, lvl0)
        del hook0
        latent1 = self.merge(hook1, 0, n, lvl0)
        del hook1
        level0 = self.merge(tokens, 0, n, lvl0)
        level1 = self.merge(tokens, first1, n, lvl1)
        level2 = self.token_map(tokens[first1 + lvl1.grid**2 * n :])
        patch_tokens = tokens if keep_tokens else None
        del tokens
        image_tokens = self.image_encoder(x2)
        image = self.token_map(image_tokens)
        return EncoderMaps(
            latent0, latent1, level0, level1, level2, image, x2, patch_tokens, image_tokens if keep_tokens else None
        )

    def encode_patches(self, patches: torch.Tensor, hooked: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The patch ViT over all windows, `patch_batch` at a time: (hook outputs of the first
        `hooked` windows — only the finest level uses them —, final tokens of every window)."""
        step = self.patch_batch if self.patch_batch > 0 else patches.shape[0]
        hooks: list[torch.Tensor] = []
        final: torch.Tensor | None = None
        for start in range(0, patches.shape[0], step):
            inter = self.patch_encoder.forward_intermediates(patches[start : start + step], self.cfg.hook_block_ids)
            if inter.final is None:  # the patch encoder always runs to its last block here
                raise RuntimeError("internal error: the patch encoder stopped early")
            if final is None:
                final = inter.final.new_empty((patches.shape[0], *inter.final.shape[1:]))
                hooks = [f.new_empty((hooked, *f.shape[1:])) for f in inter.features]
            final[start : start + step] = inter.final
            kept = max(0, min(step, hooked - start))
            for hook, feature in zip(hooks, inter.features, strict=True):
                hook[start : start + kept] = feature[:kept]
            del inter
        if final is None:
            raise ValueError("Depth Pro got an empty batch")
        return hooks, final

    def lowres(self, maps: EncoderMaps) -> torch.Tensor:
        """The coarsest encoding: patch-encoder 384 level fused with the image encoder (48x48)."""
        return self.fuse_lowres(torch.cat((self.upsample2(maps.level2), self.upsample_lowres(maps.image)), dim=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Official semantics: the five encodings, finest (768) first."""
        maps = self.backbone(x)
        return [
            self.upsample_latent0(maps.latent0),
            self.upsample_latent1(maps.latent1),
            self.upsample0(maps.level0),
            self.upsample1(maps.level1),
            self.lowres(maps),
        ]


# --------------------------------------------------------------------------- decoder


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))); `residual` keeps the official Sequential key names
    (residual.1 / residual.3). Temporaries are reused in place; the input is not touched."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.ReLU(False),
            nn.Conv2d(features, features, 3, padding=1),
            nn.ReLU(False),
            nn.Conv2d(features, features, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.residual[1](F.relu(x))
        h = self.residual[3](h.relu_())
        return h.add_(x)


class FeatureFusionBlock2d(nn.Module):
    """DPT fusion as Depth Pro does it: resnet1 on the skip, add, resnet2, then a 2x2
    stride-2 deconvolution (all but the finest level) and a 1x1 projection.

    Not `sharpdepth.models.dpt.FeatureFusionBlock`: that one interpolates and uses the
    DPT key names (resConfUnit1/2); this one must load Depth Pro's (resnet1/2, deconv)."""

    def __init__(self, features: int, deconv: bool) -> None:
        super().__init__()
        self.resnet1 = ResidualBlock(features)
        self.resnet2 = ResidualBlock(features)
        self.use_deconv = deconv
        if deconv:
            self.deconv = nn.ConvTranspose2d(features, features, 2, stride=2, bias=False)
        self.out_conv = nn.Conv2d(features, features, 1, bias=True)

    def fuse(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Everything before the upsampling: resnet2(x + resnet1(skip))."""
        if skip is not None:
            x = self.resnet1(skip).add_(x)  # == x + resnet1(skip), into the fresh tensor
        return self.resnet2(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample (deconv) and project (out_conv): pixel-local, so it can run per band."""
        if self.use_deconv:
            x = self.deconv(x)
        return self.out_conv(x)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.fuse(x, skip))


class MultiresConvDecoder(nn.Module):
    """Five-level fusion ladder, coarsest first. `convs.0` is an identity: the finest
    encoding already has `decoder_features` channels, so there is no key for it."""

    def __init__(self, dims_encoder: list[int], dim_decoder: int) -> None:
        super().__init__()
        self.dim_decoder = dim_decoder
        convs: list[nn.Module] = [
            nn.Identity()
            if dims_encoder[0] == dim_decoder
            else nn.Conv2d(dims_encoder[0], dim_decoder, kernel_size=1, bias=False)
        ]
        convs += [nn.Conv2d(d, dim_decoder, 3, padding=1, bias=False) for d in dims_encoder[1:]]
        self.convs = nn.ModuleList(convs)
        self.fusions = nn.ModuleList(FeatureFusionBlock2d(dim_decoder, deconv=i != 0) for i in range(len(convs)))

    def fusion(self, i: int) -> FeatureFusionBlock2d:
        """`fusions[i]` with its type (a ModuleList only knows it holds Modules)."""
        block = self.fusions[i]
        if not isinstance(block, FeatureFusionBlock2d):
            raise TypeError(f"decoder.fusions.{i} is a {type(block).__name__}")
        return block

    def forward(
        self, encodings: list[torch.Tensor], record: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Official semantics: (finest fused features, coarsest projected encoding)."""
        last = len(encodings) - 1
        lowres = self.convs[last](encodings[last])
        features = self.fusions[last](lowres)
        if record is not None:
            record[f"decoder.fusions.{last}"] = features
        for i in range(last - 1, -1, -1):
            features = self.fusions[i](features, self.convs[i](encodings[i]))
            if record is not None:
                record[f"decoder.fusions.{i}"] = features
        return features, lowres


# --------------------------------------------------------------------------- FOV


class FOVNetwork(nn.Module):
    """Field of view (degrees) from its own ViT on the 384 image plus the detached
    coarsest decoder map; three stride-2/valid convolutions reduce 24x24 to a scalar."""

    def __init__(self, cfg: DepthProConfig) -> None:
        super().__init__()
        f = cfg.decoder_features
        vit = cfg.vit
        self.encoder = nn.Sequential(VisionTransformer(vit), nn.Linear(vit.embed_dim, f // 2))
        self.downsample = nn.Sequential(nn.Conv2d(f, f // 2, 3, stride=2, padding=1), nn.ReLU(True))
        side = cfg.tokens_per_side
        for _ in range(2):
            side = (side - 1) // 2 + 1  # two more 3x3 stride-2 convolutions with padding 1
        self.head = nn.Sequential(
            nn.Conv2d(f // 2, f // 4, 3, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(f // 4, f // 8, 3, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(f // 8, 1, kernel_size=side),
        )

    def forward(
        self, image_384: torch.Tensor, lowres: torch.Tensor, record: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(N, 3, 384, 384) image and (N, F, 48, 48) decoder map -> (N,) degrees."""
        tokens = self.encoder(image_384)
        if record is not None:
            record["fov.encoder.out"] = tokens
        down = self.downsample(lowres.detach())
        x = tokens[:, 1:].permute(0, 2, 1).reshape_as(down) + down
        return self.head(x).flatten()


# --------------------------------------------------------------------------- network


class DepthPro(nn.Module):
    """Normalised (N, 3, 1536, 1536) image -> (canonical inverse depth (N, 1, 1536, 1536),
    horizontal FOV in degrees (N,) or None without a FOV head)."""

    HALO = 6
    """Rows of context (at 768) a band of the full-resolution stages needs on each side:
    resnet1 (two 3x3) 2 + resnet2 (two 3x3) 2 + head 3x3 at 768 1 + head 3x3 at 1536 1."""

    def __init__(self, cfg: DepthProConfig = DEPTH_PRO) -> None:
        super().__init__()
        self.cfg = cfg
        self.band_rows = cfg.band_rows
        self.encoder = DepthProEncoder(cfg)
        f = cfg.decoder_features
        self.decoder = MultiresConvDecoder([f, *cfg.encoder_feature_dims], f)
        self.head = nn.Sequential(
            nn.Conv2d(f, f // 2, 3, padding=1),
            nn.ConvTranspose2d(f // 2, f // 2, 2, stride=2, bias=True),
            nn.Conv2d(f // 2, cfg.last_dims[0], 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(cfg.last_dims[0], cfg.last_dims[1], 1),
            nn.ReLU(),
        )
        last = self.head[4]
        if isinstance(last, nn.Conv2d) and last.bias is not None:
            with torch.no_grad():
                last.bias.zero_()  # as the official constructor
        if cfg.use_fov_head:
            self.fov = FOVNetwork(cfg)

    @property
    def img_size(self) -> int:
        return self.cfg.img_size

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"Depth Pro takes (N, 3, {self.img_size}, {self.img_size}), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._check_input(x)
        enc, dec = self.encoder, self.decoder
        maps = enc.backbone(x)
        lowres = dec.convs[4](enc.lowres(maps))
        fov = self.fov(maps.image_input, lowres) if self.cfg.use_fov_head else None
        path = dec.fusions[4](lowres)
        del lowres
        path = dec.fusions[3](path, dec.convs[3](enc.upsample1(maps.level1)))
        path = dec.fusions[2](path, dec.convs[2](enc.upsample0(maps.level0)))
        path = dec.fusion(1).fuse(path, dec.convs[1](enc.upsample_latent1(maps.latent1)))
        return self._full_resolution(path, maps.latent0), fov

    # ---- banded full-resolution stages
    def _full_resolution(self, path: torch.Tensor, latent0: torch.Tensor) -> torch.Tensor:
        """From fusion 1 before its deconvolution (384) and the first latent (96) to the
        output (1536): fusion 1's deconv/out_conv, upsample_latent0, fusion 0 and the head,
        one band of rows at a time. Output rows [r0, r1) of the 768 grid only depend on
        rows [r0 - HALO, r1 + HALO) of its inputs, so each band is computed with that
        margin (zero padding only where the margin reaches the true border) and trimmed."""
        rows, cols = 2 * path.shape[-2], 2 * path.shape[-1]
        band = self.band_rows if self.band_rows > 0 else rows
        up = self.cfg.last_dims[1]
        out = path.new_empty(path.shape[0], up, 2 * rows, 2 * cols)
        fusion1, fusion0 = self.decoder.fusion(1), self.decoder.fusion(0)
        for r0 in range(0, rows, band):
            r1 = min(r0 + band, rows)
            a, b = max(r0 - self.HALO, 0), min(r1 + self.HALO, rows)
            coarse = fusion1.out_conv(_upsampled_rows(fusion1.deconv, path, a, b))
            enc0 = self.decoder.convs[0](_upsampled_rows(self.encoder.upsample_latent0, latent0, a, b))
            y = self.head(fusion0(coarse, enc0))
            del coarse, enc0
            out[..., 2 * r0 : 2 * r1, :] = y[..., 2 * (r0 - a) : 2 * (r1 - a), :]
        return out

    # ---- official structure, for diagnosis
    def forward_with_intermediates(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """The official computation order on whole maps, returning named intermediates
        (the names of the fixtures' expected.json stats). Memory-hungry: tests only."""
        self._check_input(x)
        enc = self.encoder
        rec: dict[str, torch.Tensor] = {}
        maps = enc.backbone(x, keep_tokens=True)
        if maps.patch_tokens is not None and maps.image_tokens is not None:  # kept: keep_tokens=True
            rec["encoder.patch_encoder.out"] = maps.patch_tokens
            rec["encoder.image_encoder.out"] = maps.image_tokens
        encodings = [
            enc.upsample_latent0(maps.latent0),
            enc.upsample_latent1(maps.latent1),
            enc.upsample0(maps.level0),
            enc.upsample1(maps.level1),
            enc.lowres(maps),
        ]
        rec.update({f"encoder.out{i}": e for i, e in enumerate(encodings)})
        features, lowres = self.decoder(encodings, record=rec)
        rec["decoder.features"], rec["decoder.lowres_features"] = features, lowres
        inverse_depth = self.head(features)
        fov = self.fov(maps.image_input, lowres, record=rec) if self.cfg.use_fov_head else None
        return inverse_depth, fov, rec


def _upsampled_rows(block: nn.Module, x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Rows [a, b) of block(x) for a pixel-local block (1x1 convs and 2x2 stride-2
    deconvolutions) that upsamples by 2^k: run it on the few input rows that cover
    them and trim, instead of upsampling the whole map."""
    factor = 2 ** sum(isinstance(m, nn.ConvTranspose2d) for m in block.modules())
    lo, hi = a // factor, -(-b // factor)
    y = block(x[..., lo:hi, :])
    return y[..., a - lo * factor : b - lo * factor, :]
