"""Errors that carry a message meant for the user.

Every failure a user can cause (bad image, bad option, missing weights) is raised
as a `SharpDepthError` with a one-line message; the CLI prints that line and no
traceback. Anything else escaping is a bug in sharpdepth.
"""

from __future__ import annotations


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
