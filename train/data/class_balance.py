"""Class-balanced cross-entropy: weights from the class frequencies of the training pseudo-labels.

CNS trains with plain cross-entropy. On outdoor data seven of the sixteen nuScenes classes
(pedestrian, bicycle, traffic cone, ...) hold under 1 % of the labelled points each, and a
network trained on noisy labels learns never to predict them (docs/benchmarks.md, issue 11).
``inverse_sqrt`` weighs each class by ``f_c^-1/2`` (``f_c`` its share of the labelled
elements), capped at :data:`MAX_RATIO` times the lightest weight. The frequencies come from the
pseudo-labels of the training shards only: nothing here reads ground truth.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.vocab import IGNORE

MODES: tuple[str, ...] = ("none", "inverse_sqrt")
"""Values of ``train.loss.class_balance``."""

MAX_RATIO = 10.0
"""Cap on heaviest / lightest class weight, so that a class seen a handful of times cannot dominate."""

VIEWS_PER_SAMPLE = 2
"""2D frequencies are counted on this many evenly spaced views per sample (all views of ScanNet's
thousands of frames would cost a pass over every refined map before step 0)."""


def _evenly(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)}) if k > 1 else [0]


def pseudo_label_counts(source, n_classes: int, views_per_sample: int = VIEWS_PER_SAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Labelled elements per class over the training samples of ``source``
    (:class:`train.data.sample.SampleSource`): ``(pixels (K,) int64, points (K,) int64)``.

    Pixels: the source's ``pseudo`` maps (the refined ``views/label``, or the raw CLIP maps with
    ``train.data.pseudo_labels: clip``) of up to ``views_per_sample`` views per sample; points: the
    matching point labels, zeros for image-only data. IGNORE and values >= ``n_classes`` are not
    counted.
    """
    pixels = np.zeros(n_classes, np.int64)
    points = np.zeros(n_classes, np.int64)
    (map_role, map_array), (point_role, point_array) = source.map_arrays["pseudo"], source.point_arrays["pseudo"]
    for shard_i, sid in source.index:
        shard = source.shards[shard_i]
        maps = shard.reader(map_role)
        n_views = int(shard.reader("refined").sample_attrs(sid)["sizes"]["view"])
        for view in _evenly(n_views, views_per_sample):
            labels = maps.read(sid, map_array, view)
            pixels += np.bincount(labels[labels != IGNORE].ravel(), minlength=256)[:n_classes]
        pts = shard.get("points")
        if pts is not None:
            labels = pts.read(sid, point_array)
            points += np.bincount(labels[labels != IGNORE].ravel(), minlength=256)[:n_classes]
    return pixels, points


def class_weights(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    """Per-class loss weights (K,) float32 from label counts (K,), or None for ``mode`` none.

    Normalised so that the mean weight over the labelled elements is 1; a class with no labels
    gets the heaviest weight (it has no targets, so it only matters for predictions of it
    elsewhere: none). All counts zero: None (nothing to balance).
    """
    if mode not in MODES:
        raise ValueError(f"unknown class_balance mode {mode!r}; choose one of {MODES}")
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if mode == "none" or total <= 0:
        return None
    share = counts / total
    present = share > 0
    weights = np.zeros_like(share)
    weights[present] = share[present] ** -0.5
    weights[present] = np.minimum(weights[present], weights[present].min() * MAX_RATIO)
    weights[~present] = weights[present].max()
    weights /= float((share * weights).sum())
    return torch.tensor(weights, dtype=torch.float32)
