"""A model-agnostic temporal stabiliser for per-frame disparity (relative or 1/metres).

Why: an image model run frame by frame gives maps whose overall scale and
offset jump from frame to frame (flicker), even on a static camera, and
normalising each frame by its own range makes it worse. This module never
normalises per frame. It works in disparity space, where both relative models
(affine-invariant disparity) and metric ones (1/depth) are affine-related
from frame to frame:

1. Correspondences: OpenCV's DIS optical flow between consecutive frames in
   both directions, kept where forward and backward flow agree (a pixel that
   maps to t-1 and back lands where it started). Few consistent pixels mean a
   scene cut; the shot restarts there.
2. Pairwise alignment: a robust (trimmed) symmetric scale/shift that maps
   frame t's raw disparity onto frame t-1's at the corresponding pixels (nearest
   sampling: interpolation would smooth one side and bias the scale).
3. Real change of disparity: the flow's own expansion (1/sqrt(det) of a robust
   affine fit of the matches). A camera that approaches a point by a fraction of
   its depth sees it grow in the image by the same factor as its disparity, so
   this measures the real change without the depth maps, which carry the
   jitter. Without it every approach or retreat is taken for jitter and frozen
   (issue 22: the design before it froze the level of tracked points).
4. Smoothing: the per-frame transform T_t (d -> a_t d + b_t) is the state of a
   linear Kalman filter: chaining the pairwise alignments times the growth
   predicts it (precise but drifts), and "the raw frame is right on average"
   (T_t = identity, noisy by the model's own jitter) corrects it. The jitter
   (measurement noise) is learnt from the innovations over a bounded window, so
   a model that flickers more is trusted less, whatever `level_noise` guessed.
   `streaming` uses the causal filter; `offline` adds the Rauch-Tung-Striebel
   backward pass over a look-ahead window (the whole shot for arrays).
5. Per-pixel blending toward the flow-warped previous stabilised frame, scaled
   by the growth, where the flow is consistent and the two agree, which removes
   the remaining pixel noise without smearing moving objects.

Unknown pixels (0 or NaN) stay unknown. Memory is bounded by the look-ahead.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import OptionError

MODES = ("offline", "streaming")
JITTER_PRIOR_FRAMES = 4
"""Weight, in frames, of `level_noise` in the running estimate of the model's jitter."""
JITTER_WINDOW = 48
"""Frames over which the jitter estimate forgets (bounded state; follows a change of content)."""


@dataclass(frozen=True, kw_only=True)
class StabilizerSettings:
    """Knobs of the stabiliser; the defaults are the ones measured in the README."""

    mode: str = "offline"
    lookahead: int = 24
    """Offline: frames of look-ahead for the smoother (bounded memory in the video job)."""
    blend: float = 0.5
    """Weight of the flow-warped previous frame where the flow is consistent (0 = no blending)."""
    level_noise: float = 0.2
    """Prior guess of the model's relative frame-to-frame jitter (Kalman measurement noise); the
    stabiliser replaces it by what it measures as frames come (`JITTER_WINDOW`)."""
    chain_noise: float = 0.005
    """Expected relative error of one pairwise alignment (Kalman process noise)."""
    flow_size: int = 320
    """Long side (pixels) at which optical flow is computed."""
    fb_threshold_px: float = 1.0
    """Forward-backward disagreement (pixels at flow resolution) above which flow is not trusted."""
    agree_threshold: float = 0.15
    """Relative difference above which a pixel is not blended (moving object, occlusion)."""
    cut_fraction: float = 0.25
    """Fraction of consistent, valid pixels below which a frame starts a new shot."""
    photo_threshold: float = 24.0
    """Grey-level difference (0-255) above which a flow correspondence is not trusted."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"unknown stabiliser mode {self.mode!r}; choose {' or '.join(MODES)}")
        if self.lookahead < 0:
            raise OptionError("stabiliser look-ahead must be >= 0")
        if not 0.0 <= self.blend < 1.0:
            raise OptionError("stabiliser blend must be in [0, 1)")
        for name in ("level_noise", "chain_noise", "fb_threshold_px", "agree_threshold", "photo_threshold"):
            if not getattr(self, name) > 0:
                raise OptionError(f"stabiliser {name} must be positive")
        if self.flow_size < 16:
            raise OptionError("stabiliser flow_size must be at least 16 pixels")
        if not 0.0 <= self.cut_fraction < 1.0:
            raise OptionError("stabiliser cut_fraction must be in [0, 1)")

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class FrameState:
    """What the stabiliser keeps for one frame until it is emitted."""

    disparity: np.ndarray
    """Raw disparity, float32 HxW, NaN = unknown."""
    rgb: np.ndarray
    flow: np.ndarray | None = None
    """Flow at flow resolution from this frame to the previous one (x, y offsets)."""
    consistent: np.ndarray | None = None
    """Float mask at flow resolution: forward-backward consistent."""
    pair: tuple[float, float] = (1.0, 0.0)
    """(alpha, beta): previous raw ~ alpha * this raw + beta."""
    cut: bool = True
    reliable_fraction: float = 0.0
    growth: float = 1.0
    """Real disparity change from the previous frame (the image's expansion, `image_expansion`)."""
    x_pred: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0]))
    p_pred: np.ndarray = field(default_factory=lambda: np.eye(2))
    x_filt: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0]))
    p_filt: np.ndarray = field(default_factory=lambda: np.eye(2))
    transition: np.ndarray = field(default_factory=lambda: np.eye(2))


