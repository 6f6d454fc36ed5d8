"""SAM feature maps: valid region, compact storage and decoding (numpy only; the trainer imports it).

Storage (decided by measurement, see ``docs/method.md``): the valid region of the 256-d
embedding (Hc x Wc cells, :func:`pipeline.camera.sam_valid_grid`) is projected on a per-store PCA
basis of ``C`` channels (``_store/feature_basis`` (C, 256), ``_store/feature_mean`` (256,)),
and each cell's C coefficients are quantised to int8 with one float16 scale per cell
(``views/features`` (V, Hc, Wc, C) int8, ``views/feature_scale`` (V, Hc, Wc) float16):

    feature ≈ (features[v, r, c] * feature_scale[v, r, c]) @ feature_basis + feature_mean

``C = 256`` keeps every channel (identity basis, zero mean): int8 quantisation alone.
Nothing here imports torch or a foundation model.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

FEATURE_DIM = 256
"""Channels of SAM's image embedding."""


def valid_region(embedding: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Full embedding (256, G, G) → its valid top-left region (Hc, Wc, 256) float32, channels last.

    ``grid`` is ``(Hc, Wc)`` from :func:`pipeline.camera.sam_valid_grid` of the image SAM saw.
    """
    rows, cols = grid
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.ndim != 3 or emb.shape[1] < rows or emb.shape[2] < cols:
        raise ValueError(f"embedding of shape {emb.shape} has no valid region {grid}")
    return np.ascontiguousarray(emb[:, :rows, :cols].transpose(1, 2, 0))


def fit_basis(samples: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA basis of feature vectors ``samples`` (N, 256) → (basis (C, 256) float32, mean (256,) float32).

    Rows of ``basis`` are orthonormal principal directions in decreasing variance, each signed so
    that its largest-magnitude entry is positive (deterministic). ``channels >= 256`` gives the
    identity basis and a zero mean (no reduction).
    """
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, FEATURE_DIM)
    if channels >= FEATURE_DIM:
        return np.eye(FEATURE_DIM, dtype=np.float32), np.zeros(FEATURE_DIM, dtype=np.float32)
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if samples.shape[0] == 0:
        raise ValueError("cannot fit a feature basis on zero samples")
    mean = samples.mean(axis=0)
    centred = samples - mean
    cov = centred.T @ centred / max(1, samples.shape[0])
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:channels]
    basis = vectors[:, order].T
    signs = np.sign(basis[np.arange(channels), np.abs(basis).argmax(axis=1)])
    basis *= np.where(signs == 0, 1.0, signs)[:, None]
    return basis.astype(np.float32), mean.astype(np.float32)


def encode_features(features: np.ndarray, basis: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (..., 256) → (coefficients (..., C) int8, per-vector scale (...) float16).

    Coefficients ``(f - mean) @ basis.T`` are divided by ``scale = max|coef| / 127`` (rounded to
    float16 first, so decoding uses exactly the stored scale) and rounded.
    """
    feats = np.asarray(features, dtype=np.float32)
    coef = (feats - np.asarray(mean, np.float32)) @ np.asarray(basis, np.float32).T
    scale = (np.abs(coef).max(axis=-1) / 127.0).astype(np.float16)
    safe = np.where(scale > 0, scale.astype(np.float32), 1.0)[..., None]
    q = np.clip(np.rint(coef / safe), -127, 127).astype(np.int8)
    return q, scale


def decode_features(
    coefficients: np.ndarray,
    scale: np.ndarray,
    basis: np.ndarray,
    mean: np.ndarray,
    space: str = "sam",
) -> np.ndarray:
    """Stored features → float32 vectors.

    ``coefficients`` (..., C) int8 and ``scale`` (...) float16 as stored in ``views/features`` /
    ``views/feature_scale``; ``basis`` (C, 256) and ``mean`` (256,) from the store. ``space="sam"``
    returns (..., 256) in SAM's embedding space (what the latent-consistency loss compares with);
    ``space="reduced"`` returns the dequantised (..., C) PCA coefficients (mean removed; cosines
    there differ from those in SAM's space).
    """
    coef = np.asarray(coefficients, dtype=np.float32) * np.asarray(scale, dtype=np.float32)[..., None]
    if space == "reduced":
        return coef
    if space != "sam":
        raise ValueError(f"space must be 'sam' or 'reduced', got {space!r}")
    return coef @ np.asarray(basis, np.float32) + np.asarray(mean, np.float32)


def mean_cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> float:
    """Mean cosine similarity between matching rows of ``a`` and ``b`` (..., D)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1])
    b = np.asarray(b, dtype=np.float64).reshape(-1, np.shape(b)[-1])
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + eps
    return float(np.mean(num / den)) if num.size else float("nan")


class FeatureReader:
    """Read SAM features of given views and cells from a ``sam`` store, decoded.

    >>> feats = FeatureReader("results/sam/train-000.zarr")  # doctest: +SKIP
    >>> f = feats.read("scene0000_00", views, cells)          # (N, 256) float32  # doctest: +SKIP

    ``cells`` are (col, row) pairs from :func:`pipeline.camera.sam_cell_index` (the only pixel →
    cell mapping), for the image size SAM saw (``image_size`` sample attribute; label-resolution
    pixels map the same way when the aspect ratio is the same).
    """

    def __init__(self, path: Any) -> None:
        from pipeline.layout import StoreReader

        self.reader = StoreReader(path, "sam")
        self.basis = self.reader.read_store_array("_store/feature_basis")
        self.mean = self.reader.read_store_array("_store/feature_mean")

    def read(self, sample_id: str, views: Sequence[int] | np.ndarray, cells: np.ndarray, space: str = "sam") -> np.ndarray:
        """Features at (view[i], cells[i]) for i < N → (N, 256) float32 (or (N, C), ``space="reduced"``)."""
        views = np.asarray(views, dtype=np.int64).reshape(-1)
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
        if views.size != cells.shape[0]:
            raise ValueError(f"{views.size} views but {cells.shape[0]} cells")
        coef_arr = self.reader.array(sample_id, "views/features")
        scale_arr = self.reader.array(sample_id, "views/feature_scale")
        out = np.empty((views.size, self.basis.shape[0] if space == "reduced" else FEATURE_DIM), np.float32)
        for v in np.unique(views):
            sel = np.flatnonzero(views == v)
            coef = np.asarray(coef_arr[int(v)])
            scale = np.asarray(scale_arr[int(v)])
            rows, cols = cells[sel, 1], cells[sel, 0]
            out[sel] = decode_features(coef[rows, cols], scale[rows, cols], self.basis, self.mean, space)
        return out

    def view(self, sample_id: str, view: int, space: str = "sam") -> np.ndarray:
        """The whole decoded map of one view → (Hc, Wc, 256) float32."""
        coef = self.reader.read(sample_id, "views/features", int(view))
        scale = self.reader.read(sample_id, "views/feature_scale", int(view))
        return decode_features(coef, scale, self.basis, self.mean, space)
