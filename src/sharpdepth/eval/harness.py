"""The evaluation harness's public names, kept where they were before the harness was split.

The parts now live in their own modules: `settings` (what a run is asked to do), `predictor`
(what it runs), `cache`, `scoring` (alignment strategies, one image's metrics, temporal
tracking), `runner` (the one loop) and `report` (summary, JSON/CSV, the table).
"""

from __future__ import annotations

from .cache import CACHE_VERSION, PredictionCache, cache_key
from .predictor import LoadedModel, Predictor, as_predictor, model_fingerprint
from .report import ModelReport, comparison_table, report_document, summary_csv, write_reports
from .runner import Evaluator, run_job
from .scoring import Frame, prediction_in_space, resolve_alignment
from .settings import EvalJob, EvalOptions, EvalSettings

__all__ = [
    "CACHE_VERSION",
    "EvalJob",
    "EvalOptions",
    "EvalSettings",
    "Evaluator",
    "Frame",
    "LoadedModel",
    "ModelReport",
    "PredictionCache",
    "Predictor",
    "as_predictor",
    "cache_key",
    "comparison_table",
    "model_fingerprint",
    "prediction_in_space",
    "report_document",
    "resolve_alignment",
    "run_job",
    "summary_csv",
    "write_reports",
]
