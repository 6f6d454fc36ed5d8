"""Majority label inside each SAM segment (the refinement applied to network predictions).

Same rule as the pipeline's refinement of CLIP labels: inside a segment every pixel takes the
segment's majority label (ignore votes are not counted); pixels in no segment (id -1) and
segments without any vote keep their label. Ties go to the lowest class index.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.vocab import IGNORE


def segment_vote_np(labels: np.ndarray, segments: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels (...) uint8 and segment ids (...) int (-1 = none) → refined labels (...) uint8."""
    labels = np.asarray(labels)
    seg = np.asarray(segments).astype(np.int64).reshape(-1)
    lab = labels.reshape(-1)
    inside = seg >= 0
    if not inside.any():
        return labels.copy()
    uniq, inv = np.unique(seg[inside], return_inverse=True)
    vote = inside.copy()
    vote[inside] = lab[inside] != IGNORE
    inv_all = np.full(seg.size, -1, np.int64)
    inv_all[inside] = inv
    counts = np.bincount(inv_all[vote] * n_classes + lab[vote].astype(np.int64), minlength=uniq.size * n_classes)
    counts = counts.reshape(uniq.size, n_classes)
    winner = counts.argmax(axis=1).astype(np.uint8)
    has = counts.sum(axis=1) > 0
    out = lab.copy()
    take = inside & has[np.maximum(inv_all, 0)]
    out[take] = winner[inv_all[take]]
    return out.reshape(labels.shape)


def segment_vote(labels: torch.Tensor, segments: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Torch version: labels (...) int64 (255 = ignore), segments (...) int64 → refined (...) int64."""
    lab = labels.reshape(-1)
    seg = segments.reshape(-1)
    inside = seg >= 0
    if not bool(inside.any()):
        return labels.clone()
    uniq, inv = torch.unique(seg[inside], return_inverse=True)
    inv_all = torch.full_like(seg, -1)
    inv_all[inside] = inv
    vote = inside & (lab != IGNORE)
    counts = torch.bincount(inv_all[vote] * n_classes + lab[vote], minlength=uniq.numel() * n_classes)
    counts = counts.reshape(uniq.numel(), n_classes)
    winner = counts.argmax(dim=1)
    has = counts.sum(dim=1) > 0
    take = inside & has[inv_all.clamp(min=0)]
    out = lab.clone()
    out[take] = winner[inv_all[take]]
    return out.reshape(labels.shape)
