"""Every output format round-trips through `read_depth_result`, saying what its numbers are."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sharpdepth.errors import InputImageError, OptionError, RelativeDepthError
from sharpdepth.io.atomic import atomic_path
from sharpdepth.io.depth_files import read_depth_result, write_result
from sharpdepth.io.outputs import OutputOptions, write_outputs
from sharpdepth.result import DepthResult, FocalSource, OutputKind


def _metric(h=12, w=16) -> DepthResult:
    depth = np.linspace(0.5, 30.0, h * w, dtype=np.float32).reshape(h, w)
    return DepthResult(depth, OutputKind.METRIC_DEPTH, 500.0, FocalSource.EXIF, "m")


def _relative(h=12, w=16) -> DepthResult:
    disp = np.linspace(-0.3, 7.0, h * w, dtype=np.float32).reshape(h, w)
    return DepthResult(disp, OutputKind.RELATIVE_DISPARITY, None, FocalSource.NONE, "r")


@pytest.mark.parametrize("fmt", ["npy", "npz", "exr", "pfm"])
@pytest.mark.parametrize("make", [_metric, _relative])
def test_float_formats_roundtrip_exactly(tmp_path, fmt, make):
    result = make()
    path = write_result(result, tmp_path, "photo", fmt)
    word = "depth" if result.is_metric else "disparity"
    assert word in path.name or fmt == "npz"
    back = read_depth_result(path)
    assert back.kind == result.kind
    np.testing.assert_array_equal(back.prediction, result.prediction)
    if fmt in ("npz", "exr"):
        assert back.focal_px == result.focal_px


def test_png16_metric_millimetres(tmp_path):
    result = _metric()
    path = write_result(result, tmp_path, "photo", "png16", scale_m=0.001)
    back = read_depth_result(path)
    assert back.kind is OutputKind.METRIC_DEPTH and back.focal_px == 500.0
    np.testing.assert_allclose(back.prediction, result.prediction, atol=0.0005 + 1e-6)


def test_png16_relative_spreads_range(tmp_path):
    result = _relative()
    back = read_depth_result(write_result(result, tmp_path, "photo", "png16"))
    assert back.kind is OutputKind.RELATIVE_DISPARITY
    span = float(np.ptp(result.prediction))
    np.testing.assert_allclose(back.prediction, result.prediction, atol=span / 65534)


def test_relative_result_never_claims_metres(tmp_path):
    result = _relative()
    with pytest.raises(RelativeDepthError):
        _ = result.depth
    written = write_outputs(result, tmp_path, __import__("pathlib").PurePath("a/photo"), OutputOptions(("npz",)))
    sidecar = json.loads(written[-1].read_text())
    assert sidecar["output_kind"] == "relative_disparity" and "depth_m" not in sidecar
    assert "disparity" in sidecar and sidecar["unit"].startswith("relative")
    with np.load(tmp_path / "a" / "photo.npz") as data:
        assert "depth" not in data.files and "disparity" in data.files


def test_metric_sidecar_contents(tmp_path):
    from pathlib import PurePath

    written = write_outputs(_metric(), tmp_path, PurePath("p"), OutputOptions(("npz", "png16"), colormap="turbo"))
    names = [p.name for p in written]
    assert names[-1] == "p.json" and "p_turbo.png" in names and "p_depth.png" in names
    side = json.loads((tmp_path / "p.json").read_text())
    assert side["focal_source"] == "exif" and side["depth_m"]["min"] == pytest.approx(0.5)
    assert side["fov_deg"] == pytest.approx(2 * np.degrees(np.arctan(8 / 500)))


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "x.npy"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_unknown_kind_and_bad_options(tmp_path):
    np.save(tmp_path / "plain.npy", np.ones((3, 3), np.float32))
    with pytest.raises(InputImageError, match="metric depth or relative"):
        read_depth_result(tmp_path / "plain.npy")
    assert read_depth_result(tmp_path / "plain.npy", kind="metric_depth", focal_px=10).focal_px == 10
    with pytest.raises(OptionError):
        OutputOptions(("jpeg",))
    with pytest.raises(OptionError):
        OutputOptions(colormap="rainbow")


def test_atomic_write_uses_normal_permissions(tmp_path):
    dest = tmp_path / "y.npy"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask


def test_npz_bytes_do_not_depend_on_the_time_of_writing(tmp_path, monkeypatch) -> None:
    """The CLI, the HTTP service and a Ray job hand out the same bytes for one result (numpy fixes zip dates)."""
    import time
    import zipfile

    from sharpdepth.io.depth_files import write_npz
    from sharpdepth.result import DepthResult

    result = DepthResult(prediction=np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4), kind="metric_depth")
    write_npz(tmp_path / "a.npz", result)
    real_localtime = time.localtime
    monkeypatch.setattr(time, "localtime", lambda *a: real_localtime(time.time() + 86400 * 400))
    write_npz(tmp_path / "b.npz", result)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert archive.testzip() is None
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["depth"], result.prediction)
