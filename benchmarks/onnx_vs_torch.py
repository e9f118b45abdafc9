"""PyTorch vs onnxruntime on the CPU, for the same network input, in one run (interleaved).

    python benchmarks/onnx_vs_torch.py [--model depth-anything-v2-small] [--input-size 518] [--runs 5]

Exports the network (random weights) with `sharpdepth.export.onnx` (which checks the graph
against PyTorch first), then times forward passes of both runtimes alternately on one picture,
with the same number of threads, and prints the median wall and CPU seconds per image and the
ratio. This decides whether an onnxruntime backend for `predict` is worth having on a CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import sharpdepth
from sharpdepth.engine.settings import ModelSettings
from sharpdepth.export.onnx import OnnxExportSettings, example_input, export_onnx


def _cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0]
    except (OSError, IndexError):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ",".join(f for f in wanted if f" {f}" in flags)


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="depth-anything-v2-small")
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime as ort

    torch.manual_seed(0)
    model = sharpdepth.load(args.model, random_weights=True, input_size=args.input_size)
    with torch.no_grad():
        for p in model.net.parameters():
            p.normal_(0.0, 0.02)
    path = Path(tempfile.mkdtemp(prefix="sharpdepth-onnx-")) / "model.onnx"
    settings = OnnxExportSettings(model=ModelSettings(name=args.model, input_size=args.input_size), output=path)
    report = export_onnx(model, settings)
    x = example_input(model, args.input_size, args.input_size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    net = model.net.eval()

    def run_torch() -> None:
        with torch.inference_mode():
            net(x)

    def run_ort() -> None:
        session.run(None, feed)

    run_torch()  # warm-up of both
    run_ort()
    times: dict[str, list[tuple[float, float]]] = {"pytorch": [], "onnxruntime": []}
    for _ in range(args.runs):
        times["pytorch"].append(_timed(run_torch))
        times["onnxruntime"].append(_timed(run_ort))
    print(f"{args.model} at {tuple(x.shape[-2:])}, {torch.get_num_threads()} threads, CPU flags {_cpu_flags()}, "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}; export check max rel. err "
          f"{max(err for _, err in report.checks):.1e}")  # fmt: skip
    print(f"{'runtime':<14}{'wall s':>10}{'CPU s':>10}")
    medians = {}
    for name, rows in times.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        medians[name] = wall
        print(f"{name:<14}{wall:>10.3f}{cpu:>10.3f}")
    print(f"onnxruntime / pytorch wall time: {medians['onnxruntime'] / medians['pytorch']:.2f}")


if __name__ == "__main__":
    main()
