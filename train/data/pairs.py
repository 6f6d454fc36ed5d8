"""Pixel<->point pairs on the trainer's side: grouping by point and random picks (numpy).

The pairs' contract (CSR by view, flat pixels at label resolution) is :mod:`pipeline.pairs`.
"""

from __future__ import annotations

import numpy as np

from pipeline.camera import sam_cell_index, sam_valid_grid


def group_by_point(point: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs sorted by point: (order (K,) int64, offsets (P+1,) int64); pairs of point q are
    ``order[offsets[q]:offsets[q+1]]``."""
    order = np.argsort(point, kind="stable")
    counts = np.bincount(point, minlength=n_points)
    offsets = np.zeros(n_points + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return order, offsets


def random_pair_per_point(points: np.ndarray, order: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random pair of each given point (M,) → pair index (M,) int64, -1 if unpaired."""
    start = offsets[points]
    count = offsets[points + 1] - start
    pick = start + np.floor(rng.random(points.size) * count).astype(np.int64)
    out = np.full(points.size, -1, dtype=np.int64)
    has = count > 0
    out[has] = order[pick[has]]
    return out


def random_first(keys: np.ndarray, values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """For each key in ``0..size-1``, the value of a uniformly random element with that key.

    ``keys`` (K,) int, ``values`` (K,) int → (size,) int64, -1 where no element has the key.
    """
    out = np.full(size, -1, dtype=np.int64)
    if keys.size == 0:
        return out
    perm = rng.permutation(keys.size)
    # numpy fancy assignment keeps the last write of duplicate keys: last in a random order.
    out[keys[perm]] = values[perm]
    return out


def label_pixels_to_cells(label_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """SAM cell of every label-resolution pixel → (Hl * Wl,) int64 flat cell index ``row * Wc + col``.

    A label pixel maps to the working-resolution pixel whose centre it covers (nearest, the
    convention of ``pipeline.images.resize_labels``); that pixel's cell comes from
    :func:`pipeline.camera.sam_cell_index`, the one pixel → cell mapping.
    """
    wl, hl = label_size
    w, h = image_size
    xs = np.minimum(((np.arange(wl) + 0.5) * w / wl).astype(np.int64), w - 1)
    ys = np.minimum(((np.arange(hl) + 0.5) * h / hl).astype(np.int64), h - 1)
    xy = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
    cells = sam_cell_index(xy, (w, h))
    _, wc = sam_valid_grid((w, h))
    return (cells[:, 1] * wc + cells[:, 0]).astype(np.int64)
