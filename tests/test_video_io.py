"""Video readers and writers: timing, rotation, selection, folders, bad input, atomic writers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sharpdepth.errors import InputImageError, OptionError
from sharpdepth.io.video import FrameSelection, VideoError, VideoWriter, natural_key, open_frames
from video_clips import make_audio_only, make_clip, pattern, probe


def test_reader_keeps_rate_count_and_timestamps(tmp_path):
    src = open_frames(make_clip(tmp_path / "a.mp4", n=10, fps=24))
    assert (src.info.width, src.info.height, src.info.fps, src.info.frame_count) == (64, 48, 24.0, 10)
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(10))
    assert np.allclose([f.timestamp_s for f in frames], np.arange(10) / 24)
    # Decoded pixels match what was encoded (lossy, so loosely): the red block is where it was put.
    assert abs(int(frames[3].rgb[17, 15, 0]) - 230) < 30 and frames[3].rgb.dtype == np.uint8


def test_variable_frame_rate_timestamps_are_real(tmp_path):
    pts = [0, 20, 60, 80, 120, 140, 180, 200]
    frames = list(open_frames(make_clip(tmp_path / "v.mp4", n=8, pts_ms=pts)).frames())
    assert np.allclose([f.timestamp_s for f in frames], np.array(pts) / 1000, atol=1e-3)


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotation_metadata_makes_frames_upright(tmp_path, rotation):
    path = make_clip(tmp_path / f"r{rotation}.mp4", n=2, w=64, h=48, rotation=rotation)
    src = open_frames(path)
    frame = next(src.frames()).rgb
    assert frame.shape == (64, 48, 3) and (src.info.width, src.info.height) == (48, 64)
    unrotated = pattern(0, 48, 64)
    # Counter-clockwise display rotation, as FFmpeg applies it (np.rot90 turns counter-clockwise).
    expected = np.rot90(unrotated, k=rotation // 90)
    assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 12


def test_start_end_every_max_frames(tmp_path):
    path = make_clip(tmp_path / "s.mp4", n=24, fps=12)
    sel = FrameSelection(start_s=0.5, end_s=1.5, every=2)
    frames = list(open_frames(path, sel).frames())
    assert [f.index for f in frames] == [6, 8, 10, 12, 14, 16]
    assert np.allclose([f.timestamp_s for f in frames], np.array([6, 8, 10, 12, 14, 16]) / 12)
    assert [f.index for f in open_frames(path, FrameSelection(max_frames=3, every=3)).frames()] == [0, 3, 6]
    with pytest.raises(OptionError):
        FrameSelection(start_s=2, end_s=1)
    with pytest.raises(OptionError):
        FrameSelection(every=0)
    with pytest.raises(VideoError, match="no decodable video frames after 5"):
        open_frames(path, FrameSelection(start_s=5.0))


def test_folder_natural_sort_glob_and_arrays(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10, 9):
        Image.fromarray(np.full((8, 10, 3), i, np.uint8)).save(folder / f"f_{i}.png")
    src = open_frames(folder, fps=12)
    values = [int(f.rgb[0, 0, 0]) for f in src.frames()]
    assert values == [1, 2, 9, 10] and src.info.fps == 12.0 and src.info.stem == "frames"
    assert [int(f.rgb[0, 0, 0]) for f in open_frames(str(folder / "f_*.png")).frames()] == [1, 2, 9, 10]
    assert sorted(["a10", "a9", "a1"], key=natural_key) == ["a1", "a9", "a10"]
    arr = np.stack([np.full((4, 6, 3), i, np.uint8) for i in range(5)])
    got = list(open_frames(arr, FrameSelection(every=2)).frames())
    assert [f.index for f in got] == [0, 2, 4] and np.allclose([f.timestamp_s for f in got], [0, 2 / 24, 4 / 24])


def test_ten_bit_and_odd_sizes(tmp_path):
    frames = list(open_frames(make_clip(tmp_path / "t.mp4", n=3, pix_fmt="yuv420p10le")).frames())
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 33, 21, Fraction(25)) as writer:
        for i in range(5):
            writer.write(pattern(i, 21, 33), i / 25)
    assert probe(out)[:4] == (5, 33, 21, 25.0)
    assert next(open_frames(out).frames()).rgb.shape == (21, 33, 3)


def _bad(tmp_path: Path) -> dict[str, Path]:
    good = make_clip(tmp_path / "good.mp4", n=6)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "1.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(mixed / "2.png")
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    return {
        "corrupt": corrupt, "truncated": truncated, "audio": make_audio_only(tmp_path / "a.m4a"),
        "empty": empty, "mixed": mixed, "zero": zero,
    }  # fmt: skip


@pytest.mark.parametrize(
    "case, words",
    [
        ("corrupt", "not a readable video"),
        ("truncated", "not a readable video"),
        ("audio", "no video stream (audio only)"),
        ("empty", "no image frames"),
        ("mixed", "frames differ in size"),
        ("zero", "not a readable video"),
    ],
)
def test_bad_inputs_give_one_line(tmp_path, case, words):
    with pytest.raises(InputImageError) as err:
        open_frames(_bad(tmp_path)[case])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_pixel_limit(tmp_path):
    with pytest.raises(VideoError, match=r"3,072 pixels\), over the limit of 1,000; raise it with --max-pixels"):
        open_frames(make_clip(tmp_path / "a.mp4", n=2), max_pixels=1000)


def test_writer_copies_audio_and_is_atomic(tmp_path):
    src_path = make_clip(tmp_path / "in.mp4", n=24, fps=12, audio=True)
    src = open_frames(src_path)
    out = tmp_path / "o" / "preview.mp4"
    writer = VideoWriter(out, 64, 48, src.info.rate, audio_from=src_path)
    for f in src.frames():
        writer.write(f.rgb, f.timestamp_s)
        assert not out.exists()  # only the temporary file exists while writing
    writer.close()
    assert probe(out) == (24, 64, 48, 12.0, True)
    assert not [p for p in out.parent.iterdir() if ".part" in p.name]
    failed = tmp_path / "o" / "failed.mp4"
    with pytest.raises(RuntimeError), VideoWriter(failed, 64, 48, Fraction(12)) as w2:
        w2.write(pattern(0, 48, 64))
        raise RuntimeError("boom")
    assert list(out.parent.iterdir()) == [out]


def test_writer_keeps_variable_frame_timing(tmp_path):
    times = [0.0, 0.02, 0.06, 0.08, 0.12, 0.14]
    out = tmp_path / "vfr.mp4"
    with VideoWriter(out, 64, 48, Fraction(25)) as writer:
        for i, t in enumerate(times):
            writer.write(pattern(i, 48, 64), t + 1.0)  # the first frame's time becomes 0
    got = [f.timestamp_s for f in open_frames(out).frames()]
    assert np.allclose(got, times, atol=1e-3)
