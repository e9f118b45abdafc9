"""Training losses of the three families, as their papers define them.

Conventions shared by every function here:

* `pred`, `target` are (N, H, W) float tensors, `mask` an (N, H, W) bool tensor of the
  pixels that have ground truth. Invalid target pixels may hold anything (NaN included):
  they are replaced before any arithmetic, so they never reach a gradient.
* Each loss is computed **per image** and then averaged over the images of the batch.
  The papers' reference code sometimes pools pixels over the batch instead; averaging
  per image makes a batch of B on one process equal to B/k images on each of k
  data-parallel processes (DDP averages the per-process losses), which the trainer
  relies on. An image without a valid pixel contributes 0.
* Losses are evaluated in float32 even under bf16 autocast (the callers cast).

Sources (formulas checked against the papers; equation numbers of the arXiv versions):

* MiDaS — Ranftl, Lasinger, Hafner, Schindler, Koltun, "Towards Robust Monocular Depth
  Estimation: Mixing Datasets for Zero-shot Cross-dataset Transfer", TPAMI 2022
  (arXiv:1907.01341): scale-and-shift-invariant loss in disparity space, least-squares
  alignment (Eq. 2-4, "L_ssimse"), optionally trimmed (Eq. 7), plus the multi-scale
  gradient-matching term L_reg (Eq. 11; K = 4 scales, alpha = 0.5).
* Depth Anything — Yang et al., "Depth Anything: Unleashing the Power of Large-Scale
  Unlabeled Data", CVPR 2024 (arXiv:2401.10891), Eq. 1-2: the affine-invariant loss,
  disparity normalised by its median and mean absolute deviation, then L1.
* SILog — Eigen, Puhrsch, Fergus, "Depth Map Prediction from a Single Image using a
  Multi-Scale Deep Network", NIPS 2014, Eq. 4: sqrt(mean(d^2) - lambda mean(d)^2) with
  d = ln(pred) - ln(target); Depth Anything V2's metric fine-tuning
  (metric_depth/util/loss.py `SiLogLoss`) uses lambda = 0.5 and no x10 factor.
* Depth Pro — Bochkovskii et al., "Depth Pro: Sharp Monocular Metric Depth in Less Than
  a Second", arXiv:2410.02073 (Apple 2024), §3.2 "Training objectives": the network
  predicts canonical inverse depth C = f_px / (w * D); the loss is the MAE on C
  (discarding, per image, the pixels with the top 20 % error on real-world data) plus
  the multi-scale derivative losses L_{*,p,M} = 1/M sum_j 1/N_j sum_i |grad_* C^j_i -
  grad_* C-hat^j_i|^p over M scales obtained by blurring and 2x downsampling:
  MAGE (Scharr gradient, p = 1), MALE (Laplace, p = 1), MSGE (Scharr, p = 2).
* FOV — Depth Pro trains its field-of-view head separately (§3.3, the depth network
  frozen). The paper does not spell out the head's loss in a form we could check, so
  `fov_loss` is ours: |ln f-hat - ln f|, symmetric in over- and under-estimation and
  independent of the image size (log focal length is the quantity the metric scale of
  depth depends on).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-6


# ------------------------------------------------------------------ helpers
def _clean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` with every invalid pixel set to 0 (so NaN targets never poison sums or gradients)."""
    return torch.where(mask, x, torch.zeros_like(x))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean of `x` over `mask` (N,); 0 for images without valid pixels."""
    m = mask.to(x.dtype)
    count = m.flatten(1).sum(1)
    total = (_clean(x, mask) * m).flatten(1).sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def _batch_mean(per_image: torch.Tensor) -> torch.Tensor:
    return per_image.mean()


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image median over the valid pixels (N,) (lower median for even counts, as torch)."""
    out = []
    for xi, mi in zip(x, mask, strict=True):
        values = xi[mi]
        out.append(values.median() if values.numel() else xi.new_zeros(()))
    return torch.stack(out)


