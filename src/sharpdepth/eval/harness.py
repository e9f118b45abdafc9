"""The evaluation harness behind `sharpdepth eval`: models x one dataset -> every metric.

For each model and each sample of the dataset:

1. predict (or read the per-image cache: one .npz per image, keyed by the model's
   fingerprint — name, weights hash, precision, input size — and the image's pixels and
   the focal length handed to the model, so an interrupted run resumes where it stopped),
2. resize the prediction to the ground-truth resolution (`Protocol.resize`),
3. align it (metric models: none by default; relative models: the protocol's method,
   fitted on the scored pixels only; per image, or once per sequence in two passes),
4. clip to the protocol's range and score: depth metrics, Depth Pro's boundary F1 against
   the ground truth, focal-length error when both the model and the dataset have one,
   and temporal metrics per sequence (`temporal=True`).

Per-image metrics are averaged over images. Results: a `ModelReport` per model, written
as JSON (protocol, options, summary, per-image rows) and CSV by `write_reports`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..align import ALIGN_METHODS, SPACES, Alignment, depth_to_space, fit_alignment
from ..errors import OptionError
from ..io.atomic import atomic_path, write_text_atomic
from ..result import DepthResult, OutputKind
from .boundary import si_boundary_f1
from .datasets import DepthDataset, Entry, Sample
from .focal import FOCAL_METRICS, focal_metrics, focal_relative_error
from .metrics import DEPTH_METRICS, depth_metrics, mean_metrics
from .protocols import Protocol as EvalProtocol
from .temporal import flicker, temporal_alignment_error, temporal_change_error

CACHE_VERSION = 1


@runtime_checkable
class Predictor(Protocol):
    """Anything that predicts depth: `sharpdepth.load(...)` models, or a test double."""

    name: str

    def predict(self, image: np.ndarray, focal_px: float | None = None) -> DepthResult: ...


@dataclass
class EvalOptions:
    align: str | None = None
    """None: "none" for metric models, the protocol's method for relative ones."""
    align_space: str | None = None
    align_scope: str | None = None
    limit: int | None = None
    give_focal: bool = False
    """Hand the dataset's focal length to the model (otherwise models estimate it or go without)."""
    boundary: bool = True
    temporal: bool = False
    cache_dir: Path | None = None
    sequence_fit_pixels: int = 50_000
    """Per-frame pixel sample used by sequence-scope alignment fits (deterministic)."""


@dataclass
class ModelReport:
    model: str
    output_kind: str
    alignment: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    sequences: dict[str, dict[str, float]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cache_hits: int = 0


# ------------------------------------------------------------------ caching
def model_fingerprint(predictor: Any) -> str | None:
    """Stable id of a model's behaviour, or None when outputs are not reproducible (random weights)."""
    explicit = getattr(predictor, "cache_id", None)
    if explicit:
        return str(explicit)
    digest = getattr(predictor, "weights_sha256", None)
    if not digest:
        return None
    parts = {
        "name": getattr(predictor, "name", ""),
        "weights": digest,
        "dtype": str(getattr(predictor, "dtype", "")),
        "input_size": getattr(getattr(predictor, "adapter", None), "input_size", None),
    }
    return json.dumps(parts, sort_keys=True, default=str)


def cache_key(fingerprint: str, image: np.ndarray, focal_px: float | None) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{fingerprint}|{focal_px!r}|{image.shape}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


class PredictionCache:
    """One compressed .npz per (model, image): prediction map, kind and focal length."""

    def __init__(self, root: Path | None, model_name: str, fingerprint: str | None) -> None:
        self.enabled = root is not None and fingerprint is not None
        self.dir = (root / _slug(model_name)) if root is not None else None
        self.fingerprint = fingerprint or ""

    def path(self, sample: Sample, focal_px: float | None) -> Path | None:
        if not self.enabled:
            return None
        key = cache_key(self.fingerprint, sample.image, focal_px)
        return self.dir / f"{_slug(sample.name)}__{key[:20]}.npz"

    def load(self, path: Path | None) -> tuple[np.ndarray, OutputKind, float | None] | None:
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                focal = float(data["focal_px"])
                return (
                    data["prediction"].astype(np.float32),
                    OutputKind(str(data["kind"])),
                    (focal if math.isfinite(focal) else None),
                )
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache file is re-predicted

    def save(self, path: Path | None, prediction: np.ndarray, kind: OutputKind, focal: float | None) -> None:
        if path is None:
            return
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                prediction=prediction.astype(np.float32),
                kind=np.array(str(kind)),
                focal_px=np.array(np.nan if focal is None else focal, dtype=np.float64),
            )


