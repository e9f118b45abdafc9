"""The evaluation loop behind `sharpdepth eval`: models x one dataset -> every metric.

For each model: decide its alignment from its declared output kind (before any image),
then, for each group of entries the alignment strategy makes (all images at once per
image, one group per sequence otherwise):

1. let the strategy fit the group's shared alignment (per sequence: over all its frames),
2. for each frame: predict or read the cache, resize to the ground truth
   (`Protocol.resize`), align, clip and score (`scoring.Scorer`), add the row to the
   report and feed the temporal tracker.

Per-image metrics are averaged over images; results are `report.ModelReport`s, written as
JSON and CSV by `report.write_reports`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError
from .cache import CachedPrediction, PredictionCache
from .datasets import DepthDataset, Entry
from .focal import focal_relative_error
from .predictor import ModelLike, Predictor, as_predictor, checked_predict
from .protocols import Protocol
from .report import ModelReport, Row, write_reports
from .scoring import AlignmentStrategy, Frame, ScoredFrame, Scorer, TemporalTracker, resolve_alignment, strategy_for
from .settings import EvalJob, EvalSettings

Tick = Callable[[], None]
Progress = Callable[[str, int], Tick]
"""progress(model name, total steps) -> a function called once per step."""


class _Frames:
    """Frames of one model: predicted once, cached, resized to the ground truth."""

    def __init__(
        self,
        dataset: DepthDataset,
        protocol: Protocol,
        predictor: Predictor,
        cache: PredictionCache,
        give_focal: bool,
        tick: Tick | None,
    ) -> None:
        self.dataset, self.protocol, self.predictor = dataset, protocol, predictor
        self.cache, self.give_focal, self.tick = cache, give_focal, tick

    def __call__(self, entries: Sequence[Entry]) -> Iterator[Frame]:
        for entry in entries:
            sample = self.dataset.sample(entry)
            focal_in = sample.focal_px if self.give_focal else None
            path = self.cache.path(sample.name, sample.image, focal_in)
            start = time.perf_counter()
            hit = self.cache.load(path)
            cached = hit is not None and hit.kind is self.predictor.output_kind
            if hit is None or not cached:
                result = checked_predict(self.predictor, sample.image, focal_in)
                hit = CachedPrediction(result.prediction, self.predictor.output_kind, result.focal_px)
                self.cache.save(path, hit)
            seconds = time.perf_counter() - start
            resized = self.protocol.resize(hit.prediction, sample.depth.shape)
            yield Frame(sample, resized, hit.kind, hit.focal_px, seconds, cached)
            if self.tick:
                self.tick()


def frame_row(frame: Frame, scored: ScoredFrame, give_focal: bool) -> Row:
    """The per-image row of the report: name, metrics, alignment, focal lengths, timing."""
    sample = frame.sample
    row: Row = {"name": sample.name}
    if sample.sequence:
        row["sequence"] = sample.sequence
    row.update(scored.metrics)
    row["focal_gt"] = sample.focal_px
    row["focal_pred"] = frame.focal_px
    if sample.focal_px and frame.focal_px and not give_focal:
        row["focal_rel_err"] = focal_relative_error(frame.focal_px, sample.focal_px)
    row["predict_s"] = round(frame.seconds, 4)
    row["cached"] = frame.cached
    return row


class Evaluator:
    """Runs predictors over one dataset under one protocol and one set of scoring settings.

    Settings that depend on the protocol (scope, SILog preset, temporal default) are
    resolved here, so a bad combination fails before anything is predicted.
    """

    def __init__(
        self,
        dataset: DepthDataset,
        protocol: Protocol,
        options: EvalSettings | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.dataset = dataset
        self.settings = options or EvalSettings()
        self.protocol = self.settings.protocol_for(protocol)
        self.scope = self.settings.scope(self.protocol)
        self.temporal = self.settings.temporal_for(self.protocol)
        self.progress = progress

    def entries(self) -> list[Entry]:
        entries = self.dataset.index()
        return entries[: self.settings.limit] if self.settings.limit else entries

    @contextmanager
    def _cache(self, predictor: Predictor, strategy: AlignmentStrategy) -> Iterator[PredictionCache]:
        """The run's cache; a strategy that reads frames twice gets a temporary one if there is none."""
        cache = PredictionCache(self.settings.cache_dir, predictor.name, predictor.fingerprint)
        if strategy.passes == 1 or cache.enabled:
            yield cache
            return
        with tempfile.TemporaryDirectory(prefix="sharpdepth-eval-") as tmp:
            yield PredictionCache(Path(tmp), predictor.name, predictor.fingerprint or "this-run")

    def run(self, model: Predictor | ModelLike) -> ModelReport:
        predictor = as_predictor(model)
        policy = resolve_alignment(predictor.output_kind, self.protocol, self.settings, self.scope, predictor.name)
        report = ModelReport(predictor.name, str(predictor.output_kind), policy.as_dict())
        strategy = strategy_for(self.scope, self.settings)
        entries = self.entries()
        tick = self.progress(predictor.name, strategy.passes * len(entries)) if self.progress else None
        scorer = Scorer(self.protocol, policy, self.settings.boundary)
        tracker = TemporalTracker(self.temporal)
        started = time.perf_counter()
        with self._cache(predictor, strategy) as cache:
            frames = _Frames(self.dataset, self.protocol, predictor, cache, self.settings.give_focal, tick)
            for group in strategy.groups(entries):
                shared = strategy.fit(frames(group), scorer)
                for frame in frames(group):
                    scored = scorer.score(frame, shared)
                    report.add_row(frame_row(frame, scored, self.settings.give_focal), frame.cached)
                    tracker.add(frame.sample, scored)
        report.sequences = dict(tracker.results())
        report.finish(self.settings.boundary, time.perf_counter() - started)
        return report


@dataclass(frozen=True)
class EvalOutcome:
    dataset: DepthDataset
    protocol: Protocol
    reports: list[ModelReport]
    paths: dict[str, Path]


def run_job(models: Sequence[Predictor | ModelLike], job: EvalJob, progress: Progress | None = None) -> EvalOutcome:
    """Evaluate every model under `job` and write the JSON/CSV files into `job.output`."""
    dataset = job.open_dataset()
    settings = job.scoring_settings()
    evaluator = Evaluator(dataset, job.resolve_protocol(dataset), settings, progress)
    _writable(job.output)  # before the first prediction, not after the last
    reports = [evaluator.run(model) for model in models]
    try:
        paths = write_reports(job.output, dataset, evaluator.protocol, settings, reports)
    except OSError as exc:
        raise OptionError(f"-o {job.output}: cannot write the results ({exc.strerror or exc})") from None
    return EvalOutcome(dataset, evaluator.protocol, reports, paths)


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"-o {folder}: cannot create the results folder ({exc.strerror or exc})") from None
