"""Pictures of predictions (matplotlib, Agg, PNG): 2D overlays with errors and top-down renders of
3D predictions, drawn by ``train.evaluate`` for the report; shared drawing helpers. Every class
colour comes from :mod:`pipeline.palette`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.palette import class_palette
from pipeline.vocab import IGNORE

ERROR_RGB = np.array([220, 30, 30], np.uint8)
"""Wrong elements in error panels (correct ones keep the image / light grey; unlabelled black)."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int = 110) -> None:
    from pipeline.atomic import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})


def _legend(fig, bench, used: set[int]) -> None:
    from matplotlib.patches import Patch

    colours = class_palette(bench)
    handles = [Patch(color=colours[c] / 255, label=bench.class_names[c]) for c in sorted(used) if c < bench.n_classes]
    handles.append(Patch(color=(0, 0, 0), label="no label"))
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=7, frameon=False)


def _blend(image: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Image (H, W, 3) half and half with the class colours of ``labels`` (H, W); unlabelled: image only."""
    out = image.astype(np.uint16)
    labelled = labels != IGNORE
    out[labelled] = (out[labelled] + colours[labels[labelled]]) // 2
    return out.astype(np.uint8)


def error_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(H, W) uint8 → 0 = no ground truth, 1 = correct, 2 = wrong."""
    out = np.zeros(truth.shape, np.uint8)
    labelled = truth != IGNORE
    out[labelled] = 1
    out[labelled & (pred != truth)] = 2
    return out


def views_figure(panels: Sequence[Mapping[str, Any]], bench, out: str | Path, title: str = "") -> None:
    """Rows of image / pseudo-label / prediction / ground truth / error, labels blended over the image.

    Each panel: ``title``, ``image`` (H, W, 3) uint8, ``pseudo``, ``pred``, ``truth`` (H, W) uint8
    class maps at the image's size (``pseudo`` / ``truth`` may be None).
    """
    plt = _plt()
    colours = class_palette(bench)
    cols = ("image", "pseudo", "pred", "truth", "error")
    heads = {"image": "image", "pseudo": "pseudo-label (SAM-refined)", "pred": "2D network", "truth": "ground truth",
             "error": "error (red = wrong)"}
    rows = max(1, len(panels))
    fig, axes = plt.subplots(rows, len(cols), figsize=(3.2 * len(cols), 2.2 * rows + 0.9), squeeze=False)
    used: set[int] = set()
    for r in range(rows):
        for c, key in enumerate(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if r == 0:
                ax.set_title(heads[key], fontsize=9)
            if r >= len(panels):
                continue
            p = panels[r]
            image = p["image"]
            if key == "image":
                ax.imshow(image)
                ax.text(2, 2, p["title"], fontsize=6, va="top", color="white", backgroundcolor=(0, 0, 0, 0.5))
            elif key == "error":
                if p.get("truth") is None:
                    ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=8)
                    continue
                err = error_map(p["pred"], p["truth"])
                shown = (image.astype(np.uint16) // 2).astype(np.uint8)
                shown[err == 2] = ERROR_RGB
                shown[err == 0] = 0
                ax.imshow(shown)
            else:
                labels = p.get(key)
                if labels is None:
                    ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8)
                    continue
                ax.imshow(_blend(image, labels, colours))
                used.update(int(x) for x in np.unique(labels) if x != IGNORE)
    _legend(fig, bench, used)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(bottom=0.1 if rows < 3 else 0.05, wspace=0.02, hspace=0.05)
    _save(fig, out)
    plt.close(fig)


def drawn_points(xyz: np.ndarray, truth: np.ndarray | None, max_points: int) -> np.ndarray:
    """Indices (M,) of the points a top-down render draws, lowest first: at most about
    ``max_points`` (every k-th point), and where there is ground truth only the points that have
    some, so that unlabelled surfaces above the scored ones (an indoor ceiling, not a benchmark
    class) do not hide them in any of the panels."""
    index = np.arange(xyz.shape[0])
    if truth is not None and bool((truth != IGNORE).any()):
        index = index[truth != IGNORE]
    index = index[:: max(1, int(np.ceil(index.size / max_points)))]
    return index[np.argsort(xyz[index, 2], kind="stable")]


def points_figure(scenes: Sequence[Mapping[str, Any]], bench, out: str | Path, title: str = "", max_points: int = 80000) -> None:
    """Top-down renders per scene: prediction, ground truth, error (grey correct, red wrong, black no label).

    Each scene: ``title``, ``xyz`` (N, 3) float32 metres, ``pred``, ``truth`` (N,) uint8 (``truth`` may be None).
    Points are drawn lowest first, so roofs and tree tops cover the ground as seen from above; with
    ground truth, points without it are left out of every panel (:func:`drawn_points`).
    """
    plt = _plt()
    colours = class_palette(bench)
    rows = max(1, len(scenes))
    fig, axes = plt.subplots(rows, 3, figsize=(13, 4.2 * rows + 0.6), squeeze=False)
    used: set[int] = set()
    for r in range(rows):
        for c, head in enumerate(("3D network", "ground truth", "error (red = wrong)")):
            ax = axes[r, c]
            ax.set_axis_off()
            ax.set_aspect("equal")
            if r == 0:
                ax.set_title(head, fontsize=9)
            if r >= len(scenes):
                continue
            s = scenes[r]
            xyz, pred, truth = s["xyz"], s["pred"], s.get("truth")
            pick = drawn_points(xyz, truth, max_points)
            if c == 0:
                rgb = colours[pred[pick]]
                used.update(int(x) for x in np.unique(pred))
            elif truth is None:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
            elif c == 1:
                rgb = colours[truth[pick]]
                used.update(int(x) for x in np.unique(truth) if x != IGNORE)
            else:
                err = error_map(pred[pick], truth[pick])
                rgb = np.where(err[:, None] == 2, ERROR_RGB, np.where(err[:, None] == 1, 190, 0)).astype(np.uint8)
            size = float(np.clip(20000.0 / max(1, pick.size), 0.5, 30.0))  # dense clouds: fine dots; sparse ones stay visible
            ax.scatter(xyz[pick, 0], xyz[pick, 1], c=rgb / 255.0, s=size, linewidths=0, marker="o")
            lo, hi = np.percentile(xyz[:, :2], [2, 98], axis=0)  # a lidar's few far returns would shrink the scene
            pad = 0.05 * (hi - lo) + 0.5
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
            if c == 0:
                ax.text(0.0, 1.0, s["title"], fontsize=7, va="top", transform=ax.transAxes)
    _legend(fig, bench, used)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(bottom=0.08, wspace=0.02, hspace=0.06)
    _save(fig, out, dpi=100)
    plt.close(fig)




def write_prediction_figures(folder: str | Path, bench, view_panels: Sequence[Mapping[str, Any]],
                             scenes: Sequence[Mapping[str, Any]], what: str) -> None:
    """``<folder>/views.png`` (:func:`views_figure`) and ``<folder>/points.png`` (:func:`points_figure`),
    each when there is something to draw; ``what`` names the networks and split in the titles."""
    if view_panels:
        views_figure(view_panels, bench, Path(folder) / "views.png", title=f"2D: {what}")
    if scenes:
        points_figure(scenes, bench, Path(folder) / "points.png", title=f"3D, seen from above: {what}")
