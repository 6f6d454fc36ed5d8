"""SAM feature maps on the stage side: the embedding's valid region, and the cosine used to
measure how well the stored (encoded) features keep it. The codec itself is
:mod:`pipeline.stores.sam_codecs`."""

from __future__ import annotations

import numpy as np

def valid_region(embedding: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Full embedding (256, G, G) → its valid top-left region (Hc, Wc, 256) float32, channels last.

    ``grid`` is ``(Hc, Wc)`` from :func:`pipeline.camera.sam_valid_grid` of the image SAM saw.
    """
    rows, cols = grid
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.ndim != 3 or emb.shape[1] < rows or emb.shape[2] < cols:
        raise ValueError(f"embedding of shape {emb.shape} has no valid region {grid}")
    return np.ascontiguousarray(emb[:, :rows, :cols].transpose(1, 2, 0))


def mean_cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> float:
    """Mean cosine similarity between matching rows of ``a`` and ``b`` (..., D)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1])
    b = np.asarray(b, dtype=np.float64).reshape(-1, np.shape(b)[-1])
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + eps
    return float(np.mean(num / den)) if num.size else float("nan")
