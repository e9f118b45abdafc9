"""`sharpdepth video` as a new user meets it (issue 22 §2 "Video") and its resume rule (issue 18 §3).

Each test fails on the code before the fix: frames after a resume differ from an uninterrupted
run, the audio outlives a `--max-frames` video, a truncated MP4 exits 0 with fewer frames,
sub-folders of a folder of videos are skipped, a huge `--input-size` allocates before failing,
and a re-run with another model keeps the old frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import sharpdepth
from sharpdepth.cli.main import main
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.errors import OptionError
from sharpdepth.io.depth_files import read_depth_result
from sharpdepth.video import job as video_job
from sharpdepth.video.settings import VideoSettings
from video_clips import make_clip


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = sharpdepth.load("depth-anything-v2-tiny", random_weights=True).net
    path = tmp_path_factory.mktemp("w") / "da_tiny.pt"
    torch.save(net.state_dict(), path)
    return path


def run(weights: Path, *args: object) -> int:
    base = ["--model", "depth-anything-v2-tiny", "--weights", str(weights), "--input-size", "56", "-q"]
    return main(["video", *[str(a) for a in args], *base])


def sidecar(folder: Path) -> dict:
    return json.loads((folder / f"{folder.name}.json").read_text())


def test_frames_after_a_resume_equal_an_uninterrupted_run(tmp_path, weights, monkeypatch):
    clip = make_clip(tmp_path / "r.mp4", n=14, w=56, h=40, fps=10)
    assert run(weights, clip, "-o", tmp_path / "full") == 0
    full = {i: read_depth_result(tmp_path / "full" / "r" / f"{i:06d}.npz").prediction for i in range(14)}

    # A run killed while writing frame 8 (the stabiliser has already seen the frames after it).
    real = video_job._ClipJob._write_frame

    def dies_at_8(self, result, reused):
        if result.frame_index == 8:
            raise KeyboardInterrupt
        return real(self, result, reused)

    monkeypatch.setattr(video_job._ClipJob, "_write_frame", dies_at_8)
    assert run(weights, clip, "-o", tmp_path / "cut") != 0  # the CLI reports the interrupt
    monkeypatch.setattr(video_job._ClipJob, "_write_frame", real)
    folder = tmp_path / "cut" / "r"
    assert sorted(p.name for p in folder.glob("*.npz")) == [f"{i:06d}.npz" for i in range(8)]

    assert run(weights, clip, "-o", tmp_path / "cut", "--skip-existing") == 0
    side = sidecar(folder)
    assert side["frame_count"] == 14 and side["frames_reused"] == 8
    for i in range(14):
        resumed = read_depth_result(folder / f"{i:06d}.npz").prediction
        np.testing.assert_allclose(resumed, full[i], rtol=1e-5, atol=1e-6, err_msg=f"frame {i}")
    assert not list((folder / video_job.RESUME_FOLDER).glob("*.npz"))  # raw results dropped when done


def test_a_rerun_with_other_settings_keeps_no_old_frame(tmp_path, weights):
    clip = make_clip(tmp_path / "m.mp4", n=4, w=56, h=40, fps=10)
    out = tmp_path / "out"
    assert run(weights, clip, "-o", out, "--no-stabilize") == 0
    folder = out / "m"
    first = {i: (folder / f"{i:06d}.npz").read_bytes() for i in range(4)}
    # Same model, other settings (stabilised): nothing of the first run may be reused.
    assert run(weights, clip, "-o", out, "--skip-existing") == 0
    side = sidecar(folder)
    assert side["frames_reused"] == 0 and side["stabilizer"]["enabled"] is True
    assert all((folder / f"{i:06d}.npz").read_bytes() != first[i] for i in range(1, 4))
    # The same job again resumes as a whole.
    stamp = (folder / "m.json").stat().st_mtime_ns
    assert run(weights, clip, "-o", out, "--skip-existing") == 0
    assert (folder / "m.json").stat().st_mtime_ns == stamp


def _audio_and_video_end(path: Path) -> tuple[float, float]:
    with av.open(str(path)) as container:
        ends = {}
        for kind in ("video", "audio"):
            stream = getattr(container.streams, kind)[0]
            last = max(
                float((p.pts + (p.duration or 0)) * p.time_base)
                for p in container.demux(stream)
                if p.pts is not None and p.size
            )
            container.seek(0)
            ends[kind] = last
    return ends["audio"], ends["video"]


def test_max_frames_cuts_the_audio_at_the_videos_end(tmp_path, weights):
    clip = make_clip(tmp_path / "a.mp4", n=24, w=56, h=40, fps=12, audio=True)
    assert run(weights, clip, "-o", tmp_path / "out", "--max-frames", "6", "--no-stabilize") == 0
    audio_end, video_end = _audio_and_video_end(tmp_path / "out" / "a" / "a_preview.mp4")
    assert video_end == pytest.approx(0.5, abs=0.01)
    assert abs(audio_end - video_end) < 0.03, (audio_end, video_end)


def test_a_truncated_mp4_is_a_failure_with_a_reason(tmp_path, weights, capsys):
    whole = make_clip(tmp_path / "whole.mp4", n=40, w=56, h=40, fps=10)
    moved = tmp_path / "fast.mp4"
    with av.open(str(whole)) as src, av.open(str(moved), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = stream
                dst.mux(packet)
    truncated = tmp_path / "cut.mp4"
    data = moved.read_bytes()
    truncated.write_bytes(data[: len(data) * 6 // 10])
    assert run(weights, truncated, "-o", tmp_path / "out", "--no-stabilize") == 1
    err = capsys.readouterr().err
    assert "cut.mp4" in err and "truncated" in err and "Traceback" not in err


def test_sub_folders_of_a_folder_of_videos_are_processed(tmp_path, weights):
    videos = tmp_path / "videos"
    make_clip(videos / "top.mp4", n=2, w=56, h=40)
    make_clip(videos / "day2" / "inner.mp4", n=2, w=56, h=40)
    assert run(weights, videos, "-o", tmp_path / "out", "--no-stabilize") == 0
    assert sidecar(tmp_path / "out" / "top")["frame_count"] == 2
    assert sidecar(tmp_path / "out" / "day2" / "inner")["frame_count"] == 2


def test_an_input_size_over_the_pixel_limit_is_refused_before_any_work(tmp_path, weights, capsys):
    with pytest.raises(OptionError, match="--input-size 100000"):
        VideoSettings(model=ModelSettings(name="depth-anything-v2-tiny", input_size=100_000))
    clip = make_clip(tmp_path / "c.mp4", n=2, w=56, h=40)
    code = main(["video", str(clip), "-o", str(tmp_path / "out"), "--model", "depth-anything-v2-tiny",
                 "--weights", str(weights), "--input-size", "100000", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "--input-size 100000" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "c").exists()
