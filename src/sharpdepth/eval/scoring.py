"""Scoring one prediction, and the two alignment strategies (per image, per sequence).

A prediction (already at ground-truth resolution, in the model's own kind) is expressed in
the alignment space, aligned (fitted on the scored pixels of this image, or once per
sequence), turned into depth and clipped by the protocol, then scored. The strategies only
decide *where* the alignment is fitted; `runner.Evaluator` runs one loop for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

import numpy as np

from ..align import Alignment, depth_to_space, fit_alignment
from ..errors import OptionError
from ..result import OutputKind
from .boundary import si_boundary_f1
from .datasets import Entry, Sample
from .metrics import depth_metrics
from .protocols import Protocol
from .settings import EvalSettings, Scope
from .temporal import flicker, temporal_alignment_error, temporal_change_error

STATIC_TRANSLATION_M = 0.002
STATIC_ROTATION_DEG = 0.2
"""A clip whose ground-truth camera stays within 2 mm and 0.2° of its first pose is static
(about one pixel of parallax at 1 m for a 500 px focal length)."""


@dataclass(frozen=True)
class AlignmentPolicy:
    """Which alignment a model gets: method, space and scope, fixed before the first image."""

    method: str
    space: str
    scope: Scope

    def as_dict(self) -> dict[str, str]:
        return {"method": self.method, "space": self.space, "scope": self.scope}


def resolve_alignment(
    kind: OutputKind, protocol: Protocol, settings: EvalSettings, scope: Scope, model: str
) -> AlignmentPolicy:
    """The policy for a model of `kind`; refuses to score a relative model unaligned.

    Depth kinds (metres, or depth up to one scale as Depth Anything 3's) align in either space
    (their inverse is a disparity); relative disparity only in disparity space (its unknown
    shift makes its inverse meaningless as depth)."""
    metric = kind is OutputKind.METRIC_DEPTH
    method = settings.align or ("none" if metric else protocol.align_relative)
    if method == "none" and not metric:
        raise OptionError(
            f"{model} predicts {kind.meaning} (no metric scale), so it cannot be scored "
            "with --align none; use --align median, lstsq or lstsq-robust"
        )
    if settings.align_space:
        space = settings.align_space
    elif kind.is_depth:
        space = "depth" if method in ("none", "median") else protocol.align_space
    else:
        space = "disparity"
    if not kind.is_depth and space != "disparity":
        raise OptionError("relative-disparity models can only be aligned in disparity space (--align-space disparity)")
    return AlignmentPolicy(method, space, scope)


@dataclass(frozen=True)
class Frame:
    """One sample with its prediction, resized to the ground truth, in the model's own kind."""

    sample: Sample
    prediction: np.ndarray
    kind: OutputKind
    focal_px: float | None
    seconds: float
    cached: bool


@dataclass(frozen=True)
class ScoredFrame:
    metrics: dict[str, float]
    alignment: Alignment
    depth: np.ndarray
    """Aligned and clipped by the protocol: what the metrics saw."""
    temporal_depth: np.ndarray
    """The same, but NaN where the prediction itself is unknown (temporal metrics skip it)."""
    mask: np.ndarray


def prediction_in_space(prediction: np.ndarray, kind: OutputKind, space: str) -> np.ndarray:
    """The raw values to align in `space`: depth (metric or up to scale) becomes 1/depth for disparity space."""
    p = np.asarray(prediction, dtype=np.float64)
    if kind.is_depth and space == "disparity":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, 1.0 / p, np.nan)
    return p


