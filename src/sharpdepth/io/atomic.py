"""Atomic file output: nobody ever sees a half-written file. The one writer of the package.

Every writer renders into a temporary file in the destination folder and
renames it over the target only when complete (rename is atomic on POSIX and
Windows within one filesystem). A crash or an error leaves the old file, or
nothing, behind — never a truncated PNG that `--skip-existing` would then trust.

Temporary names carry the writing process's id (`.photo.<pid>.<random>.part.png`),
so a later run can tell the leftovers of a killed process (SIGKILL skips every
cleanup) from the files another live process is still writing, and remove only
the former (`clean_stale_parts`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OptionError

__all__ = [
    "atomic_path",
    "cannot_write_in",
    "clean_stale_parts",
    "ensure_writable_dir",
    "write_bytes_atomic",
    "write_text_atomic",
]

_PART_NAME = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.part(\.[A-Za-z0-9]+)?$")


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest` (same suffix); rename it to `dest` on success.

    The temporary file is created private (mkstemp: 0600); before the rename it
    gets the mode a plainly created file would have (0666 minus the umask).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.stem}.{os.getpid()}.", suffix=f".part{dest.suffix}", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux).

    `os.umask` can only be read by setting it: another thread creating a file in between would
    get mode 0666. Writers run in threads (pipelined predict, the HTTP service), so read
    /proc instead; elsewhere, set and restore under a lock.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        current = os.umask(0)
        os.umask(current)
    return current


_UMASK_LOCK = threading.Lock()


def write_bytes_atomic(dest: str | Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | Path, text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def clean_stale_parts(folder: str | Path) -> list[Path]:
    """Remove temporary files of our own naming left in `folder` (recursively) by dead processes.

    The one stale-file cleaner of the package. Only names `atomic_path` produces (or folders named
    the same way, `.<name>.<pid>.<random>.part`) are touched, and only when the process
    that wrote them no longer exists; returns what was removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob(".*.part*")):
        match = _PART_NAME.match(path.name)
        if match is None or not path.exists() or _alive(int(match.group(1))):
            continue
        try:
            if path.is_dir() and not path.is_symlink():  # a folder being filled (e.g. an ONNX export)
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def ensure_writable_dir(folder: str | Path) -> Path:
    """Create `folder` if needed and prove a file can be written there; OptionError in one line if not.

    Called before any slow work (loading a model, running a batch), so an
    output under a regular file, under /proc or without permission fails at once.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"{folder}: cannot write outputs there ({exc.strerror or type(exc).__name__})") from None
    reason = cannot_write_in(folder)
    if reason is not None:
        raise OptionError(f"{folder}: cannot write outputs there ({reason})")
    return folder


def cannot_write_in(folder: str | Path) -> str | None:
    """Why no file can be created in the existing `folder` (None if one can): the one write probe.

    A real file is created and removed (named like our temporaries, so a kill in between leaves
    nothing `clean_stale_parts` would not remove): permission bits do not tell about read-only
    mounts, /proc or a full quota, and `os.access` answers for the real, not the effective, user.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=f".write-test.{os.getpid()}.", suffix=".part", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(probe)
    return None
