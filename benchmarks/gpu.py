"""GPU latency, throughput and peak memory per model, precision, batch size and fast path.

    python benchmarks/gpu.py --quick                  # < 8 min on one H100/H200
    python benchmarks/gpu.py                          # more iterations, adds fp16 everywhere
    python benchmarks/gpu.py --models depth-pro --precisions bf16 --options eager,cuda-graphs,compile
    python benchmarks/gpu.py --json gpu.json          # the rows as JSON too

Weights are random (`random_weights=True`): speed and memory do not depend on their
values. Inputs are at each model's native size (Depth Pro 1536x1536, Depth Anything
518x518). Each row: warm-up passes (kernel selection, allocator, graph capture or
compilation), then N timed batches, each bracketed by `torch.cuda.synchronize()`; the
time covers what `predict_batch` does per batch on the device (pinned host-to-device
copy, forward, the precision guard's check), not decoding or resizing on the CPU.
Peak memory is `torch.cuda.max_memory_allocated` over that row (weights included).
A row that runs out of memory says so and the run goes on. Without CUDA the script
prints one line and exits 0. Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sharpdepth.engine.accelerate import Acceleration
from sharpdepth.engine.model import DepthModel, load
from sharpdepth.io.atomic import write_text_atomic

DEFAULT_MODELS = ("depth-pro", "depth-anything-v2-small")
NATIVE_SIDE = {"depth-pro": 1536, "depth-anything-v2-small": 518}
PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
OPTIONS = ("eager", "cuda-graphs", "compile", "compile+cuda-graphs")
TARGETS = (
    # (model, precision, what, bound): Depth Pro latency at batch 1, Depth Anything best throughput.
    ("depth-pro", "bf16", "ms_per_image_b1", 50.0),
    ("depth-anything-v2-small", "bf16", "best_images_per_s", 300.0),
)


@dataclass
class Row:
    model: str
    precision: str
    option: str
    batch: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    images_per_s: float | None = None
    peak_gib: float | None = None
    error: str | None = None


def environment() -> str:
    props = torch.cuda.get_device_properties(0)
    return (
        f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}); "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
        f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}; Python {platform.python_version()}"
    )


def make_inputs(model: DepthModel, batch: int) -> list[torch.Tensor]:
    side = NATIVE_SIDE.get(model.name, model.input_size)
    rgb = (np.random.default_rng(0).random((side, side, 3)) * 255).astype(np.uint8)
    one = model.processor.preprocess(rgb)
    return [one.clone() for _ in range(batch)]


def time_batches(model: DepthModel, inputs: list[torch.Tensor], warmup: int, iters: int) -> list[float]:
    """Seconds per batch, each measured between two device synchronisations."""
    for _ in range(warmup):
        model.runner.run_batch(model.processor, inputs)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        model.runner.run_batch(model.processor, inputs)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def load_model(name: str, precision: str) -> DepthModel:
    torch.manual_seed(0)
    return load(name, device="cuda", precision=precision, random_weights=True)


def with_option(model: DepthModel, option: str) -> DepthModel:
    """The same loaded network with another fast path (a fresh runner: no graphs or compiled code yet)."""
    model.acceleration = Acceleration(compile="compile" in option, cuda_graphs="cuda-graphs" in option)
    model._runner = None
    return model


def measure(model: DepthModel, option: str, batches: list[int], warmup: int, iters: int) -> list[Row]:
    rows: list[Row] = []
    with_option(model, option)
    # One untimed batch first: random weights can give a constant map even in fp32, which the
    # precision guard finds out (one fp32 re-run, then it stops checking for constant maps);
    # that re-run must not count in the timings or the peak memory.
    try:
        model.runner.run_batch(model.processor, make_inputs(model, 1))
    except Exception as exc:
        rows = [Row(model.name, PRECISION_NAMES[model.dtype], option, b, error=f"{type(exc).__name__}: {exc}"[:120])
                for b in batches]  # fmt: skip
        for row in rows:
            print(format_row(row), flush=True)
        return rows
    for batch in batches:
        row = Row(model.name, PRECISION_NAMES[model.dtype], option, batch)
        try:
            inputs = make_inputs(model, batch)
            model.runner.release_graphs()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            reruns = model.runner.stats.fp32_reruns
            times = time_batches(model, inputs, warmup, iters)
            reruns = model.runner.stats.fp32_reruns - reruns
            row.p50_ms = float(np.percentile(times, 50) * 1e3)
            row.p90_ms = float(np.percentile(times, 90) * 1e3)
            row.images_per_s = batch / float(np.median(times))
            row.peak_gib = torch.cuda.max_memory_allocated() / 2**30
            if reruns:  # the timings would include fp32 passes: do not report them as this precision
                row.error = f"precision guard re-ran {reruns} batch(es) in fp32 (output non-finite or blank)"
        except torch.cuda.OutOfMemoryError:
            row.error = "out of GPU memory"
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {exc}"[:120]
        rows.append(row)
        print(format_row(row), flush=True)
        if row.error == "out of GPU memory":
            break  # larger batches will not fit either
    model.runner.release_graphs()
    return rows


def format_row(r: Row) -> str:
    if r.error:
        return f"{r.model:<26} {r.precision:<5} {r.option:<20} {r.batch:>5}  {r.error}"
    assert r.p50_ms is not None and r.p90_ms is not None and r.images_per_s is not None and r.peak_gib is not None
    return (
        f"{r.model:<26} {r.precision:<5} {r.option:<20} {r.batch:>5} {r.p50_ms:>9.1f} {r.p90_ms:>9.1f} "
        f"{r.p50_ms / r.batch:>9.1f} {r.images_per_s:>9.1f} {r.peak_gib:>9.2f}"
    )


HEADER = (
    f"{'model':<26} {'prec':<5} {'options':<20} {'batch':>5} {'p50 ms':>9} {'p90 ms':>9} "
    f"{'ms/img':>9} {'img/s':>9} {'peak GiB':>9}"
)


def verdicts(rows: list[Row]) -> list[str]:
    lines = []
    for model, precision, what, bound in TARGETS:
        ok = [r for r in rows if r.model == model and r.precision == precision and r.error is None]
        if not ok:
            lines.append(f"target {model} {precision} {what}: not measured")
            continue
        if what == "ms_per_image_b1":
            b1 = [r for r in ok if r.batch == 1 and r.p50_ms is not None]
            if not b1:
                lines.append(f"target {model} {precision} latency at batch 1: not measured")
                continue
            best = min(b1, key=lambda r: r.p50_ms or float("inf"))
            value = best.p50_ms or float("inf")
            verdict = "PASS" if value <= bound else "FAIL"
            lines.append(f"target {model} {precision} <= {bound:.0f} ms/image (batch 1, p50): {value:.1f} ms "
                         f"({best.option}) {verdict}")  # fmt: skip
        else:
            best = max(ok, key=lambda r: r.images_per_s or 0.0)
            value = best.images_per_s or 0.0
            verdict = "PASS" if value >= bound else "FAIL"
            lines.append(f"target {model} {precision} >= {bound:.0f} images/s: {value:.0f} "
                         f"(batch {best.batch}, {best.option}) {verdict}")  # fmt: skip
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma list of registered models")
    parser.add_argument("--precisions", default=None, help="comma list of fp32,bf16,fp16 (default: all three)")
    parser.add_argument("--batches", default="1,4,8", help="comma list of batch sizes")
    parser.add_argument(
        "--options", default=None, help=f"comma list of {','.join(OPTIONS)} (default: eager,cuda-graphs)"
    )
    parser.add_argument("--quick", action="store_true", help="few iterations; compile off (< 8 min on an H100)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting new rows after this many seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (JSON)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device available to this PyTorch build: nothing to measure (benchmarks/gpu.py needs a GPU)")
        return 0
    models = [m for m in args.models.split(",") if m]
    precisions = (args.precisions or "fp32,bf16,fp16").split(",")
    batches = [int(b) for b in args.batches.split(",")]
    options = (args.options or "eager,cuda-graphs").split(",")
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        print(f"unknown option(s) {', '.join(unknown)}; choose from {', '.join(OPTIONS)}", file=sys.stderr)
        return 2
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    iters = args.iters if args.iters is not None else (5 if args.quick else 30)
    budget = args.budget_s if args.budget_s is not None else (420.0 if args.quick else float("inf"))
    print(environment())
    print(f"warm-up {warmup}, timed batches {iters}; random weights; native input sizes")
    print(HEADER)
    print("-" * len(HEADER))
    started = time.perf_counter()
    rows: list[Row] = []
    for name in models:
        for precision in precisions:
            if time.perf_counter() - started > budget:
                print(f"{name:<26} {precision:<5} skipped (time budget {budget:.0f} s)")
                continue
            try:
                model = load_model(name, precision)
            except Exception as exc:  # e.g. bf16 on a GPU without it: one line, go on
                print(f"{name:<26} {precision:<5} cannot load: {type(exc).__name__}: {exc}"[:160])
                continue
            for option in options:
                if time.perf_counter() - started > budget:
                    print(f"{name:<26} {precision:<5} {option:<20} skipped (time budget {budget:.0f} s)")
                    continue
                rows.extend(measure(model, option, batches, warmup, iters))
            del model
            torch.cuda.empty_cache()
    print()
    for line in verdicts(rows):
        print(line)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        write_text_atomic(args.json, json.dumps({"environment": environment(), "rows": [asdict(r) for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
