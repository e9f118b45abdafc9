"""Stereo synthesis alone (depth given): frames per second and peak memory per layout at 1920x1080.

usage: python benchmarks/stereo_speed.py [--frames N] [--layouts half-sbs,sbs,...] [--baseline FILE]

`--baseline FILE`: another version of `apps/stereo_views.py` (e.g. `git show
main:src/sharpdepth/apps/stereo_views.py > /tmp/old_views.py`); its `render_eye`
and this one's are timed alternately, 5 frames at a time, in one process, and the
median CPU ms per frame of each is printed: the A/B that a shared machine's load
does not skew.

A textured frame with a smooth depth field and a few near boxes (so there are real
disocclusions) is converted N times per layout with the default settings
(metric depth, depth-aware fill); the depth and the picture change every frame so
no cache helps. Both eyes are rendered at once (the caller's thread and one helper),
so on two cores the wall time is about half the CPU time.

Reported per layout: wall frames/s, wall ms and process CPU ms per frame (CPU time
is what to compare on a shared machine; the 1-minute load average is printed
before and after), and the peak resident set (ru_maxrss) after the first half of the
frames and after all of them: equal when memory is flat in clip length (nothing is
kept between frames).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import time

import numpy as np

from sharpdepth.apps import stereo as stereo_app
from sharpdepth.apps.settings import StereoSettings
from sharpdepth.apps.stereo import Equirect180, compose, parallax_map
from sharpdepth.result import DepthResult, OutputKind

H, W, FOCAL = 1080, 1920, 1500.0


def frame(i: int) -> DepthResult:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    depth = 3.0 + 2.0 * np.sin(xx / 300 + i * 0.1) + yy / H
    for k in range(4):
        y0, x0 = 200 + 150 * k, 300 + 350 * k + 5 * i
        depth[y0 : y0 + 200, x0 : x0 + 250] = 1.0
    return DepthResult(depth, OutputKind.METRIC_DEPTH, focal_px=FOCAL, image=img, model_name="synthetic")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--layouts", default="half-sbs,half-tb,sbs,anaglyph")
    parser.add_argument("--baseline", help="another stereo_views.py to compare with (interleaved A/B)")
    args = parser.parse_args()
    frames = [frame(i) for i in range(4)]
    if args.baseline:
        compare(args.baseline, frames, args.layouts.split(",")[0])
        return
    vr = Equirect180.for_view(W, H, FOCAL)
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}, CPUs: {os.cpu_count()}")
    print(
        f"| layout | frames/s | wall ms/frame | CPU ms/frame | peak MB at N/2 | peak MB at N |"
        f"  ({W}x{H}, depth given, {args.frames} frames)"
    )
    for layout in args.layouts.split(","):
        settings = StereoSettings(layout=layout)
        compose(frames[0].image, parallax_map(frames[0], settings), settings, vr)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        peak_half = 0.0
        for i in range(args.frames):
            result = frames[i % len(frames)]
            compose(result.image, parallax_map(result, settings), settings, vr)
            if i == args.frames // 2 - 1:
                peak_half = peak_mb()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        per = 1000 * elapsed / args.frames
        print(
            f"| {layout} | {args.frames / elapsed:.1f} | {per:.0f} | {1000 * cpu / args.frames:.0f} "
            f"| {peak_half:.0f} | {peak_mb():.0f} |"
        )
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


def compare(baseline: str, frames: list[DepthResult], layout: str, rounds: int = 6, per_round: int = 5) -> None:
    """Interleaved A/B of the baseline file's `render_eye` against this one's: median CPU ms per frame."""
    spec = importlib.util.spec_from_file_location("sharpdepth.apps._baseline_views", baseline)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {baseline}")
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    current = stereo_app.render_eye
    settings = StereoSettings(layout=layout)
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}, CPUs: {os.cpu_count()}")
    try:
        for _ in range(rounds):
            for name, render in (("baseline", old.render_eye), ("this", current)):
                stereo_app.render_eye = render
                cpu = time.process_time()
                for i in range(per_round):
                    result = frames[i % len(frames)]
                    compose(result.image, parallax_map(result, settings), settings)
                times[name].append(1000 * (time.process_time() - cpu) / per_round)
    finally:
        stereo_app.render_eye = current
    a, b = float(np.median(times["baseline"])), float(np.median(times["this"]))
    print(f"{layout}: baseline {a:.1f} CPU ms/frame, this {b:.1f} ({a / b:.2f}x less CPU time)")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


def peak_mb() -> float:
    """The process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
