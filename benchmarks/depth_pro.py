"""Depth Pro: latency and peak memory of one 1536x1536 forward pass, fp32 and bf16 (CPU),
plus fp16/bf16 on CUDA when a GPU is present, with ratios to the official implementation.

    python benchmarks/depth_pro.py

Reference (official apple/ml-depth-pro on the project's 2-core CPU, fp32 / bf16):
~242 / ~143 CPU-seconds and 8.1 / 4.3 GiB peak. Ratios below 1.0 are better.
"""

from __future__ import annotations

import sys

import torch

from models import main

OFFICIAL_CPU = {("depth-pro", "fp32"): (242.0, 8.1), ("depth-pro", "bf16"): (143.0, 4.3)}

if __name__ == "__main__":
    argv = sys.argv[1:] or ["--models", "depth-pro", "--precisions", "fp32,bf16"]
    main(argv, reference=OFFICIAL_CPU)
    if torch.cuda.is_available() and not sys.argv[1:]:
        main(["--models", "depth-pro", "--precisions", "fp32,bf16,fp16", "--device", "cuda"])
