"""Figures of the quality report (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.palette import class_palette
from pipeline.vocab import IGNORE


def segment_colours(segments: np.ndarray) -> np.ndarray:
    """Segment ids (H, W) int (-1 = no mask) → RGB (H, W, 3) uint8, one stable colour per id."""
    ids = np.asarray(segments).astype(np.int64)
    rgb = np.stack([(ids * 97 + 53) % 200 + 40, (ids * 57 + 101) % 200 + 40, (ids * 151 + 17) % 200 + 40], -1).astype(np.uint8)
    rgb[ids < 0] = 0
    return rgb


def _save(fig, path: str | Path) -> None:
    from pipeline.atomic import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})


def overlay_figure(panels: Sequence[dict[str, Any]], bench, out: str | Path, title: str = "") -> None:
    """Rows of image / SAM segments / CLIP / refined / ground truth for each panel (label maps coloured
    by class; segments in arbitrary colours, black outside every mask)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = class_palette(bench)
    rows = max(1, len(panels))
    fig, axes = plt.subplots(rows, 5, figsize=(15, 2.4 * rows + 0.8), squeeze=False)
    used = set()
    for r in range(rows):
        for c, key in enumerate(("image", "segments", "clip", "refined", "truth")):
            ax = axes[r, c]
            ax.set_axis_off()
            if r >= len(panels):
                continue
            data = panels[r][key]
            if data is None:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center")
                continue
            if key == "image":
                ax.imshow(data)
                ax.set_title(panels[r]["title"], fontsize=8)
            elif key == "segments":
                ax.imshow(segment_colours(data))
                if r == 0:
                    ax.set_title("SAM segments", fontsize=9)
            else:
                ax.imshow(colours[data])
                used.update(int(x) for x in np.unique(data) if x != IGNORE)
                if r == 0:
                    ax.set_title({"clip": "CLIP", "refined": "refined", "truth": "ground truth"}[key], fontsize=9)
    handles = [Patch(color=colours[c] / 255, label=bench.class_names[c]) for c in sorted(used) if c < bench.n_classes]
    handles.append(Patch(color=(0, 0, 0), label="ignore"))
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(bottom=0.12 if rows < 3 else 0.06)
    _save(fig, out)
    plt.close(fig)


def stage_bars(summary: dict[str, Any], class_names: Sequence[str], out: str | Path, title: str = "") -> None:
    """mIoU per labelling stage (left) and per-class IoU of raw vs refined point labels (right).

    ``summary`` maps a stage's displayed name to its entry (``key``, ``miou``, ``iou``, ``gt_count``) as in
    :func:`pipeline.report.merge.merge_reports`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [(name, s["miou"]) for name, s in summary.items() if s.get("miou") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 2.4]})
    if stages:
        names = [n for n, _ in stages]
        values = [100 * v for _, v in stages]
        bars = ax1.bar(range(len(names)), values, color=["#999999" if "CLIP" in n else "#3b7dd8" for n in names])
        ax1.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax1.bar_label(bars, fmt="%.1f", fontsize=7)
    ax1.set_ylabel("mIoU (%)")
    ax1.set_title("mIoU per stage (classes present in ground truth)", fontsize=9)
    x = np.arange(len(class_names))
    width = 0.4
    by_key = {s.get("key"): (name, s) for name, s in summary.items()}
    absent = np.zeros(len(class_names), bool)
    for offset, key, colour in ((-width / 2, "points.clip", "#999999"), (width / 2, "points.refined", "#3b7dd8")):
        if key in by_key and by_key[key][1].get("iou") is not None:
            entry = by_key[key][1]
            absent = np.asarray(entry.get("gt_count", [1] * len(class_names))) == 0
            values = [0.0 if gone else 100 * (v if v is not None else 0.0) for v, gone in zip(entry["iou"], absent)]
            ax2.bar(x + offset, values, width, label=by_key[key][0], color=colour)
    ticks = [f"{name} (absent)" if gone else name for name, gone in zip(class_names, absent)]
    ax2.set_xticks(x, ticks, rotation=60, ha="right", fontsize=7)
    ax2.set_ylabel("IoU (%)")
    ax2.set_title("per-class IoU of point labels", fontsize=10)
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
