"""The per-image prediction cache: an interrupted run resumes, a second protocol costs no inference.

One compressed .npz per (model, image), keyed by the model's fingerprint, the image's pixels
and the focal length handed to the model. A damaged file is re-predicted, never trusted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..result import OutputKind

CACHE_VERSION = 1


def cache_key(fingerprint: str, image: np.ndarray, focal_px: float | None) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{fingerprint}|{focal_px!r}|{image.shape}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def slug(text: str) -> str:
    """File-name-safe, bounded form of a model or sample name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


@dataclass(frozen=True)
class CachedPrediction:
    prediction: np.ndarray
    kind: OutputKind
    focal_px: float | None


class PredictionCache:
    """One compressed .npz per (model, image): prediction map, kind and focal length.

    Disabled (every lookup misses, nothing is written) without a folder or a fingerprint.
    """

    def __init__(self, root: Path | None, model_name: str, fingerprint: str | None) -> None:
        self.dir = (root / slug(model_name)) if root is not None else None
        self.fingerprint = fingerprint

    @property
    def enabled(self) -> bool:
        return self.dir is not None and self.fingerprint is not None

    def path(self, sample_name: str, image: np.ndarray, focal_px: float | None) -> Path | None:
        if self.dir is None or self.fingerprint is None:
            return None
        key = cache_key(self.fingerprint, image, focal_px)
        return self.dir / f"{slug(sample_name)}__{key[:20]}.npz"

    def load(self, path: Path | None) -> CachedPrediction | None:
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                focal = float(data["focal_px"])
                return CachedPrediction(
                    data["prediction"].astype(np.float32),
                    OutputKind(str(data["kind"])),
                    focal if math.isfinite(focal) else None,
                )
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache file is re-predicted

    def save(self, path: Path | None, entry: CachedPrediction) -> None:
        if path is None:
            return
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                prediction=entry.prediction.astype(np.float32),
                kind=np.array(str(entry.kind)),
                focal_px=np.array(np.nan if entry.focal_px is None else entry.focal_px, dtype=np.float64),
            )