def align_least_squares(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MiDaS Eq. 4: per image the scale s and shift t minimising sum (s*pred + t - target)^2.

    Solved in closed form from the 2x2 normal equations; returns s*pred + t (N, H, W).
    A degenerate image (constant prediction or < 2 pixels) gets s = 0, t = mean target.
    """
    m = mask.to(pred.dtype)
    p, g = _clean(pred, mask), _clean(target, mask)
    a00 = (m * p * p).flatten(1).sum(1)
    a01 = (m * p).flatten(1).sum(1)
    a11 = m.flatten(1).sum(1)
    b0 = (m * p * g).flatten(1).sum(1)
    b1 = (m * g).flatten(1).sum(1)
    det = a00 * a11 - a01 * a01
    # Degenerate when det vanishes next to the rounding error of its two terms.
    ok = det.abs() > 16 * torch.finfo(pred.dtype).eps * (a00 * a11).clamp_min(torch.finfo(pred.dtype).tiny)
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (-a01 * b0 + a00 * b1) / safe, b1 / a11.clamp_min(1))
    return scale[:, None, None] * pred + shift[:, None, None]


def normalize_median_mad(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Depth Anything Eq. 2 / MiDaS Eq. 5-6: (x - median(x)) / mean|x - median(x)| per image."""
    t = _masked_median(x, mask)[:, None, None]
    s = _masked_mean((x - t).abs(), mask)[:, None, None]
    return (x - t) / s.clamp_min(EPS)


def _trimmed_mean(err: torch.Tensor, mask: torch.Tensor, trim: float) -> torch.Tensor:
    """Per-image mean of `err` over `mask` after discarding the `trim` share of largest values."""
    if trim <= 0:
        return _masked_mean(err, mask)
    out = []
    for ei, mi in zip(err, mask, strict=True):
        values = ei[mi]
        keep = int(math.floor(values.numel() * (1.0 - trim)))
        if keep <= 0:
            out.append(ei.new_zeros(()))
            continue
        out.append(torch.topk(values, keep, largest=False, sorted=False).values.mean())
    return torch.stack(out)


# ------------------------------------------------------------------ MiDaS
def ssi_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, trim: float = 0.0) -> torch.Tensor:
    """MiDaS scale-and-shift-invariant loss in disparity (Eq. 2-4, L_ssimse; with `trim` > 0
    the trimmed variant of Eq. 7 on the squared residuals).

    1/2 * mean((s*pred + t - target)^2), (s, t) the per-image least-squares fit; zero for
    any prediction that is an affine function of the target.
    """
    aligned = align_least_squares(pred, target, mask)
    residual = (aligned - _clean(target, mask)) ** 2
    return _batch_mean(0.5 * _trimmed_mean(residual, mask, trim))


def gradient_matching_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scales: int = 4
) -> torch.Tensor:
    """MiDaS Eq. 11: 1/M sum_k sum_i (|dx R^k_i| + |dy R^k_i|), R = aligned pred - target,
    over `scales` levels each halving the resolution (every 2nd pixel, as the reference
    code's `[:, ::step, ::step]`); a difference counts where both its pixels are valid.

    Per image the sum over all scales is divided by the number of valid pixels at full
    resolution, as in the reference `GradientLoss` (batch-based reduction per image).
    """
    aligned = align_least_squares(pred, target, mask)
    residual = _clean(aligned - _clean(target, mask), mask)
    m = mask.to(pred.dtype)
    total = pred.new_zeros(pred.shape[0])
    for k in range(scales):
        step = 2**k
        r, mk = residual[:, ::step, ::step], m[:, ::step, ::step]
        mx = mk[:, :, 1:] * mk[:, :, :-1]
        my = mk[:, 1:, :] * mk[:, :-1, :]
        gx = (r[:, :, 1:] - r[:, :, :-1]).abs() * mx
        gy = (r[:, 1:, :] - r[:, :-1, :]).abs() * my
        total = total + gx.flatten(1).sum(1) + gy.flatten(1).sum(1)
    count = m.flatten(1).sum(1)
    return _batch_mean(torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total)))


def midas_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, alpha: float = 0.5, scales: int = 4
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_ssi + alpha * L_reg (MiDaS Eq. 10 with the published alpha = 0.5, K = 4)."""
    data = ssi_loss(pred, target, mask)
    reg = gradient_matching_loss(pred, target, mask, scales) if alpha else pred.new_zeros(())
    return data + alpha * reg, {"ssi": data.detach(), "grad": reg.detach()}


# ------------------------------------------------------------------ Depth Anything
def affine_invariant_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Depth Anything Eq. 1-2: mean |d-hat - d-hat*| with d-hat = (d - median) / MAD per image.

    Invariant to any positive scale and any shift of either argument.
    """
    p = normalize_median_mad(pred, mask)
    g = normalize_median_mad(_clean(target, mask), mask)
    return _batch_mean(_masked_mean((p - g).abs(), mask))


# ------------------------------------------------------------------ SILog
def silog_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Eigen et al. Eq. 4 on depths: sqrt(mean(d^2) - lam * mean(d)^2), d = ln pred - ln target.

    lam = 1 makes it blind to a global scale; lam = 0 is the RMS log error. `pred` is
    clamped to >= 1e-6 m before the logarithm (a ReLU/Sigmoid head can output 0).
    """
    valid = mask & (target > 0)
    d = torch.log(pred.clamp_min(EPS)) - torch.log(_clean(target, valid).clamp_min(EPS))
    mean_sq = _masked_mean(d * d, valid)
    mean = _masked_mean(d, valid)
    radicand = (mean_sq - lam * mean * mean).clamp_min(0.0)
    # sqrt has an infinite slope at 0; the epsilon keeps a perfect prediction's gradient finite.
    return _batch_mean(torch.sqrt(radicand + 1e-12))


# ------------------------------------------------------------------ Depth Pro
_SCHARR_X = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32.0
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def canonical_inverse_depth(depth: torch.Tensor, focal_px: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Depth Pro's target C = f_px / (w * D) (Eq. 1 of §3.2): inverse depth of a camera whose
    focal length equals the image width. `focal_px`, `width` are per image (N,)."""
    ratio = (focal_px / width)[:, None, None]
    return ratio / depth.clamp_min(EPS)


