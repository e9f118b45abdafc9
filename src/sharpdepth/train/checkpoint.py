"""Checkpoints of a fine-tuning run.

Two kinds of file, because they serve different readers:

* **weights** (`final.safetensors`, `best.safetensors`, `last/model.safetensors`): the
  network in the *official* key layout (LoRA folded in, float32), so `sharpdepth predict
  --weights`, `sharpdepth eval --weights`, `sharpdepth.load(weights=...)` and the
  official code all load them strictly;
* **trainer state** (`last/state.pt`): what an exact resume needs on top of the weights —
  step, optimizer and scheduler state, RNG states, the best validation score and, for
  LoRA runs, the unmerged adapters and base weights. Tensors and plain values only, so
  it loads with `torch.load(weights_only=True)`.

`last/` is replaced as a whole: written to `last.tmp/`, then renamed over `last/`, so a
crash never leaves weights of one step beside the state of another.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import WeightsError
from ..io.atomic import atomic_path
from ..weights.checkpoint import load_state_dict_file, save_safetensors

STATE_VERSION = 1


def save_weights(state: dict[str, torch.Tensor], dest: Path, metadata: dict[str, str]) -> None:
    save_safetensors(state, dest, metadata=metadata)


def rng_state() -> dict[str, Any]:
    _, keys, pos, *_ = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos),
        "python": list(random.getstate()[1]),
        "python_version": int(random.getstate()[0]),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), 0, 0.0))
    random.setstate((int(state["python_version"]), tuple(int(v) for v in state["python"]), None))


def save_last(
    folder: Path, weights: dict[str, torch.Tensor], trainer_state: dict[str, Any], metadata: dict[str, str]
) -> Path:
    """Write `folder/last/` (model.safetensors + state.pt) atomically as a pair."""
    tmp, final, old = folder / "last.tmp", folder / "last", folder / "last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(weights, tmp / "model.safetensors", metadata)
    with atomic_path(tmp / "state.pt") as part:
        torch.save({"version": STATE_VERSION, **trainer_state}, part)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_resume(path: Path) -> Path:
    """The `last/`-style folder to resume from: given directly, as its state.pt, or as a run folder."""
    path = Path(path)
    if path.is_file() and path.name == "state.pt":
        path = path.parent
    if (path / "last" / "state.pt").is_file():
        path = path / "last"
    if not (path / "state.pt").is_file() or not (path / "model.safetensors").is_file():
        raise WeightsError(f"--resume {path}: no resumable checkpoint (expected model.safetensors and state.pt)")
    return path


def load_last(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    weights = load_state_dict_file(folder / "model.safetensors")
    try:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle
        raise WeightsError(f"{folder / 'state.pt'}: unreadable trainer state ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise WeightsError(f"{folder / 'state.pt'}: not a sharpdepth trainer state (version {STATE_VERSION})")
    return weights, state
