"""Reading and writing checkpoint files safely and without copies.

Pickled PyTorch checkpoints can run arbitrary code when loaded, so `.pt`/`.pth`
files are only ever opened with `torch.load(weights_only=True)`; anything that
needs more than tensors is refused. Both formats are memory-mapped (`safetensors`
always, `.pt` zip archives with `torch.load(mmap=True)`), so loading a 1.9 GB
checkpoint does not read it into a second buffer: tensors are views of the file's
pages until the engine assigns (or converts) them into the network.

`sha256_file_cached` keeps a file's verified digest beside it (keyed by size and
modification time), so a checkpoint is hashed once, not on every load.

`MappedPages` gives converted tensors' pages back: once a mapped fp32 tensor has been
cast to bf16, its file pages are only dead weight in the process's resident set (the
kernel keeps them resident until the whole mapping goes), so a bf16 load would peak at
the bf16 copy plus the whole file. Dropping them as each tensor is converted keeps the
peak at the converted copy plus one tensor.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import mmap
import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WeightsError, first_line
from ..io.atomic import atomic_path

if TYPE_CHECKING:  # torch is imported where tensors are read: digests and `weights list` need no torch
    import torch

DIGEST_SUFFIX = ".sha256.json"

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _digest_record(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()  # follows symlinks (HF cache snapshots link to blobs)
    return st.st_size, st.st_mtime_ns


def read_cached_digest(path: str | Path) -> str | None:
    """The digest recorded beside `path` if the file's size and mtime still match, else None."""
    path = Path(path)
    try:
        record = json.loads(_digest_record(path).read_text(encoding="utf-8"))
        size, mtime = _stat_key(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("size") != size or record.get("mtime_ns") != mtime:
        return None
    digest = record.get("sha256")
    return digest if isinstance(digest, str) and len(digest) == 64 else None


def record_digest(path: str | Path, digest: str) -> None:
    """Remember a verified digest beside the file; silently skipped where the folder is read-only."""
    path = Path(path)
    try:
        size, mtime = _stat_key(path)
        with atomic_path(_digest_record(path)) as tmp:
            tmp.write_text(json.dumps({"sha256": digest, "size": size, "mtime_ns": mtime}), encoding="utf-8")
    except OSError:
        pass


def sha256_file_cached(path: str | Path) -> str:
    """`sha256_file`, hashed once per (size, mtime) of the file and remembered beside it."""
    cached = read_cached_digest(path)
    if cached is not None:
        return cached
    digest = sha256_file(path)
    record_digest(path, digest)
    return digest


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors / .pt / .pth / .bin file (memory-mapped), unwrapped from common containers."""

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(path))  # memory-mapped by safetensors
        else:
            state = _torch_load(path)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: refusing to unpickle a checkpoint that holds more than tensors "
            f"({_unpickling_reason(exc)}); on a trusted machine, save only its state dict (a dict of tensors)"
        ) from None
    except Exception as exc:  # truncated zip, bad safetensors header, ...
        reason = f"{type(exc).__name__}: {first_line(exc, 200)}"
        raise WeightsError(f"{path}: not a readable checkpoint ({reason})") from None
    return _unwrap(state, path)


def _torch_load(path: Path) -> object:
    """`torch.load(weights_only=True)`, memory-mapped for zip archives (legacy files: read)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):  # only the legacy (non-zip) format cannot be mapped
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _unpickling_reason(exc: BaseException) -> str:
    """torch's message minus its advice to set weights_only=False (which would run the pickle's code)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").split(" Please ")[0].strip()[:200]
    for line in str(exc).splitlines():
        text = line.strip()
        if text and "weights_only" not in text and "torch.serialization" not in text:
            return text[:200]
    return "non-tensor objects"


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    import torch

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


class MappedPages:
    """The address ranges where a checkpoint file is memory-mapped in this process, and a way to drop
    a tensor's pages from the resident set once the tensor has been converted and is no longer needed.

    Only pages that lie wholly inside both the tensor's storage and a mapping of *this file* are
    dropped. The mappings are private and never written, so a dropped page is just re-read from the
    file if anything touched it again: the call can cost time, never data. Without /proc (not Linux)
    there are no known ranges and `release` does nothing.
    """

    _MADV_DONTNEED = 4
    _page = mmap.PAGESIZE

    def __init__(self, path: str | Path) -> None:
        self.ranges = self._ranges_of(os.path.realpath(path))
        self.released = 0
        """Bytes handed back so far."""

    @staticmethod
    def _ranges_of(real_path: str) -> list[tuple[int, int]]:
        if not sys.platform.startswith("linux"):
            return []
        ranges = []
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[5].rstrip("\n") == real_path:
                        low, high = (int(x, 16) for x in fields[0].split("-"))
                        ranges.append((low, high))
        except OSError:
            return []
        return ranges

    def release(self, tensor: torch.Tensor) -> None:
        """Drop the resident file pages of `tensor`'s storage (call only when it will not be used)."""
        if not self.ranges or tensor.device.type != "cpu":
            return
        storage = tensor.untyped_storage()
        start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        first = -(-start // self._page) * self._page  # whole pages only: neighbours keep theirs
        last = end // self._page * self._page
        for low, high in self.ranges:
            lo, hi = max(first, low), min(last, high)
            if hi > lo and _madvise(lo, hi - lo, self._MADV_DONTNEED):
                self.released += hi - lo


def _madvise(address: int, length: int, advice: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_int(advice))) == 0


def save_safetensors(state: dict[str, torch.Tensor], dest: str | Path, metadata: dict[str, str] | None = None) -> None:

    from safetensors.torch import save_file

    # safetensors refuses shared storage; contiguous clones are cheap next to the I/O.
    plain = {k: v.detach().contiguous().clone() if _shares_storage(v) else v.contiguous() for k, v in state.items()}
    with atomic_path(dest) as tmp:
        save_file(plain, str(tmp), metadata=metadata or {})


def _shares_storage(tensor: torch.Tensor) -> bool:

    return tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size()
