"""Written files do not depend on the clock or on other threads (npz dates, umask)."""

from __future__ import annotations

import os
import stat
import threading
import time
import zipfile

import numpy as np

from sharpdepth.io import atomic
from sharpdepth.io.depth_files import read_depth_result, write_npz
from sharpdepth.result import DepthResult, OutputKind


def _result() -> DepthResult:
    depth = np.linspace(1.0, 5.0, 48, dtype=np.float32).reshape(6, 8)
    return DepthResult(prediction=depth, kind=OutputKind.METRIC_DEPTH, focal_px=500.0, model_name="m")


def test_npz_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch):
    write_npz(tmp_path / "a.npz", _result())
    later = time.localtime(time.time() + 86400 * 400)
    monkeypatch.setattr(zipfile.time, "localtime", lambda *_: later)  # what np.savez would stamp
    write_npz(tmp_path / "b.npz", _result())
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = read_depth_result(tmp_path / "b.npz")
    np.testing.assert_array_equal(back.prediction, _result().prediction)
    assert back.focal_px == 500.0
    with np.load(tmp_path / "a.npz") as arrays:  # still an ordinary npz
        assert "depth" in arrays.files


def test_umask_is_read_without_changing_it():
    before = os.umask(0o027)
    try:
        seen = []

        def probe() -> None:
            for _ in range(2000):
                seen.append(os.umask(0o027))  # anyone reading 0 here saw _umask's window
                os.umask(0o027)

        thread = threading.Thread(target=probe)
        thread.start()
        values = {atomic._umask() for _ in range(2000)}
        thread.join()
        assert values == {0o027}
        assert set(seen) == {0o027}
    finally:
        os.umask(before)


def test_atomic_files_get_the_umask_mode(tmp_path):
    before = os.umask(0o077)
    try:
        atomic.write_text_atomic(tmp_path / "x.json", "{}")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o600
