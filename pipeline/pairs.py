"""Pixel<->point pairs of a ``points`` store: the view of each pair, labels and depths at pairs.

A sample's pairs are CSR by view: ``views/pair_offsets`` (V+1,), ``pairs/point`` (K,) and
``pairs/pixel`` (K,) (flat index ``y * Wl + x`` at label resolution). Pairs are many-to-many:
a point is seen by several views, and several points may fall in one pixel.
"""

from __future__ import annotations

import numpy as np


def expand_view_offsets(offsets: np.ndarray) -> np.ndarray:
    """CSR view offsets (V+1,) → the view of every pair (K,) int32."""
    lengths = np.diff(np.asarray(offsets, dtype=np.int64))
    return np.repeat(np.arange(lengths.size, dtype=np.int32), lengths)


def pair_labels(label_maps: np.ndarray, view_offsets: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Label of each pair (K,) read from ``label_maps`` (V, Hl, Wl) at the pairs' flat pixels."""
    n_views = label_maps.shape[0]
    if np.asarray(view_offsets).size != n_views + 1:
        raise ValueError(f"{n_views} label maps but {np.asarray(view_offsets).size - 1} views of pairs")
    flat = label_maps.reshape(n_views, -1)
    return flat[expand_view_offsets(view_offsets), np.asarray(pixel, dtype=np.int64)]


def pair_depths(xyz: np.ndarray, poses: np.ndarray, offsets: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Depth ``z`` (K,) float32 in metres of each pair's point in its view (``xyz`` (P, 3), ``poses``
    (V, 4, 4) cam-to-sample-frame, pairs CSR by view), computed per view in float64: the rank of a
    vote under ``project.tie_break: nearest``."""
    z = np.empty(np.asarray(point).size, dtype=np.float32)
    for v in range(np.asarray(offsets).size - 1):
        lo, hi = int(offsets[v]), int(offsets[v + 1])
        if hi > lo:
            z[lo:hi] = (xyz[point[lo:hi]].astype(np.float64) - poses[v, :3, 3]) @ poses[v, :3, 2]
    return z
