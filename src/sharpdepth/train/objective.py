"""From raw network outputs and a batch to one loss: which space each loss works in.

Raw outputs are read by the one decoder (`family.decode_output`): a map, plus the FOV in
degrees (N,) for a network with a FOV head. What the map holds is the family's declared
`map_output`: canonical inverse depth C (Depth Pro), or the preset's output kind (relative
disparity, or metres for metric models).

* `depth-pro`: canonical inverse depth, target f / (w D) from the dataset's focal
  length (images without one are skipped); plus the FOV term when the FOV head trains.
* `silog`: metric depth — C turned into metres with the dataset's focal length
  (D = f / (w C)); refused for relative models (no metric scale to learn).
* `ssi`, `affine`: disparity — C as it is, 1 / D for metric models, the raw map
  for relative ones; the target is 1 / D.
* `fov`: the FOV head alone, target 2 atan(w / 2f).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import OptionError
from ..family import decode_output
from ..registry import get_family
from . import losses
from .data import Batch
from .settings import TrainSettings, training_facts

RawOutput = torch.Tensor | tuple[torch.Tensor, torch.Tensor | None] | Sequence[torch.Tensor | None]


@dataclass
class Outputs:
    map: torch.Tensor
    """(N, H, W) float32 at the target's resolution."""
    fov_deg: torch.Tensor | None = None


def split_outputs(raw: RawOutput, size: tuple[int, int]) -> Outputs:
    """Normalise a family's forward result to `Outputs` (float32, resized to `size`)."""
    depth_map, fov = decode_output(raw)
    depth_map = depth_map.float()
    if tuple(depth_map.shape[-2:]) != size:
        depth_map = F.interpolate(depth_map[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return Outputs(depth_map, None if fov is None else fov.float())


class Objective:
    """The configured loss for one model; `__call__(outputs, batch) -> (loss, parts)`."""

    def __init__(self, name: str, family: str, metric: bool, settings: TrainSettings, train_fov: bool) -> None:
        canonical = get_family(family).map_output == "canonical_inverse_depth"
        has_fov = "fov" in training_facts(family).part_names
        if name == "silog" and not metric:
            raise OptionError("--loss silog needs a metric model; relative models train with ssi or affine")
        if name == "depth-pro" and not canonical:
            raise OptionError("--loss depth-pro trains canonical inverse depth (Depth Pro); use silog, ssi or affine")
        if name == "fov" and not has_fov:
            raise OptionError(f"--loss fov: the {family} family has no FOV head")
        self.name = name
        self.family = family
        self.metric = metric
        self.canonical = canonical
        """The map is canonical inverse depth: metres need the focal length."""
        self.s = settings
        self.train_fov = train_fov and has_fov and name != "fov"

    @property
    def needs_focal(self) -> bool:
        """Whether a sample without a focal length can contribute nothing."""
        return self.canonical and self.name in ("depth-pro", "silog", "fov")

    def __call__(self, out: Outputs, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        focal_known = torch.isfinite(batch.focal_px)
        focal = torch.where(focal_known, batch.focal_px, torch.ones_like(batch.focal_px))
        mask = batch.mask
        if self.needs_focal:
            mask = mask & focal_known[:, None, None]
        if self.name == "fov":
            if out.fov_deg is None:
                raise OptionError("this Depth Pro configuration has no FOV head to train")
            target = torch.where(focal_known, losses.fov_from_focal(focal, batch.width), torch.nan)
            loss = losses.fov_loss(out.fov_deg, target)
            return loss, {"fov": float(loss.detach())}
        parts: dict[str, torch.Tensor]
        if self.name == "depth-pro":
            target = losses.canonical_inverse_depth(batch.depth, focal, batch.width)
            loss, parts = losses.depth_pro_loss(
                out.map, target, mask, self.s.trim, self.s.derivative_weight, self.s.scales
            )
        elif self.name == "silog":
            pred = self._metric_depth(out.map, focal, batch.width)
            loss = losses.silog_loss(pred, batch.depth, mask, self.s.silog_lambda)
            parts = {"silog": loss.detach()}
        else:
            pred = self._disparity(out.map)
            target = 1.0 / batch.depth.clamp_min(losses.EPS)
            if self.name == "ssi":
                loss, parts = losses.midas_loss(pred, target, mask, self.s.ssi_alpha, self.s.scales)
            else:
                loss = losses.affine_invariant_loss(pred, target, mask)
                parts = {"affine": loss.detach()}
        if self.train_fov and out.fov_deg is not None and self.s.fov_weight > 0:
            target_fov = torch.where(focal_known, losses.fov_from_focal(focal, batch.width), torch.nan)
            fov_term = losses.fov_loss(out.fov_deg, target_fov)
            parts["fov"] = fov_term.detach()
            loss = loss + self.s.fov_weight * fov_term
        return loss, {k: float(v) for k, v in parts.items()}

    def _metric_depth(self, pred: torch.Tensor, focal: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        if self.canonical:
            return (focal / width)[:, None, None] / pred.clamp_min(losses.EPS)
        return pred

    def _disparity(self, pred: torch.Tensor) -> torch.Tensor:
        if self.metric and not self.canonical:
            return 1.0 / pred.clamp_min(losses.EPS)
        return pred
