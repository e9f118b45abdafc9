"""Stabiliser effect on the shared TUM RGB-D clip (issue 9 §3).

Per-frame "predictions" are ground-truth disparity x a random per-frame scale,
plus a per-frame shift and 2 % pixel noise. AbsRel / delta1 after least-squares
alignment in disparity with one scale/shift per SEQUENCE (the video protocol)
and one per FRAME. A stabiliser is good when the first comes close to the second.

    python benchmarks/stabilizer_tum.py [--frames 50] [--size 320x240] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from sharpdepth.video.measure import load_tum_sequence, stabilizer_table


def main() -> None:
    shared = Path(os.environ.get("SHARPDEPTH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=shared / "data/rgbd/sequences/tum_fr2_desk")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", default="640x480", help="WxH the frames are resized to")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    seq = load_tum_sequence(args.folder, frames=args.frames, size=(w, h))
    print(f"{args.folder.name}: {len(seq.rgb)} frames at {w}x{h}")
    print(f"{'seed':>4} {'predictions':<22} {'AbsRel/seq':>10} {'AbsRel/frame':>12} {'d1/seq':>7} {'d1/frame':>8}")
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.perf_counter()
        for name, sa, fa, sd, fd in stabilizer_table(seq, seed=seed):
            print(f"{seed:>4} {name:<22} {sa:>10.4f} {fa:>12.4f} {sd:>7.3f} {fd:>8.3f}")
        print(f"     ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
