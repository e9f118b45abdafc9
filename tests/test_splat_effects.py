"""3D-photo effects from SHARP's Gaussians (`stereo`/`parallax --source splat`) and the maps
of `render` / `splat --render` (`--maps depth,alpha`).

The geometric test builds a scene directly (a near red square in front of a far blue wall
with a green mark) and checks that the eyes rendered from the Gaussians have the depth path's
parallax signs and sizes on the same scene. The command-line tests run sharp-tiny with the
fixture's stand-in weights on small pictures (the CPU renderer is slow at large sizes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from sharpdepth.apps.settings import StereoSettings
from sharpdepth.result import DepthResult, OutputKind

from conftest import fixture_state_dict, make_input_image

F, W, H = 80.0, 96, 64
NEAR_Z, FAR_Z = 1.5, 6.0
RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def _plane(z: float, half_w: float, half_h: float, spacing: float, colour_at) -> dict[str, np.ndarray]:
    xs = np.arange(-half_w, half_w + 1e-9, spacing)
    ys = np.arange(-half_h, half_h + 1e-9, spacing)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    n = gx.size
    return {
        "means": np.c_[gx, gy, np.full(n, z)],
        "scales": np.tile([0.6 * spacing, 0.6 * spacing, 0.01 * spacing], (n, 1)),
        "quaternions": np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
        "colors": np.array([colour_at(x, y) for x, y in zip(gx, gy, strict=True)]),
        "opacities": np.full(n, 0.99),
    }


def two_planes() -> sharpdepth.Gaussians:
    """A 0.3 m red square at 1.5 m in front of a blue wall at 6 m with a green mark left of centre."""
    far_step, near_step = FAR_Z / F, NEAR_Z / F  # one pixel's footprint at each depth
    mark_x = -2.0  # metres on the wall: about 27 px left of centre, clear of the square in both eyes

    def wall(x: float, y: float) -> tuple[float, float, float]:
        return GREEN if abs(x - mark_x) < 0.4 and abs(y) < 0.4 else BLUE

    far = _plane(FAR_Z, 5.5, 3.5, far_step, wall)
    near = _plane(NEAR_Z, 0.15, 0.15, near_step, lambda x, y: RED)
    arrays = {k: np.concatenate([near[k], far[k]]) for k in far}
    return sharpdepth.Gaussians(**arrays, focal_px=F, image_size=(W, H))


def centre_x(rgb: np.ndarray, colour: tuple[float, float, float]) -> float:
    """Column of the centroid of the pixels of a pure colour (uint8 picture)."""
    want = np.array(colour) > 0.5
    mask = np.all((rgb > 127) == want, axis=-1)
    assert mask.sum() > 20, f"too few {colour} pixels"
    return float(np.nonzero(mask)[1].mean())


def expected_parallax(z: float, settings: StereoSettings) -> float:
    return F * settings.interaxial_m * (1.0 / z - 1.0 / settings.screen_m)


@pytest.mark.parametrize("center", [True, False])
def test_splat_eyes_match_the_depth_paths_parallax_on_the_same_scene(center: bool):
    from sharpdepth.apps.splat_views import splat_stereo_pair
    from sharpdepth.apps.stereo import stereo_pair

    g = two_planes()
    settings = StereoSettings(interaxial_mm=200.0, convergence_m=3.0, center=center, layout="pair")
    left, right = splat_stereo_pair(g, settings, device="cpu")
    assert left.shape == right.shape == (H, W, 3)
    # the depth path on the same scene: the source view and its depth, rendered from the Gaussians
    source = g.render(np.eye(4), np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]), W, H, device="cpu")
    photo = (np.clip(source.color, 0, 1) * 255 + 0.5).astype(np.uint8)
    result = DepthResult(source.depth, OutputKind.METRIC_DEPTH, focal_px=F, image=photo, model_name="scene")
    warped = stereo_pair(result, settings)
    for colour, z in ((RED, NEAR_Z), (GREEN, FAR_Z)):
        want = expected_parallax(z, settings)  # near: crossed (> 0), far: uncrossed (< 0)
        got_splat = centre_x(left, colour) - centre_x(right, colour)
        got_depth = centre_x(warped.left, colour) - centre_x(warped.right, colour)
        assert np.sign(got_splat) == np.sign(got_depth) == np.sign(want)  # the same eye order
        assert got_splat == pytest.approx(want, abs=0.75)  # the eyes are where the geometry puts them
    if not center:  # the photo is the left eye
        assert centre_x(left, RED) == pytest.approx(centre_x(photo, RED), abs=0.25)


def test_splat_eyes_show_what_is_behind_the_near_square():
    """Where the square uncovers the wall, the splat eyes show the wall's Gaussians (blue), not a stretch of red."""
    from sharpdepth.apps.splat_views import splat_stereo_pair

    settings = StereoSettings(interaxial_mm=200.0, convergence_m=3.0, layout="pair")
    left, right = splat_stereo_pair(two_planes(), settings, device="cpu")
    for eye in (left, right):
        red = np.all((eye > 127) == np.array([True, False, False]), axis=-1)
        blue = np.all((eye > 127) == np.array([False, False, True]), axis=-1)
        assert red.sum() + blue.sum() > 0.9 * eye.shape[0] * eye.shape[1] - 400  # the green mark aside
        assert (eye.max(axis=-1) > 100).all()  # nothing left black: the wall is behind everything


