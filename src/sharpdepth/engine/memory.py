"""Give large freed buffers back to the operating system as soon as they are freed (glibc).

glibc serves an allocation below its mmap threshold from heaps it seldom returns to the
system, and it raises that threshold (up to 32 MiB) each time a large mapped block is freed.
After the first layers, a depth network's activations (one to a few tens of MiB each) are
therefore carved from heaps, and as they are freed in a different order than allocated the
heaps fragment: the resident set grows well past the tensors alive at any moment. Measured on
Depth Pro at 1536² in bf16 (`benchmarks/depth_pro_vs_official.py`): the forward pass peaked at
+966 MiB over the weights with glibc's default, +682 MiB with a fixed 1 MiB threshold, where
every large tensor gets its own mapping and is unmapped when freed.

Elsewhere (macOS, Windows, musl) this does nothing, and `SHARPDEPTH_MALLOC=default` in the
environment keeps glibc's own policy (for comparisons, or a process that tunes malloc itself).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameter number (malloc.h)."""
LARGE_BLOCK = 1 << 20
"""Allocations of at least this many bytes get their own mapping (a fixed value: glibc stops adapting it)."""

_applied = False


def _glibc(function: str) -> Callable[..., int] | None:
    """glibc's `function` in this process, or None off Linux and where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return getattr(libc, function, None)


def return_large_blocks_to_os() -> bool:
    """Fix glibc's mmap threshold at `LARGE_BLOCK` for this process; True when in effect.

    Process-wide and idempotent. Costs page faults on each new large buffer (the kernel hands
    out zeroed pages), a few per cent of a forward pass at most, for a flat resident set.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("SHARPDEPTH_MALLOC") == "default":
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    _applied = int(mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(LARGE_BLOCK))) == 1
    return _applied


def trim_heap() -> bool:
    """Give the free memory at the top and inside glibc's heaps back to the system (`malloc_trim(0)`).

    For a long-lived process after a burst (the HTTP service after large uploads): freed small
    and medium blocks otherwise stay resident until the process ends. True when glibc trimmed.
    """
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    return int(trim(ctypes.c_size_t(0))) == 1
