"""Encoders return bytes; files are those bytes written atomically; the service returns the same bytes.

Also the failure vocabulary (`errors.classify`) and the staged runner's ordering, and the video
writer going through the one atomic writer (a killed run's temporary file is cleaned up).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from sharpdepth.engine.staged import run_staged
from sharpdepth.errors import InputImageError, Scope, classify, first_line
from sharpdepth.io.atomic import clean_stale_parts
from sharpdepth.io.depth_files import DATA_FORMATS, encode_depth, encode_sidecar, write_result, write_sidecar
from sharpdepth.io.outputs import OutputOptions
from sharpdepth.io.photos import encode_image, save_image
from sharpdepth.io.video_writer import VideoWriter
from sharpdepth.result import DepthResult, FocalSource, OutputKind
from sharpdepth.service.encode import depth_file, sidecar_fields


def _result(kind: OutputKind = OutputKind.METRIC_DEPTH) -> DepthResult:
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 90.0, size=(24, 32)).astype(np.float32)
    return DepthResult(depth, kind, focal_px=40.0, focal_source=FocalSource.MODEL, model_name="m")


@pytest.mark.parametrize("fmt", DATA_FORMATS)
def test_a_written_file_holds_the_encoders_bytes_and_the_service_returns_them(tmp_path, fmt):
    result = _result()
    encoded = encode_depth(result, fmt, scale_m=0.001)
    path = write_result(result, tmp_path, "a", fmt, scale_m=0.001)
    if fmt != "exr":  # OpenEXR stamps nothing variable, but compare what it reads back instead of trusting it
        assert path.read_bytes() == encoded.data
    else:
        assert path.stat().st_size == len(encoded.data)
    served = depth_file(result, fmt, "a", OutputOptions(formats=(fmt,), png16_scale_m=0.001))
    assert served.filename == path.name and (fmt == "exr" or served.body == path.read_bytes())
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_png16_saturation_is_a_notice_of_the_encoder(tmp_path):
    encoded = encode_depth(_result(), "png16", scale_m=0.001)  # 65.5 m at most: part of 0.5..90 m is deeper
    assert [n.kind for n in encoded.notices] == ["png16_saturated"] and 0 < (encoded.notices[0].share or 0) < 1


def test_sidecar_and_pictures_are_the_same_bytes_as_their_files(tmp_path):
    result = _result()
    write_sidecar(tmp_path / "s.json", result, {"files": ["x"]})
    assert (tmp_path / "s.json").read_bytes() == encode_sidecar(result, {"files": ["x"]})
    assert sidecar_fields(result)["model"] == "m"
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg"):
        assert save_image(tmp_path / f"p{suffix}", rgb).read_bytes() == encode_image(rgb, suffix)


def test_classify_sorts_errors_into_item_chunk_and_crash():
    assert classify(InputImageError("bad.png: corrupt")).scope is Scope.ITEM
    assert classify(InputImageError("refused"), chunk=True).scope is Scope.CHUNK
    oom = classify(MemoryError("Unable to allocate 298. GiB\nmore"), model_name="tiny")
    assert (
        oom.scope is Scope.CHUNK and oom.reason == "not enough memory to run tiny on it (Unable to allocate 298. GiB)"
    )
    import torch

    assert classify(torch.OutOfMemoryError("CUDA out of memory"), chunk=True).scope is Scope.CHUNK
    full = classify(OSError(28, "No space left on device"))
    assert full.scope is Scope.ITEM and full.reason == "could not write outputs: No space left on device"
    assert classify(OSError(28, "No space left on device"), chunk=True).scope is Scope.CRASH
    assert classify(KeyError("bug")).scope is Scope.CRASH
    assert first_line(ValueError("")) == "ValueError" and first_line(ValueError("a\nb"), 1) == "a"


def test_the_staged_runner_keeps_order_bounds_and_raises_in_turn():
    decoded: list[int] = []

    def source():
        for i in range(20):
            decoded.append(i)
            yield i

    def network(items):
        for i in items:
            yield i * 10

    def write(x: int) -> int:
        time.sleep(0.001 * (x % 3))
        return x + 1

    assert list(run_staged(source(), network, write, ahead=2, behind=2)) == [i * 10 + 1 for i in range(20)]
    assert list(run_staged(source(), network, write, threaded=False)) == [i * 10 + 1 for i in range(20)]

    def broken(x: int) -> int:
        if x == 50:
            raise RuntimeError("writer gremlin")
        return x

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="writer gremlin"):
        for value in run_staged(source(), network, broken):
            seen.append(value)
    assert seen == [0, 10, 20, 30, 40]
    assert not [t for t in threading.enumerate() if t.name.startswith("sharpdepth-")]


def test_the_video_writer_uses_the_atomic_writer_and_a_killed_runs_leftover_is_cleaned(tmp_path):
    writer = VideoWriter(tmp_path / "v.mp4", 32, 24, rate=__import__("fractions").Fraction(10))
    part = writer.tmp
    assert part.name.startswith(f".v.{os.getpid()}.") and part.name.endswith(".part.mp4")
    writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.close()
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "v.mp4").stat().st_mode & 0o777 == 0o666 & ~umask and not part.exists()
    # A leftover of a process that no longer exists (pid far above any live one) is removed.
    dead = tmp_path / ".v.999999999.abc123.part.mp4"
    dead.write_bytes(b"half")
    assert clean_stale_parts(tmp_path) == [dead] and (tmp_path / "v.mp4").exists()


def test_a_stale_folder_of_a_killed_export_is_cleaned(tmp_path):
    dead = tmp_path / ".graph.999999999.x1y2.part"
    (dead / "inner").mkdir(parents=True)
    (dead / "inner" / "model.onnx").write_bytes(b"x")
    live = tmp_path / f".graph.{os.getpid()}.x1y2.part"
    live.mkdir()
    assert clean_stale_parts(tmp_path) == [dead] and live.exists() and not dead.exists()
