"""Independent geometry helpers for the demo-generator tests (no generator code used)."""

from __future__ import annotations

import numpy as np


def point_triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distance (N,) from points p (N, 3) to triangles (a, b, c) (N, 3 each), closest-point regions."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        closest = a + ab * (vb * denom)[:, None] + ac * (vc * denom)[:, None]
        bc_t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        closest = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[:, None], b + (c - b) * bc_t[:, None], closest)
        ac_t = d2 / (d2 - d6)
        closest = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[:, None], a + ac * ac_t[:, None], closest)
        closest = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, closest)
        ab_t = d1 / (d1 - d3)
        closest = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[:, None], a + ab * ab_t[:, None], closest)
        closest = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, closest)
        closest = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, closest)
    return np.linalg.norm(p - closest, axis=1)


def distance_to_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, radius: float) -> np.ndarray:
    """Distance (N,) from points to the mesh, exact for points within reach of it.

    Checks every triangle with a vertex within ``radius`` of the point (a voxel hash finds them),
    so the result is exact wherever the point lies on a triangle whose longest edge is at most
    ``radius``; elsewhere it is ``inf`` or an over-estimate.
    """
    vertices = vertices.astype(np.float64)
    flat = faces.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=vertices.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)])
    rank = np.arange(flat.size) - starts[flat[order]]
    adjacency = np.full((vertices.shape[0], counts.max()), -1, dtype=np.int64)  # vertex -> triangles
    adjacency[flat[order], rank] = order // 3

    def key(cells: np.ndarray) -> np.ndarray:
        c = cells + (1 << 20)
        return (c[..., 0] << 42) | (c[..., 1] << 21) | c[..., 2]

    vkey = key(np.floor(vertices / radius).astype(np.int64))
    vorder = np.argsort(vkey, kind="stable")
    sorted_keys = vkey[vorder]
    offsets = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    qkey = key(np.floor(points / radius).astype(np.int64)[:, None, :] + offsets[None])  # (N, 27)
    lo = np.searchsorted(sorted_keys, qkey, side="left").reshape(-1)
    hi = np.searchsorted(sorted_keys, qkey, side="right").reshape(-1)
    n = hi - lo
    point_of = np.repeat(np.repeat(np.arange(points.shape[0]), 27), n)
    pos = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(n.sum())
    vert = vorder[pos]
    close = np.linalg.norm(points[point_of] - vertices[vert], axis=1) <= radius
    point_of, vert = point_of[close], vert[close]
    cand = adjacency[vert]
    pp, cc = np.nonzero(cand >= 0)
    pts, tri_ids = point_of[pp], cand[pp, cc]
    tri = vertices[faces[tri_ids]]
    dist = point_triangle_distance(points[pts], tri[:, 0], tri[:, 1], tri[:, 2])
    best = np.full(points.shape[0], np.inf)
    np.minimum.at(best, pts, dist)
    return best


def backproject(depth_mm: np.ndarray, k: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (M, 3) of the non-zero pixels of a depth image (z-depth, mm)."""
    ys, xs = np.nonzero(depth_mm)
    z = depth_mm[ys, xs].astype(np.float64) / 1000.0
    cam = np.stack([(xs - k[0, 2]) / k[0, 0] * z, (ys - k[1, 2]) / k[1, 1] * z, z], axis=1)
    return cam @ pose[:3, :3].T + pose[:3, 3]