def test_splat_stereo_layouts_reuse_the_layout_code():
    from sharpdepth.apps.splat_views import splat_stereo_images, splat_stereo_pair
    from sharpdepth.apps.stereo import anaglyph

    g = two_planes()
    left, right = splat_stereo_pair(g, StereoSettings(layout="pair"), device="cpu")
    sizes = {
        "sbs": (H, 2 * W),
        "tb": (2 * H, W),
        "half-sbs": (H, W),
        "half-tb": (H, W),
        "anaglyph": (H, W),
        "vr180": (2 * W, 4 * W),  # each eye square, twice the longer side, side by side
    }
    for layout, size in sizes.items():
        (frame,) = splat_stereo_images(g, StereoSettings(layout=layout), device="cpu")
        assert frame.shape == (*size, 3), layout
    (sbs,) = splat_stereo_images(g, StereoSettings(layout="sbs"), device="cpu")
    assert np.array_equal(sbs, np.concatenate([left, right], axis=1))
    (ana,) = splat_stereo_images(g, StereoSettings(layout="anaglyph"), device="cpu")
    assert np.array_equal(ana, anaglyph(left, right))
    with pytest.raises(sharpdepth.OptionError, match="metric"):
        splat_stereo_images(g, StereoSettings(max_disparity=0.05), device="cpu")


def test_splat_parallax_keeps_the_pivot_still_and_moves_the_near_square():
    from sharpdepth.apps.settings import ParallaxSettings
    from sharpdepth.apps.splat_views import splat_parallax_frames

    settings = ParallaxSettings(path="horizontal", loop=False, duration_s=0.3, fps=10, pivot_m=FAR_Z, crop=False)
    frames = list(splat_parallax_frames(two_planes(), settings, device="cpu"))
    assert len(frames) == settings.frames == 3 and frames[0].shape == (H, W, 3)
    # the wall (at the pivot) stays still, the near square moves against the camera
    assert centre_x(frames[0], GREEN) == pytest.approx(centre_x(frames[-1], GREEN), abs=0.5)
    assert centre_x(frames[0], RED) - centre_x(frames[-1], RED) > 3.0


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("splat_effects")
    weights = folder / "sharp_tiny.pt"
    torch.save(fixture_state_dict("sharp/tiny"), weights)
    photo = folder / "photo.png"
    Image.fromarray(make_input_image(48, 64)).save(photo)
    return {"weights": str(weights), "photo": str(photo)}


def sharp_tiny(tiny: dict[str, str]) -> list[str]:
    return ["--model", "sharp-tiny", "--weights", tiny["weights"], "--focal-px", "60"]


def frame_count(path) -> tuple[int, tuple[int, ...]]:
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(frames), frames[0].shape


def test_cli_parallax_from_splat_writes_the_frames(tiny, tmp_path, capsys):
    from sharpdepth.cli.main import main

    out = tmp_path / "p.mp4"
    args = ["parallax", tiny["photo"], *sharp_tiny(tiny), "--source", "splat", "-o", str(out)]
    assert main([*args, "--duration", "0.2", "--fps", "10", "--size", "64", "--path", "swing"]) == 0
    assert frame_count(out) == (2, (48, 64, 3))
    assert "wrote" in capsys.readouterr().out


