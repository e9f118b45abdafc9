"""The Depth Anything 3 network, official state-dict keys (`backbone.pretrained.*`, `head.*`,
`cam_dec.*`, `cam_enc.*`).

* Mono / Metric (`head` = DPT): plain DINOv2 (the shared `VisionTransformer`) feeding one
  DPT head with a depth (exp) and a sky (ReLU) output; after the head, sky pixels are set to
  the 99th percentile of the non-sky depth (`fill_sky`).
* Any-view (`head` = DualDPT): DINOv2 with QK-norm, RoPE and alternating single-view /
  all-view attention (`VisionTransformer.forward_views`), a DPT head on [single-view, all-view]
  tokens giving depth (exp) and confidence (exp + 1), and a camera decoder on the camera token
  of the last tap. Known cameras enter through the camera encoder (`cam_enc`).

The DualDPT head also holds an auxiliary ray head (`*_aux`); DA3 discards its output
whenever the camera decoder exists, so its weights are loaded (strict keys) but never run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..dpt import FeatureFusionBlock, Scratch, reassemble_resizes
from ..traceable import is_exporting
from ..vit import Block, Mlp, VisionTransformer, ViTConfig
from .camera import cameras_to_pose_encoding, pose_encoding_to_cameras, rigid_inverse

PATCH = 14
SKY_FILL_THRESHOLD = 0.3
"""Pixels with sky >= this are filled with the far depth inside the network (DA3 `compute_sky_mask`)."""
SKY_FILL_SAMPLE = 100_000
"""Above this many non-sky pixels DA3 takes the percentile on this many random samples."""
SKY_FILL_SEED = 0
HEAD_VIEWS_AT_ONCE = 4
"""Views the head fuses together (DA3: 8). Its maps at twice the patch grid (64 channels of
216 x 288 per view for DA3-Small at 504) set a many-view forward's peak beside the encoder's;
the full-resolution output convolutions then run one view at a time (`DA3Head.full_resolution`).
Each view's maps depend on that view's tokens alone: another chunk size changes them by float
rounding only (oneDNN blocks a convolution by batch size), a few 1e-6 relative."""


@dataclass(frozen=True)
class DA3Config:
    """One Depth Anything 3 architecture (the official yaml's numbers)."""

    vit: ViTConfig
    taps: tuple[int, int, int, int]
    features: int
    out_channels: tuple[int, int, int, int]
    any_view: bool
    """DualDPT + camera decoder/encoder and the multi-view backbone; else DPT with a sky head."""
    cam_enc_heads: int = 16
    cam_enc_depth: int = 4
    input_size: int = 504
    """Default long side of the network input (DA3's process_res)."""
    max_views: int = 64
    """Views one forward may take (`predict_views` refuses more, naming this limit)."""

    @property
    def head_dim_in(self) -> int:
        return self.vit.embed_dim * (2 if self.any_view else 1)


def _uv_embedding(x: torch.Tensor, aspect: float, ratio: float = 0.1, inplace: bool = False) -> torch.Tensor:
    """DA3's sin-cos embedding of a centred, diagonal-normalised UV grid, added to a feature map
    (`inplace`: into `x` itself, for a full-resolution map that nothing else holds)."""
    c, h, w = x.shape[1:]
    diag = (aspect**2 + 1.0) ** 0.5
    span_x, span_y = aspect / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (w - 1) / w, span_x * (w - 1) / w, steps=w, dtype=x.dtype, device=x.device)
    ys = torch.linspace(-span_y * (h - 1) / h, span_y * (h - 1) / h, steps=h, dtype=x.dtype, device=x.device)
    uu, vv = torch.meshgrid(xs, ys, indexing="xy")
    half = c // 2
    omega = torch.arange(half // 2, dtype=torch.float32, device=x.device) / (half / 2.0)
    omega = 1.0 / 100.0**omega

    def sincos(p: torch.Tensor) -> torch.Tensor:
        out = p.reshape(-1)[:, None] * omega[None, :]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    emb = torch.cat([sincos(uu), sincos(vv)], dim=-1).view(h, w, c) * ratio
    return x.add_(emb.permute(2, 0, 1)[None]) if inplace else x + emb.permute(2, 0, 1)[None]


class DA3Scratch(Scratch):
    """`head.scratch`: the shared DPT fusion (no skip unit in refinenet4) and DA3's output convs."""

    def __init__(self, cfg: DA3Config) -> None:
        feats = cfg.features
        super().__init__(cfg.out_channels, feats, align_corners=True, coarsest_has_skip=False)
        self.output_conv1 = nn.Conv2d(feats, feats // 2, 3, padding=1)
        channels = 2 if cfg.any_view else 1  # any-view: depth + confidence
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(feats // 2, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, channels, 1)
        )
        if cfg.any_view:
            self._add_ray_head(feats)
        else:
            self.sky_output_conv2 = nn.Sequential(
                nn.Conv2d(feats // 2, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 1, 1)
            )

    def _add_ray_head(self, feats: int) -> None:
        """The auxiliary ray head's modules (official names; see the module docstring)."""
        for i in (1, 2, 3, 4):
            setattr(self, f"refinenet{i}_aux", FeatureFusionBlock(feats, align_corners=True, has_skip=i != 4))
        half = feats // 2
        self.output_conv1_aux = nn.ModuleList(
            nn.Sequential(*(nn.Conv2d(a, b, 3, padding=1) for a, b in ((feats, half), (half, feats)) * 2),
                          nn.Conv2d(feats, half, 3, padding=1))
            for _ in range(4)
        )  # fmt: skip
        # [conv, (permute), LayerNorm, (permute), ReLU, conv]; the official LayerNorm is one object
        # under the four names, so a checkpoint holds four equal copies (or, deduplicated, one).
        self.output_conv2_aux = nn.ModuleList(
            nn.Sequential(nn.Conv2d(half, 32, 3, padding=1), nn.Identity(), nn.LayerNorm(32), nn.Identity(),
                          nn.ReLU(), nn.Conv2d(32, 7, 1))
            for _ in range(4)
        )  # fmt: skip


class DA3Head(nn.Module):
    """`head`: DPT (mono: depth + sky) or DualDPT (any-view: depth + confidence), official names."""

    def __init__(self, cfg: DA3Config) -> None:
        super().__init__()
        self.cfg = cfg
        oc = cfg.out_channels
        if cfg.any_view:
            self.norm = nn.LayerNorm(cfg.head_dim_in)  # eps 1e-5
        self.projects = nn.ModuleList(nn.Conv2d(cfg.head_dim_in, c, 1) for c in oc)
        self.resize_layers = reassemble_resizes(oc)
        self.scratch = DA3Scratch(cfg)

    def forward(self, taps: list[torch.Tensor], hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Tapped tokens (N, h*w, C) -> {"depth", and "confidence" or "sky"}: (N, H, W) each,
        decoded `HEAD_VIEWS_AT_ONCE` maps at a time (all at once in a traced graph, whose N is symbolic)."""
        n = taps[0].shape[0]
        if is_exporting() or n <= HEAD_VIEWS_AT_ONCE:
            return self.decode(taps, hw)
        parts = [
            self.decode([t[i : i + HEAD_VIEWS_AT_ONCE] for t in taps], hw) for i in range(0, n, HEAD_VIEWS_AT_ONCE)
        ]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def decode(self, taps: list[torch.Tensor], hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The DPT / DualDPT decoder on (n, h*w, C) tokens."""
        h, w = hw
        rows, cols = h // PATCH, w // PATCH
        aspect = w / h
        levels = []
        for tokens, project, resize in zip(taps, self.projects, self.resize_layers, strict=True):
            if self.cfg.any_view:
                tokens = self.norm(tokens)
            x = tokens.permute(0, 2, 1).reshape(tokens.shape[0], -1, rows, cols)
            x = project(x)
            if self.cfg.any_view:
                x = _uv_embedding(x, aspect)
            levels.append(resize(x))
        fused = self.scratch.output_conv1(self.scratch.fuse(levels, sizes_from_skips=True))
        del levels
        if is_exporting():
            return self.full_resolution(fused, hw)
        parts = [self.full_resolution(fused[i : i + 1], hw) for i in range(fused.shape[0])]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def full_resolution(self, fused: torch.Tensor, hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The output convolutions at the input resolution, on `output_conv1`'s half-resolution maps.

        Called one view at a time: at full resolution each intermediate is `features // 2`
        channels of H x W per view (24 MiB for DA3-Small at 378 x 504), so a batch of them, not
        the encoder, would set a many-view forward's peak. Additions and ReLUs run in place and
        each map is dropped once its successor exists."""
        h, w = hw
        x = F.interpolate(fused, size=(h, w), mode="bilinear", align_corners=True)  # after output_conv1
        if self.cfg.any_view:
            x = _uv_embedding(x, w / h, inplace=not is_exporting())
        conv, relu, project = self.scratch.output_conv2
        hidden = relu(conv(x))
        if self.cfg.any_view:
            del x
            logits = project(hidden)
            return {"depth": torch.exp(logits[:, 0]), "confidence": torch.exp(logits[:, 1]) + 1}
        depth = torch.exp(project(hidden)[:, 0])
        del hidden
        sky_conv, sky_relu, sky_project = self.scratch.sky_output_conv2
        return {"depth": depth, "sky": torch.relu(sky_project(sky_relu(sky_conv(x)))[:, 0])}


class CameraDecoder(nn.Module):
    """`cam_dec`: camera token (2C) -> pose encoding [t, quaternion xyzw, fov_h, fov_w]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.fc_t = nn.Linear(dim, 3)
        self.fc_qvec = nn.Linear(dim, 4)
        self.fc_fov = nn.Sequential(nn.Linear(dim, 2), nn.ReLU())

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        feat = self.backbone(token)
        return torch.cat([self.fc_t(feat), self.fc_qvec(feat), self.fc_fov(feat)], dim=-1)


class CameraEncoder(nn.Module):
    """`cam_enc`: known cameras -> one token per view (B, S, C) replacing the learned camera token."""

    def __init__(self, cfg: DA3Config) -> None:
        super().__init__()
        dim = cfg.vit.embed_dim
        block_cfg = ViTConfig(embed_dim=dim, depth=cfg.cam_enc_depth, num_heads=cfg.cam_enc_heads, norm_eps=1e-5)
        self.trunk = nn.Sequential(*(Block(block_cfg) for _ in range(cfg.cam_enc_depth)))
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.pose_branch = Mlp(9, dim // 2)
        self.pose_branch.fc2 = nn.Linear(dim // 2, dim)

    def forward(self, w2c: torch.Tensor, k: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        tokens = self.token_norm(self.pose_branch(cameras_to_pose_encoding(rigid_inverse(w2c), k, hw)))
        return self.trunk_norm(self.trunk(tokens))


class DepthAnything3(nn.Module):
    """`DepthAnything3Net` with official keys: (B, S, 3, H, W) normalised views -> dict of maps.

    Outputs (B, S, H, W) "depth" and "sky" (mono, depth after the sky fill) or "depth",
    "confidence", and the cameras "pose_encoding" (B, S, 9), "world_to_cam" (B, S, 3, 4) and
    "intrinsics" (B, S, 3, 3) (any-view)."""

    def __init__(self, cfg: DA3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = nn.Module()
        self.backbone.pretrained = VisionTransformer(cfg.vit)
        self.head = DA3Head(cfg)
        if cfg.any_view:
            self.cam_dec = CameraDecoder(cfg.head_dim_in)
            self.cam_enc = CameraEncoder(cfg)

    @property
    def encoder(self) -> VisionTransformer:
        encoder = self.backbone.pretrained
        assert isinstance(encoder, VisionTransformer)
        return encoder

    def forward(
        self, x: torch.Tensor, world_to_cam: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """`world_to_cam` (B, S, 4, 4, normalised as `camera.normalise_world_to_cam`) and `intrinsics`
        (B, S, 3, 3, on the network grid): known cameras (any-view only)."""
        out = self.forward_maps(x, world_to_cam, intrinsics)
        if not self.cfg.any_view:
            out["depth"] = fill_sky_views(out["depth"], out["sky"])
        return out

    def forward_maps(
        self, x: torch.Tensor, world_to_cam: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """`forward` without the mono models' sky fill: every step here follows the input size in a
        traced graph, while the fill (a percentile over a data-dependent pixel set) does not, so an
        exported graph stops here and the fill runs after it (`onnx.GraphAsNetwork`)."""
        b, s, _, h, w = x.shape
        cam_token = None
        if world_to_cam is not None and intrinsics is not None and self.cfg.any_view:
            cam_token = self.cam_enc(world_to_cam, intrinsics, (h, w))
        taps = self.encoder.forward_views(x, self.cfg.taps, cam_token, concat_local=self.cfg.any_view)
        maps = self.head([t.flatten(0, 1) for t, _ in taps], (h, w))
        out = {k: v.reshape(b, s, h, w) for k, v in maps.items()}
        if self.cfg.any_view:
            encoding = self.cam_dec(taps[-1][1])
            c2w, k = pose_encoding_to_cameras(encoding, (h, w))
            out.update(pose_encoding=encoding, world_to_cam=rigid_inverse(c2w), intrinsics=k)
        return out


def fill_sky_views(depth: torch.Tensor, sky: torch.Tensor) -> torch.Tensor:
    """`fill_sky` on every map of (B, S, H, W) depth and sky."""
    filled = [fill_sky(d, sk) for d, sk in zip(depth.flatten(0, 1), sky.flatten(0, 1), strict=True)]
    return torch.stack(filled).reshape(depth.shape)


def fill_sky(depth: torch.Tensor, sky: torch.Tensor) -> torch.Tensor:
    """DA3's in-network sky fill for one map: sky pixels (sky >= 0.3) get the 99th percentile of
    the non-sky depth, when both parts have more than 10 pixels.

    Above 100,000 non-sky pixels DA3 takes the percentile of 100,000 samples drawn with
    replacement from torch's default generator; here they come from a private generator seeded
    0, so a result never depends on earlier random calls and equals the official one run right
    after `torch.manual_seed(0)`."""
    non_sky = sky < SKY_FILL_THRESHOLD
    n_non_sky = int(non_sky.sum())
    if n_non_sky <= 10 or non_sky.numel() - n_non_sky <= 10:
        return depth
    values = depth[non_sky]
    if values.numel() > SKY_FILL_SAMPLE:
        generator = torch.Generator(device=values.device).manual_seed(SKY_FILL_SEED)
        idx = torch.randint(0, values.numel(), (SKY_FILL_SAMPLE,), device=values.device, generator=generator)
        values = values[idx]
    far = torch.quantile(values.float(), 0.99).to(depth.dtype)
    return torch.where(non_sky, depth, far)
