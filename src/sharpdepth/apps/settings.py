"""Settings of the effect jobs (depth of field, portrait, parallax, stereo): where their defaults live.

Every front end — the command line, the HTTP service — builds these same
objects from its own kind of input and hands them to the effect functions;
none of them restates a default or re-implements a check. They are plain
data: keyword-only, frozen, built from numbers, strings and tuples, and
validated on construction (`OptionError`), so a bad value fails before a photo
is decoded or a network is loaded.

Units are in the field names: `_m` metres, `_mm` millimetres (lens and sensor),
`_px` pixels, `_s` seconds; a pixel position is `(x, y)` = (column, row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

from ..errors import OptionError
from ..maps import Range

# ---------------------------------------------------------------- shared constants
FULL_FRAME_WIDTH_MM = 36.0
"""Width of a full-frame (3:2) sensor: the sensor the 35 mm-equivalent focal length refers to."""
KERNEL_SHAPES = ("disc", "hexagon")
DEFAULT_MAX_BLUR_FRACTION = 0.08
"""Default blur cap: a blur diameter of at most 8 % of the image's longer side."""
PATHS = ("zoom-in", "dolly-zoom", "circle", "swing", "horizontal", "vertical")
DEFAULT_AMPLITUDE = {
    "zoom-in": 0.15,
    "dolly-zoom": 0.3,
    "circle": 0.03,
    "swing": 0.04,
    "horizontal": 0.04,
    "vertical": 0.03,
}
MIN_VIDEO_SIZE_PX = 16
DEFAULT_INTERAXIAL_MM = 63.0
"""Mean adult interpupillary distance."""
DEFAULT_CONVERGENCE_M = 2.0
"""Screen plane of a headset's virtual screen."""
DEFAULT_MAX_DISPARITY_FRACTION = 0.03
"""Relative results: the nearest things get a disparity of 3 % of the image width."""
STEREO_LAYOUTS = ("sbs", "half-sbs", "tb", "half-tb", "anaglyph", "vr180", "spatial-heic", "pair")
VIDEO_STEREO_LAYOUTS = ("sbs", "half-sbs", "tb", "half-tb", "anaglyph", "vr180")
ANAGLYPH_MODES = ("dubois", "color", "half-color", "gray")
STEREO_FILLS = ("stretch", "inpaint", "depth-aware")
STEREO_SOURCES = ("depth", "splat")

# ---------------------------------------------------------------- documented ranges
# Checked on construction (`Range.check`, `OutOfRangeError`; HTTP 422): a value outside them is
# refused by every front end instead of rendering nonsense (e.g. focus at 1e308 m: an all-black picture).
F_NUMBER = Range(0.5, 64.0)
"""Aperture f-number: the fastest lenses made (f/0.95) with room to spare, up to pinhole-like f/64."""
FOCAL_LENGTH_MM = Range(1.0, 2000.0, "mm")
"""Simulated focal length: fisheye to super-telephoto."""
SENSOR_WIDTH_MM = Range(1.0, 300.0, "mm")
"""Simulated sensor width: phone sensors to large format."""
MAX_BLUR_PX = Range(0.0, 1e4, "px")
"""Blur diameter cap; 1e4 px is beyond the longest side of the largest photo accepted."""
HIGHLIGHT_BOOST = Range(0.0, 16.0)
"""Gain for clipped highlights in the blur (0 = off)."""
DISTANCE_M = Range(0.0, 1e4, "m", low_open=True)
"""Focus, pivot and convergence distances: beyond 10 km every photographed scene is at infinity."""
FOCUS_WINDOW_PX = Range(1, 255, "px", integer=True)
"""Side of the square over which the focus pixel's depth is the median."""
SUBJECT_TOLERANCE = Range(0.0, 1.0, low_open=True)
"""Disparity range of the subject around the picked pixel, in normalised disparity (0..1)."""
AMPLITUDE = Range(0.0, 0.9)
"""Camera motion as a fraction of the pivot depth; at 1 a zoom-in would reach the pivot."""
DURATION_S = Range(0.0, 600.0, "s", low_open=True)
FPS = Range(0.0, 240.0, "fps", low_open=True)
VIDEO_SIZE_PX = Range(MIN_VIDEO_SIZE_PX, 8192, "px", integer=True)
"""Longest side of a parallax video (H.264 level limits end around 8K)."""
INTERAXIAL_MM = Range(0.0, 1e5, "mm")
"""Camera distance: 0 (no depth) to 100 m hyperstereo for landscapes."""
MAX_DISPARITY_FRACTION = Range(0.0, 0.5)
"""Parallax of the nearest things as a fraction of the width (below one half)."""