def test_cli_stereo_from_splat_writes_the_pair(tiny, tmp_path):
    from sharpdepth.cli.main import main

    args = ["stereo", tiny["photo"], *sharp_tiny(tiny), "--source", "splat", "--layout", "pair", "-o", str(tmp_path)]
    assert main(args) == 0
    left = np.asarray(Image.open(tmp_path / "photo_stereo_left.jpg"))
    right = np.asarray(Image.open(tmp_path / "photo_stereo_right.jpg"))
    assert left.shape == right.shape == (48, 64, 3) and not np.array_equal(left, right)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--source", "splat", "--max-disparity", "0.05"], "metric"),
        (["--source", "splat", "--model", "depth-pro-tiny"], "does not predict 3-D Gaussians"),
        (["--source", "splat", "--depth", "x.npz"], "--depth"),
        (["--source", "mesh"], "unknown stereo source"),
    ],
)
def test_cli_stereo_bad_combinations_are_one_line(tiny, tmp_path, capsys, extra, says):
    from sharpdepth.cli.main import main

    args = ["stereo", tiny["photo"], "-o", str(tmp_path), *extra]
    if "--depth" in extra:
        args[args.index("x.npz")] = str(tmp_path / "x.npz")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_stereo_splat_refuses_a_video_in_one_line(tmp_path, capsys):
    from sharpdepth.cli.main import main

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read")
    assert main(["stereo", str(clip), "--source", "splat", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--source splat" in err and "photo" in err and len(err.splitlines()) == 1


def test_cli_parallax_splat_without_weights_is_one_line(tiny, tmp_path):
    """No SHARP weights at hand and no network: the usual one-line missing-weights error."""
    import os
    import subprocess
    import sys

    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    env |= {k: os.environ[k] for k in ("PYTHONPATH", "SHARPDEPTH_SHARED") if k in os.environ}
    out = tmp_path / "p.mp4"
    args = ["parallax", tiny["photo"], "--source", "splat", "-o", str(out)]
    proc = subprocess.run([sys.executable, "-m", "sharpdepth.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "sharp" in lines[0] and "--weights" in lines[0]
    assert not out.exists()


def test_cli_render_maps_write_depth_and_alpha_beside_the_colour(tmp_path):
    from sharpdepth.cli.main import main

    g = two_planes()
    scene = g.save_ply(tmp_path / "scene.ply")
    assert main(["render", str(scene), "--steps", "3", "--trajectory", "swipe", "--maps", "depth,alpha"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["scene.ply", "scene_swipe.mp4", "scene_swipe_alpha.mp4", "scene_swipe_depth.mp4"]
    for name in names[1:]:
        assert frame_count(tmp_path / name) == (3, (H, W, 3))
    import av

    with av.open(str(tmp_path / "scene_swipe_depth.mp4")) as container:
        depth = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    with av.open(str(tmp_path / "scene_swipe_alpha.mp4")) as container:
        alpha = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    # the near square is brighter than the wall in the depth map (inverse depth, inferno); alpha is opaque
    square = (slice(H // 2 - 3, H // 2 + 3), slice(W // 2 - 3, W // 2 + 3))
    assert depth[square].sum(-1).mean() > depth[2:8, 2:8].sum(-1).mean() + 100
    assert alpha[4:-4, 4:-4].min() > 230


def test_cli_splat_render_maps_and_refusals(tiny, tmp_path, capsys):
    from sharpdepth.cli.main import main

    base = ["splat", tiny["photo"], "--model", "sharp-tiny", "--weights", tiny["weights"], "--focal-model", "none"]
    assert main([*base, "-o", str(tmp_path / "out"), "--render", "--steps", "2", "--maps", "alpha"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["photo.json", "photo.ply", "photo_rotate_forward.mp4", "photo_rotate_forward_alpha.mp4"]
    assert frame_count(tmp_path / "out" / "photo_rotate_forward_alpha.mp4")[0] == 2
    capsys.readouterr()
    for bad, says in ((["--maps", "depth"], "--render"), (["--render", "--maps", "depth,normals"], "unknown map")):
        assert main([*base, "-o", str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()
