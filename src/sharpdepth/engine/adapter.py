"""Former home of the family adapters; kept as names for callers written before the redesign.

A family's pre/post-processing is now its `Processor` (`sharpdepth.family`), made by
`spec.processor(input_size)` and held by `DepthModel.processor` (`DepthModel.adapter`
is the same object). New code should import from `sharpdepth.family`.
"""

from __future__ import annotations

from ..family import NetworkOutput, Prediction, Processor

ModelAdapter = Processor
"""The processor protocol under its former name."""

__all__ = ["ModelAdapter", "NetworkOutput", "Prediction"]