# ---------------------------------------------------------------- checks (one message each)
def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise OptionError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_positive(value: float, what: str) -> float:
    """`value` as a float if finite and > 0, else OptionError naming `what` (with its unit)."""
    if not _finite(value, what) > 0:
        raise OptionError(f"{what} must be positive, got {value:g}")
    return float(value)


def check_non_negative(value: float, what: str) -> float:
    if not _finite(value, what) >= 0:
        raise OptionError(f"{what} must be >= 0, got {value:g}")
    return float(value)


def check_flag(value: bool, what: str) -> None:
    """A yes/no setting must be a real bool (the string "false" from a request would read as true)."""
    if not isinstance(value, bool):
        raise OptionError(f"{what} must be true or false, got {value!r}")


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise OptionError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")
    return value


def check_pixel(pixel: Sequence[float], what: str) -> tuple[float, float]:
    """A pixel (x, y) as a tuple of floats (a JSON list is accepted too), or OptionError."""
    if isinstance(pixel, str) or not isinstance(pixel, Sequence) or len(pixel) != 2:
        raise OptionError(f"{what} must be a pixel (x, y), got {pixel!r}")
    return _finite(pixel[0], what), _finite(pixel[1], what)


def check_camera_path(kind: str, amplitude: float | None) -> None:
    """The camera path and its amplitude (fraction of the pivot depth, >= 0)."""
    check_choice(kind, PATHS, "camera path")
    if amplitude is not None:
        AMPLITUDE.check(amplitude, "amplitude (fraction of the pivot depth)")


# ---------------------------------------------------------------- depth of field
@dataclass(frozen=True, kw_only=True)
class LensSettings:
    """The simulated lens and renderer, shared by depth of field and portrait mode."""

    f_number: float = 2.0
    """Aperture f-number N (aperture diameter = focal length / N)."""
    focal_length_mm: float | None = None
    """Simulated lens; None: the photo's own 35 mm-equivalent focal length (from `focal_px`)."""
    sensor_width_mm: float = FULL_FRAME_WIDTH_MM
    """Width of the (3:2) sensor simulated; the pixel pitch is its diagonal over the image diagonal."""
    max_blur_px: float | None = None
    """Blur cap (diameter, px); for relative results the blur at the far end. None: 8 % of the longer side."""
    shape: str = "disc"
    """Aperture: disc or hexagon."""
    highlight_boost: float = 1.0
    """Gain for clipped highlights in the blur (bright bokeh discs); 0 = off."""

    def __post_init__(self) -> None:
        F_NUMBER.check(self.f_number, "f-number")
        if self.focal_length_mm is not None:
            FOCAL_LENGTH_MM.check(self.focal_length_mm, "focal length")
        SENSOR_WIDTH_MM.check(self.sensor_width_mm, "sensor width")
        if self.max_blur_px is not None:
            MAX_BLUR_PX.check(self.max_blur_px, "maximum blur")
        check_choice(self.shape, KERNEL_SHAPES, "bokeh shape")
        HIGHLIGHT_BOOST.check(self.highlight_boost, "highlight boost")

    @property
    def sensor_diagonal_mm(self) -> float:
        """Diagonal of a 3:2 sensor `sensor_width_mm` wide (43.27 mm for full frame)."""
        return self.sensor_width_mm * math.hypot(3.0, 2.0) / 3.0

    def blur_cap_px(self, height: int, width: int) -> float:
        """The blur cap for an image of this size (the same for either orientation)."""
        if self.max_blur_px is not None:
            return float(self.max_blur_px)
        return DEFAULT_MAX_BLUR_FRACTION * max(height, width)