# ------------------------------------------------------------------ one image
@dataclass
class Frame:
    sample: Sample
    prediction: np.ndarray
    """At ground-truth resolution, in the model's own kind."""
    kind: OutputKind
    focal_px: float | None
    seconds: float
    cached: bool


def prediction_in_space(prediction: np.ndarray, kind: OutputKind, space: str) -> np.ndarray:
    """The raw values to align in `space`: metric depth becomes 1/depth for disparity space."""
    p = np.asarray(prediction, dtype=np.float64)
    if kind is OutputKind.METRIC_DEPTH:
        if space == "depth":
            return p
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, 1.0 / p, np.nan)
    if space != "disparity":
        raise OptionError("relative-disparity models can only be aligned in disparity space (--align-space disparity)")
    return p


def resolve_alignment(kind: OutputKind, protocol: EvalProtocol, options: EvalOptions, model: str) -> tuple[str, str]:
    """(method, space) for a model of `kind`; refuses to score a relative model unaligned."""
    metric = kind is OutputKind.METRIC_DEPTH
    method = options.align or ("none" if metric else protocol.align_relative)
    if method not in ALIGN_METHODS:
        raise OptionError(f"unknown alignment {method!r}; choose from {', '.join(ALIGN_METHODS)}")
    if method == "none" and not metric:
        raise OptionError(
            f"{model} predicts relative disparity (unknown scale and shift), so it cannot be scored "
            "with --align none; use --align median, lstsq or lstsq-robust"
        )
    if options.align_space:
        space = options.align_space
    elif metric:
        space = "depth" if method in ("none", "median") else protocol.align_space
    else:
        space = "disparity"
    if space not in SPACES:
        raise OptionError(f"unknown alignment space {space!r}; choose from {', '.join(SPACES)}")
    return method, space


