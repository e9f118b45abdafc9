"""Peak memory of `sharpdepth.load("depth-pro", weights=...)`, each load in a fresh process.

    python benchmarks/load_memory.py [--before /work/main/src] [--model depth-pro] [--dir /tmp/x]

Writes the model's random weights once, in fp16 like the official `depth_pro.pt`
(1.9 GB), as an official `.pt` and as a `.safetensors`, then loads each file at fp32 and
bf16 in a fresh interpreter and reports, from that process:

- peak RSS (`VmHWM`, whole process: anonymous memory plus the checkpoint's mapped pages),
- peak anonymous memory (`RssAnon`, sampled every 5 ms): the copies the process made,
- the RSS of `import torch, sharpdepth` alone, and the load's wall time.

`--before SRC` runs the same loads with another checkout's `src` (e.g. the branch before
the meta-device loading) for a side-by-side table. Not part of the test suite: the full
model needs ~4 GB per copy and a minute per load on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
AFTER_SRC = HERE.parent / "src"

CHILD = r"""
import json, sys, threading, time
def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out
peak_anon = [0.0]
done = threading.Event()
def sample():
    while not done.is_set():
        peak_anon[0] = max(peak_anon[0], status().get("RssAnon", 0.0))
        time.sleep(0.005)
import torch, sharpdepth
base = status()
thread = threading.Thread(target=sample, daemon=True)
thread.start()
start = time.perf_counter()
model = sharpdepth.load(sys.argv[1], weights=sys.argv[2], precision=sys.argv[3])
seconds = time.perf_counter() - start
done.set(); thread.join()
end = status()
params = sum(p.numel() for p in model.net.parameters())
print(json.dumps({"base_rss": base["VmRSS"], "peak_rss": end["VmHWM"], "peak_anon": max(peak_anon[0], end["RssAnon"]),
                  "end_rss": end["VmRSS"], "seconds": seconds, "dtype": str(model.dtype), "params": params}))
"""

WRITER = r"""
import sys, torch
from safetensors.torch import save_file
from sharpdepth.registry import get_spec
with torch.device("meta"):
    net = get_spec(sys.argv[1]).build()
gen = torch.Generator().manual_seed(0)
state = {}
for key, meta in net.state_dict().items():
    if meta.is_floating_point():
        state[key] = (torch.randn(meta.shape, generator=gen) * 0.02).to(torch.float16)
    else:
        state[key] = torch.zeros(meta.shape, dtype=meta.dtype)
torch.save(state, sys.argv[2])
save_file(state, sys.argv[3])
"""


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    return env


def write_checkpoints(model: str, folder: Path) -> tuple[Path, Path]:
    pt, st = folder / f"{model}.pt", folder / f"{model}.safetensors"
    if not (pt.is_file() and st.is_file()):
        subprocess.run([sys.executable, "-c", WRITER, model, str(pt), str(st)], env=_env(AFTER_SRC), check=True)
    return pt, st


def measure(src: Path, model: str, weights: Path, precision: str) -> dict[str, float | str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(weights), precision],
        env=_env(src),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    result: dict[str, float | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="depth-pro")
    parser.add_argument("--before", type=Path, help="src folder of the implementation to compare with")
    parser.add_argument("--dir", type=Path, help="where to keep the checkpoints (default: a temporary folder)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--formats", default="pt,safetensors")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="sharpdepth-loadmem-"))
    folder.mkdir(parents=True, exist_ok=True)
    pt, st = write_checkpoints(args.model, folder)
    files = {"pt": pt, "safetensors": st}
    impls = [("after", AFTER_SRC)] + ([("before", args.before)] if args.before else [])
    print(f"model {args.model}; checkpoint fp16 {pt.stat().st_size / 2**30:.2f} GiB; CPU flags: {cpu_flags()}")
    header = (
        f"{'impl':7} {'file':12} {'prec':5} {'peak RSS MiB':>13} {'peak anon MiB':>14} {'import MiB':>11} {'load s':>7}"
    )
    print(header)
    for fmt in args.formats.split(","):
        for precision in args.precisions.split(","):
            for label, src in impls:
                r = measure(src, args.model, files[fmt], precision)
                if "error" in r:
                    print(f"{label:7} {fmt:12} {precision:5} error: {r['error']}")
                    continue
                print(
                    f"{label:7} {fmt:12} {precision:5} {r['peak_rss']:13.0f} {r['peak_anon']:14.0f} "
                    f"{r['base_rss']:11.0f} {r['seconds']:7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
