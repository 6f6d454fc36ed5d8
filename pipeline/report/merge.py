"""One split's quality report from its shards' JSON files: JSON, Markdown and a PNG of bars.

The shards' confusion matrices are summed first; every IoU is computed from the split's
matrix (never an average of per-scene or per-shard IoUs). Every stage of a domain (pixels,
points) averages the same classes, those present in the split's ground truth of that domain.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline import input_checks
from pipeline.errors import UserError
from pipeline.metrics import CLASS_SET, accuracy, iou, labelled_only, markdown_table, mean_iou, mean_iou_gt_or_pred, present_in_truth, scored_mask
from pipeline.report.shard import _write_json


def _nan_to_none(values) -> list[float | None]:
    return [None if (v is None or math.isnan(v)) else float(v) for v in values]


def stage_names(order: str, alt: str) -> dict[str, str]:
    """Confusion key → displayed stage name."""
    return {
        "pixels.clip": "pixels: CLIP",
        "pixels.refined": f"pixels: refined ({order})",
        "pixels.refined_alt": f"pixels: refined ({alt})",
        "points.clip": "points: CLIP",
        "points.refined": "points: refined",
    }


def merge_reports(shard_files: Sequence[str | Path], split: str) -> dict[str, Any]:
    """Sum the shards' matrices and coverage of ``split`` and compute the split's metrics."""
    shards = []
    for path in shard_files:
        try:
            shards.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: cannot read shard report ({err})") from None
    if not shards:
        raise UserError(f"no shard reports given for split {split!r}")
    first = shards[0]
    for other, path in zip(shards, shard_files):
        if other["class_names"] != first["class_names"]:
            raise UserError(f"{path}: class list differs from {shard_files[0]}")
    coverage = {key: sum(s["coverage"][key] for s in shards) for key in first["coverage"]}
    has_gt = {key: any(s["ground_truth"][key] for s in shards) for key in first["ground_truth"]}
    names = stage_names(first["nesting_order"], first["alt_nesting_order"])
    matrices = {key: np.sum([np.asarray(s["confusion"][key], dtype=np.int64) for s in shards], axis=0) for key in first["confusion"]}
    scored = list(first.get("scored", range(len(first["class_names"]))))  # shard reports before nuimages11 score all
    class_sets = {}
    for domain in has_gt:
        domain_matrices = [m for key, m in matrices.items() if key.split(".")[0] == domain]
        if has_gt[domain] and domain_matrices and any(m.sum() for m in domain_matrices):
            class_sets[domain] = present_in_truth(*domain_matrices) & scored_mask(len(first["class_names"]), scored)
    summary: dict[str, Any] = {}
    for key, matrix in matrices.items():
        domain = key.split(".")[0]
        entry: dict[str, Any] = {"key": key, "confusion": matrix.tolist()}
        if domain in class_sets and matrix.sum() > 0:
            chosen = class_sets[domain]
            entry.update(
                miou=mean_iou(matrix, chosen),
                miou_gt_or_pred=mean_iou_gt_or_pred(matrix, scored),
                iou=_nan_to_none(iou(matrix)),
                accuracy=accuracy(matrix),
                miou_labelled=mean_iou(labelled_only(matrix), chosen),
                evaluated=int(matrix.sum()),
                gt_count=[int(c) for c in matrix.sum(axis=1)],
            )
        summary[names[key]] = entry
    return {
        "split": split,
        "shards": [s["shard"] for s in shards],
        "samples": sum(len(s["samples"]) for s in shards),
        "benchmark": first["benchmark"],
        "class_names": first["class_names"],
        "classes_scored": [first["class_names"][c] for c in scored],
        "nesting_order": first["nesting_order"],
        "backends": first.get("backends", {}),
        "ground_truth": has_gt,
        "class_set": CLASS_SET,
        "class_sets": {d: [n for n, keep in zip(first["class_names"], c) if keep] for d, c in class_sets.items()},
        "input_checks": input_checks.total(s.get("input_checks", {}) for s in shards),
        "coverage": {
            **coverage,
            "pixels_in_mask_fraction": coverage["pixels_in_mask"] / coverage["pixels"] if coverage["pixels"] else None,
            "points_seen_fraction": coverage["points_seen"] / coverage["points"] if coverage["points"] else None,
            "points_labelled_fraction": coverage["points_labelled"] / coverage["points"] if coverage["points"] else None,
        },
        "stages": summary,
    }


def _pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _input_check_lines(counts: dict[str, int]) -> list[str]:
    """The Markdown section listing the inputs that prepare counted (docs/data-layout.md, Input checks)."""
    found = {name: n for name, n in counts.items() if n}
    lines = ["## Input checks", ""]
    if not found:
        return lines + ["No suspicious input counted.", ""]
    actions = {c.name: (c.unit, c.action) for c in input_checks.COUNTED}
    for name, n in found.items():
        unit, action = actions.get(name, ("", ""))
        lines.append(f"- `{name}`: {n} {unit}: {action}".rstrip(": "))
    return lines + ["", "See docs/data-layout.md, *Input checks*.", ""]


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    cov = report["coverage"]
    lines = [
        f"# Pseudo-label quality: split `{report['split']}`",
        "",
        f"{report['samples']} samples in shards {', '.join(report['shards'])}; benchmark `{report['benchmark']}`; "
        f"backends: CLIP `{report['backends'].get('clip')}`, SAM `{report['backends'].get('sam')}`; "
        f"refinement nesting order `{report['nesting_order']}`.",
        "IoU from one confusion matrix per split. *mIoU* counts unlabelled predictions (ignore, unseen points) as "
        "misses; *mIoU labelled* only scores elements that got a label. Every stage of a domain averages the same "
        "classes, those present in the split's ground truth among the scored ones "
        f"({', '.join(report['classes_scored'])}); classes absent from it read *absent*.",
        *(["", f"**Simulated backends** (CLIP `{report['backends'].get('clip')}`, SAM `{report['backends'].get('sam')}`): labels "
           "made from ground truth plus a noise model, instruments for the learning stages; these figures measure that noise "
           "model, not CLIP or SAM."] if "simulated" in report["backends"].values() else []),
        "",
        "## Coverage",
        "",
        f"- pixels inside a SAM mask: {_pct(cov['pixels_in_mask_fraction'])} % of {cov['pixels']}",
        f"- points seen by a view: {_pct(cov['points_seen_fraction'])} % of {cov['points']}",
        f"- points with a refined label: {_pct(cov['points_labelled_fraction'])} %",
        f"- pixel-point pairs: {cov['pairs']}",
        "",
        *_input_check_lines(report.get("input_checks", {})),
    ]
    evaluated = {name: s for name, s in report["stages"].items() if "miou" in s}
    if not evaluated:
        lines += ["No ground truth: no IoU.", ""]
        return "\n".join(lines)
    names = report["class_names"]
    for domain, chosen in report.get("class_sets", {}).items():
        rows = {name: _as_summary(s, names, chosen) for name, s in evaluated.items() if s["key"].split(".")[0] == domain}
        if rows:
            total = next(iter(rows.values()))["elements"]
            lines += [f"## {domain.capitalize()}: mIoU per stage and per-class IoU (%)", "",
                      markdown_table(rows, names, f"{domain}, {total} in all", extra=(("mIoU labelled", "miou_labelled"),))]
    return "\n".join(lines)


def _as_summary(stage: dict[str, Any], class_names: Sequence[str], class_set: Sequence[str]) -> dict[str, Any]:
    """A report stage entry in :func:`pipeline.metrics.summary`'s shape (what its tables read)."""
    return {
        "miou": stage["miou"], "miou_gt_or_pred": stage["miou_gt_or_pred"], "miou_labelled": stage["miou_labelled"],
        "accuracy": stage["accuracy"], "class_set": list(class_set), "elements": stage["evaluated"],
        "iou": dict(zip(class_names, stage["iou"])), "gt_count": dict(zip(class_names, stage["gt_count"])),
    }


def write_split_report(shard_files: Sequence[str | Path], split: str, out_json: str | Path, out_md: str | Path, out_png: str | Path,
                       html: str | Path | None = None) -> dict[str, Any]:
    """Merge the shards of ``split`` and write the JSON, Markdown and PNG outputs (and the Markdown
    as HTML when ``html`` is given)."""
    from pipeline.atomic import atomic_write_text
    from pipeline.report.plots import stage_bars

    report = merge_reports(shard_files, split)
    _write_json(out_json, report)
    text = markdown(report)
    atomic_write_text(out_md, text)
    if html is not None:
        from pipeline.report.html import markdown_to_html

        atomic_write_text(html, markdown_to_html(text, title=f"Pseudo-label quality, split {split}"))
    stage_bars(report["stages"], report["class_names"], out_png, title=f"pseudo-label quality, split {split}")
    return report