@dataclass(frozen=True, kw_only=True)
class DofSettings(LensSettings):
    """Refocusing (`sharpdepth dof`): the lens plus what to focus on — exactly one of the two."""

    focus_m: float | None = None
    """Focus distance in metres (metric results)."""
    focus_px: tuple[float, float] | None = None
    """Or focus on the surface at this pixel (x, y), its robust depth over `focus_window`."""
    focus_window: int = 9
    """Median over this many pixels square around `focus_px`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.focus_m is not None and self.focus_px is not None:
            raise OptionError("give either a focus distance or a focus pixel, not both")
        if self.focus_m is None and self.focus_px is None:
            raise OptionError("choose what to focus on: a distance in metres (--focus-m) or a pixel (--focus-px)")
        if self.focus_m is not None:
            DISTANCE_M.check(self.focus_m, "focus distance")
            if self.focal_length_mm is not None and not self.focus_m * 1000.0 > self.focal_length_mm:
                raise OptionError(
                    f"focus distance {self.focus_m:g} m is inside the lens's focal length ({self.focal_length_mm:g} mm)"
                )
        if self.focus_px is not None:
            object.__setattr__(self, "focus_px", check_pixel(self.focus_px, "focus pixel"))
        FOCUS_WINDOW_PX.check(self.focus_window, "focus window")


@dataclass(frozen=True, kw_only=True)
class PortraitSettings(LensSettings):
    """Portrait mode (`sharpdepth portrait`): the lens plus how the subject is found."""

    f_number: float = 1.8
    """Portraits default to a wider aperture than refocusing."""
    subject_px: tuple[float, float] | None = None
    """A pixel (x, y) on the subject; None: the nearest large region of the depth map."""
    subject_tolerance: float = 0.12
    """With `subject_px`: the subject's disparity range around the picked one (normalised disparity, 0..1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.subject_px is not None:
            object.__setattr__(self, "subject_px", check_pixel(self.subject_px, "subject pixel"))
        SUBJECT_TOLERANCE.check(self.subject_tolerance, "subject tolerance")

    def dof(self, focus_px: tuple[float, float], max_blur_px: float) -> DofSettings:
        """The depth-of-field settings that render the background (focused on the subject pixel)."""
        return DofSettings(
            f_number=self.f_number, focal_length_mm=self.focal_length_mm, sensor_width_mm=self.sensor_width_mm,
            max_blur_px=max_blur_px, shape=self.shape, highlight_boost=self.highlight_boost,
            focus_px=focus_px, focus_window=1,
        )  # fmt: skip


# ---------------------------------------------------------------- parallax video
@dataclass(frozen=True, kw_only=True)
class ParallaxSettings:
    """3D-photo video (`sharpdepth parallax`)."""

    path: str = "circle"
    """Camera path: zoom-in, dolly-zoom, circle, swing, horizontal or vertical."""
    amplitude: float | None = None
    """Camera motion as a fraction of the pivot depth; None: the path's default."""
    loop: bool = True
    """A seamless loop (else one way)."""
    duration_s: float = 3.0
    fps: float = 30.0
    max_size_px: int | None = 1024
    """Longest side of the video (at least 16); None: the photo's size."""
    pivot_m: float | None = None
    """Depth that stays still (metres, or pseudo-depth for relative results); None: from the scene."""
    crop: bool = True
    """Zoom in just enough that the path never uncovers the picture's borders."""
    source: str = "depth"
    """depth (warp the picture by its depth) or splat (render SHARP Gaussians: `apps.splat_views`)."""

    def __post_init__(self) -> None:
        check_camera_path(self.path, self.amplitude)
        check_choice(self.source, STEREO_SOURCES, "parallax source")
        check_flag(self.loop, "loop")
        check_flag(self.crop, "crop")
        DURATION_S.check(self.duration_s, "duration")
        FPS.check(self.fps, "frame rate")
        if self.max_size_px is not None:
            VIDEO_SIZE_PX.check(self.max_size_px, "video size")
        if self.pivot_m is not None:
            DISTANCE_M.check(self.pivot_m, "pivot depth")

    @property
    def frames(self) -> int:
        """Number of frames: duration x fps, at least one."""
        return max(1, round(self.duration_s * self.fps))


