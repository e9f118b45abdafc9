"""Shared test helpers: the read-only parity fixtures and test data beside the repo.

`../shared/` (or $SHARPDEPTH_SHARED) holds the fixtures made by the official
implementations. They are required: a missing folder is an error, not a skip,
so that CI can never pass parity tests by not running them.
"""

from __future__ import annotations

import importlib.util
import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@cache
def shared_dir() -> Path:
    path = Path(os.environ.get("SHARPDEPTH_SHARED", REPO.parent / "shared"))
    if not (path / "fixtures" / "fixture_weights.py").is_file():
        raise RuntimeError(f"parity fixtures not found under {path}; set SHARPDEPTH_SHARED")
    return path


def fixtures_dir() -> Path:
    return shared_dir() / "fixtures"


def data_dir() -> Path:
    return shared_dir() / "data"


@cache
def _fixture_weights_module():
    spec = importlib.util.spec_from_file_location("fixture_weights", fixtures_dir() / "fixture_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture_state_dict(folder: str) -> dict[str, torch.Tensor]:
    """The exact stand-in weights a fixture folder (e.g. "depth_pro/tiny") was made with."""
    sd = _fixture_weights_module().fixture_state_dict(fixtures_dir() / folder)
    return {k: torch.from_numpy(v) for k, v in sd.items()}


def make_input_image(height: int, width: int, seed: int = 7) -> np.ndarray:
    return _fixture_weights_module().make_input_image(height, width, seed)


def fixture_manifest(folder: str) -> dict:
    return json.loads((fixtures_dir() / folder / "manifest.json").read_text())


def fixture_expected(folder: str) -> dict:
    return json.loads((fixtures_dir() / folder / "expected.json").read_text())


def assert_close_rel(actual, reference, rel: float, what: str = "output") -> None:
    """max|a - b| <= rel * max|b|, the fixtures' tolerance convention."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != reference {b.shape}"
    err = float(np.max(np.abs(a - b)))
    bound = rel * float(np.max(np.abs(b)))
    assert err <= bound, f"{what}: max abs error {err:.3e} > {bound:.3e} ({rel:g} * max|ref|)"


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


def stand_in_state_dict(net: torch.nn.Module, overrides: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Deterministic, well-scaled stand-in weights (the fixtures' generator) for any network."""
    make = _fixture_weights_module().make_tensor
    state = {}
    for key, value in net.state_dict().items():
        tensor = torch.from_numpy(make(key, list(value.shape)))
        state[key] = tensor.to(value.dtype)
    for key, fill in (overrides or {}).items():
        state[key] = torch.full_like(state[key], fill)
    return state
