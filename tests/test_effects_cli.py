"""The effect and geometry commands as a new user meets them: mistakes are one line, found before any work.

Each case here was a traceback, a silent default mismatch or a late error
(issues 8 and 13). The network is replaced by a stand-in that fails the test
if it is ever loaded, so "before inference" is checked, not assumed.
"""

from __future__ import annotations

import numpy as np
import pytest
import typer.main
from PIL import Image

import sharpdepth
from sharpdepth.apps.settings import DofSettings, ParallaxSettings, PortraitSettings, StereoSettings
from sharpdepth.cli.main import app, main
from sharpdepth.geometry.settings import MeasureSettings, PointCloudSettings

H, W, F = 48, 64, 60.0
PHOTO_COMMANDS = ("dof", "portrait", "parallax", "stereo", "pointcloud", "measure")


@pytest.fixture
def scene(tmp_path):
    """A photo and its saved metric depth (a card at 2 m before a wall at 8 m)."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    photo = tmp_path / "photo.png"
    Image.fromarray(rgb).save(photo)
    depth = np.full((H, W), 8.0, np.float32)
    depth[12:36, 20:44] = 2.0
    npz = tmp_path / "photo.npz"
    np.savez(npz, depth=depth, focal_px=np.float64(F), output_kind="metric_depth", model="synthetic")
    return photo, npz


@pytest.fixture
def no_network(monkeypatch):
    """`sharpdepth.load` that fails the test: whatever is checked must be checked before a model loads."""
    calls: list[str] = []

    def load(name, **kwargs):
        calls.append(name)
        raise AssertionError(f"the network ({name}) was loaded before the options were checked")

    monkeypatch.setattr(sharpdepth, "load", load)
    return calls


def _extra_args(command: str) -> list[str]:
    return {"dof": ["--focus-m", "3"], "measure": ["10,10"]}.get(command, [])


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


# ---------------------------------------------------------------- option errors before inference
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["dof", "--focus-m", "2", "--bokeh", "star"], "bokeh"),
        (["dof", "--focus-m", "2", "-N", "0"], "f-number"),
        (["dof"], "focus"),
        (["portrait", "-N", "0"], "f-number"),
        (["parallax", "--fps", "0"], "fps"),
        (["parallax", "--duration", "0"], "duration"),
        (["parallax", "--size", "8"], "size"),
        (["stereo", "--format", "mpo"], "stereo layout"),
        (["stereo", "--anaglyph", "blue"], "anaglyph"),
        (["pointcloud", "--stride", "0"], "stride"),
        (["pointcloud", "--voxel", "0.1", "--mesh"], "voxel"),
        (["measure", "1,1", "2,2", "3,3"], "one pixel"),
        (["measure", "1,1", "--window", "0"], "window"),
        (["dof", "--focus-m", "2", "--focal-px", "-3"], "focal length"),
    ],
)
def test_option_errors_are_found_before_the_network_loads(scene, no_network, capsys, args, needle):
    photo, _ = scene
    command, *rest = args
    assert main([command, str(photo), *rest, "--model", "depth-pro-tiny"]) == 2
    assert needle in _one_line_error(capsys)
    assert no_network == []


# ---------------------------------------------------------------- outputs that cannot be written
@pytest.mark.parametrize("command", ["dof", "portrait", "parallax", "stereo", "pointcloud"])
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output_is_refused_before_any_work(scene, no_network, capsys, tmp_path, command, where):
    photo, _ = scene
    suffix = {"parallax": ".mp4", "pointcloud": ".ply"}.get(command, ".jpg")
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file")
    target = blocker / f"x{suffix}" if where == "under_a_file" else f"/proc/sharpdepth-test/x{suffix}"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([command, str(photo), *_extra_args(command), "--model", "depth-pro-tiny", "-o", str(target)])
    assert code == 2
    assert "cannot be written" in _one_line_error(capsys)
    assert no_network == []  # checked before the model (and before the photo) was touched
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half written
    assert blocker.read_text() == "a regular file"


def test_unknown_image_type_is_refused_before_any_work(scene, no_network, capsys, tmp_path):
    photo, _ = scene
    assert main(["dof", str(photo), "--focus-m", "2", "--model", "x", "-o", str(tmp_path / "out.xyz")]) == 2
    assert "unknown image type" in _one_line_error(capsys) and no_network == []


# ---------------------------------------------------------------- malformed depth files
def _npz(path, depth, **extra):
    np.savez(path, depth=np.asarray(depth, np.float32), focal_px=np.float64(F), output_kind="metric_depth",
             model="synthetic", **extra)  # fmt: skip
    return path


@pytest.mark.parametrize("command", ["measure", "pointcloud", "dof"])
def test_empty_depth_map_is_one_line(scene, capsys, tmp_path, command):
    photo, _ = scene
    empty = _npz(tmp_path / "empty.npz", np.zeros((0, 0)))
    out = ["-o", str(tmp_path / f"o.{'ply' if command == 'pointcloud' else 'png'}")] if command != "measure" else []
    assert main([command, str(photo), *_extra_args(command), "--depth", str(empty), *out]) == 2
    assert "empty" in _one_line_error(capsys)


def test_all_nan_depth_in_pointcloud_is_one_line(scene, capsys, tmp_path):
    photo, _ = scene
    nan = _npz(tmp_path / "nan.npz", np.full((H, W), np.nan))
    out = tmp_path / "cloud.ply"
    assert main(["pointcloud", str(photo), "--depth", str(nan), "-o", str(out)]) == 2
    assert "no valid pixel" in _one_line_error(capsys)
    assert not out.exists()
    assert main(["pointcloud", str(photo), "--depth", str(nan), "-o", str(out), "--mesh"]) == 2
    assert "no valid pixel" in _one_line_error(capsys)


@pytest.mark.parametrize("kind", ["not_a_zip", "unknown_focal_source"])
def test_unreadable_depth_files_are_one_line(scene, capsys, tmp_path, kind):
    photo, _ = scene
    bad = tmp_path / "bad.npz"
    if kind == "not_a_zip":
        bad.write_bytes(b"this is not a zip archive at all")
    else:
        _npz(bad, np.full((H, W), 2.0), focal_source="from-the-moon")
    for command in ("measure", "pointcloud"):
        out = ["-o", str(tmp_path / "c.ply")] if command == "pointcloud" else []
        code = main([command, str(photo), *_extra_args(command), "--depth", str(bad), *out])
        if code == 0:  # an unknown focal source may be read as "none"; it must not crash either
            capsys.readouterr()
            continue
        assert code == 2
        assert str(bad) in _one_line_error(capsys)


# ---------------------------------------------------------------- --max-pixels everywhere
@pytest.mark.parametrize("command", PHOTO_COMMANDS)
def test_every_photo_command_has_max_pixels(scene, capsys, tmp_path, command):
    photo, npz = scene
    assert main([command, str(photo), *_extra_args(command), "--depth", str(npz), "--max-pixels", "1000"]) == 2
    line = _one_line_error(capsys)
    assert "too large" in line and "1,000" in line


# ---------------------------------------------------------------- messages
def test_dof_reports_the_focus_with_its_unit(scene, capsys, tmp_path):
    photo, npz = scene
    assert main(["dof", str(photo), "--depth", str(npz), "--focus-m", "2.24", "-o", str(tmp_path / "a.png")]) == 0
    assert "(focus 2.24 m," in capsys.readouterr().out
    assert main(["dof", str(photo), "--depth", str(npz), "--focus-px", "30,20", "-o", str(tmp_path / "b.png")]) == 0
    assert "(focus 2 m," in capsys.readouterr().out  # the card's depth at that pixel


# ---------------------------------------------------------------- one home for the defaults
def _flag_default(command: str, param: str) -> object:
    click_group = typer.main.get_command(app)
    cmd = click_group.commands[command]  # type: ignore[attr-defined]
    return next(p.default for p in cmd.params if p.name == param)


def test_command_line_defaults_are_the_settings_defaults():
    assert _flag_default("portrait", "f_number") == PortraitSettings().f_number
    assert _flag_default("dof", "f_number") == DofSettings(focus_m=1.0).f_number
    assert _flag_default("dof", "sensor_mm") == DofSettings(focus_m=1.0).sensor_width_mm
    assert _flag_default("parallax", "fps") == ParallaxSettings().fps
    assert _flag_default("parallax", "duration") == ParallaxSettings().duration_s
    assert _flag_default("parallax", "size") == ParallaxSettings().max_size_px
    assert _flag_default("stereo", "anaglyph_mode") == StereoSettings().anaglyph
    assert _flag_default("pointcloud", "max_jump") == PointCloudSettings().max_rel_jump
    assert _flag_default("pointcloud", "max_grazing") == PointCloudSettings().max_grazing_deg
    assert _flag_default("measure", "window") == MeasureSettings(pixels=((1.0, 1.0),)).window


# ---------------------------------------------------------------- the photo is decoded once
def test_effects_decode_the_photo_once(scene, monkeypatch, tmp_path, capsys):
    """With --model, the pixels the network sees are the pixels the effect uses: one decode."""
    import functools

    import PIL.Image

    photo, _ = scene
    real_load = sharpdepth.load
    monkeypatch.setattr(sharpdepth, "load", functools.partial(real_load, random_weights=True))
    opened: list[str] = []
    real_open = PIL.Image.open

    def counting_open(fp, *args, **kwargs):
        if str(fp) == str(photo):
            opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    code = main(["measure", str(photo), "32,24", "--model", "depth-anything-v2-metric-tiny", "--focal-px", "60"])
    assert code == 0, capsys.readouterr().err
    assert len(opened) == 1, opened


def test_stereo_pair_is_written_whole_or_not_at_all(scene, monkeypatch, capsys, tmp_path):
    """The disk fills up between the two eyes: the left eye alone is not left behind."""
    import sharpdepth.cli.stereo as effects
    from sharpdepth.cli.depth_source import write_failed

    photo, npz = scene
    real_save = effects.save_rgb

    def failing_save(path, rgb):
        if path.stem.endswith("_right"):
            raise write_failed(path, OSError(28, "No space left on device"))
        return real_save(path, rgb)

    monkeypatch.setattr(effects, "save_rgb", failing_save)
    out = tmp_path / "view.png"
    assert main(["stereo", str(photo), "--depth", str(npz), "--format", "pair", "-o", str(out)]) == 2
    assert "No space left" in _one_line_error(capsys)
    assert not (tmp_path / "view_left.png").exists() and not (tmp_path / "view_right.png").exists()
