"""Effects from depth on synthetic scenes whose optics and geometry are known exactly."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
from scipy import ndimage

from sharpdepth.apps.common import srgb_to_linear
from sharpdepth.apps.dof import DofSettings, depth_of_field
from sharpdepth.apps.parallax import PATHS, CameraPath, parallax_video, plan_parallax, render_frames
from sharpdepth.apps.portrait import find_subject, portrait, refine_matte
from sharpdepth.apps.settings import ParallaxSettings, PortraitSettings, StereoSettings
from sharpdepth.apps.stereo import anaglyph, side_by_side, stereo_pair
from sharpdepth.apps.warp import render_view
from sharpdepth.cli.main import main
from sharpdepth.errors import OptionError, RelativeDepthError
from sharpdepth.geometry.camera import Camera
from sharpdepth.result import DepthResult, OutputKind


def metric(depth, image, focal) -> DepthResult:
    return DepthResult(np.asarray(depth, np.float32), OutputKind.METRIC_DEPTH, focal_px=focal, image=image,
                       model_name="synthetic")  # fmt: skip


def lin(rgb: np.ndarray) -> np.ndarray:
    return srgb_to_linear(rgb)


def texture(h: int, w: int, seed: int = 0, sigma: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random((h, w, 3)), (sigma, sigma, 0))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (40 + 170 * noise).astype(np.uint8)


# ---------------------------------------------------------------- depth of field
def test_in_focus_plane_is_unchanged():
    img = texture(60, 80)
    out = depth_of_field(metric(np.full((60, 80), 3.0), img, 70.0), DofSettings(focus_m=3.0, f_number=1.4))
    assert np.abs(out.image.astype(int) - img).max() <= 1
    assert np.abs(out.coc_px).max() == 0


def _edge_blur_radius(rgb: np.ndarray) -> float:
    """Disc radius from a blurred vertical step edge: the line-spread function of a disc of radius R
    (chord lengths ~ sqrt(R^2 - x^2)) has variance R^2 / 4."""
    profile = lin(rgb)[0].mean(axis=0)
    lsf = np.diff(profile)
    x = np.arange(lsf.size)
    mean = (lsf * x).sum() / lsf.sum()
    return 2.0 * np.sqrt((lsf * (x - mean) ** 2).sum() / lsf.sum())


def test_background_blur_grows_with_depth_as_the_thin_lens_predicts():
    h, w, focal = 24, 300, 500.0
    img = np.zeros((h, w, 3), np.uint8)
    img[:, w // 2 :] = 255
    f_mm, n, s = 100.0, 2.0, 1.0  # 100 mm f/2 focused at 1 m
    pitch = math.hypot(36.0, 24.0) / math.hypot(w, h)  # full-frame diagonal (43.27 mm) over the image diagonal
    measured, predicted = [], []
    for z in (1.25, 2.0, 5.0, 20.0):
        settings = DofSettings(focus_m=s, f_number=n, focal_length_mm=f_mm, max_blur_px=1e4, highlight_boost=0)
        out = depth_of_field(metric(np.full((h, w), z), img, focal), settings)
        # thin lens, written out independently of the implementation: c = (f/N) f/(s-f) |z-s|/z
        c_mm = (f_mm / n) * f_mm / (s * 1000 - f_mm) * abs(z - s) / z
        predicted.append(c_mm / pitch / 2)
        measured.append(_edge_blur_radius(out.image))
    predicted, measured = np.array(predicted), np.array(measured)
    assert np.all(np.diff(measured) > 0)
    assert np.allclose(measured, predicted, rtol=0.06), (measured, predicted)
    assert predicted[-1] > 4 * predicted[0]  # a wide range: radius ~3.9 px to ~18 px


def test_blur_does_not_depend_on_the_orientation():
    """Issue 13: one lens, one focal length in pixels, the photo upright or on its side: the same blur.

    Expected value written out independently: the 35 mm-equivalent focal length
    is defined on the diagonal, so the pixel pitch is 43.27 mm over the image
    diagonal and f = f_px * pitch (26.0 mm for the 4032x3024 photo of the issue)."""
    from sharpdepth.apps.dof import thin_lens_coc_px

    f_px, s, z, n = 3028.7, 2.0, 4.0, 2.0
    pitch = math.hypot(36.0, 24.0) / math.hypot(4032, 3024)
    f_mm = f_px * pitch
    expected = (f_mm / n) * f_mm / (s * 1000 - f_mm) * (z - s) / z / pitch
    assert f_mm == pytest.approx(26.0, abs=0.05)
    landscape = thin_lens_coc_px(np.array([z]), s, n, f_px, (3024, 4032))
    portrait_ = thin_lens_coc_px(np.array([z]), s, n, f_px, (4032, 3024))
    assert landscape[0] == pytest.approx(expected, rel=1e-5) and portrait_[0] == pytest.approx(expected, rel=1e-5)
    # the whole refocus on a small rotated photo: identical blur radii, transposed pictures
    img = texture(40, 72, seed=9)
    depth = np.tile(np.linspace(1.0, 9.0, 72), (40, 1))
    settings = DofSettings(focus_m=2.0, f_number=1.4, highlight_boost=0)
    land = depth_of_field(metric(depth, img, 300.0), settings)
    port = depth_of_field(metric(depth.T.copy(), np.ascontiguousarray(img.transpose(1, 0, 2)), 300.0), settings)
    assert np.abs(land.coc_px).max() > 3
    assert np.array_equal(land.coc_px.T, port.coc_px)
    assert np.abs(land.image.transpose(1, 0, 2).astype(int) - port.image).max() <= 1


def test_portrait_blur_does_not_depend_on_the_orientation():
    """Portrait mode renders through the same lens function: rotated photo, identical blur radii."""
    h, w = 60, 90
    yy, xx = np.mgrid[0:h, 0:w]
    img = texture(h, w, seed=3)
    person = (xx - 45) ** 2 / 12**2 + (yy - 30) ** 2 / 18**2 <= 1
    depth = np.where(person, 1.5, 6.0)
    land = portrait(metric(depth, img, 300.0), PortraitSettings(f_number=4, highlight_boost=0, subject_px=(45, 30)))
    port = portrait(metric(depth.T.copy(), np.ascontiguousarray(img.transpose(1, 0, 2)), 300.0),
                    PortraitSettings(f_number=4, highlight_boost=0, subject_px=(30, 45)))  # fmt: skip
    assert np.array_equal(land.subject.T, port.subject)
    assert np.allclose(land.coc_px.T, port.coc_px, atol=1e-4)
    # the background's blur is the thin lens's (diagonal pitch), below the cap of 8 % of the longer side
    pitch = math.hypot(36.0, 24.0) / math.hypot(w, h)
    f_mm = 300.0 * pitch
    expected = (f_mm / 4) * f_mm / (1500 - f_mm) * (6.0 - 1.5) / 6.0 / pitch
    assert expected < 0.08 * w
    assert land.coc_px[0, 0] == pytest.approx(expected, rel=1e-4)
    assert port.coc_px[0, 0] == pytest.approx(expected, rel=1e-4)


def test_settings_are_validated_on_construction():
    for bad in (
        dict(focus_m=2.0, shape="star"),
        dict(focus_m=2.0, f_number=0),
        dict(),
        dict(focus_m=2.0, focus_px=(1, 1)),
        dict(focus_m=-1.0),
        dict(focus_m=2.0, max_blur_px=-1),
        dict(focus_m=0.05, focal_length_mm=85),
        dict(focus_m=float("nan")),
        dict(focus_px=(1, 1), focus_window=0),
    ):
        with pytest.raises(OptionError):
            DofSettings(**bad)
    for bad in (dict(fps=0), dict(duration_s=0), dict(path="spiral"), dict(amplitude=-0.1), dict(max_size_px=8),
                dict(pivot_m=0)):  # fmt: skip
        with pytest.raises(OptionError):
            ParallaxSettings(**bad)
    for bad in (dict(layout="mpo"), dict(anaglyph="blue"), dict(interaxial_mm=-1), dict(convergence_m=0),
                dict(max_disparity=0.05, interaxial_mm=100)):  # fmt: skip
        with pytest.raises(OptionError):
            StereoSettings(**bad)
    with pytest.raises(OptionError):
        PortraitSettings(f_number=0)
    with pytest.raises(TypeError):
        DofSettings(2.0)  # type: ignore[misc]  # keyword-only
    settings = ParallaxSettings(duration_s=0.7, fps=10)
    assert settings.frames == 7  # computed in one place
    with pytest.raises(AttributeError):
        settings.fps = 5  # type: ignore[misc]  # frozen
    assert PortraitSettings().f_number == 1.8 and DofSettings(focus_m=1).sensor_width_mm == 36.0
    # built from a request's JSON: lists become the documented tuples; strings are not numbers or flags
    assert DofSettings(focus_px=[3, 4]).focus_px == (3.0, 4.0)
    for bad_kwargs in (dict(focus_m="2"), dict(focus_px="3,4"), dict(focus_px=[1, 2, 3])):
        with pytest.raises(OptionError):
            DofSettings(**bad_kwargs)
    with pytest.raises(OptionError, match="true or false"):
        ParallaxSettings(loop="false")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="true or false"):
        StereoSettings(center="no")  # type: ignore[arg-type]


def _halo_scene():
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([np.full((h, w), 30), 60 + xx * 0.8, np.full((h, w), 200)], -1).astype(np.uint8)
    img = background.copy()
    fg = (xx >= 50) & (xx < 110) & (yy >= 30) & (yy < 90)
    img[fg] = (230, 30, 30)
    return img, background, fg, np.where(fg, 2.0, 10.0)


def test_no_halo_sharp_subject_over_blurred_background():
    img, background, fg, depth = _halo_scene()
    settings = DofSettings(focus_m=2.0, f_number=1.4, focal_length_mm=100, highlight_boost=0)
    out = depth_of_field(metric(depth, img, 150.0), settings)
    radius = np.abs(out.coc_px).max() / 2
    assert radius > 5
    # reference: the background alone, blurred the same way
    ref = depth_of_field(metric(np.full(depth.shape, 10.0), background, 150.0), settings).image
    ring = (ndimage.distance_transform_edt(~fg) >= 1) & (ndimage.distance_transform_edt(~fg) <= radius)
    ours = np.abs(lin(out.image) - lin(ref))[:, ring].mean()
    # a single Gaussian blur blended by blur size: red bleeds into the blurred background around the subject
    m = np.clip(np.abs(out.coc_px) / (2 * radius), 0, 1)
    gauss = np.stack([ndimage.gaussian_filter(c, radius / 2) for c in lin(img)])
    naive = lin(img) * (1 - m) + gauss * m
    naive_err = np.abs(naive - lin(ref))[:, ring].mean()
    assert ours < 0.005 and naive_err > 0.05, (ours, naive_err)
    # the subject, edge included, is untouched: no background colour creeps into it
    assert np.abs(out.image[fg].astype(int) - img[fg]).max() <= 1


def test_blurred_foreground_spreads_over_sharp_background():
    img, _, fg, depth = _halo_scene()
    settings = DofSettings(focus_m=10.0, f_number=1.4, focal_length_mm=100, highlight_boost=0)
    out = depth_of_field(metric(depth, img, 150.0), settings)
    radius = np.abs(out.coc_px).max() / 2
    dist = ndimage.distance_transform_edt(~fg)
    far = dist > radius + 2
    assert np.abs(out.image[far].astype(int) - img[far]).max() <= 1  # in-focus background untouched
    just_outside = (dist >= 1) & (dist <= radius / 2)
    assert out.image[just_outside][:, 0].mean() > img[just_outside][:, 0].mean() + 30  # red spills over


def test_relative_disparity_refocus():
    img = texture(40, 60)
    disparity = np.tile(np.linspace(0.0, 1.0, 60), (40, 1))  # far on the left, near on the right
    rel = DepthResult(disparity, OutputKind.RELATIVE_DISPARITY, image=img, model_name="da-v2-small")
    with pytest.raises(RelativeDepthError, match="relative"):
        depth_of_field(rel, DofSettings(focus_m=2.0))
    out = depth_of_field(rel, DofSettings(focus_px=(59, 20), max_blur_px=10, focus_window=1))
    assert np.abs(out.coc_px[:, -1]).max() < 0.3
    assert out.coc_px[0, 0] == pytest.approx(10.0, rel=0.05)  # the far end gets the full strength
    with pytest.raises(OptionError, match="focus"):
        depth_of_field(metric(np.ones((4, 4)), np.zeros((4, 4, 3), np.uint8), 5.0), DofSettings())


# ---------------------------------------------------------------- portrait
def _portrait_scene(offset: int = 0):
    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w]
    img = texture(h, w, seed=2, sigma=1.0)
    person = (xx - 60) ** 2 / 18**2 + (yy - 40) ** 2 / 28**2 <= 1
    img[person] = (200, 150, 120)
    depth = np.full((h, w), 6.0)
    depth[yy > 70] = np.linspace(6.0, 1.5, 90)[yy[yy > 70]]  # floor rising toward the camera
    depth_person = (xx - 60) ** 2 / (18 + offset) ** 2 + (yy - 40) ** 2 / (28 + offset) ** 2 <= 1
    depth[depth_person] = 1.5
    return img, depth, person


def test_portrait_finds_subject_and_keeps_it_sharp():
    img, depth, person = _portrait_scene()
    result = metric(depth, img, 100.0)
    subject = find_subject(result)
    iou = (subject & person).sum() / (subject | person).sum()
    assert iou > 0.95, iou  # the floor, as near as the person, is not taken for the subject
    pointed = find_subject(result, point=(10, 10))
    assert pointed[10, 10] and not pointed[person].any()
    out = portrait(result, PortraitSettings(f_number=1.4, focal_length_mm=85))
    core = ndimage.binary_erosion(person, iterations=4)  # beyond the matte's soft band
    assert np.abs(out.image[core].astype(int) - img[core]).max() <= 2
    bg = (ndimage.distance_transform_edt(~person) > 8) & (depth > 5)
    detail = lambda a: np.abs(np.diff(a.astype(float), axis=1))[bg[:, 1:]].mean()  # noqa: E731
    assert detail(out.image) < 0.5 * detail(img)


def test_matte_follows_photo_edges_not_depth_edges():
    img, depth, person = _portrait_scene(offset=3)  # depth silhouette 3 px too wide
    mask = depth <= 1.5
    matte = refine_matte(img, mask, band_px=6)
    wrong_ring = mask & ~person
    assert matte[wrong_ring].mean() < 0.3 < 0.9 < matte[ndimage.binary_erosion(person, iterations=2)].mean()


# ---------------------------------------------------------------- novel views
def _two_plane_scene(h=60, w=120):
    """Textured far wall at 8 m and a near card at 2 m, each with a thin marker stripe.

    Green is 40 everywhere except on the markers (255), so the marker strength
    (linear green above the base) mixes linearly under resampling: its centroid
    is an exact sub-pixel position."""
    img = texture(h, w, seed=4)
    img[..., 1] = 40
    depth = np.full((h, w), 8.0)
    card = np.zeros((h, w), bool)
    card[15:45, 50:80] = True
    depth[card] = 2.0
    img[card] = (60, 40, 200)
    img[:, 20:22] = 255  # far marker: columns 20-21
    img[15:45, 64:66] = (255, 255, 0)  # near marker: columns 64-65
    return img, depth, card


def _stripe_centre(rgb: np.ndarray, rows: slice, cols: slice) -> float:
    green = lin(rgb)[1, rows, cols]
    strength = np.clip(green - lin(np.full((1, 1, 3), 40, np.uint8))[1, 0, 0], 0.0, None)
    x = np.arange(cols.start, cols.stop)
    return float((strength.sum(axis=0) * x).sum() / strength.sum())


def test_zero_motion_reproduces_the_input():
    img, depth, _ = _two_plane_scene()
    result = metric(depth, img, 100.0)
    for kind in PATHS:
        plan = plan_parallax(result, ParallaxSettings(path=kind, amplitude=0.0, duration_s=3, fps=1, max_size_px=None))
        for frame in render_frames(plan):
            assert np.abs(frame.astype(int) - img).max() <= 1, kind


def test_parallax_is_inverse_to_depth():
    img, depth, card = _two_plane_scene()
    f, shift = 100.0, 0.08
    cam = Camera.from_focal(f, img.shape[1], img.shape[0])
    view = render_view(lin(img), depth, cam, np.array([shift, 0.0, 0.0]))
    from sharpdepth.apps.common import linear_to_srgb

    out = linear_to_srgb(view.image)
    far = _stripe_centre(out, slice(50, 58), slice(5, 40)) - 20.5
    near = _stripe_centre(out, slice(20, 40), slice(40, 80)) - 64.5
    assert far == pytest.approx(-f * shift / 8.0, abs=0.1)  # -1 px
    assert near == pytest.approx(-f * shift / 2.0, abs=0.1)  # -4 px: 4x nearer moves 4x more
    # the strip the card uncovered shows the wall, not a stretched card ("rubber sheet")
    uncovered = view.holes[20:40, 76:79]  # the card's edge moved 4 px, the wall behind it 1 px
    assert uncovered.all() and not view.holes[20:40, 79:90].any()
    blueness = out[20:40, 76:79, 2].astype(int) - out[20:40, 76:79, 0].astype(int)
    assert blueness.mean() < 60  # the card is (60, 60, 200): blue - red = 140


def test_dolly_zoom_keeps_the_pivot_plane_and_paths_loop():
    img = texture(48, 64, seed=5)
    result = metric(np.full((48, 64), 3.0), img, 60.0)
    settings = ParallaxSettings(path="dolly-zoom", amplitude=0.3, duration_s=4, fps=1, max_size_px=None, crop=False)
    plan = plan_parallax(result, settings)
    assert plan.pivot == pytest.approx(3.0)
    frames = list(render_frames(plan))
    assert plan.poses[2][0][2] > 0.4  # the camera really moved forward (metres)
    for frame in frames:
        assert np.abs(frame[4:-4, 4:-4].astype(int) - img[4:-4, 4:-4]).max() <= 3
    for kind in PATHS:
        path = CameraPath(kind, amplitude=0.1)
        t0, f0 = path.pose(0.0)
        t1, f1 = path.pose(1.0)
        assert np.allclose(t0, t1) and f0 == pytest.approx(f1)
    with pytest.raises(OptionError, match="camera path"):
        CameraPath("spiral")


def test_edge_pixels_move_with_the_foreground():
    from sharpdepth.apps.warp import default_edge_growth, grow_foreground

    depth = np.full((10, 20), 8.0)
    depth[:, :10] = 2.0
    grown = grow_foreground(depth, 2)
    assert np.all(grown[:, :12] == 2.0) and np.all(grown[:, 12:] == 8.0)
    assert default_edge_growth((60, 120)) == 0 and default_edge_growth((768, 1024)) == 2


def test_mp4_has_the_right_frames(tmp_path):
    img, depth, _ = _two_plane_scene(48, 64)
    out, n = parallax_video(metric(depth, img, 60.0), tmp_path / "v.mp4",
                            ParallaxSettings(path="circle", duration_s=0.7, fps=10))  # fmt: skip
    assert n == 7
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 7 and decoded[0].shape == (48, 64, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


# ---------------------------------------------------------------- stereo
def test_stereo_disparity_is_f_b_over_z():
    img, depth, _ = _two_plane_scene()
    f, baseline = 100.0, 0.12
    pair = stereo_pair(metric(depth, img, f), StereoSettings(interaxial_mm=1000 * baseline, convergence_m=math.inf))
    for rows, cols, z, x0 in ((slice(50, 58), slice(5, 40), 8.0, 20.5), (slice(20, 40), slice(55, 75), 2.0, 64.5)):
        left = _stripe_centre(pair.left, rows, cols)
        right = _stripe_centre(pair.right, rows, cols)
        assert left - right == pytest.approx(f * baseline / z, abs=0.05)  # 1.5 px and 6 px
        assert (left + right) / 2 == pytest.approx(x0, abs=0.05)  # the photo is the middle view
    as_left = stereo_pair(
        metric(depth, img, f), StereoSettings(interaxial_mm=1000 * baseline, convergence_m=math.inf, center=False)
    )
    assert np.array_equal(as_left.left, img)
    ana = anaglyph(pair.left, pair.right, "color")
    assert np.array_equal(ana[..., 0], pair.left[..., 0]) and np.array_equal(ana[..., 1:], pair.right[..., 1:])
    assert side_by_side(pair.left, pair.right).shape == (60, 240, 3)
    assert side_by_side(pair.left, pair.right, half_width=True).shape == (60, 120, 3)
    rel = DepthResult(1.0 / depth, OutputKind.RELATIVE_DISPARITY, image=img, model_name="da-v2-small")
    with pytest.raises(RelativeDepthError):
        stereo_pair(rel, StereoSettings(interaxial_mm=100))
    rel_pair = stereo_pair(rel, StereoSettings(max_disparity=0.05))
    near = slice(20, 40), slice(55, 75)
    assert _stripe_centre(rel_pair.left, *near) - _stripe_centre(rel_pair.right, *near) == pytest.approx(6.0, abs=0.1)


def test_parallel_cameras_give_crossed_parallax_and_convergence_moves_the_screen():
    """Parallel cameras: every finite depth is seen further right by the left eye (crossed parallax, in
    front of the screen), f*B/z px, shrinking toward 0 at infinity. Converged at c: f*B*(1/z - 1/c), so
    what is farther than c has uncrossed (negative) parallax, behind the screen."""
    img, depth, _ = _two_plane_scene()
    f, baseline, c = 100.0, 0.12, 4.0
    far, near = (slice(50, 58), slice(5, 40), 8.0), (slice(20, 40), slice(55, 75), 2.0)

    def parallax(pair, rows, cols):
        return _stripe_centre(pair.left, rows, cols) - _stripe_centre(pair.right, rows, cols)

    parallel = stereo_pair(metric(depth, img, f), StereoSettings(interaxial_mm=1000 * baseline, convergence_m=math.inf))
    p_far, p_near = parallax(parallel, *far[:2]), parallax(parallel, *near[:2])
    assert 0 < p_far < p_near  # both crossed; the nearer one more
    converged = stereo_pair(metric(depth, img, f), StereoSettings(interaxial_mm=1000 * baseline, convergence_m=c))
    for rows, cols, z in (far, near):
        assert parallax(converged, rows, cols) == pytest.approx(f * baseline * (1 / z - 1 / c), abs=0.05)
    assert parallax(converged, *far[:2]) < 0 < parallax(converged, *near[:2])


# ---------------------------------------------------------------- CLI
def test_effect_commands(tmp_path, capsys):
    from PIL import Image

    img, depth, _ = _two_plane_scene(48, 64)
    photo = tmp_path / "photo.png"
    Image.fromarray(img).save(photo)
    npz = tmp_path / "photo.npz"
    np.savez(npz, depth=depth.astype(np.float32), focal_px=np.float64(60.0), output_kind="metric_depth",
             model="synthetic")  # fmt: skip
    d = ["--depth", str(npz)]
    assert main(["dof", str(photo), *d, "--focus-px", "30,30", "-N", "1.8", "-o", str(tmp_path / "dof.jpg")]) == 0
    assert Image.open(tmp_path / "dof.jpg").size == (64, 48)
    assert main(["portrait", str(photo), *d, "-o", str(tmp_path / "p.png"), "--matte", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").is_file()
    assert main(["parallax", str(photo), *d, "--path", "swing", "--duration", "0.4", "--fps", "5",
                 "-o", str(tmp_path / "s.mp4")]) == 0  # fmt: skip
    with av.open(str(tmp_path / "s.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2
    assert main(["stereo", str(photo), *d, "--format", "pair", "-o", str(tmp_path / "st.png")]) == 0
    assert (tmp_path / "st_left.png").is_file() and (tmp_path / "st_right.png").is_file()
    assert main(["stereo", str(photo), *d, "--format", "sbs", "-o", str(tmp_path / "sbs.png")]) == 0
    assert Image.open(tmp_path / "sbs.png").size == (128, 48)
    capsys.readouterr()
    # one-line errors, exit status 2
    assert main(["dof", str(photo), *d, "--focus-px", "30;30"]) == 2
    assert main(["dof", str(photo), *d, "--focus-m", "2", "--bokeh", "star"]) == 2
    assert main(["parallax", str(photo), *d, "--path", "spiral"]) == 2
    assert main(["stereo", str(photo), *d, "--format", "mpo"]) == 2
    err = capsys.readouterr().err
    assert "x,y" in err and "bokeh" in err and "camera path" in err and "stereo layout" in err
