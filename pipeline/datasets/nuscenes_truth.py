"""The nuScenes demo's per-pixel ground truth, read into the prepared store (demo only).

Real nuScenes has no 2D labels. The procedural demo (:mod:`pipeline.demo_nuscenes`) writes,
outside the format, ``<root>/demo_truth/<sample token>.npz`` with per camera the fine class
(``labels_<CHANNEL>``, uint8) and instance id (``instances_<CHANNEL>``, uint16) of every pixel of
the written image. When that folder exists the adapter stores them as ``views/label`` (label space
``nuscenes-lidarseg``) and ``views/instance`` at the working size, so that the simulated CLIP and
SAM backends (benchmark instruments) and the 2D evaluation work on the demo as on ScanNet's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import InputFileError
from pipeline.images import resize_labels

TRUTH_DIR: str = "demo_truth"
"""The demo's sidecar folder below the dataset root (:data:`pipeline.demo_nuscenes.spec.TRUTH_DIR`)."""


def has_demo_truth(root: Path) -> bool:
    """True when ``root`` is a generated demo with per-pixel ground truth."""
    return (Path(root) / TRUTH_DIR).is_dir()


def demo_truth_views(root: Path, sample_id: str, channels: Sequence[str], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """``views/label`` (V, H, W) uint16 fine index and ``views/instance`` (V, H, W) uint16 of the
    views ``channels`` (in view order), resized to ``size`` (W, H) by nearest pixel centres."""
    path = Path(root) / TRUTH_DIR / f"{sample_id}.npz"
    if not path.is_file():
        raise InputFileError(path, "demo ground truth missing; regenerate the demo dataset")
    width, height = size
    labels = np.zeros((len(channels), height, width), np.uint16)
    instances = np.zeros((len(channels), height, width), np.uint16)
    with np.load(path) as truth:
        for v, channel in enumerate(channels):
            if f"labels_{channel}" not in truth or f"instances_{channel}" not in truth:
                raise InputFileError(path, f"no per-pixel truth of {channel}; regenerate the demo dataset")
            labels[v] = resize_labels(truth[f"labels_{channel}"], size)
            instances[v] = resize_labels(truth[f"instances_{channel}"], size)
    return {"views/label": labels, "views/instance": instances}
