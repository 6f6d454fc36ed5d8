"""Confusion matrices and IoU tables (one confusion matrix accumulated over a whole split)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.vocab import IGNORE


def confusion(gt: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix (K, K+1) int64: rows = ground-truth class, columns = predicted class,
    last column = predicted ignore (a miss). Ground-truth ignore elements are skipped."""
    gt = np.asarray(gt).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    keep = gt != IGNORE
    gt, pred = gt[keep], pred[keep]
    if gt.size and gt.max() >= n_classes:
        raise ValueError(f"ground truth holds class {int(gt.max())} >= {n_classes}")
    pred = np.where((pred == IGNORE) | (pred >= n_classes), n_classes, pred)
    return np.bincount(gt * (n_classes + 1) + pred, minlength=n_classes * (n_classes + 1)).reshape(n_classes, n_classes + 1)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU (K,) float64 = TP / (TP + FP + FN); NaN for classes absent from ground truth and predictions.

    Predicted-ignore elements count as false negatives of their ground-truth class.
    """
    k = conf.shape[0]
    tp = np.diag(conf[:, :k]).astype(np.float64)
    fn = conf.sum(axis=1) - tp
    fp = conf[:, :k].sum(axis=0) - tp
    den = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, tp / np.maximum(den, 1), np.nan)


def summary(conf: np.ndarray, class_names: Sequence[str]) -> dict:
    """mIoU (mean over classes with a defined IoU), overall accuracy, per-class IoU, counts."""
    iou = iou_per_class(conf)
    total = conf.sum()
    k = conf.shape[0]
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "accuracy": float(np.trace(conf[:, :k]) / total) if total else float("nan"),
        "classes_evaluated": int(np.isfinite(iou).sum()),
        "elements": int(total),
        "iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
        "gt_count": {name: int(c) for name, c in zip(class_names, conf.sum(axis=1))},
    }


def markdown_table(rows: dict[str, dict], class_names: Sequence[str]) -> str:
    """Per-class IoU table (percent) with one row per result, classes as columns."""
    head = "| result | mIoU | " + " | ".join(class_names) + " |"
    sep = "|---|---|" + "---|" * len(class_names)
    lines = [head, sep]
    for name, res in rows.items():
        cells = [("–" if res["iou"][c] is None else f"{100 * res['iou'][c]:.1f}") for c in class_names]
        lines.append(f"| {name} | {100 * res['miou']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
