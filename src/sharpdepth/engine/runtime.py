"""Devices and numeric precision.

Rules, from measurements on CPU: fp32 is the CPU default; bf16 runs ~1.7x
faster than fp32 on CPUs with native bf16 (AVX-512 BF16 or AMX) and halves
memory, but on CPUs without it (AVX2 only) bf16 is emulated and ~5x *slower*
(tiny Depth Pro: 39 CPU-s against 7.6), so choosing it there logs a one-line
warning; fp16 on CPU is ~6x slower (no native kernels), so it is refused rather
than silently forced as the official CLI does. On a GPU fp16 and bf16 are both
allowed. `auto` picks by capability: bf16 on CPUs with native bf16 and on GPUs
that support it, else fp32. An explicit choice is never switched.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Literal

import torch

from ..errors import OptionError

Precision = Literal["fp32", "bf16", "fp16", "auto"]
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
"""/proc/cpuinfo flags of CPUs with bf16 arithmetic (x86 AVX-512 BF16 / AMX, Arm `bf16`)."""

log = logging.getLogger("sharpdepth")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes in bf16 natively (read from the kernel's CPU flags)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and NATIVE_BF16_FLAGS & set(value.split()):
            return True
    return False


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None) -> torch.device:
    name = str(device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise OptionError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' requested but no CUDA GPU is available to this PyTorch build")
    if dev.type == "mps" and not _mps_available():
        raise OptionError("device 'mps' requested but Apple MPS is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise OptionError(f"unsupported device type {dev.type!r}; use cpu, cuda or mps")
    return dev


def auto_precision(device: torch.device) -> str:
    """The fastest precision this device runs natively."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_precision(precision: str | None, device: torch.device) -> torch.dtype:
    name = (precision or "fp32").lower()
    if name == "auto":
        return DTYPES[auto_precision(device)]
    if name not in DTYPES:
        raise OptionError(f"unknown precision {name!r}; choose fp32, bf16, fp16 or auto")
    if name == "fp16" and device.type == "cpu":
        raise OptionError("fp16 is GPU-only (about 6x slower than fp32 on CPU); use --precision bf16 on CPU")
    if name == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning(
            "warning: this CPU has no native bf16 (AVX-512 BF16/AMX); bf16 is emulated and several times "
            "slower than fp32 here (it still halves memory)"
        )
    return DTYPES[name]


def is_reduced_precision(dtype: torch.dtype) -> bool:
    """fp16 or bf16: the dtypes whose forward passes the precision guard checks (engine.accelerate)."""
    return dtype in (torch.float16, torch.bfloat16)


DEFAULT_CUDA_BATCH_SIZE = 4
"""Images per forward pass on a GPU where the caller gives none: batch 1 leaves a GPU idle between
kernels for small models, and 4 Depth Pro inputs (4 x 35 ViT-L patches at 384) fit in bf16 on
a 24 GB card. On CPU batching buys nothing (the network already uses every core): `predict`
keeps its settings' default of 1 there (`cli/predict.py`)."""