def _stencil(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid-mode 3x3 filter of (N, H, W) -> (N, H-2, W-2)."""
    return F.conv2d(x[:, None], kernel.to(x)[None, None])[:, 0]


def _stencil_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose whole 3x3 neighbourhood is valid (where a derivative is defined)."""
    m = mask.to(torch.float32)[:, None]
    return (F.avg_pool2d(m, 3, stride=1) > 1.0 - 1e-6)[:, 0]


def _pyramid(x: torch.Tensor, mask: torch.Tensor, scales: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(map, mask) per scale: each level blurs and halves the previous (2x2 box filter over
    valid pixels only, i.e. a masked average; a coarse pixel is valid if any fine one is)."""
    levels = [(x, mask)]
    for _ in range(scales - 1):
        cur, m = levels[-1]
        if min(cur.shape[-2:]) < 6:
            break
        mf = m.to(cur.dtype)[:, None]
        num = F.avg_pool2d((_clean(cur, m))[:, None] * mf, 2)
        den = F.avg_pool2d(mf, 2)
        levels.append(((num / den.clamp_min(EPS))[:, 0], (den > 0)[:, 0]))
    return levels


def derivative_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str, scales: int = 4
) -> torch.Tensor:
    """Depth Pro's L_{*,p,M}: 1/M sum_j mean_i |D C-hat^j - D C^j|^p over M scales.

    kind "mage": Scharr gradient magnitude error components, p = 1;
    "male": Laplace, p = 1; "msge": Scharr, p = 2. The x and y Scharr responses are
    both compared (the sum of their errors), as a gradient is a vector.
    """
    if kind not in ("mage", "male", "msge"):
        raise ValueError(f"unknown derivative loss {kind!r}")
    power = 2 if kind == "msge" else 1
    target = _clean(target, mask)
    pred_levels = _pyramid(pred, mask, scales)
    target_levels = _pyramid(target, mask, scales)
    total = pred.new_zeros(pred.shape[0])
    for (p, m), (g, _) in zip(pred_levels, target_levels, strict=True):
        inner = _stencil_mask(m)
        if kind == "male":
            err = (_stencil(p, _LAPLACE) - _stencil(g, _LAPLACE)).abs() ** power
        else:
            kx, ky = _SCHARR_X, _SCHARR_X.T.contiguous()
            err = (_stencil(p, kx) - _stencil(g, kx)).abs() ** power
            err = err + (_stencil(p, ky) - _stencil(g, ky)).abs() ** power
        total = total + _masked_mean(err, inner)
    return _batch_mean(total / len(pred_levels))


def depth_pro_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    trim: float = 0.2,
    derivative_weight: float = 1.0,
    scales: int = 4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MAE on canonical inverse depth (top `trim` share of errors discarded per image) +
    derivative_weight * (MAGE + MALE + MSGE). `pred` and `target` are canonical inverse depth."""
    mae = _batch_mean(_trimmed_mean((pred - _clean(target, mask)).abs(), mask, trim))
    parts = {"mae": mae.detach()}
    total = mae
    if derivative_weight:
        for kind in ("mage", "male", "msge"):
            term = derivative_loss(pred, target, mask, kind, scales)
            parts[kind] = term.detach()
            total = total + derivative_weight * term
    return total, parts


# ------------------------------------------------------------------ FOV head
FOV_RANGE_DEG = (1.0, 179.0)


def fov_loss(pred_fov_deg: torch.Tensor, target_fov_deg: torch.Tensor) -> torch.Tensor:
    """mean |ln f-hat - ln f| over images with a known FOV, via f ∝ 1 / tan(fov / 2).

    Predictions outside (1, 179) degrees have no finite focal length; they are clamped
    and pay |excess| / 180 on top, which keeps a gradient that pushes them back in range.
    """
    known = torch.isfinite(target_fov_deg)
    if not bool(known.any()):
        return pred_fov_deg.sum() * 0.0
    p, g = pred_fov_deg[known].float(), target_fov_deg[known].float()
    clamped = p.clamp(*FOV_RANGE_DEG)
    log_ratio = torch.log(torch.tan(torch.deg2rad(g) / 2)) - torch.log(torch.tan(torch.deg2rad(clamped) / 2))
    return (log_ratio.abs() + (p - clamped).abs() / 180.0).mean()


def fov_from_focal(focal_px: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Horizontal FOV in degrees of a pinhole camera: 2 atan(w / 2f)."""
    return torch.rad2deg(2 * torch.atan(0.5 * width / focal_px))
