"""Codecs of the ``sam`` store: run-length encoded masks and int8 PCA feature maps (numpy; the
batched mask encoder :func:`encode_rle_batch` also takes torch tensors on any device).

Masks (``masks/rle``): a mask of shape (H, W) at label resolution is flattened row-major
(``mask.ravel()``, index ``y * W + x``) and stored as alternating run lengths
``[background, foreground, background, ...]`` that always start with a background run (length 0
if pixel 0 is foreground) and sum to ``H * W``. Runs are uint32. A view's masks are
``masks[view_off[v]:view_off[v + 1]]`` and mask ``m``'s runs are ``rle[rle_off[m]:rle_off[m + 1]]``.

Features (decided by measurement, see ``docs/method.md``): the valid region of the 256-d
embedding (Hc x Wc cells, :func:`pipeline.camera.sam_valid_grid`) is projected on a per-store
PCA basis of ``C`` channels (``_store/feature_basis`` (C, 256), ``_store/feature_mean`` (256,)),
and each cell's C coefficients are quantised to int8 with one float16 scale per cell
(``views/features`` (V, Hc, Wc, C) int8, ``views/feature_scale`` (V, Hc, Wc) float16):

    feature ≈ (features[v, r, c] * feature_scale[v, r, c]) @ feature_basis + feature_mean

``C = 256`` keeps every channel (identity basis, zero mean): int8 quantisation alone. The SAM
stage encodes with these functions and the trainer decodes with :class:`SamFeatureReader`;
nothing here imports a foundation model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.stores.io import StoreReader

FEATURE_DIM = 256
"""Channels of SAM's image embedding."""
FEATURE_SPACES: tuple[str, ...] = ("sam", "reduced")
"""Where decoded features live: SAM's 256-d embedding space, or the stored PCA coefficients."""


