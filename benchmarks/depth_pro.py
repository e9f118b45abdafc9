"""Depth Pro: latency and peak memory of one 1536x1536 forward pass, fp32 and bf16 (CPU),
plus fp16/bf16 on CUDA when a GPU is present. Random weights, a fresh process each.

    python benchmarks/depth_pro.py

For the comparison with Apple's official code (same checkpoint, same input, both measured in
one run on this machine) use `python benchmarks/depth_pro_vs_official.py`.
"""

from __future__ import annotations

import sys

import torch

from models import main

if __name__ == "__main__":
    argv = sys.argv[1:] or ["--models", "depth-pro", "--precisions", "fp32,bf16"]
    main(argv)
    if torch.cuda.is_available() and not sys.argv[1:]:
        main(["--models", "depth-pro", "--precisions", "fp32,bf16,fp16", "--device", "cuda"])
