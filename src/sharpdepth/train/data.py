"""Training data: the evaluation loaders as sources, split by scene, augmented, pre-processed.

* Sources are `sharpdepth.eval.datasets` loaders (folder, middlebury, nyu, kitti, eth3d,
  ...): the same readers, units (metres, NaN = unknown) and calibration as evaluation.
* Train/validation split by *scene* (`scene_of`): frames of one scene never end up on both
  sides, otherwise validation measures memorisation of the scene.
* Augmentations keep depth and intrinsics consistent: a horizontal flip mirrors the
  principal point (cx -> w - 1 - cx); a crop keeps the focal length in pixels and moves
  the principal point (cx -= x0, cy -= y0), so the canonical inverse depth f / (w D) of
  the crop stays correct with the crop's own width; colour jitter touches only the RGB.
* Pre-processing is the family adapter's own `preprocess` (the official resize and
  normalisation), so the network sees at training time exactly what it sees in
  `predict`. Targets are resized to the network input with nearest neighbour (no
  interpolation across depth edges or into unknown pixels).
* Every random draw comes from `numpy.random.default_rng([seed, draw])`, where `draw` is
  the position in the run's sample stream; a sample therefore looks the same whichever
  process loads it and after a resume.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..apps.common import resize_plane
from ..errors import DatasetError, OptionError
from ..eval.datasets import DepthDataset, Entry, Sample
from ..family import Processor

IMAGE_DIR_NAMES = frozenset({"image", "images", "rgb", "color", "colour"})


# ------------------------------------------------------------------ splits
def scene_of(entry: Entry, root: Path) -> str:
    """The scene an entry belongs to: the loader's sequence/scene if it names one, else the
    image's folder relative to the root (without image/rgb/... folders), else the entry."""
    for key in ("scene", "sequence"):
        if entry.meta.get(key):
            return str(entry.meta[key])
    image = entry.paths.get("image")
    if image is not None:
        try:
            parts = [p for p in image.relative_to(root).parent.parts if p.lower() not in IMAGE_DIR_NAMES]
        except ValueError:
            parts = []
        if parts:
            return "/".join(parts)
    return entry.name


