"""Video throughput and memory: frames per second and peak RSS of `predict_video` (issue 9 §5).

Each configuration runs in a fresh process on a synthetic H.264 clip (random
weights: speed and memory do not depend on the values) and reports frames per
second (decode + network + stabiliser, model load excluded) and the process's
peak resident memory. Running the same configuration on a short and a long
clip shows whether memory grows with the length of the video (it must not).

    python benchmarks/video.py                       # the issue's table (slow on a CPU)
    python benchmarks/video.py --quick               # tiny sizes, runs in a minute or two
    python benchmarks/video.py --configs depth-anything-v2-small@518 --frames 100,1000

A configuration is MODEL[@INPUT_SIZE][:MODE][/PRECISION], e.g.
`video-depth-anything-small@518:streaming`, `depth-pro/bf16`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONFIGS = (
    "depth-anything-v2-small@518",
    "video-depth-anything-small@518:offline",
    "video-depth-anything-small@518:streaming",
    "depth-pro/bf16",
)
QUICK_CONFIGS = ("depth-anything-v2-tiny@56", "depth-anything-v2-small@112")


def parse_config(text: str) -> dict[str, object]:
    precision = "fp32"
    if "/" in text:
        text, precision = text.split("/", 1)
    mode = "offline"
    if ":" in text:
        text, mode = text.split(":", 1)
    input_size = None
    if "@" in text:
        text, size = text.split("@", 1)
        input_size = int(size)
    return {"model": text, "input_size": input_size, "mode": mode, "precision": precision}


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 24) -> None:
    """A moving-pattern clip, written frame by frame (PyAV)."""
    import av
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            img = np.stack([(xx + 3 * i) % 256, (yy * 2 + i) % 256, ((xx + yy) // 2) % 256], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def child(config: dict[str, object], clip: str) -> None:
    """Runs in the measured process: load, predict every frame, print one JSON line."""
    import sharpdepth
    from sharpdepth.errors import OptionError

    try:
        model = sharpdepth.load(
            str(config["model"]),
            random_weights=True,
            precision=str(config["precision"]),
            input_size=config["input_size"],  # type: ignore[arg-type]
        )
    except OptionError as exc:  # e.g. a video model that is not in this build
        print(json.dumps({"error": str(exc)}))
        return
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    count = 0
    for _ in model.predict_video(clip, mode=str(config["mode"])):
        count += 1
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": count, "seconds": elapsed, "peak_mib": peak, "after_load_mib": base_rss}))


def measure(config_text: str, clip: Path, timeout: float) -> dict[str, float | str]:
    cmd = [sys.executable, __file__, "--child", config_text, str(clip)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0][:160]}
    row: dict[str, float | str] = json.loads(lines[-1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=None, help="comma list (see above)")
    parser.add_argument("--frames", default=None, help="clip lengths, e.g. 100,1000")
    parser.add_argument("--size", default=None, help="clip size WxH")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing and the memory rule")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "CLIP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(parse_config(args.child[0]), args.child[1])
        return
    configs = args.configs.split(",") if args.configs else list(QUICK_CONFIGS if args.quick else DEFAULT_CONFIGS)
    frames = [int(n) for n in (args.frames or ("30,300" if args.quick else "100,1000")).split(",")]
    width, height = (int(v) for v in (args.size or ("128x96" if args.quick else "640x360")).lower().split("x"))
    print(f"clip {width}x{height}, lengths {frames}; fps = frames / (decode + network + stabiliser) seconds")
    print(f"{'configuration':<44} {'frames':>6} {'fps':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory(prefix="sharpdepth-bench-") as tmp:
        clips = {}
        for n in frames:
            clips[n] = Path(tmp) / f"clip{n}.mp4"
            make_clip(clips[n], n, width, height)
        for config in configs:
            peaks = []
            for n in frames:
                row = measure(config, clips[n], args.timeout)
                if "error" in row:
                    print(f"{config:<44} {n:>6} {'-':>8} {'-':>9}  ({row['error']})")
                    break
                fps = float(row["frames"]) / max(float(row["seconds"]), 1e-9)
                peaks.append(float(row["peak_mib"]))
                print(f"{config:<44} {row['frames']:>6} {fps:>8.2f} {row['peak_mib']:>9.0f}")
            if len(peaks) > 1:
                print(f"{'':<44} peak memory, longest / shortest clip: x{peaks[-1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
