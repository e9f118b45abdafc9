"""Filling disocclusions from the background only, and from background revealed in neighbouring frames.

A view synthesised by warping (a stereo eye, a moved camera) has holes where
the background was hidden behind a foreground edge. Two fills here:

- `background_fill`: OpenCV's Telea inpainting, but told that the foreground is
  unknown too. The background depth of a hole is the farthest known depth around
  it; known pixels nearer than that (by more than `margin`) within reach of the
  hole are masked out before inpainting and restored after, so the fill
  continues only the background's colours — plain inpainting blends the
  foreground in from the other side of the hole (a halo that moves with it).
- `reuse_revealed`: before any inventing, take hole pixels that a neighbouring
  frame, warped to the same view, actually saw — if what it saw lies at the
  hole's background depth (not some foreground it had in front). In a video the
  same background stays revealed over many frames, so the fill of a pixel does
  not change from frame to frame (no flicker) and is real rather than invented.

Images are HxWx3 uint8; depths HxW float (metres or any depth, NaN or 0 unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .common import pull_push

BACKGROUND_MARGIN = 0.1
"""A known pixel nearer than (1 - margin) x the hole's background depth counts as foreground."""
INPAINT_RADIUS = 3
RIM_REACH = 12
"""How far (px) from a hole its rim is looked for, and its foreground masked."""


def hole_background_depth(depth: np.ndarray, holes: np.ndarray, reach: int = RIM_REACH) -> np.ndarray:
    """Per pixel: the farthest depth on the rims of the holes within `reach` px (0 where none).

    The rim (known pixels touching a hole) has a near side (the foreground edge
    that caused the hole) and a far side (the background it uncovered); the
    farther of them nearby is what the hole should continue.
    """
    known = ~holes & np.isfinite(depth) & (depth > 0)
    rim = known & ndimage.binary_dilation(holes)
    return ndimage.maximum_filter(np.where(rim, depth, 0.0), size=2 * reach + 1)


def foreground_near_holes(depth: np.ndarray, holes: np.ndarray, margin: float = BACKGROUND_MARGIN) -> np.ndarray:
    """Known pixels within `RIM_REACH` of a hole that are nearer than its background: never lend colour."""
    known = ~holes & np.isfinite(depth) & (depth > 0)
    background = hole_background_depth(depth, holes)
    near_hole = ndimage.distance_transform_edt(~holes) <= RIM_REACH
    return known & near_hole & (depth < background * (1.0 - margin))


def background_fill(
    image: np.ndarray, depth: np.ndarray, holes: np.ndarray, margin: float = BACKGROUND_MARGIN
) -> np.ndarray:
    """Inpaint `holes` from the background side only (see module doc).

    The foreground beside each hole is first painted over with the background's
    colours (pull-push from background pixels only), so that Telea's
    propagation, which draws from every side of the hole, carries background
    colours in from the foreground side too.
    """
    import cv2

    if not holes.any():
        return image.copy()
    foreground = foreground_near_holes(depth, holes, margin)
    lend = ~holes & ~foreground
    guide = image.copy()
    if foreground.any() and lend.any():
        colours = pull_push(np.moveaxis(image.astype(np.float32), -1, 0), lend.astype(np.float32))
        guide[foreground] = np.clip(np.moveaxis(colours, 0, -1)[foreground] + 0.5, 0, 255).astype(np.uint8)
    filled = cv2.inpaint(guide, holes.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
    out = image.copy()
    out[holes] = filled[holes]
    return out


def reuse_revealed(
    image: np.ndarray,
    depth: np.ndarray,
    holes: np.ndarray,
    neighbours: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    margin: float = BACKGROUND_MARGIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill hole pixels from neighbouring frames' views of the same camera (image, depth, holes each),
    nearest neighbour first, where they saw the hole's background; returns (image, depth, holes left)."""
    if not holes.any() or not neighbours:
        return image.copy(), depth.copy(), holes.copy()
    background = hole_background_depth(depth, holes)
    image, depth, holes = image.copy(), depth.copy(), holes.copy()
    for n_image, n_depth, n_holes in neighbours:
        seen = holes & ~n_holes & np.isfinite(n_depth) & (n_depth >= background * (1.0 - margin))
        image[seen] = n_image[seen]
        depth[seen] = n_depth[seen]
        holes &= ~seen
    return image, depth, holes