def score_frame(
    prediction: np.ndarray,
    kind: OutputKind,
    sample: Sample,
    protocol: EvalProtocol,
    method: str,
    space: str,
    alignment: Alignment | None = None,
    boundary: bool = True,
) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of one prediction (already at GT resolution) and the scored depth map.

    `alignment` given (sequence scope) is applied as is; otherwise it is fitted here on the
    scored pixels of this image.
    """
    gt = sample.depth
    mask = protocol.eval_mask(gt) & sample.valid
    values = prediction_in_space(prediction, kind, space)
    if alignment is None:
        alignment = fit_or_fallback(values, gt, mask, method, space)
    depth = protocol.clip(alignment.apply(values))
    row: dict[str, Any] = depth_metrics(
        depth, gt, mask, silog_lambda=protocol.silog_lambda, silog_scale=protocol.silog_scale
    )
    if boundary:
        row["boundary_f1"] = si_boundary_f1(depth, np.where(np.isfinite(gt), gt, 0.0), valid=mask)
    row["scale"], row["shift"] = alignment.scale, alignment.shift
    return row, depth


def fit_or_fallback(values: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, method: str, space: str) -> Alignment:
    """`fit_alignment`, except that a degenerate fit never aborts a run.

    A prediction that is constant over the scored pixels has no unique least-squares scale;
    the minimum-norm solution (scale 0, shift = mean target in `space`) is used, so the image
    is still scored (badly) instead of silently skipped. No scored pixel: identity.
    """
    try:
        return fit_alignment(values, gt, mask, method, space)
    except OptionError:
        target = depth_to_space(gt, space)
        keep = np.isfinite(target) & (np.ones(target.shape, bool) if mask is None else mask)
        if not keep.any():
            return Alignment(space=space, method=method)
        return Alignment(0.0, float(np.mean(target[keep])), space, method, int(keep.sum()), {"degenerate": 1.0})


def _sample_pixels(values: np.ndarray, gt: np.ndarray, mask: np.ndarray, cap: int, seed: int) -> tuple:
    idx = np.flatnonzero(mask & np.isfinite(values))
    if idx.size > cap:
        idx = np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))
    return values.ravel()[idx], gt.ravel()[idx]


# ------------------------------------------------------------------ the run
class Evaluator:
    """Runs one predictor over one dataset under one protocol."""

    def __init__(
        self,
        dataset: DepthDataset,
        protocol: EvalProtocol,
        options: EvalOptions | None = None,
        progress: Callable[[str, int], Callable[[], None]] | None = None,
    ) -> None:
        self.dataset = dataset
        self.protocol = protocol
        self.options = options or EvalOptions()
        self.progress = progress

    def entries(self) -> list[Entry]:
        entries = self.dataset.index()
        return entries[: self.options.limit] if self.options.limit else entries

    def _frames(self, predictor: Predictor, cache: PredictionCache, entries: Sequence[Entry]) -> Iterator[Frame]:
        for entry in entries:
            sample = self.dataset.load(entry)
            focal_in = sample.focal_px if self.options.give_focal else None
            path = cache.path(sample, focal_in)
            hit = cache.load(path)
            start = time.perf_counter()
            if hit is None:
                result = predictor.predict(sample.image, focal_px=focal_in)
                prediction, kind, focal = result.prediction, result.kind, result.focal_px
                cache.save(path, prediction, kind, focal)
            else:
                prediction, kind, focal = hit
            seconds = time.perf_counter() - start
            resized = self.protocol.resize(prediction, sample.depth.shape)
            yield Frame(sample, resized, OutputKind(kind), focal, seconds, hit is not None)

    def run(self, predictor: Predictor) -> ModelReport:
        if not isinstance(predictor, Predictor):
            raise TypeError("predictor needs a .name and a .predict(image, focal_px=None) method")
        entries = self.entries()
        scope = self.options.align_scope or self.protocol.align_scope
        if scope not in ("image", "sequence"):
            raise OptionError(f"alignment scope must be 'image' or 'sequence', got {scope!r}")
        cache = PredictionCache(self.options.cache_dir, predictor.name, model_fingerprint(predictor))
        started = time.perf_counter()
        if scope == "sequence" and not cache.enabled:
            # two passes need the predictions twice; keep them for this run only
            import tempfile

            with tempfile.TemporaryDirectory(prefix="sharpdepth-eval-") as tmp:
                cache = PredictionCache(Path(tmp), predictor.name, model_fingerprint(predictor) or "run")
                report = self._run_sequence(predictor, cache, entries)
        elif scope == "sequence":
            report = self._run_sequence(predictor, cache, entries)
        else:
            report = self._run_image(predictor, cache, entries)
        report.seconds = time.perf_counter() - started
        report.summary = self._summarise(report)
        return report

    # -- per-image alignment: one streaming pass
    def _run_image(self, predictor: Predictor, cache: PredictionCache, entries: Sequence[Entry]) -> ModelReport:
        tick = self.progress(predictor.name, len(entries)) if self.progress else None
        report: ModelReport | None = None
        method = space = ""
        temporal = _TemporalAccumulator(self.options.temporal)
        for frame in self._frames(predictor, cache, entries):
            if report is None:
                method, space = resolve_alignment(frame.kind, self.protocol, self.options, predictor.name)
                report = ModelReport(
                    predictor.name, str(frame.kind), {"method": method, "space": space, "scope": "image"}
                )
            row, depth = score_frame(
                frame.prediction, frame.kind, frame.sample, self.protocol, method, space, boundary=self.options.boundary
            )
            self._finish_row(report, frame, row)
            temporal.add(frame.sample, depth, self.protocol)
            if tick:
                tick()
        assert report is not None
        report.sequences = temporal.results()
        return report

    # -- per-sequence alignment: fit on all frames of a sequence, then score
    def _run_sequence(self, predictor: Predictor, cache: PredictionCache, entries: Sequence[Entry]) -> ModelReport:
        tick = self.progress(predictor.name, 2 * len(entries)) if self.progress else None
        groups: dict[str, list[Entry]] = {}
        for entry in entries:
            groups.setdefault(str(entry.meta.get("sequence") or entry.name), []).append(entry)
        report: ModelReport | None = None
        method = space = ""
        temporal = _TemporalAccumulator(self.options.temporal)
        for seq_entries in groups.values():
            xs, ys = [], []
            for i, frame in enumerate(self._frames(predictor, cache, seq_entries)):
                if report is None:
                    method, space = resolve_alignment(frame.kind, self.protocol, self.options, predictor.name)
                    report = ModelReport(
                        predictor.name, str(frame.kind), {"method": method, "space": space, "scope": "sequence"}
                    )
                mask = self.protocol.eval_mask(frame.sample.depth) & frame.sample.valid
                values = prediction_in_space(frame.prediction, frame.kind, space)
                x, y = _sample_pixels(values, frame.sample.depth, mask, self.options.sequence_fit_pixels, i)
                xs.append(x)
                ys.append(y)
                if tick:
                    tick()
            x_all, y_all = np.concatenate(xs), np.concatenate(ys)
            alignment = fit_or_fallback(x_all, y_all, None, method, space)
            for frame in self._frames(predictor, cache, seq_entries):
                row, depth = score_frame(
                    frame.prediction,
                    frame.kind,
                    frame.sample,
                    self.protocol,
                    method,
                    space,
                    alignment=alignment,
                    boundary=self.options.boundary,
                )
                self._finish_row(report, frame, row)
                temporal.add(frame.sample, depth, self.protocol)
                if tick:
                    tick()
        assert report is not None
        report.sequences = temporal.results()
        return report

    def _finish_row(self, report: ModelReport, frame: Frame, row: dict[str, Any]) -> None:
        sample = frame.sample
        out: dict[str, Any] = {"name": sample.name}
        if sample.sequence:
            out["sequence"] = sample.sequence
        out.update(row)
        out["focal_gt"] = sample.focal_px
        out["focal_pred"] = frame.focal_px
        given = self.options.give_focal
        if sample.focal_px and frame.focal_px and not given:
            out["focal_rel_err"] = focal_relative_error(frame.focal_px, sample.focal_px)
        out["predict_s"] = round(frame.seconds, 4)
        out["cached"] = frame.cached
        report.cache_hits += int(frame.cached)
        report.rows.append(out)

    def _summarise(self, report: ModelReport) -> dict[str, Any]:
        keys = DEPTH_METRICS + (("boundary_f1",) if self.options.boundary else ())
        summary: dict[str, Any] = {"n_images": len(report.rows)}
        summary.update(mean_metrics(report.rows, keys))
        if any("focal_rel_err" in r for r in report.rows):
            pairs = [(r["focal_pred"], r["focal_gt"]) for r in report.rows if "focal_rel_err" in r]
            summary.update(focal_metrics([p for p, _ in pairs], [g for _, g in pairs]))
        if report.sequences:
            for key in ("tae", "temporal_change_error", "flicker"):
                values = [s[key] for s in report.sequences.values() if np.isfinite(s.get(key, np.nan))]
                if values:
                    summary[key] = float(np.mean(values))
        return summary


class _TemporalAccumulator:
    """Consecutive-frame temporal metrics per sequence, streaming (two frames held at a time)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.state: dict[str, dict[str, Any]] = {}

    def add(self, sample: Sample, depth: np.ndarray, protocol: EvalProtocol) -> None:
        if not self.enabled or sample.sequence is None:
            return
        st = self.state.setdefault(sample.sequence, {"prev": None, "tae": [], "tce": [], "flicker": [], "n": 0})
        mask = protocol.eval_mask(sample.depth) & sample.valid
        scored = np.where(mask, depth, np.nan)
        current = (sample, depth, scored)
        prev = st["prev"]
        if prev is not None:
            p_sample, p_depth, p_scored = prev
            if all(x is not None for x in (p_sample.pose_c2w, sample.pose_c2w, sample.K)):
                st["tae"].append(
                    temporal_alignment_error(
                        [p_depth, depth], [p_sample.pose_c2w, sample.pose_c2w], [p_sample.K, sample.K]
                    )
                )
            st["tce"].append(temporal_change_error([p_scored, scored], [p_sample.depth, sample.depth]))
            st["flicker"].append(flicker([p_depth, depth]))
        st["prev"] = current
        st["n"] += 1

    def results(self) -> dict[str, dict[str, float]]:
        out = {}
        for seq, st in self.state.items():
            res: dict[str, float] = {"n_frames": st["n"]}
            for key, name in (("tae", "tae"), ("tce", "temporal_change_error"), ("flicker", "flicker")):
                vals = [v for v in st[key] if np.isfinite(v)]
                if vals:
                    res[name] = float(np.mean(vals))
            out[seq] = res
        return out


