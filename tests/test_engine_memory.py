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

applied = return_large_blocks_to_os() if sys.argv[1] == "fixed" else False
first = torch.ones(2 << 20)  # 8 MiB, mapped; freeing it raises glibc's adaptive threshold
del first
base = rss_mib()
blocks = [torch.ones(2 << 20) for _ in range(8)]  # 64 MiB of activations
keeper = torch.ones(1024)  # a small live allocation above them in the heap
del blocks
print(json.dumps({"applied": applied, "left_mib": rss_mib() - base}))
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
    assert fixed["left_mib"] < 8, fixed  # all 64 MiB went back


def test_default_glibc_keeps_them_which_is_why_the_fix_exists():
    assert _probe("default")["left_mib"] > 32


def test_environment_keeps_glibc_policy():
    kept = _probe("fixed", {"SHARPDEPTH_MALLOC": "default"})
    assert not kept["applied"] and kept["left_mib"] > 32