def aligned_depth(values: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Depth (float64) from aligned values, before the protocol's clip.

    Depth space: the aligned value is the depth, also when it is <= 0 (the protocol's clip
    then makes it the minimum, as ZoeDepth and Marigold do). Disparity space: disparity <= 0
    is beyond infinity (+inf, clipped to the maximum); NaN stays unknown.
    """
    v = alignment.to_space(values)
    if alignment.space == "depth":
        return v
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, 1.0 / v, np.where(np.isnan(v), np.nan, np.inf))


def fit_or_fallback(values: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, method: str, space: str) -> Alignment:
    """`fit_alignment`, except that a degenerate fit never aborts a run.

    A prediction that is constant over the scored pixels has no unique least-squares scale;
    the minimum-norm solution (scale 0, shift = mean target in `space`) is used, so the image
    is still scored (badly) instead of silently skipped. No scored pixel: identity.
    """
    try:
        return fit_alignment(values, gt, mask, method, "depth" if space == "depth" else "disparity")
    except OptionError:
        target = depth_to_space(gt, space)
        keep = np.isfinite(target) & (np.ones(target.shape, bool) if mask is None else mask)
        if not keep.any():
            return Alignment(space=space, method=method)
        return Alignment(0.0, float(np.mean(target[keep])), space, method, int(keep.sum()), {"degenerate": 1.0})


class Scorer:
    """Scores frames under one protocol and one alignment policy."""

    def __init__(self, protocol: Protocol, policy: AlignmentPolicy, boundary: bool) -> None:
        self.protocol = protocol
        self.policy = policy
        self.boundary = boundary

    def mask(self, sample: Sample) -> np.ndarray:
        valid = np.ones(sample.depth.shape, bool) if sample.valid is None else sample.valid
        return self.protocol.eval_mask(sample.depth) & valid

    def values(self, frame: Frame) -> np.ndarray:
        return prediction_in_space(frame.prediction, frame.kind, self.policy.space)

    def score(self, frame: Frame, alignment: Alignment | None = None) -> ScoredFrame:
        """Metrics of one frame; `alignment` (sequence scope) is applied as is, else fitted here."""
        gt, mask = frame.sample.depth, self.mask(frame.sample)
        values = self.values(frame)
        if alignment is None:
            alignment = fit_or_fallback(values, gt, mask, self.policy.method, self.policy.space)
        raw = aligned_depth(values, alignment)
        depth = self.protocol.clip(raw)
        metrics: dict[str, float] = depth_metrics(
            depth, gt, mask, silog_lambda=self.protocol.silog_lambda, silog_scale=self.protocol.silog_scale
        )
        if self.boundary:
            metrics["boundary_f1"] = si_boundary_f1(depth, np.where(np.isfinite(gt), gt, 0.0), valid=mask)
        metrics["scale"], metrics["shift"] = alignment.scale, alignment.shift
        temporal_depth = np.where(np.isnan(raw), np.nan, depth).astype(np.float32)
        return ScoredFrame(metrics, alignment, depth, temporal_depth, mask)


# ------------------------------------------------------------------ alignment strategies
class AlignmentStrategy(TypingProtocol):
    """Where the alignment is fitted. `groups` splits the entries; `fit` sees one group's
    frames and returns the alignment shared by the group, or None (fit each frame itself)."""

    scope: Scope
    passes: int

    def groups(self, entries: Sequence[Entry]) -> list[list[Entry]]: ...

    def fit(self, frames: Iterable[Frame], scorer: Scorer) -> Alignment | None: ...


class PerImage:
    """Each image aligned on its own pixels: one streaming pass, the frames are never read twice."""

    scope: Scope = "image"
    passes = 1

    def groups(self, entries: Sequence[Entry]) -> list[list[Entry]]:
        return [list(entries)]

    def fit(self, frames: Iterable[Frame], scorer: Scorer) -> Alignment | None:
        return None  # `frames` is not consumed: no prediction is made for nothing


class PerSequence:
    """One alignment per sequence (the video-depth protocols): fit over all its frames, then score.

    The fit uses a deterministic sample of `fit_pixels` scored pixels per frame, so memory stays
    bounded on long clips; the frames are predicted once and read back from the cache.
    """

    scope: Scope = "sequence"
    passes = 2

    def __init__(self, fit_pixels: int) -> None:
        self.fit_pixels = fit_pixels

    def groups(self, entries: Sequence[Entry]) -> list[list[Entry]]:
        groups: dict[str, list[Entry]] = {}
        for entry in entries:
            groups.setdefault(str(entry.meta.get("sequence") or entry.name), []).append(entry)
        return list(groups.values())

    def fit(self, frames: Iterable[Frame], scorer: Scorer) -> Alignment:
        xs, ys = [], []
        for i, frame in enumerate(frames):
            values = scorer.values(frame)
            idx = np.flatnonzero(scorer.mask(frame.sample) & np.isfinite(values))
            if idx.size > self.fit_pixels:
                idx = np.sort(np.random.default_rng(i).choice(idx, self.fit_pixels, replace=False))
            xs.append(values.ravel()[idx])
            ys.append(frame.sample.depth.ravel()[idx])
        x = np.concatenate(xs) if xs else np.zeros(0)
        y = np.concatenate(ys) if ys else np.zeros(0)
        return fit_or_fallback(x, y, None, scorer.policy.method, scorer.policy.space)


def strategy_for(scope: Scope, settings: EvalSettings) -> AlignmentStrategy:
    return PerSequence(settings.sequence_fit_pixels) if scope == "sequence" else PerImage()


# ------------------------------------------------------------------ temporal metrics per sequence
def _rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    r = a[:3, :3].T @ b[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


@dataclass
class _Previous:
    sample: Sample
    depth: np.ndarray
    scored: np.ndarray


@dataclass
class SequenceTemporal:
    """Running temporal metrics of one sequence (two frames held at a time)."""

    n_frames: int = 0
    tae: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    flicker: list[float] = field(default_factory=list)
    poses_known: bool = True
    first_pose: np.ndarray | None = None
    max_translation_m: float = 0.0
    max_rotation_deg: float = 0.0
    previous: _Previous | None = None

    def add(self, sample: Sample, depth: np.ndarray, mask: np.ndarray) -> None:
        scored = np.where(mask, depth, np.nan)
        self._track_motion(sample.pose_c2w)
        prev = self.previous
        if prev is not None:
            p0, p1 = prev.sample.pose_c2w, sample.pose_c2w
            if p0 is not None and p1 is not None and sample.K is not None:
                k_prev = sample.K if prev.sample.K is None else prev.sample.K
                self.tae.append(temporal_alignment_error([prev.depth, depth], [p0, p1], [k_prev, sample.K]))
            self.change.append(temporal_change_error([prev.scored, scored], [prev.sample.depth, sample.depth]))
            self.flicker.append(flicker([prev.depth, depth]))
        self.previous = _Previous(sample, depth, scored)
        self.n_frames += 1

    def _track_motion(self, pose: np.ndarray | None) -> None:
        if pose is None:
            self.poses_known = False
            return
        if self.first_pose is None:
            self.first_pose = pose
            return
        moved = float(np.linalg.norm(pose[:3, 3] - self.first_pose[:3, 3]))
        self.max_translation_m = max(self.max_translation_m, moved)
        self.max_rotation_deg = max(self.max_rotation_deg, _rotation_deg(self.first_pose, pose))

    @property
    def static(self) -> bool | None:
        """True/False from the ground-truth poses; None without poses (cannot tell)."""
        if not self.poses_known or self.first_pose is None:
            return None
        return self.max_translation_m < STATIC_TRANSLATION_M and self.max_rotation_deg < STATIC_ROTATION_DEG

    def result(self) -> dict[str, float | int | bool | None]:
        out: dict[str, float | int | bool | None] = {"n_frames": self.n_frames, "static": self.static}
        if self.static is not None:
            out["camera_motion_m"] = self.max_translation_m
            out["camera_rotation_deg"] = self.max_rotation_deg
        for name, values in (("tae", self.tae), ("temporal_change_error", self.change), ("flicker", self.flicker)):
            finite = [v for v in values if np.isfinite(v)]
            if finite:
                out[name] = float(np.mean(finite))
        return out


class TemporalTracker:
    """Temporal metrics of every sequence, fed frame by frame in order."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.sequences: dict[str, SequenceTemporal] = {}

    def add(self, sample: Sample, scored: ScoredFrame) -> None:
        if not self.enabled or sample.sequence is None:
            return
        self.sequences.setdefault(sample.sequence, SequenceTemporal()).add(sample, scored.temporal_depth, scored.mask)

    def results(self) -> dict[str, dict[str, float | int | bool | None]]:
        return {name: seq.result() for name, seq in self.sequences.items()}
