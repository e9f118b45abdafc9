"""Errors that carry a message meant for the user.

Every failure a user can cause (bad image, bad option, missing weights) is raised
as a `SharpDepthError` with a one-line message; the CLI prints that line and no
traceback. Anything else escaping is a bug in sharpdepth.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from pathlib import PurePath


class SharpDepthError(Exception):
    """A problem the user can fix; `str(err)` is a complete one-line explanation."""


class InputImageError(SharpDepthError):
    """The input file is missing, unreadable, corrupt, too large or of an unsupported kind."""


class WeightsError(SharpDepthError):
    """Weights are missing, cannot be downloaded, fail verification or do not fit the model."""


class OptionError(SharpDepthError):
    """An option value is invalid (unknown model, bad precision for the device, ...)."""


class OutOfRangeError(OptionError):
    """A number is well formed but outside the range its setting documents (it would give nonsense)."""


class EmptyResultError(SharpDepthError):
    """The input was read, but nothing is left to produce (e.g. every point of a cloud was filtered out)."""


class RelativeDepthError(SharpDepthError):
    """Metric quantities were asked of a model that only predicts relative disparity."""


class DatasetError(InputImageError):
    """A dataset folder is missing, incomplete, inconsistent or not in the layout its loader reads."""


# ----------------------------------------------------------------- the failure vocabulary of batch jobs
# Every job (predict, video, the Ray actors, the service) sorts what went wrong the same way:
# a user's bad input fails that input, a chunk the network refuses or cannot fit in memory fails
# that chunk, anything else is a bug that ends the job. The rule is written here once.


class Scope(enum.Enum):
    """How far one error reaches in a batch job."""

    ITEM = "item"
    """This input failed; the batch goes on."""
    CHUNK = "chunk"
    """Every input of the chunk failed (the network refused it or ran out of memory); the batch goes on."""
    CRASH = "crash"
    """A bug or an interrupt: the job ends with the exception, after reporting what came before."""


@dataclass(frozen=True)
class Verdict:
    scope: Scope
    reason: str
    """The one-line reason shown to the user (for a crash: the exception's first line)."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type's name), at most `limit` characters."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """Host or accelerator memory ran out (torch's error is looked up only when torch is loaded)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return isinstance(oom, type) and isinstance(exc, oom)


def classify(exc: BaseException, *, chunk: bool = False, model_name: str = "the model") -> Verdict:
    """Sort an error raised while processing inputs: per-item failure, chunk failure or crash.

    `chunk`: the error came from a stage that handles several inputs at once (network inputs,
    the forward pass, post-processing), so it fails them all. Out of memory always fails the
    chunk: one image too large for this machine must not end the batch. An `OSError` while
    handling one input is a write failure (full disk, no permission), not a bug.
    """
    if is_out_of_memory(exc):
        return Verdict(Scope.CHUNK, f"not enough memory to run {model_name} on it ({first_line(exc)})")
    if isinstance(exc, SharpDepthError):
        return Verdict(Scope.CHUNK if chunk else Scope.ITEM, str(exc))
    if isinstance(exc, OSError) and not chunk:
        return Verdict(Scope.ITEM, f"could not write outputs: {exc.strerror or exc}")
    return Verdict(Scope.CRASH, first_line(exc))


@dataclass(frozen=True)
class Failure:
    """One input that could not be processed, with a one-line reason."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def make_failure(source: object, reason: str) -> Failure:
    """A failure whose reason does not repeat the path (`bomb.png: bomb.png: ...`)."""
    text = str(source)
    for prefix in (f"{text}: ", f"{PurePath(text).name}: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
            break
    return Failure(text, reason)
