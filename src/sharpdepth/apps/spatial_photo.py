"""Spatial photos: both eyes of a stereo pair in one HEIC file.

pillow-heif writes a multi-image HEIC (each eye one HEVC-coded image item, the
left eye primary). What headsets additionally read, and what this module can
and cannot add with the libraries at hand, is listed in the README's stereo
section.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..io.atomic import atomic_path


def save_spatial_heic(path: Path, left: np.ndarray, right: np.ndarray, quality: int = 90) -> Path:
    """Write the left and right eye (HxWx3 uint8, same size) as the two images of one HEIC, atomically."""
    import pillow_heif

    if left.shape != right.shape:
        raise OptionError(f"the eyes differ in size: {left.shape[:2]} and {right.shape[:2]}")
    heif = pillow_heif.HeifFile()
    for eye in (left, right):
        rgb = np.ascontiguousarray(eye, dtype=np.uint8)
        heif.add_frombytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb.tobytes())
    with atomic_path(path) as tmp:
        heif.save(str(tmp), quality=quality, primary_index=0, format="HEIF")
    return Path(path)
