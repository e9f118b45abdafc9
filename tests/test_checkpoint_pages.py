"""Converted checkpoint tensors give their file pages back; nothing else is ever touched."""

from __future__ import annotations

import sys

import pytest
import torch

from sharpdepth.weights.checkpoint import MappedPages, load_state_dict_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


def _rss_file_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.fixture()
def checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {f"layer{i}.weight": torch.randn(1_000_000, generator=gen) for i in range(16)}  # 4 MB each
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    return path, state


def test_release_drops_resident_pages_and_keeps_values(checkpoint):
    path, original = checkpoint
    state = load_state_dict_file(path)
    pages = MappedPages(path)
    assert pages.ranges, "the checkpoint should be memory-mapped"
    before = _rss_file_mib()
    converted = {}
    for key, value in state.items():
        converted[key] = value.to(torch.bfloat16)  # touches every page of the file
        pages.release(value)
    # ~64 MB were read through the mapping; almost all of it is handed back (edges stay)
    assert pages.released >= 0.95 * 64e6
    assert _rss_file_mib() - before < 16
    for key, value in original.items():
        assert torch.equal(converted[key], value.to(torch.bfloat16))
        assert torch.equal(state[key], value), "a released page must read back from the file unchanged"


def test_release_ignores_memory_outside_the_file(checkpoint):
    path, _ = checkpoint
    load_state_dict_file(path)
    pages = MappedPages(path)
    anonymous = torch.arange(4_000_000, dtype=torch.float32)  # 16 MB of ordinary memory
    pages.release(anonymous)
    assert pages.released == 0
    assert torch.equal(anonymous, torch.arange(4_000_000, dtype=torch.float32))


def test_unmapped_file_has_no_ranges(tmp_path):
    path = tmp_path / "never_opened.pt"
    torch.save({"w": torch.ones(3)}, path)
    pages = MappedPages(path)
    assert pages.ranges == []
    pages.release(torch.ones(10))
    assert pages.released == 0