@dataclass
class Stabilized:
    """One emitted frame: stabilised disparity and what was done to it."""

    disparity: np.ndarray
    scale: float
    shift: float
    cut: bool
    reliable_fraction: float


def _to_disparity(values: np.ndarray) -> np.ndarray:
    d = np.asarray(values, dtype=np.float32).copy()
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


def _gray(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2  # imported on use: `sharpdepth --help` must not pay for OpenCV

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _sample(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, border: float = np.nan) -> np.ndarray:
    """Bilinear sampling; NaN where any neighbour is NaN or outside."""
    import cv2  # imported on use: `sharpdepth --help` must not pay for OpenCV

    valid = np.isfinite(img).astype(np.float32)
    filled = np.where(np.isfinite(img), img, 0.0).astype(np.float32)
    val = cv2.remap(filled, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    ok = cv2.remap(valid, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out = np.where(ok > 0.999, val, border)
    return out.astype(np.float32)


def _sample_nearest(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Nearest-pixel sampling, NaN outside. Why not bilinear: interpolating averages the
    neighbours' noise away, so the matched side of a fit would look smoother than the other
    and every pairwise scale would be biased low (and the chain of them drift)."""
    h, w = img.shape
    xi, yi = np.rint(map_x).astype(np.int64), np.rint(map_y).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = np.full(map_x.shape, np.nan, dtype=np.float32)
    out[inside] = img[yi[inside], xi[inside]]
    return out


def robust_affine(src: np.ndarray, dst: np.ndarray, iterations: int = 3) -> tuple[float, float] | None:
    """(a, b) with dst ~ a*src + b over the inliers (trimmed at 2.5 MAD each round).

    Both maps are noisy, so ordinary least squares would shrink `a` a little
    every frame and the chained transforms would drift; the symmetric
    (reduced-major-axis) fit, a = sign(cov) * std(dst) / std(src), has no such bias.
    """
    keep = np.ones(src.shape, dtype=bool)
    a, b = 1.0, 0.0
    for _ in range(iterations + 1):
        if keep.sum() < 16:
            return None
        s, d = src[keep].astype(np.float64), dst[keep].astype(np.float64)
        sm, dm = s.mean(), d.mean()
        cov = float(np.mean((s - sm) * (d - dm)))
        ss, ds = float(s.std()), float(d.std())
        if ss <= 0 or ds <= 0 or cov <= 0:
            return None
        a = ds / ss
        b = float(dm - a * sm)
        resid = np.abs(a * src + b - dst)
        mad = float(np.median(resid[keep])) + 1e-12
        keep = resid <= 2.5 * 1.4826 * mad
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        return None
    return a, b


def _growth_of(affine: np.ndarray) -> float | None:
    det = float(np.linalg.det(affine[:2, :2]))
    return 1.0 / math.sqrt(det) if math.isfinite(det) and det > 0 else None


def image_expansion(
    xs: np.ndarray, ys: np.ndarray, mx: np.ndarray, my: np.ndarray, iterations: int = 3
) -> float | None:
    """How much the image grows from the matched frame to this one: 1 / sqrt(det A) of the robust
    2-D affine fit (mx, my) ~ A (xs, ys) + t of this frame's pixels to their matches.

    Why: a point the camera approaches by a fraction of its depth grows in the image by the same
    factor as its disparity (u - u0 = f X / Z about the focus of expansion), so the flow's
    expansion is the real change of disparity between the frames, measured without the depth
    maps (which carry the jitter). Sideways motion, panning and rolling leave det A at ~1.
    """
    src = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
    dst = np.stack([mx, my], axis=1).astype(np.float64)
    keep = np.ones(len(src), dtype=bool)
    sol = None
    for _ in range(iterations + 1):
        if keep.sum() < 16:
            return None
        sol, *_ = np.linalg.lstsq(src[keep], dst[keep], rcond=None)
        resid = np.hypot(*(src @ sol - dst).T)
        keep = resid <= max(2.5 * 1.4826 * float(np.median(resid[keep])), 0.25)
    assert sol is not None
    return _growth_of(sol.T)


class Stabilizer:
    """Push raw frames in order, get stabilised frames out in order (after the look-ahead).

    `push` returns the frames that became final; `flush` returns the rest.
    `prime` seeds it with an already-stabilised previous frame (resuming a run).
    """

    def __init__(self, settings: StabilizerSettings | None = None) -> None:
        import cv2  # imported on use: `sharpdepth --help` must not pay for OpenCV

        self.settings = settings or StabilizerSettings()
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        self.pending: deque[FrameState] = deque()
        self.last_raw: FrameState | None = None
        self.last_gray: np.ndarray | None = None
        self.last_out: np.ndarray | None = None
        self.level = 1.0
        # Running estimate of the model's own jitter (the measurement noise), from the innovations:
        # a prior worth JITTER_PRIOR_FRAMES frames, then an exponential window of JITTER_WINDOW frames.
        self.jitter_sum = JITTER_PRIOR_FRAMES * np.array([self.settings.level_noise**2] * 2)
        self.jitter_weight = float(JITTER_PRIOR_FRAMES)
        self.small: tuple[int, int] | None = None
        self.lag = 0 if self.settings.mode == "streaming" else self.settings.lookahead

    # ---------------------------------------------------------------- public
    def push(self, disparity: np.ndarray, rgb: np.ndarray) -> list[Stabilized]:
        state = self._arrive(_to_disparity(disparity), np.asarray(rgb))
        self.pending.append(state)
        out = []
        while len(self.pending) > self.lag:
            out.append(self._emit())
        return out

    def flush(self) -> list[Stabilized]:
        out = []
        while self.pending:
            out.append(self._emit())
        return out

    def prime(self, disparity: np.ndarray, rgb: np.ndarray) -> None:
        """Continue after a frame that is already stabilised (its transform is the identity, trusted)."""
        if self.pending:
            raise RuntimeError("prime() only before pushing frames")
        d = _to_disparity(disparity)
        state = self._arrive(d, np.asarray(rgb))
        q = self._q(state)
        state.x_filt, state.p_filt = np.array([1.0, 0.0]), q
        self.last_out = d

    # ---------------------------------------------------------------- internals
    def _noise(self, level_rel: float) -> np.ndarray:
        return np.diag([level_rel**2, (level_rel * self.level) ** 2])

    def _q(self, state: FrameState) -> np.ndarray:
        return self._noise(self.settings.chain_noise)

    def _arrive(self, d: np.ndarray, rgb: np.ndarray) -> FrameState:
        h, w = d.shape
        if rgb.shape[:2] != (h, w):
            raise ValueError(f"frame {rgb.shape[:2]} and disparity {d.shape} differ in size")
        if self.small is None:
            scale = min(1.0, self.settings.flow_size / max(h, w))
            self.small = (max(8, round(w * scale)), max(8, round(h * scale)))
        gray = _gray(rgb, self.small)
        state = FrameState(disparity=d, rgb=rgb)
        prev = self.last_raw
        if prev is not None and self.last_gray is not None:
            self._pair(state, prev, gray)
        if state.cut:
            finite = d[np.isfinite(d)]
            self.level = float(np.median(finite)) if finite.size else 1.0
        self._filter(state, prev)
        self.last_raw, self.last_gray = state, gray
        return state

    def _pair(self, state: FrameState, prev: FrameState, gray: np.ndarray) -> None:
        import cv2  # imported on use: `sharpdepth --help` must not pay for OpenCV

        assert self.small is not None and self.last_gray is not None
        sw, sh = self.small
        fwd = self.flow.calc(gray, self.last_gray, None)  # this frame -> previous
        bwd = self.flow.calc(self.last_gray, gray, None)
        xs, ys = _grid(sh, sw)
        mx, my = xs + fwd[..., 0], ys + fwd[..., 1]
        back_x = cv2.remap(bwd[..., 0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1e6)
        back_y = cv2.remap(bwd[..., 1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1e6)
        err = np.hypot(fwd[..., 0] + back_x, fwd[..., 1] + back_y)
        inside = (mx >= 0) & (mx <= sw - 1) & (my >= 0) & (my <= sh - 1)
        consistent = inside & (err < self.settings.fb_threshold_px + 0.05 * np.hypot(fwd[..., 0], fwd[..., 1]))
        # Photometric check: the flow must also bring back the same brightness (fails across cuts).
        seen = cv2.remap(self.last_gray, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        consistent &= np.abs(seen.astype(np.float32) - gray.astype(np.float32)) < self.settings.photo_threshold
        cur_small = cv2.resize(state.disparity, (sw, sh), interpolation=cv2.INTER_NEAREST)
        prev_small = cv2.resize(prev.disparity, (sw, sh), interpolation=cv2.INTER_NEAREST)
        warped = _sample_nearest(prev_small, mx, my)
        reliable = consistent & np.isfinite(cur_small) & np.isfinite(warped)
        state.reliable_fraction = float(reliable.mean())
        state.flow, state.consistent = fwd, consistent.astype(np.float32)
        if state.reliable_fraction < self.settings.cut_fraction:
            return
        fit = robust_affine(cur_small[reliable], warped[reliable])
        if fit is None:
            return
        step = max(1, int(math.sqrt(reliable.sum() / 4000)))
        sub = reliable[::step, ::step]
        every = (slice(None, None, step), slice(None, None, step))
        grow = image_expansion(xs[every][sub], ys[every][sub], mx[every][sub], my[every][sub])
        state.pair, state.cut = fit, False
        state.growth = 1.0 if grow is None else grow

    def _measurement_noise(self) -> np.ndarray:
        """R: the jitter measured so far, relative (scale) and in units of the shot's level (shift)."""
        rel = self.jitter_sum / self.jitter_weight
        return np.diag([rel[0], rel[1] * self.level**2])

    def _learn_jitter(self, innovation: np.ndarray, p_pred: np.ndarray) -> None:
        """Fold one frame's innovation into the jitter estimate: E[innovation^2] = P_pred + R."""
        sample = np.maximum(innovation**2 - np.diag(p_pred), 0.0) / np.array([1.0, self.level**2])
        keep = 1.0 - 1.0 / JITTER_WINDOW
        self.jitter_sum = keep * self.jitter_sum + np.minimum(sample, 4.0)
        self.jitter_weight = keep * self.jitter_weight + 1.0

    def _filter(self, state: FrameState, prev: FrameState | None) -> None:
        r = self._measurement_noise()
        z = np.array([1.0, 0.0])
        if state.cut or prev is None:
            # A shot is anchored to its first frame (small initial uncertainty): letting each new
            # frame pull the level halfway toward its own raw value is the flicker we remove.
            # Measured on TUM: anchoring beats a loose start in both modes (README table).
            start = self._q(state)
            state.x_pred, state.p_pred = z.copy(), start.copy()
            state.x_filt, state.p_filt = z.copy(), start.copy()
            return
        alpha, beta = state.pair
        # T_t(d) = T_{t-1}(alpha d + beta): a_t = alpha a_{t-1}, b_t = beta a_{t-1} + b_{t-1}.
        f = state.growth * np.array([[alpha, 0.0], [beta, 1.0]])
        state.transition = f
        state.x_pred = f @ prev.x_filt
        state.p_pred = f @ prev.p_filt @ f.T + self._q(state)
        gain = state.p_pred @ np.linalg.inv(state.p_pred + r)
        state.x_filt = state.x_pred + gain @ (z - state.x_pred)
        self._learn_jitter(z - state.x_pred, state.p_pred)
        state.p_filt = (np.eye(2) - gain) @ state.p_pred

    def _smoothed(self) -> np.ndarray:
        """RTS smoothing of the oldest pending frame's transform using the frames after it."""
        frames = list(self.pending)
        end = len(frames)
        for i in range(1, len(frames)):
            if frames[i].cut:
                end = i
                break
        x = frames[end - 1].x_filt
        for i in range(end - 2, -1, -1):
            cur, nxt = frames[i], frames[i + 1]
            c = cur.p_filt @ nxt.transition.T @ np.linalg.inv(nxt.p_pred)
            x = cur.x_filt + c @ (x - nxt.x_pred)
        return x

    def _emit(self) -> Stabilized:
        state = self.pending[0]
        x = self._smoothed() if self.lag > 0 else state.x_filt
        self.pending.popleft()
        a, b = float(x[0]), float(x[1])
        out = a * state.disparity + b
        if not state.cut and self.last_out is not None and self.settings.blend > 0 and state.flow is not None:
            out = self._blend(out, state)
        self.last_out = out
        return Stabilized(out.astype(np.float32), a, b, state.cut, state.reliable_fraction)

    def _blend(self, out: np.ndarray, state: FrameState) -> np.ndarray:
        import cv2  # imported on use: `sharpdepth --help` must not pay for OpenCV

        assert self.last_out is not None and state.flow is not None and state.consistent is not None
        h, w = out.shape
        sh, sw = state.flow.shape[:2]
        flow = cv2.resize(state.flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / sw
        flow[..., 1] *= h / sh
        xs, ys = _grid(h, w)
        # The previous frame's points have come closer or gone farther since: their disparity
        # now is the previous one times the measured growth (blending toward the plain warp
        # would pull every frame of an approach back toward the previous level).
        warped = _sample(self.last_out, xs + flow[..., 0], ys + flow[..., 1]) * np.float32(state.growth)
        weight = cv2.resize(state.consistent, (w, h), interpolation=cv2.INTER_LINEAR) * self.settings.blend
        agree = np.abs(out - warped) <= self.settings.agree_threshold * np.abs(warped)
        weight = np.where(np.isfinite(out) & np.isfinite(warped) & agree, weight, 0.0)
        blended = (1.0 - weight) * out + weight * np.where(np.isfinite(warped), warped, 0.0)
        return np.where(np.isfinite(out), blended, np.nan).astype(np.float32)


def stabilize_stream(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], settings: StabilizerSettings | None = None
) -> Iterator[Stabilized]:
    """Stabilise (disparity, rgb) pairs as they come; yields in order, memory bounded by the look-ahead."""
    stab = Stabilizer(settings)
    for disparity, rgb in pairs:
        yield from stab.push(disparity, rgb)
    yield from stab.flush()


def stabilize(
    disparity: np.ndarray,
    frames: np.ndarray,
    mode: str = "offline",
    settings: StabilizerSettings | None = None,
) -> np.ndarray:
    """Temporally stabilise per-frame disparity (TxHxW float; 0 or NaN = unknown) of frames (TxHxWx3 uint8).

    `offline` co-aligns the whole shot (non-causal smoothing); `streaming` is
    causal (each frame depends only on itself and earlier ones). Returns TxHxW
    float32 with unknown pixels as NaN. Works on any model's relative disparity
    or metric 1/depth.
    """
    disparity = np.asarray(disparity)
    frames = np.asarray(frames)
    if disparity.ndim != 3:
        raise OptionError(f"disparity must be TxHxW, got shape {disparity.shape}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[:3] != disparity.shape:
        raise OptionError(f"frames must be TxHxWx3 matching the disparity {disparity.shape}, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise OptionError(f"frames must be uint8, got {frames.dtype}")
    base = settings or StabilizerSettings()
    chosen = replace(base, mode=mode, lookahead=len(disparity))
    out = np.empty(disparity.shape, dtype=np.float32)
    for i, frame in enumerate(stabilize_stream(zip(disparity, frames, strict=True), chosen)):
        out[i] = frame.disparity
    return out