# ---------------------------------------------------------------- stereo
@dataclass(frozen=True, kw_only=True)
class StereoSettings:
    """Stereo conversion (`sharpdepth stereo`, photos and videos): geometry, layout, anaglyph, fill.

    Geometry is physical for metric results: the eyes `interaxial_mm` apart, and
    the screen (zero-parallax) plane at `convergence_m`; a point at depth z then
    has a parallax of f * B * (1/z - 1/c) pixels (crossed, in front of the
    screen, when z < c). The defaults are comfortable for a headset's virtual
    screen: 63 mm (the mean adult interpupillary distance) and 2 m (about where
    headset players place their virtual screen; nearer things come out of it,
    farther ones recede behind it). `math.inf` gives parallel cameras.
    Relative results have no metres: the nearest things get a parallax of
    `max_disparity` x the image width, the farthest none (at the screen).
    """

    interaxial_mm: float | None = None
    """Distance between the two cameras (metric results); None: 63 mm."""
    convergence_m: float | None = None
    """Depth of the screen plane (metric results); None: 2 m; inf: parallel cameras."""
    max_disparity: float | None = None
    """Relative results: parallax of the nearest things as a fraction of the width; None: 0.03."""
    center: bool = True
    """The photo is the middle view (each eye half the interaxial away); else it is the left eye."""
    layout: str = "anaglyph"
    """sbs, half-sbs, tb, half-tb, anaglyph, vr180, spatial-heic (photos) or pair (two pictures)."""
    anaglyph: str = "dubois"
    """dubois (least-squares, Dubois 2001), color, half-color or gray."""
    fill: str = "depth-aware"
    """How disoccluded pixels are filled: stretch, inpaint (OpenCV Telea) or depth-aware."""
    source: str = "depth"
    """depth (warp the picture by its depth) or splat (render SHARP Gaussians; needs SHARP)."""

    def __post_init__(self) -> None:
        if self.interaxial_mm is not None:
            INTERAXIAL_MM.check(self.interaxial_mm, "interaxial distance")
        if self.convergence_m is not None and self.convergence_m != math.inf:
            DISTANCE_M.check(self.convergence_m, "convergence distance")
        if self.max_disparity is not None:
            MAX_DISPARITY_FRACTION.check(self.max_disparity, "maximum disparity (fraction of the width)")
            if not self.max_disparity < 0.5:
                raise OptionError(
                    f"maximum disparity is a fraction of the width, below 0.5; got {self.max_disparity:g}"
                )
            if self.interaxial_mm is not None or self.convergence_m is not None:
                raise OptionError(
                    "give millimetres and metres (interaxial, convergence) for a metric result or --max-disparity "
                    "for a relative one, not both"
                )
        check_flag(self.center, "center")
        check_choice(self.layout, STEREO_LAYOUTS, "stereo layout")
        check_choice(self.anaglyph, ANAGLYPH_MODES, "anaglyph mode")
        check_choice(self.fill, STEREO_FILLS, "fill")
        check_choice(self.source, STEREO_SOURCES, "stereo source")

    @property
    def interaxial_m(self) -> float:
        return (DEFAULT_INTERAXIAL_MM if self.interaxial_mm is None else float(self.interaxial_mm)) / 1000.0

    @property
    def screen_m(self) -> float:
        """Convergence distance in metres (inf: parallel cameras)."""
        return DEFAULT_CONVERGENCE_M if self.convergence_m is None else float(self.convergence_m)

    @property
    def disparity_fraction(self) -> float:
        return DEFAULT_MAX_DISPARITY_FRACTION if self.max_disparity is None else float(self.max_disparity)
