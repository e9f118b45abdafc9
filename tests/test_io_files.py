"""Issue 8 §2 / issue 13 "Files": one reader with one rule, 16-bit PNG range, invalid pixels, atomic leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath

import numpy as np
import pytest
from PIL import Image

from sharpdepth.errors import InputImageError, OptionError
from sharpdepth.io.atomic import atomic_path, clean_stale_parts, ensure_writable_dir
from sharpdepth.io.depth_files import match_result_to_image, read_depth_result, write_result
from sharpdepth.io.inputs import expand_inputs
from sharpdepth.io.outputs import OutputOptions, parse_formats, write_outputs
from sharpdepth.result import DepthResult, FocalSource, OutputKind


def _metric(depth: np.ndarray, focal: float | None = 100.0) -> DepthResult:
    return DepthResult(depth.astype(np.float32), OutputKind.METRIC_DEPTH, focal, FocalSource.USER, "m")


# ---------------------------------------------------------------- 16-bit PNG
def test_png16_depth_beyond_its_range_is_invalid_not_65_535(tmp_path):
    depth = np.full((4, 5), 3.0)
    depth[0, :2] = 10_000.0  # Depth Pro's sky
    notices = []
    path = write_result(_metric(depth), tmp_path, "p", "png16", on_notice=notices.append)
    with Image.open(path) as img:
        raw = np.asarray(img)
        assert img.text["sharpdepth:saturated"] == f"{2 / 20:.6f}"
    assert (raw[0, :2] == 0).all() and (raw[1:] == 3000).all()
    back = read_depth_result(path).prediction
    assert np.isnan(back[0, :2]).all()
    np.testing.assert_allclose(back[1:], 3.0)
    assert [n.kind for n in notices] == ["png16_saturated"] and notices[0].share == pytest.approx(0.1)
    assert "10.0%" in notices[0].message


def test_png16_invalid_reads_back_as_nan_in_both_kinds(tmp_path):
    depth = np.full((3, 3), 2.0)
    depth[1, 1] = np.nan
    metric = read_depth_result(write_result(_metric(depth), tmp_path, "m", "png16")).prediction
    assert np.isnan(metric[1, 1]) and np.isfinite(np.delete(metric.ravel(), 4)).all()
    rel = DepthResult(np.where(np.isnan(depth), np.nan, np.arange(9.0).reshape(3, 3)), "relative_disparity")
    relative = read_depth_result(write_result(rel, tmp_path, "r", "png16")).prediction
    assert np.isnan(relative[1, 1]) and np.isfinite(np.delete(relative.ravel(), 4)).all()


# ---------------------------------------------------------------- one reader, one rule
def test_bare_array_needs_the_caller_to_say_what_it_holds(tmp_path):
    np.save(tmp_path / "scan.npy", np.full((4, 4), 2.0, np.float32))
    with pytest.raises(InputImageError, match="bare array"):
        read_depth_result(tmp_path / "scan.npy")
    assert read_depth_result(tmp_path / "scan.npy", default_kind="metric_depth").is_metric
    assert not read_depth_result(tmp_path / "scan.npy", kind="relative_disparity").is_metric
    # The file's name outranks the caller's default; an explicit kind outranks the name.
    np.save(tmp_path / "scan_disparity.npy", np.full((4, 4), 2.0, np.float32))
    assert not read_depth_result(tmp_path / "scan_disparity.npy", default_kind="metric_depth").is_metric
    assert read_depth_result(tmp_path / "scan_disparity.npy", kind="metric_depth").is_metric
    with pytest.raises(OptionError, match="unknown depth kind"):
        read_depth_result(tmp_path / "scan.npy", kind="metres")


def test_malformed_depth_files_are_one_line_errors(tmp_path):
    (tmp_path / "notzip.npz").write_text("not a zip")
    with pytest.raises(InputImageError, match="unreadable depth file"):
        read_depth_result(tmp_path / "notzip.npz")
    np.savez(tmp_path / "empty.npz", depth=np.zeros((0, 0), np.float32))
    with pytest.raises(InputImageError, match="empty"):
        read_depth_result(tmp_path / "empty.npz")
    np.savez(tmp_path / "odd.npz", depth=np.full((4, 4), 2.0, np.float32), focal_px=np.float32(50.0),
             focal_source="guessed", output_kind="metric_depth")  # fmt: skip
    odd = read_depth_result(tmp_path / "odd.npz")
    assert odd.focal_px == 50.0 and odd.focal_source is FocalSource.USER
    with pytest.raises(OptionError, match="focal length must be a positive number of pixels"):
        read_depth_result(tmp_path / "odd.npz", focal_px=-3)


def test_matching_to_the_photo_keeps_zero_disparity_and_drops_invalid_metres():
    image = np.zeros((8, 8, 3), np.uint8)
    disp = np.full((4, 4), 0.5, np.float32)
    disp[:2] = 0.0  # MiDaS sky: a real value
    rel = match_result_to_image(DepthResult(disp, "relative_disparity"), image)
    assert np.isfinite(rel.prediction).all() and rel.prediction[0, 0] == 0.0
    metres = disp.copy()
    metric = match_result_to_image(_metric(metres, focal=40.0), image)
    assert np.isnan(metric.prediction[:3]).all() and metric.focal_px == 80.0


# ---------------------------------------------------------------- the one atomic writer
def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_stale_parts_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / "a" / f".photo.{_dead_pid()}.k2j3h4g5.part.npz"
    dead.parent.mkdir()
    dead.write_bytes(b"half")
    alive = tmp_path / f".photo.{os.getpid()}.abcdefgh.part.png"
    alive.write_bytes(b"being written")
    theirs = tmp_path / ".photo.123.notours"
    theirs.write_bytes(b"x")
    assert clean_stale_parts(tmp_path) == [dead]
    assert alive.exists() and theirs.exists() and not dead.exists()
    with atomic_path(tmp_path / "photo.npz") as tmp:
        assert f".{os.getpid()}." in tmp.name  # the writer's names are the ones the cleaner knows
        tmp.write_bytes(b"x")


def test_unwritable_output_location_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("a regular file")
    with pytest.raises(OptionError, match="cannot write outputs there"):
        ensure_writable_dir(tmp_path / "afile" / "out")
    assert ensure_writable_dir(tmp_path / "new" / "out").is_dir()


# ---------------------------------------------------------------- inputs and outputs
def test_same_stem_inputs_keep_their_extension(tmp_path):
    for name in ("IMG_0001.JPG", "IMG_0001.HEIC", "IMG_0002.jpg"):
        (tmp_path / name).write_bytes(b"")
    items, problems = expand_inputs([str(tmp_path)])
    assert problems == []
    stems = {item.path.name: (str(item.stem), item.renamed) for item in items}
    assert stems == {
        "IMG_0001.HEIC": ("IMG_0001.HEIC", True),
        "IMG_0001.JPG": ("IMG_0001.JPG", True),
        "IMG_0002.jpg": ("IMG_0002", False),
    }


def test_empty_format_list_is_an_error():
    with pytest.raises(OptionError, match="--format needs at least one"):
        parse_formats("")
    with pytest.raises(OptionError):
        parse_formats(" , ")
    assert parse_formats("png,npz") == ("png16", "npz")


def test_normal_view_is_rendered_by_the_caller_or_skipped_with_a_notice(tmp_path):
    result = _metric(np.full((6, 8), 2.0))
    options = OutputOptions(("npz",), color_view=False, normals=True)
    notices = []
    written = write_outputs(result, tmp_path, PurePath("a"), options, on_notice=notices.append)
    assert [n.kind for n in notices] == ["normals_skipped"]
    assert "normals_skipped" in json.loads(written[-1].read_text())
    calls = []

    def render(r: DepthResult) -> np.ndarray:
        calls.append(r)
        return np.zeros((r.height, r.width, 3), np.uint8)

    written = write_outputs(result, tmp_path, PurePath("b"), options, normals_view=render)
    assert calls == [result] and Path(tmp_path / "b_normals.png") in written
    rel = DepthResult(np.ones((6, 8), np.float32), "relative_disparity", model_name="midas")
    write_outputs(rel, tmp_path, PurePath("c"), options, normals_view=render, on_notice=notices.append)
    assert len(calls) == 1 and "relative disparity" in notices[-1].message


def test_repr_never_prints_the_arrays():
    result = _metric(np.arange(30_000, dtype=np.float32).reshape(100, 300) + 1)
    text = repr(result)
    assert "\n" not in text and len(text) < 200
    assert "300x100" in text and "metric_depth" in text and "30000" not in text.replace("3e+04", "")
