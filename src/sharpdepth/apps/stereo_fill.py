"""Filling disocclusions from the background only, and from background revealed in neighbouring frames.

A view synthesised by warping (a stereo eye, a moved camera) has holes where
the background was hidden behind a foreground edge. Two fills here:

- `background_fill`: OpenCV's Telea inpainting, except beside an occluder. A
  hole whose rim has a real depth step across it (`foreground_near_holes`) has
  the occluder's thin edge band treated as unknown too, so the warp's mixed
  edge pixels do not smear into the hole (plain inpainting blends the
  foreground in from the other side: a halo that moves with it). Holes at the
  image border, splatting cracks and holes on slanted surfaces are plain Telea.
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


OCCLUDER_JUMP = 0.4
"""A hole borders an occluder when its rim's farthest depth exceeds its nearest by more than this (relative)."""
OCCLUDER_BAND = 1
"""Width (px) of the occluder's rim masked before inpainting: the warp's mixed edge pixels only (wider did worse)."""
LOCAL_REACH = 8
"""The far side of the step must lie within this many px of the masked pixel (right across the hole)."""
MIN_HOLE = 200
"""Holes smaller than this (px) are splatting cracks on one surface, never an occluder's shadow."""


def foreground_near_holes(
    depth: np.ndarray, holes: np.ndarray, margin: float = BACKGROUND_MARGIN, jump: float = OCCLUDER_JUMP
) -> np.ndarray:
    """Known pixels of an occluder's edge beside a hole: never lend colour.

    Per connected hole: its rim (known pixels touching it) spans a nearest and a
    farthest depth. Only where they differ by more than `jump` (a real depth step
    across the hole, not a slanted surface, a crack or a hole at the image border)
    is the rim's near side an occluder; then the known pixels within
    `OCCLUDER_BAND` px of that hole and within `margin` of its nearest rim depth
    are masked. Every other hole is inpainted as plain Telea would.
    """
    known = ~holes & np.isfinite(depth) & (depth > 0)
    labels, count = ndimage.label(holes, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(holes)
    # each known pixel belongs to its nearest hole's component
    dist, idx = ndimage.distance_transform_edt(~holes, return_indices=True)
    owner = labels[idx[0], idx[1]]
    rim = known & (dist <= 1.5)
    ids = np.arange(1, count + 1)
    safe = np.where(known, depth, 0.0)
    near = np.asarray(ndimage.minimum(safe, np.where(rim, owner, 0), ids), dtype=np.float64)
    far = np.asarray(ndimage.maximum(safe, np.where(rim, owner, 0), ids), dtype=np.float64)
    near_of = np.concatenate([[0.0], np.nan_to_num(near)])
    far_of = np.concatenate([[0.0], np.nan_to_num(far)])
    occluded = far_of > near_of * (1.0 + jump)
    occluded[0] = False
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    occluded[border] = False
    # cracks (a few px) are splatting gaps on one surface, not disocclusions
    occluded &= np.bincount(labels.ravel(), minlength=count + 1) >= MIN_HOLE
    # the far side must be right across the hole (within LOCAL_REACH px), not somewhere along a slanted rim
    local_far = ndimage.maximum_filter(np.where(rim, depth, 0.0), size=2 * LOCAL_REACH + 1)
    band = known & (dist <= OCCLUDER_BAND) & occluded[owner]
    return band & (depth <= near_of[owner] * (1.0 + margin)) & (depth * (1.0 + jump) < local_far)


def background_fill(
    image: np.ndarray,
    depth: np.ndarray,
    holes: np.ndarray,
    margin: float = BACKGROUND_MARGIN,
    jump: float = OCCLUDER_JUMP,
) -> np.ndarray:
    """Inpaint `holes` from the background side only (see module doc).

    Only where a hole borders an occluder (`foreground_near_holes`) is that
    occluder's edge treated as unknown too, so the warp's mixed edge pixels do
    not smear into the hole; every other hole (border, crack, slanted surface)
    is exactly OpenCV's Telea inpainting.
    """
    import cv2

    if not holes.any():
        return image.copy()
    foreground = foreground_near_holes(depth, holes, margin, jump)
    # the occluder's edge is unknown too: Telea then reaches the hole only from the background side
    filled = cv2.inpaint(image, (holes | foreground).astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
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