# ------------------------------------------------------------------ reports
TABLE_METRICS = DEPTH_METRICS + ("boundary_f1",) + FOCAL_METRICS + ("tae", "temporal_change_error", "flicker")
LABELS = {
    "abs_rel": ("AbsRel", False),
    "sq_rel": ("SqRel", False),
    "rmse": ("RMSE [m]", False),
    "rmse_log": ("RMSE log", False),
    "log10": ("log10", False),
    "silog": ("SILog", False),
    "delta1": ("δ1 (<1.25)", True),
    "delta2": ("δ2 (<1.25²)", True),
    "delta3": ("δ3 (<1.25³)", True),
    "irmse": ("iRMSE [1/km]", False),
    "mae": ("MAE [m]", False),
    "boundary_f1": ("Boundary F1 (SI)", True),
    "focal_abs_rel": ("Focal AbsRel", False),
    "focal_median_rel": ("Focal median rel", False),
    "focal_delta25": ("Focal δ25", True),
    "focal_delta50": ("Focal δ50", True),
    "tae": ("TAE ×100", False),
    "temporal_change_error": ("Temporal change err", False),
    "flicker": ("Flicker", False),
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def report_document(
    dataset: DepthDataset, protocol: EvalProtocol, options: EvalOptions, reports: Sequence[ModelReport]
) -> dict[str, Any]:
    return _jsonable(
        {
            "dataset": dataset.name,
            "root": str(dataset.root),
            "dataset_options": {k: str(v) for k, v in dataset.options.items()},
            "protocol": protocol.describe(),
            "options": {
                "align": options.align,
                "align_space": options.align_space,
                "align_scope": options.align_scope or protocol.align_scope,
                "limit": options.limit,
                "give_focal": options.give_focal,
                "temporal": options.temporal,
            },
            "averaging": "per-image metrics averaged over images",
            "models": {
                r.model: {
                    "output_kind": r.output_kind,
                    "alignment": r.alignment,
                    "summary": r.summary,
                    "sequences": r.sequences,
                    "seconds": round(r.seconds, 3),
                    "cache_hits": r.cache_hits,
                    "per_image": r.rows,
                }
                for r in reports
            },
        }
    )


def summary_csv(reports: Sequence[ModelReport], dataset: str, protocol: str) -> str:
    keys = ["n_images"] + [k for k in TABLE_METRICS if any(k in r.summary for r in reports)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "dataset", "protocol", "alignment"] + keys)
    for r in reports:
        align = f"{r.alignment['method']}/{r.alignment['space']}/{r.alignment['scope']}"
        writer.writerow([r.model, dataset, protocol, align] + [_fmt_csv(r.summary.get(k)) for k in keys])
    return buf.getvalue()


