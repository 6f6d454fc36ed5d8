"""Confusion matrices, IoU and mIoU over a fixed class list (numpy): the one metric of the project.

The pseudo-label report (:mod:`pipeline.report`) and the trainer's evaluation
(:mod:`train.evaluate`) both score with these functions.

A confusion matrix ``C`` has shape (K, K + 1): rows are ground-truth classes, columns predicted
classes plus a last column for *unlabelled* predictions (IGNORE, e.g. points no view sees).
Ground-truth IGNORE is not counted. Unlabelled predictions count as misses of their true class,
so a labelling that abstains is not rewarded; :func:`labelled_only` drops that column to
measure the labels that were given. Matrices of a split are summed before any IoU is taken
(one confusion matrix per split; per-scene IoUs are never averaged).

Class set: every mIoU averages the classes present in the split's ground truth, and every row of
one table averages the same set (:func:`comparable`), whatever each row predicts. Classes absent
from the ground truth are shown as "absent", not 0.0. The official evaluators (ScanNet's script,
the nuScenes devkit) average the classes in ground truth *or* predicted, so a row that predicts an
absent class gets a 0 there; that mean (:func:`mean_iou_gt_or_pred`) is recorded beside ours and
shown where it differs. On the full ScanNet val set every class is present and the two agree.
"""

from __future__ import annotations

from typing import Mapping, Sequence

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


def present_in_truth(*matrices: np.ndarray) -> np.ndarray:
    """(K,) bool: classes with at least one ground-truth element in any of the (K, K + 1) or (K, K)
    ``matrices``: the class set every row of one table averages over (:data:`CLASS_SET`)."""
    if not matrices:
        raise ValueError("no confusion matrix given")
    return np.any([np.asarray(m).sum(axis=1) > 0 for m in matrices], axis=0)


def scored_mask(n_classes: int, scored: Sequence[int] | None) -> np.ndarray:
    """(K,) bool of a benchmark's ``scored_classes`` (class indices; None: all K). A protocol such as
    ``nuimages11`` scores fewer classes than it prompts: the others are never averaged, but their
    predictions on scored pixels still count as errors."""
    mask = np.ones(n_classes, dtype=bool)
    if scored is not None:
        mask[:] = False
        mask[np.asarray(list(scored), dtype=np.int64)] = True
    return mask


CLASS_SET = "classes present in the split's ground truth"
"""What every mIoU of the project averages over, the same set for every row of a table."""

OFFICIAL = "classes in ground truth or predicted (ScanNet's script, the nuScenes devkit)"
"""The official evaluators' mean (:func:`mean_iou_gt_or_pred`), shown beside ours where it differs."""


