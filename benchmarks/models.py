"""Latency and peak memory of one forward pass per model and precision, as a table.

    python benchmarks/models.py                       # every registered model, fp32 + bf16, CPU
    python benchmarks/models.py --models depth-pro --precisions fp32,bf16
    python benchmarks/models.py --device cuda --precisions fp32,bf16,fp16

Weights are random (`random_weights=True`): speed and memory do not depend on the
values. Each measurement runs in its own process (see _measure.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(name: str, precision: str, device: str, timeout: int) -> dict:
    cmd = [sys.executable, str(HERE / "_measure.py"), name, precision, device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "precision": precision, "device": device, "error": f"timeout {timeout}s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": name, "precision": precision, "device": device, "error": tail[:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], reference: dict[tuple[str, str], tuple[float, float]] | None = None) -> None:
    header = f"{'model':<40} {'prec':<5} {'device':<6} {'input':>10} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9}"
    if reference:
        header += f" {'CPU-s ratio':>11} {'mem ratio':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<40} {r['precision']:<5} {r['device']:<6} error: {r['error']}")
            continue
        size = "x".join(str(v) for v in r["input"])
        line = (
            f"{r['model']:<40} {r['precision']:<5} {r['device']:<6} {size:>10} {r['wall_s']:>8.2f} "
            f"{r['cpu_s']:>8.1f} {r['peak_rss_gib']:>9.2f}"
        )
        ref = (reference or {}).get((r["model"], r["precision"]))
        if ref:
            line += f" {r['cpu_s'] / ref[0]:>11.2f} {r['peak_rss_gib'] / ref[1]:>9.2f}"
        print(line)


def main(argv: list[str] | None = None, reference=None, default_models: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma list (default: every registered model)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    import sharpdepth

    models = args.models.split(",") if args.models else (default_models or sharpdepth.list_models())
    rows = []
    for name in models:
        for precision in args.precisions.split(","):
            row = measure(name, precision, args.device, args.timeout)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print_table(rows, reference)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
