"""Reading and writing checkpoint files safely.

Pickled PyTorch checkpoints can run arbitrary code when loaded, so `.pt`/`.pth`
files are only ever opened with `torch.load(weights_only=True)`; anything that
needs more than tensors is refused. `save_safetensors` converts once, after
which loading is both safe and memory-mapped.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from ..errors import WeightsError
from ..io.atomic import atomic_path

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors / .pt / .pth / .bin file, unwrapped from common containers."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: refusing to unpickle non-tensor objects (weights_only=True): {str(exc).splitlines()[0]}"
        ) from None
    except Exception as exc:  # truncated zip, bad safetensors header, ...
        raise WeightsError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(state, dict) and len(state) <= 4:
            inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
            if inner is not None:
                state = inner
                continue
        break
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path}: no state dict found in checkpoint")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path}: checkpoint holds no tensors")
    # DataParallel checkpoints prefix every key with "module.".
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def save_safetensors(state: dict[str, torch.Tensor], dest: str | Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared storage; contiguous clones are cheap next to the I/O.
    plain = {k: v.detach().contiguous().clone() if _shares_storage(v) else v.contiguous() for k, v in state.items()}
    with atomic_path(dest) as tmp:
        save_file(plain, str(tmp), metadata=metadata or {})


def _shares_storage(tensor: torch.Tensor) -> bool:
    return tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size()
