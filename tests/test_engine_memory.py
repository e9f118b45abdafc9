"""Large freed buffers leave the resident set at once (glibc's mmap threshold, engine/memory.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc only")

PROBE = r"""
import json, sys
import torch
from sharpdepth.engine.memory import return_large_blocks_to_os

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def heap_range():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = line.split()[0].split("-")
            return int(low, 16), int(high, 16)
    return 0, 0

applied = return_large_blocks_to_os() if sys.argv[1] == "fixed" else False
first = torch.ones(2 << 20)  # 8 MiB, mapped; freeing it raises glibc's adaptive threshold
del first
base = rss_mib()
blocks, keepers = [], []
for _ in range(8):  # 64 MiB of activations, each followed by a small live tensor
    blocks.append(torch.ones(2 << 20))
    keepers.append(torch.ones(64 << 10))  # 256 KiB: taken from the heap top, so no block is at the top
low, high = heap_range()
in_heap = sum(low <= block.data_ptr() < high for block in blocks)
del blocks
print(json.dumps({"applied": applied, "in_heap": in_heap, "left_mib": rss_mib() - base}))
"""


def _probe(mode: str, env: dict[str, str] | None = None) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_freed_activations_leave_the_resident_set():
    fixed = _probe("fixed")
    if not fixed["applied"]:
        pytest.skip("not glibc")
    assert fixed["in_heap"] == 0, fixed  # every block got its own mapping
    assert fixed["left_mib"] < 8, fixed  # all 64 MiB went back


def _skip_unless_adaptive(kept: dict[str, float]) -> None:
    """glibc adapts its threshold only while no MALLOC_MMAP_* setting or tunable fixes it."""
    if kept["in_heap"] == 0:
        pytest.skip("this process's malloc maps 8 MiB blocks already (threshold fixed by its environment)")


def test_default_glibc_keeps_them_which_is_why_the_fix_exists():
    kept = _probe("default")
    _skip_unless_adaptive(kept)
    assert kept["in_heap"] == 8 and kept["left_mib"] > 32, kept


def test_environment_keeps_glibc_policy():
    kept = _probe("fixed", {"SHARPDEPTH_MALLOC": "default"})
    assert not kept["applied"], kept
    _skip_unless_adaptive(kept)
    assert kept["left_mib"] > 32, kept
