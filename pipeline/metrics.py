"""Confusion matrices, IoU and mIoU over a fixed class list (numpy): the one metric of the project.

The pseudo-label report (:mod:`pipeline.report`) and the trainer's evaluation
(:mod:`train.evaluate`) both score with these functions.

A confusion matrix ``C`` has shape (K, K + 1): rows are ground-truth classes, columns predicted
classes plus a last column for *unlabelled* predictions (IGNORE, e.g. points no view sees).
Ground-truth IGNORE is not counted. Unlabelled predictions count as misses of their true class,
so a labelling that abstains is not rewarded; :func:`labelled_only` drops that column to
measure the labels that were given. Matrices of a split are summed before any IoU is taken
(one confusion matrix per split; per-scene IoUs are never averaged).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.vocab import IGNORE


def confusion(gt: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix (K, K + 1) int64 of class-index arrays ``gt`` and ``pred`` (same shape, uint8)."""
    gt = np.asarray(gt).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth has {gt.size} elements, prediction {pred.size}")
    keep = gt != IGNORE
    gt, pred = gt[keep], pred[keep]
    if gt.size and gt.max() >= n_classes:
        raise ValueError(f"ground-truth class {int(gt.max())} outside 0..{n_classes - 1}")
    pred = np.where((pred >= n_classes), n_classes, pred)  # IGNORE and anything unknown: unlabelled
    return np.bincount(gt * (n_classes + 1) + pred, minlength=n_classes * (n_classes + 1)).reshape(n_classes, n_classes + 1)


def labelled_only(matrix: np.ndarray) -> np.ndarray:
    """The matrix without its unlabelled column (K, K): only elements that got a label."""
    return np.asarray(matrix)[:, :-1]


def iou(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU (K,) float64 = TP / (TP + FP + FN); NaN where the class is in neither."""
    m = np.asarray(matrix, dtype=np.float64)
    k = m.shape[0]
    tp = np.diag(m[:, :k])
    union = m.sum(axis=1) + m[:, :k].sum(axis=0) - tp
    out = np.full(k, np.nan)
    np.divide(tp, union, out=out, where=union > 0)
    return out


def mean_iou(matrix: np.ndarray, scored: Sequence[int] | None = None) -> float:
    """Mean of :func:`iou` over classes present in ground truth or prediction (NaN if none);
    with ``scored`` (class indices, a benchmark's ``scored_classes``) over those classes only.
    Predictions of unscored classes still count as misses of the true class."""
    values = iou(matrix)
    if scored is not None:
        values = values[np.asarray(list(scored), dtype=np.int64)]
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def summary(matrix: np.ndarray, class_names: Sequence[str], scored: Sequence[int] | None = None) -> dict:
    """mIoU (mean over the ``scored`` classes, default all, with a defined IoU), overall accuracy,
    per-class IoU and counts of a (K, K + 1) matrix, as JSON-ready values; ``classes_scored``
    names the classes mIoU averages over."""
    values = iou(matrix)
    chosen = list(range(len(class_names))) if scored is None else [int(c) for c in scored]
    return {
        "miou": mean_iou(matrix, chosen),
        "accuracy": accuracy(matrix),
        "classes_scored": [class_names[c] for c in chosen],
        "classes_evaluated": int(np.isfinite(values[chosen]).sum()),
        "elements": int(np.asarray(matrix).sum()),
        "iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, values)},
        "gt_count": {name: int(c) for name, c in zip(class_names, np.asarray(matrix).sum(axis=1))},
    }


def markdown_table(rows: dict[str, dict], class_names: Sequence[str]) -> str:
    """Per-class IoU table (percent) of :func:`summary` results, one row each, classes as columns."""
    head = "| result | mIoU | " + " | ".join(class_names) + " |"
    sep = "|---|---|" + "---|" * len(class_names)
    lines = [head, sep]
    for name, res in rows.items():
        cells = [("–" if res["iou"][c] is None else f"{100 * res['iou'][c]:.1f}") for c in class_names]
        lines.append(f"| {name} | {100 * res['miou']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def accuracy(matrix: np.ndarray) -> float:
    """Share of ground-truth elements predicted correctly (NaN if none)."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    return float(np.trace(m[:, : m.shape[0]]) / total) if total else float("nan")