def per_image_csv(reports: Sequence[ModelReport]) -> str:
    keys: list[str] = []
    for r in reports:
        for row in r.rows:
            keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model"] + keys)
    for r in reports:
        for row in r.rows:
            writer.writerow([r.model] + [_fmt_csv(row.get(k)) for k in keys])
    return buf.getvalue()


def _fmt_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_reports(
    out_dir: Path,
    dataset: DepthDataset,
    protocol: EvalProtocol,
    options: EvalOptions,
    reports: Sequence[ModelReport],
) -> dict[str, Path]:
    """<out>/<dataset>_<protocol>.json, .csv (summary) and _per_image.csv, written atomically."""
    stem = f"{_slug(dataset.name)}_{_slug(protocol.name)}"
    paths = {
        "json": out_dir / f"{stem}.json",
        "csv": out_dir / f"{stem}.csv",
        "per_image_csv": out_dir / f"{stem}_per_image.csv",
    }
    doc = report_document(dataset, protocol, options, reports)
    write_text_atomic(paths["json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    write_text_atomic(paths["csv"], summary_csv(reports, dataset.name, protocol.name))
    write_text_atomic(paths["per_image_csv"], per_image_csv(reports))
    return paths


def comparison_table(dataset: DepthDataset, protocol: EvalProtocol, reports: Sequence[ModelReport]):
    """A rich Table: one row per metric, one column per model, the best value in bold."""
    from rich.table import Table

    n = max((r.summary.get("n_images", 0) for r in reports), default=0)
    table = Table(
        title=f"{dataset.name} · protocol {protocol.name} · {n} image{'s' if n != 1 else ''}", title_justify="left"
    )
    table.add_column("metric", no_wrap=True)
    table.add_column("", justify="center")
    for r in reports:
        table.add_column(
            f"{r.model}\n[dim]{r.alignment['method']} ({r.alignment['space']}, {r.alignment['scope']})",
            justify="right",
            overflow="fold",  # long model names wrap instead of being cut in narrow terminals
        )
    for key in TABLE_METRICS:
        values = [r.summary.get(key) for r in reports]
        finite = [v for v in values if isinstance(v, float) and math.isfinite(v)]
        if not finite:
            continue
        label, higher = LABELS[key]
        best = max(finite) if higher else min(finite)
        cells = []
        for v in values:
            if not (isinstance(v, float) and math.isfinite(v)):
                cells.append("–")
            else:
                text = f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
                cells.append(f"[bold]{text}[/]" if len(reports) > 1 and v == best else text)
        table.add_row(label, "↑" if higher else "↓", *cells)
    table.caption = protocol.papers
    return table