def encode_rle(mask: np.ndarray) -> np.ndarray:
    """Binary mask (H, W) → row-major run lengths (uint32), starting with a background run."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return np.zeros(1, dtype=np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds)
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.uint32)


def encode_rle_batch(masks) -> list[np.ndarray]:
    """Masks (M, H, W) bool as a torch tensor on any device → :func:`encode_rle` of each, computed on
    that device with one transfer of all runs (the SAM stage's GPU path). Equal to
    ``[encode_rle(m) for m in masks.cpu().numpy()]``."""
    import torch

    m = int(masks.shape[0])
    if m == 0:
        return []
    flat = masks.reshape(m, -1)
    n = flat.shape[1]
    if n == 0:
        return [np.zeros(1, dtype=np.uint32) for _ in range(m)]
    change = (flat[:, 1:] != flat[:, :-1]).nonzero()  # (K, 2) row-major: mask, then position
    device = flat.device
    owner = torch.cat([change[:, 0], torch.arange(m, device=device)])
    ends = torch.cat([change[:, 1] + 1, torch.full((m,), n, dtype=change.dtype, device=device)])
    order = torch.argsort(owner * (n + 1) + ends)  # each mask's run ends ascending, n last
    owner, ends = owner[order], ends[order]
    starts = torch.zeros_like(ends)
    starts[1:] = ends[:-1]
    first = torch.ones_like(owner, dtype=torch.bool)
    first[1:] = owner[1:] != owner[:-1]
    starts[first] = 0
    runs = (ends - starts).to(torch.int64).cpu().numpy()
    counts = torch.bincount(owner, minlength=m).cpu().numpy()
    lead = flat[:, 0].cpu().numpy()
    out = []
    for i, part in enumerate(np.split(runs, np.cumsum(counts)[:-1])):
        out.append((np.concatenate([[0], part]) if lead[i] else part).astype(np.uint32))
    return out


def decode_rle(runs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Row-major run lengths → binary mask (H, W) bool. Raises ValueError if runs do not sum to H*W."""
    runs = np.asarray(runs, dtype=np.int64)
    total = int(shape[0]) * int(shape[1])
    if int(runs.sum()) != total:
        raise ValueError(f"runs sum to {int(runs.sum())}, expected {total} for shape {tuple(shape)}")
    values = (np.arange(runs.size) % 2).astype(bool)
    return np.repeat(values, runs).reshape(shape)


def decode_masks(rle: np.ndarray, rle_offsets: np.ndarray, masks: Sequence[int] | range, shape: tuple[int, int]) -> np.ndarray:
    """Masks with the given indices → (M, H, W) bool (``rle``/``rle_offsets`` as stored)."""
    out = np.zeros((len(masks), int(shape[0]), int(shape[1])), dtype=bool)
    for i, m in enumerate(masks):
        out[i] = decode_rle(rle[int(rle_offsets[m]) : int(rle_offsets[m + 1])], shape)
    return out


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
    if space not in FEATURE_SPACES:
        raise ValueError(f"space must be one of {FEATURE_SPACES}, got {space!r}")
    return coef @ np.asarray(basis, np.float32) + np.asarray(mean, np.float32)


class SamFeatureReader:
    """Decoded feature maps of one ``sam`` store.

    ``space="sam"``: vectors in SAM's 256-d embedding space (through the store's basis and mean),
    what the latent-consistency loss compares with; ``space="reduced"``: the dequantised stored
    coefficients (C channels, mean removed; cosines there differ from those in SAM's space). The
    projection through the basis runs in torch, which honours ``torch.set_num_threads`` (numpy's
    OpenBLAS threads spun against the trainer's and made it 30x slower on 2 cores).
    """

    def __init__(self, reader: StoreReader | str, space: str = "sam") -> None:
        if space not in FEATURE_SPACES:
            raise ValueError(f"space must be one of {FEATURE_SPACES}, got {space!r}")
        self.reader = reader if isinstance(reader, StoreReader) else StoreReader(reader, "sam")
        self.space = space
        self.basis = self.reader.read_store_array("_store/feature_basis")
        self.mean = self.reader.read_store_array("_store/feature_mean")

    def dim(self) -> int:
        """Channels of the decoded vectors: 256 in SAM's space, C reduced."""
        return FEATURE_DIM if self.space == "sam" else int(self.basis.shape[0])

    def _to_space(self, coef: np.ndarray) -> np.ndarray:
        if self.space == "reduced":
            return coef
        import torch

        flat = torch.from_numpy(np.ascontiguousarray(coef.reshape(-1, coef.shape[-1]), dtype=np.float32))
        out = flat @ torch.from_numpy(self.basis) + torch.from_numpy(self.mean)
        return out.numpy().reshape(*coef.shape[:-1], FEATURE_DIM)

    def view(self, sample_id: str, view: int) -> np.ndarray:
        """The whole decoded map of one view → (Hc, Wc, D) float32."""
        coef = self.reader.read(sample_id, "views/features", int(view))
        scale = self.reader.read(sample_id, "views/feature_scale", int(view))
        return self._to_space(decode_features(coef, scale, self.basis, self.mean, "reduced"))

    def read(self, sample_id: str, views: Sequence[int] | np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Features at (views[i], cells[i]) → (N, D) float32; ``cells`` are (col, row) pairs from
        :func:`pipeline.camera.sam_cell_index`, the one pixel → cell mapping."""
        views = np.asarray(views, dtype=np.int64).reshape(-1)
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
        if views.size != cells.shape[0]:
            raise ValueError(f"{views.size} views but {cells.shape[0]} cells")
        coef = np.empty((views.size, self.basis.shape[0]), np.float32)
        for v in np.unique(views):
            sel = np.flatnonzero(views == v)
            q = self.reader.read(sample_id, "views/features", int(v))
            s = self.reader.read(sample_id, "views/feature_scale", int(v))
            coef[sel] = decode_features(q[cells[sel, 1], cells[sel, 0]], s[cells[sel, 1], cells[sel, 0]], self.basis, self.mean, "reduced")
        return self._to_space(coef)
