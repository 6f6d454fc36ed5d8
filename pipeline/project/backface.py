"""Back-face test: a mesh vertex all of whose triangles turn away from a camera cannot be seen.

Applied after the depth test to the pairs of samples that have a mesh (``mesh/faces``, ScanNet).
A triangle faces the camera at ``c`` when ``n · (c − m) > 0`` (``n`` its normal by the winding,
``m`` its centroid); on a plane the sign is the same for every point of the plane, so a vertex
seen on any of its faces keeps at least one facing triangle. Vertices in no triangle are kept.
Float64 throughout; per view every triangle's side is computed once, then read per vertex.
"""

from __future__ import annotations

import numpy as np


PADDED_DEGREE: int = 8
"""Triangles per vertex held in the padded table (grid-like meshes have at most 6-8); vertices with
more are tested through the CSR lists. Must stay 8: a row of 8 bools is read as one uint64."""


class BackFaces:
    """Triangle planes of one mesh and each vertex's triangles, for repeated per-view tests.

    Per view every triangle's side is computed once (``T`` dot products), then read for the
    view's vertices through a padded (P, :data:`PADDED_DEGREE`) table; the few vertices of higher
    degree use the CSR lists. Same float64 expression for every triangle, so the decision does
    not depend on which vertices a view asks about.
    """

    def __init__(self, xyz: np.ndarray, faces: np.ndarray) -> None:
        """``xyz`` (P, 3) vertices, ``faces`` (T, 3) int vertex indices (counter-clockwise seen
        from the side the surface can be seen from, as ScanNet's meshes wind)."""
        p = np.asarray(xyz, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
        self.normal = np.ascontiguousarray(np.cross(b - a, c - a).T)  # (3, T): one row per axis
        m = (a + b + c) / 3.0
        self.offset = self.normal[0] * m[:, 0] + self.normal[1] * m[:, 1] + self.normal[2] * m[:, 2]  # n . m
        owner = faces.ravel()
        order = np.argsort(owner, kind="stable")
        self.triangles = (order // 3).astype(np.int64)  # triangles of vertex i: triangles[start[i]:start[i + 1]]
        self.count = np.bincount(owner, minlength=p.shape[0])
        self.start = np.concatenate([[0], np.cumsum(self.count)])
        n_tri = faces.shape[0]
        self.padded = np.full((p.shape[0], PADDED_DEGREE), n_tri, dtype=np.int32 if n_tri < 2**31 - 1 else np.int64)
        k = np.minimum(self.count, PADDED_DEGREE)
        rows = np.repeat(np.arange(p.shape[0]), k)
        slot = np.arange(rows.size) - np.repeat(np.cumsum(k) - k, k)
        self.padded[rows, slot] = self.triangles[np.repeat(self.start[:-1], k) + slot]
        self._side = np.zeros(n_tri + 1, dtype=bool)  # per-view scratch; entry n_tri (padding) stays False

    def _sides(self, centre: np.ndarray) -> np.ndarray:
        """(T + 1,) bool: triangle t faces a camera at ``centre``; the last entry (padding) False."""
        c = np.asarray(centre, dtype=np.float64)
        n = self.normal
        np.greater(n[0] * c[0] + n[1] * c[1] + n[2] * c[2], self.offset, out=self._side[:-1])
        return self._side

    def facing(self, vertices: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """(N,) bool per entry of ``vertices`` (N,) int: some triangle of the vertex faces a camera
        at ``centre`` (3,), or the vertex is in no triangle."""
        vertices = np.asarray(vertices, dtype=np.int64)
        side = self._sides(centre)
        # 8 bools per vertex read as one uint64: nonzero = some listed triangle faces the camera
        out = np.ascontiguousarray(side[self.padded[vertices]]).view(np.uint64).reshape(-1) != 0
        count = self.count[vertices]
        out |= count == 0
        over = np.flatnonzero(count > PADDED_DEGREE)
        if over.size:  # the rest of high-degree vertices' triangles, through the CSR lists
            lo, extra = self.start[vertices[over]] + PADDED_DEGREE, count[over] - PADDED_DEGREE
            first = np.repeat(np.cumsum(extra) - extra, extra)
            inc = self.triangles[np.repeat(lo, extra) + np.arange(first.size) - first]
            hits = np.bincount(np.repeat(np.arange(over.size), extra), weights=side[inc], minlength=over.size)
            out[over] |= hits > 0
        return out


def drop_back_faces(back: BackFaces, poses: np.ndarray, offsets: np.ndarray, point: np.ndarray, pixel: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Remove pairs whose vertex turns away from its view's camera.

    ``poses`` (V, 4, 4) cam-to-world; pairs in CSR by view (``offsets`` (V+1,), ``point``,
    ``pixel`` (N,)). Returns the new offsets, point, pixel and the number of pairs removed.
    """
    keep = np.ones(point.size, dtype=bool)
    for v in range(offsets.size - 1):
        lo, hi = int(offsets[v]), int(offsets[v + 1])
        if hi > lo:
            keep[lo:hi] = back.facing(point[lo:hi], poses[v, :3, 3])
    view = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    counts = np.bincount(view[keep], minlength=offsets.size - 1)
    new_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(offsets.dtype)
    return new_offsets, point[keep], pixel[keep], int((~keep).sum())