def _rank_key(name: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def split_entries(
    entries: list[Entry], root: Path, val_fraction: float, val_scenes: tuple[str, ...] = (), seed: int = 0
) -> tuple[list[Entry], list[Entry]]:
    """(train, validation) entries, split by scene.

    `val_scenes` names them explicitly; otherwise round(val_fraction * scenes) scenes (at
    least one when the fraction is > 0) are chosen by a seeded hash of their names, which
    is stable when scenes are added or removed. A dataset of a single scene is split by
    entry instead.
    """
    scenes = sorted({scene_of(e, root) for e in entries})
    if val_scenes:
        unknown = sorted(set(val_scenes) - set(scenes))
        if unknown:
            raise OptionError(f"--val-scenes: no scene named {', '.join(unknown)} (scenes: {', '.join(scenes[:8])})")
        held = set(val_scenes)
        keys = [scene_of(e, root) for e in entries]
    elif val_fraction <= 0:
        return list(entries), []
    else:
        by_entry = len(scenes) < 2
        names = [e.name for e in entries] if by_entry else scenes
        count = min(len(names) - 1, max(1, round(val_fraction * len(names))))
        if count <= 0:
            return list(entries), []
        held = set(sorted(names, key=lambda n: _rank_key(n, seed))[:count])
        keys = [e.name for e in entries] if by_entry else [scene_of(e, root) for e in entries]
    train = [e for e, k in zip(entries, keys, strict=True) if k not in held]
    val = [e for e, k in zip(entries, keys, strict=True) if k in held]
    if not train:
        raise OptionError("every scene is held out for validation; nothing is left to train on")
    return train, val


# ------------------------------------------------------------------ augmentation
@dataclass(frozen=True)
class Augment:
    flip: bool = True
    crop_min: float = 0.8
    color_jitter: float = 0.2


@dataclass
class View:
    """An image with its depth and intrinsics after augmentation."""

    image: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    focal_px: float | None
    principal: tuple[float, float] | None


def sample_view(sample: Sample) -> View:
    """The sample with its depth on the image's pixel grid.

    A depth map of another size is resized (nearest: no depth is invented between known
    pixels) before any augmentation, so a crop cuts the same window out of both;
    `survey` reports which samples this happens to.
    """
    principal = None
    if sample.K is not None:
        principal = (float(sample.K[0, 2]), float(sample.K[1, 2]))
    depth = sample.depth
    valid = sample.valid if sample.valid is not None else np.isfinite(depth)
    shape = sample.image.shape[:2]
    if depth.shape != shape:
        depth = resize_plane(np.where(valid, depth, np.nan), shape, nearest=True)
        valid = np.isfinite(depth) & (depth > 0)
    return View(sample.image, depth, valid, sample.focal_px, principal)


# ------------------------------------------------------------------ what the data holds
@dataclass(frozen=True)
class Survey:
    """What one pass over a dataset's entries found before training starts.

    Why: a sample without a single valid depth pixel contributes a loss of exactly 0 (a run
    on such data "trains" and writes a checkpoint of nothing), and a depth map of another
    size than its image is resized; neither may happen without a word.
    """

    usable: list[Entry]
    no_valid_depth: list[str]
    """Entries whose depth map has no valid pixel (dropped)."""
    resized: list[tuple[str, tuple[int, int], tuple[int, int]]]
    """(entry, depth HxW, image HxW) of depth maps resized to their image (kept)."""
    unpaired: list[str]
    """Images the loader found no depth file for (never indexed)."""

    def notes(self, what: str) -> list[str]:
        """One line per kind of problem, naming a few of the samples concerned."""
        lines = []
        if self.unpaired:
            lines.append(f"{what}: skipped {len(self.unpaired)} image(s) without a depth file ({_few(self.unpaired)})")
        if self.no_valid_depth:
            lines.append(
                f"{what}: dropped {len(self.no_valid_depth)} sample(s) whose depth map has no valid pixel "
                f"({_few(self.no_valid_depth)})"
            )
        if self.resized:
            shown = [f"{n} {d[1]}x{d[0]} -> {i[1]}x{i[0]}" for n, d, i in self.resized]
            lines.append(
                f"{what}: resized {len(self.resized)} depth map(s) to their image's size, nearest ({_few(shown)})"
            )
        return lines


def _few(names: list[str], shown: int = 3) -> str:
    more = f", ... {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def survey(dataset: DepthDataset, entries: list[Entry]) -> Survey:
    """Read every entry once: keep those with valid depth, note resized depth maps and skipped images."""
    usable: list[Entry] = []
    empty: list[str] = []
    resized: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    for entry in entries:
        sample = dataset.load(entry)
        valid = sample.valid if sample.valid is not None else np.isfinite(sample.depth) & (sample.depth > 0)
        if not valid.any():
            empty.append(entry.name)
            continue
        depth_hw = (int(sample.depth.shape[0]), int(sample.depth.shape[1]))
        image_hw = (int(sample.image.shape[0]), int(sample.image.shape[1]))
        if depth_hw != image_hw:
            resized.append((entry.name, depth_hw, image_hw))
        usable.append(entry)
    return Survey(usable, empty, resized, dataset.unpaired_images())


def require_usable(found: Survey, root: Path) -> list[Entry]:
    """The usable entries, or one clear error when nothing can be trained on."""
    if found.usable:
        return found.usable
    parts = []
    if found.no_valid_depth:
        parts.append(f"{len(found.no_valid_depth)} sample(s) whose depth map has no valid pixel")
    if found.unpaired:
        parts.append(f"{len(found.unpaired)} image(s) without a depth file")
    what = " and ".join(parts) or "no samples"
    raise DatasetError(f"nothing to train on under {root}: {what}; no checkpoint written")


def hflip(view: View) -> View:
    """Mirror left-right; depth is unchanged per pixel, the principal point mirrors."""
    width = view.image.shape[1]
    principal = None if view.principal is None else (width - 1 - view.principal[0], view.principal[1])
    return View(view.image[:, ::-1], view.depth[:, ::-1], view.valid[:, ::-1], view.focal_px, principal)


def crop(view: View, top: int, left: int, height: int, width: int) -> View:
    """A window of the image; the focal length in pixels is unchanged, the principal point moves."""
    rows, cols = slice(top, top + height), slice(left, left + width)
    principal = None if view.principal is None else (view.principal[0] - left, view.principal[1] - top)
    return View(view.image[rows, cols], view.depth[rows, cols], view.valid[rows, cols], view.focal_px, principal)


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness (multiply), contrast (blend with the mean grey), saturation (blend with grey)."""
    x = image.astype(np.float32) / 255.0
    x = x * brightness
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - grey.mean()) * contrast + grey.mean()
    grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = (x - grey) * saturation + grey
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def augment_view(view: View, aug: Augment, rng: np.random.Generator) -> View:
    """Random flip, crop and colour jitter, drawn in a fixed order from `rng`."""
    if aug.flip and rng.random() < 0.5:
        view = hflip(view)
    if aug.crop_min < 1.0:
        h, w = view.depth.shape
        share = rng.uniform(aug.crop_min, 1.0)
        ch, cw = max(8, int(round(h * share))), max(8, int(round(w * share)))
        if (ch, cw) != (h, w):
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            view = crop(view, top, left, ch, cw)
    if aug.color_jitter > 0:
        j = aug.color_jitter
        b, c, s = rng.uniform(1 - j, 1 + j, size=3)
        view = View(color_jitter(view.image, b, c, s), view.depth, view.valid, view.focal_px, view.principal)
    return view


# ------------------------------------------------------------------ tensors
@dataclass
class Batch:
    image: torch.Tensor
    """(N, 3, h, w) network input."""
    depth: torch.Tensor
    """(N, h, w) metres, 0 where unknown."""
    mask: torch.Tensor
    """(N, h, w) bool."""
    focal_px: torch.Tensor
    """(N,) focal length of the (cropped) image in its own pixels; NaN where unknown."""
    width: torch.Tensor
    """(N,) width in pixels of the (cropped) image the focal length refers to."""

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device) for t in (self.image, self.depth, self.mask, self.focal_px, self.width)))


def to_item(view: View, adapter: Processor, size: tuple[int, int] | None = None) -> Batch:
    """One view through the family's pre-processing; targets resized to the network input.

    `size` forces the network input size (bilinear resize after the family's own), for
    families whose resize follows the aspect ratio of each (cropped) image.
    """
    image = adapter.preprocess(np.ascontiguousarray(view.image))
    if size is not None and tuple(image.shape[-2:]) != size:
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    h, w = image.shape[-2:]
    depth = np.where(view.valid, view.depth, np.nan).astype(np.float32)
    depth_t = F.interpolate(torch.from_numpy(np.ascontiguousarray(depth))[None, None], size=(h, w), mode="nearest")
    depth_t = depth_t[0, 0]
    mask = torch.isfinite(depth_t) & (depth_t > 0)
    focal = float("nan") if view.focal_px is None else float(view.focal_px)
    return Batch(
        image[None],
        torch.where(mask, depth_t, torch.zeros_like(depth_t))[None],
        mask[None],
        torch.tensor([focal], dtype=torch.float32),
        torch.tensor([float(view.image.shape[1])], dtype=torch.float32),
    )


def collate(items: list[Batch]) -> Batch:
    """Stack items (a safety net: `SampleStream` already gives all items one size); inputs
    of another size are resized to the first item's (bilinear input, nearest targets)."""
    size = tuple(items[0].image.shape[-2:])
    fixed = []
    for it in items:
        if tuple(it.image.shape[-2:]) != size:
            image = F.interpolate(it.image, size=size, mode="bilinear", align_corners=False)
            depth = F.interpolate(it.depth[:, None], size=size, mode="nearest")[:, 0]
            mask = F.interpolate(it.mask[:, None].float(), size=size, mode="nearest")[:, 0] > 0.5
            it = Batch(image, depth, mask, it.focal_px, it.width)
        fixed.append(it)
    return Batch(
        torch.cat([i.image for i in fixed]),
        torch.cat([i.depth for i in fixed]),
        torch.cat([i.mask for i in fixed]),
        torch.cat([i.focal_px for i in fixed]),
        torch.cat([i.width for i in fixed]),
    )


# ------------------------------------------------------------------ the stream
class SampleStream:
    """An endless, deterministic sequence of training items.

    Draw k is entry `perm_e[k mod n]` of epoch e = k // n, where perm_e is a seeded
    permutation; everything about a draw is a function of (seed, k). The trainer maps
    (step, micro-step, rank, slot) to k, which makes resuming and data parallelism exact.
    """

    def __init__(
        self, dataset: DepthDataset, entries: list[Entry], adapter: Processor, augment: Augment | None, seed: int
    ) -> None:
        if not entries:
            raise OptionError("no training samples")
        self.dataset = dataset
        self.entries = entries
        self.adapter = adapter
        self.augment = augment
        self.seed = seed
        self._perms: dict[int, np.ndarray] = {}
        self._size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """Network input size of every item: the family's size for the first entry, un-augmented.

        Fixed per run (not per batch), so a batch's content never depends on how the global
        batch is divided among processes or micro-steps.
        """
        if self._size is None:
            first = sample_view(self.dataset.load(self.entries[0]))
            shape = self.adapter.preprocess(np.ascontiguousarray(first.image)).shape
            self._size = (int(shape[-2]), int(shape[-1]))
        return self._size

    def __len__(self) -> int:
        return len(self.entries)

    def entry_index(self, draw: int) -> int:
        epoch, pos = divmod(draw, len(self.entries))
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.entries))
            self._perms = {epoch: perm}
        return int(perm[pos])

    def item(self, draw: int) -> Batch:
        sample = self.dataset.load(self.entries[self.entry_index(draw)])
        view = sample_view(sample)
        if self.augment is not None:
            view = augment_view(view, self.augment, np.random.default_rng([self.seed, 1, draw]))
        return to_item(view, self.adapter, self.size)

    def batch(self, draws: list[int]) -> Batch:
        return collate([self.item(k) for k in draws])


def steps_for(epochs: float, samples: int, global_batch: int) -> int:
    return max(1, math.ceil(epochs * samples / global_batch))
