"""What an evaluation produces: one `ModelReport` per model, its summary, JSON/CSV files, the table.

The report of a model exists before its first image is scored (the predictor declares its
output kind, so the alignment is known); rows are appended as images are scored and the
summary is computed once at the end. Metric labels and directions come from
`metrics.METRICS`, the one place they are defined.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.atomic import write_text_atomic
from .cache import slug
from .datasets import DepthDataset
from .focal import focal_metrics
from .metrics import DEPTH_METRICS, METRIC_INFO, METRICS, TEMPORAL_METRICS, mean_metrics
from .protocols import Protocol
from .settings import EvalSettings

if TYPE_CHECKING:
    from rich.table import Table

Cell = float | int | str | bool | None
Row = dict[str, Cell]
SequenceResult = Mapping[str, float | int | bool | None]

TABLE_METRICS = tuple(m.key for m in METRICS)
LABELS = {m.key: (m.label, m.higher_is_better) for m in METRICS}


@dataclass
class ModelReport:
    model: str
    output_kind: str
    alignment: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    sequences: dict[str, SequenceResult] = field(default_factory=dict)
    summary: dict[str, float | int] = field(default_factory=dict)
    seconds: float = 0.0
    cache_hits: int = 0

    def add_row(self, row: Row, cached: bool) -> None:
        self.rows.append(row)
        self.cache_hits += int(cached)

    def finish(self, boundary: bool, seconds: float) -> None:
        self.seconds = seconds
        self.summary = summarise(self.rows, self.sequences, boundary)


def _float(value: Cell) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarise(rows: Sequence[Row], sequences: Mapping[str, SequenceResult], boundary: bool) -> dict[str, float | int]:
    """Per-image metrics averaged over images; focal metrics; temporal metrics averaged over sequences.

    Flicker is averaged over the clips not known to move (static by their poses, or without
    poses): on a moving camera it counts real motion, and TAE is the measure there.
    """
    keys = DEPTH_METRICS + (("boundary_f1",) if boundary else ())
    summary: dict[str, float | int] = {"n_images": len(rows)}
    summary.update(mean_metrics(list(rows), keys))
    pairs = [(_float(r.get("focal_pred")), _float(r.get("focal_gt"))) for r in rows if "focal_rel_err" in r]
    if pairs:
        summary.update(focal_metrics([p for p, _ in pairs], [g for _, g in pairs]))
    for key in TEMPORAL_METRICS:
        chosen = [s for s in sequences.values() if key != "flicker" or s.get("static") is not False]
        values = [v for s in chosen if (v := _float(s.get(key))) is not None and math.isfinite(v)]
        if values:
            summary[key] = float(np.mean(values))
    return summary


# ------------------------------------------------------------------ files
def _jsonable(value: object) -> object:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def report_document(
    dataset: DepthDataset, protocol: Protocol, settings: EvalSettings, reports: Sequence[ModelReport]
) -> object:
    return _jsonable(
        {
            "dataset": dataset.name,
            "root": str(dataset.root),
            "dataset_options": {k: str(v) for k, v in dataset.options.items()},
            "protocol": protocol.describe(),
            "options": {
                "align": settings.align,
                "align_space": settings.align_space,
                "align_scope": settings.scope(protocol),
                "silog": settings.silog,
                "limit": settings.limit,
                "give_focal": settings.give_focal,
                "temporal": settings.temporal_for(protocol),
            },
            "averaging": "per-image metrics averaged over images; temporal metrics averaged over sequences",
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


def _fmt_csv(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


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


def write_reports(
    out_dir: Path,
    dataset: DepthDataset,
    protocol: Protocol,
    settings: EvalSettings,
    reports: Sequence[ModelReport],
) -> dict[str, Path]:
    """<out>/<dataset>_<protocol>.json, .csv (summary) and _per_image.csv, written atomically."""
    stem = f"{slug(dataset.name)}_{slug(protocol.name)}"
    paths = {
        "json": out_dir / f"{stem}.json",
        "csv": out_dir / f"{stem}.csv",
        "per_image_csv": out_dir / f"{stem}_per_image.csv",
    }
    doc = report_document(dataset, protocol, settings, reports)
    write_text_atomic(paths["json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    write_text_atomic(paths["csv"], summary_csv(reports, dataset.name, protocol.name))
    write_text_atomic(paths["per_image_csv"], per_image_csv(reports))
    return paths


# ------------------------------------------------------------------ terminal
def _cell(value: float, best: float, several: bool) -> str:
    text = f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return f"[bold]{text}[/]" if several and value == best else text


def comparison_table(dataset: DepthDataset, protocol: Protocol, reports: Sequence[ModelReport]) -> Table:
    """A rich Table: one row per metric, one column per model, the best value in bold."""
    from rich.table import Table

    n = max((int(r.summary.get("n_images", 0)) for r in reports), default=0)
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
        finite = [float(v) for v in values if isinstance(v, float) and math.isfinite(v)]
        if not finite:
            continue
        info = METRIC_INFO[key]
        best = max(finite) if info.higher_is_better else min(finite)
        cells = [
            _cell(float(v), best, len(reports) > 1) if isinstance(v, float) and math.isfinite(v) else "–"
            for v in values
        ]
        table.add_row(info.label, "↑" if info.higher_is_better else "↓", *cells)
    table.caption = protocol.papers
    return table