def mean_iou(matrix: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Mean of :func:`iou` over ``classes`` ((K,) bool; default: :func:`present_in_truth` of
    ``matrix``). A class of the set that this matrix neither holds nor predicts counts 0 (possible
    when the set comes from other rows, e.g. labelled-only rows); NaN if the set is empty."""
    values = iou(matrix)
    chosen = present_in_truth(matrix) if classes is None else np.asarray(classes, dtype=bool)
    if not chosen.any():
        return float("nan")
    return float(np.nan_to_num(values[chosen], nan=0.0).mean())


def mean_iou_gt_or_pred(matrix: np.ndarray, scored: Sequence[int] | None = None) -> float:
    """The official evaluators' mIoU: nan-aware mean of :func:`iou` over the classes in ground truth
    *or* predicted, so a predicted class absent from the ground truth adds a 0 (NaN if none); with
    ``scored`` (a benchmark's scored class indices) over those classes only."""
    values = iou(matrix)
    if scored is not None:
        values = values[np.asarray(list(scored), dtype=np.int64)]
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def summary(matrix: np.ndarray, class_names: Sequence[str], classes: np.ndarray | None = None,
            scored: Sequence[int] | None = None) -> dict:
    """JSON-ready metrics of a (K, K + 1) matrix: ``miou`` over ``classes`` ((K,) bool; default the
    classes present in this matrix's ground truth), restricted to the benchmark's ``scored`` class
    indices (default all), listed in ``class_set``; ``miou_gt_or_pred`` (the official evaluators'
    mean over the scored classes); overall accuracy; per-class IoU (None where undefined) and
    ground-truth counts; ``classes_scored`` names the benchmark's scored classes."""
    values = iou(matrix)
    chosen = present_in_truth(matrix) if classes is None else np.asarray(classes, dtype=bool)
    chosen = chosen & scored_mask(len(class_names), scored)
    return {
        "miou": mean_iou(matrix, chosen),
        "miou_gt_or_pred": mean_iou_gt_or_pred(matrix, scored),
        "class_set": [name for name, keep in zip(class_names, chosen) if keep],
        "classes_scored": [name for name, keep in zip(class_names, scored_mask(len(class_names), scored)) if keep],
        "accuracy": accuracy(matrix),
        "classes_evaluated": int(chosen.sum()),
        "elements": int(np.asarray(matrix).sum()),
        "iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, values)},
        "gt_count": {name: int(c) for name, c in zip(class_names, np.asarray(matrix).sum(axis=1))},
    }


def comparable(matrices: Mapping[str, np.ndarray], class_names: Sequence[str],
               scored: Sequence[int] | None = None) -> dict[str, dict]:
    """:func:`summary` of each row (name → (K, K + 1) matrix), all over one class set: the classes
    present in the ground truth of any of the rows (rows of one table share a split), among the
    benchmark's ``scored`` class indices (default all)."""
    chosen = present_in_truth(*matrices.values()) & scored_mask(len(class_names), scored)
    return {name: summary(m, class_names, chosen, scored) for name, m in matrices.items()}


def _pct(value: float | None) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def markdown_table(rows: Mapping[str, dict], class_names: Sequence[str], unit: str = "elements",
                   extra: Sequence[tuple[str, str]] = ()) -> str:
    """Two Markdown tables of :func:`comparable` rows (which must share ``class_set``): one line per
    row (mIoU over the set, the official mean where it differs, the ``extra`` (header, key) values
    as percent, accuracy), then one line per class with the first row's ground-truth count of
    ``unit`` and each row's IoU in percent, "absent" for classes outside the set (absent from the
    ground truth)."""
    if not rows:
        return ""
    sets = {tuple(r["class_set"]) for r in rows.values()}
    if len(sets) > 1:
        raise ValueError(f"rows average different class sets: {sorted(sets)}")
    chosen = next(iter(sets))
    official = any(_pct(r["miou"]) != _pct(r["miou_gt_or_pred"]) for r in rows.values())
    missing = [c for c in class_names if c not in chosen]
    lines = [f"Every row averages the same {len(chosen)} class{'' if len(chosen) == 1 else 'es'}, the {CLASS_SET}"
             + (f"; absent: {', '.join(missing)}." if missing else " (all of them)."),
             *([f"*mIoU, GT ∪ predicted*: averaged over {OFFICIAL}; a predicted absent class adds a 0."] if official else []),
             "", f"| result | mIoU ({len(chosen)} classes) |" + (" mIoU, GT ∪ predicted |" if official else "")
             + "".join(f" {header} |" for header, _ in extra) + " accuracy |",
             "|---|---|" + ("---|" if official else "") + "---|" * len(extra) + "---|"]
    for name, res in rows.items():
        cells = ([res["miou_gt_or_pred"]] if official else []) + [res[key] for _, key in extra]
        lines.append(f"| {name} | {_pct(res['miou'])} |" + "".join(f" {_pct(v)} |" for v in cells) + f" {_pct(res['accuracy'])} |")
    first = next(iter(rows.values()))
    lines += ["", f"| class | ground truth ({unit}) | " + " | ".join(rows) + " |", "|---|---|" + "---|" * len(rows)]
    for c in class_names:
        cells = [("absent" if c not in chosen else _pct(r["iou"][c] if r["iou"][c] is not None else 0.0)) for r in rows.values()]
        lines.append(f"| {c} | {first['gt_count'][c]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def accuracy(matrix: np.ndarray) -> float:
    """Share of ground-truth elements predicted correctly (NaN if none)."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    return float(np.trace(m[:, : m.shape[0]]) / total) if total else float("nan")
