"""Figures of a trained run's report: training curves and confusion heatmaps (matplotlib, Agg, PNG);
the prediction pictures are in :mod:`pipeline.figures`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.figures import _plt, _save

CURVE_KEYS: tuple[tuple[str, str], ...] = (
    ("loss", "total"), ("ce2d", "2D cross-entropy"), ("ce3d", "3D cross-entropy"),
    ("latent2d", "2D latent (1 - cos)"), ("latent3d", "3D latent (1 - cos)"),
)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if values.size < window or window <= 1:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def curves_figure(records: Sequence[Mapping[str, float]], out: str | Path, title: str = "") -> None:
    """Training curves from a run's ``log.jsonl`` records: each loss (raw and a moving mean over
    ~2 % of the steps), the learning rates with the switched share of targets, and seconds per step."""
    plt = _plt()
    steps = np.array([r["step"] for r in records], np.float64)
    window = max(1, len(records) // 50)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), squeeze=False)
    ax = axes[0, 0]
    for key, label in CURVE_KEYS:
        values = np.array([r.get(key, np.nan) for r in records], np.float64)
        if np.isnan(values).all():
            continue
        line, = ax.plot(steps, values, alpha=0.15, linewidth=0.6)
        ax.plot(steps[window - 1:] if window > 1 and values.size >= window else steps, _smooth(values, window),
                color=line.get_color(), linewidth=1.3, label=label)
    ax.set_xlabel("step")
    ax.set_title(f"losses (moving mean over {window} steps)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    twin = ax.twinx()
    for key, label in (("switch2d", "2D targets switched"), ("switch3d", "3D targets switched"),
                       ("fit2d", "2D prediction = pseudo-label"), ("fit3d", "3D prediction = pseudo-label")):
        values = np.array([r.get(key, np.nan) for r in records], np.float64)
        if not np.isnan(values).all():
            twin.plot(steps[window - 1:] if window > 1 and values.size >= window else steps, _smooth(values, window),
                      linestyle="--", linewidth=1.0, label=label)
    twin.set_ylabel("share (dashed)", fontsize=7)
    if twin.lines:
        twin.legend(fontsize=7, loc="center right")
    for key in ("lr2d", "lr3d"):
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], label=key)
    ax.set_xlabel("step")
    ax.set_title("learning rate; switched targets and fit to the pseudo-labels (dashed)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    ax.plot(steps, _smooth(np.array([r.get("step_s", np.nan) for r in records]), 1), linewidth=0.6, label="step")
    ax.plot(steps, np.array([r.get("data_wait_s", np.nan) for r in records]), linewidth=0.6, label="of which data wait")
    ax.set_xlabel("step")
    ax.set_title("seconds per step", fontsize=9)
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, out, dpi=90)
    plt.close(fig)


def confusion_figure(matrices: Mapping[str, Mapping[str, Any]], out: str | Path, title: str = "") -> None:
    """Row-normalised confusion heatmaps (ground truth rows, prediction columns, the last column
    "no prediction") for each entry of ``matrices``: name → ``confusion_*.json`` content."""
    plt = _plt()
    shown = {k: m for k, m in matrices.items() if np.asarray(m["matrix"]).sum() > 0}
    cols = max(1, len(shown))
    fig, axes = plt.subplots(1, cols, figsize=(7.5 * cols, 6.8), squeeze=False)
    fig.subplots_adjust(wspace=0.45)
    for ax, (name, m) in zip(axes[0], shown.items()):
        matrix = np.asarray(m["matrix"], np.float64)
        rows = matrix.sum(1, keepdims=True)
        norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        ax.imshow(norm, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        classes = list(m["classes"])
        ax.set_yticks(range(len(classes)), [f"{c} ({int(n):,})" if n else f"{c} (absent)" for c, n in zip(classes, rows[:, 0])],
                      fontsize=6)
        ax.set_xticks(range(len(m["columns"])), m["columns"], rotation=90, fontsize=6)
        ax.set_ylabel("ground truth (elements)", fontsize=8)
        ax.set_xlabel("prediction", fontsize=8)
        ax.set_title(f"{name}: share of each ground-truth row", fontsize=9)
    if not shown:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no ground truth in this split", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, out, dpi=90)
    plt.close(fig)
