"""The report of a trained stage: its evaluation as HTML, training curves, confusion heatmaps, and
the evaluation's pictures (``python -m pipeline report run``; rule ``report_stage``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.atomic import atomic_file, atomic_write_text
from pipeline.stores import StoreError


def read_log(path: str | Path) -> list[dict]:
    """The records of a run's ``log.jsonl`` (one JSON object per logged step); a torn last line
    (a run killed while writing) is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return [r for r in records if isinstance(r, dict) and "step" in r]


def write_run_report(evaluation: str | Path, log: str | Path, html_out: str | Path, curves_out: str | Path,
                     confusion_out: str | Path, views_out: str | Path | None = None, points_out: str | Path | None = None) -> None:
    """From an evaluate folder (metrics.md, confusion_{3d,2d}.json, figures/) and the stage's
    ``log.jsonl``: ``html_out`` (the metrics tables), ``curves_out``, ``confusion_out`` and copies of
    figures/views.png and figures/points.png where asked. Missing inputs: one line naming the file."""
    from pipeline.report.figures import confusion_figure, curves_figure
    from pipeline.report.html import markdown_to_html

    evaluation = Path(evaluation)
    for name in ("metrics.md", "metrics.json"):
        if not (evaluation / name).is_file():
            raise StoreError(f"{evaluation / name}: missing; rerun the evaluate rule")
    metrics = json.loads((evaluation / "metrics.json").read_text())
    stage = metrics.get("checkpoint", {}).get("stage", "")
    atomic_write_text(html_out, markdown_to_html((evaluation / "metrics.md").read_text(), title=f"Evaluation {stage}"))
    if not Path(log).is_file():
        raise StoreError(f"{log}: the training log of {stage} is missing (it sits beside final.pt)")
    records = read_log(log)
    curves_figure(records, curves_out, title=f"{stage}: {len(records)} logged steps"
                  + (" (a plumbing run: too few steps to learn)" if metrics.get("plumbing_run") else ""))
    matrices = {}
    for key in ("3d", "2d"):
        path = evaluation / f"confusion_{key}.json"
        if path.is_file():
            matrices[f"{key.upper()} network"] = json.loads(path.read_text())
    confusion_figure(matrices, confusion_out, title=f"{stage} final networks, split(s) {', '.join(metrics.get('splits', []))}")
    for name, target in (("views.png", views_out), ("points.png", points_out)):
        if target is None:
            continue
        source = evaluation / "figures" / name
        if not source.is_file():
            raise StoreError(f"{source}: missing (evaluate.figure_views / figure_scenes set to 0?); rerun the evaluate rule")
        with atomic_file(target) as tmp:
            shutil.copyfile(source, tmp)
