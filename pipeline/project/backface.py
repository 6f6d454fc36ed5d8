"""Back-face test: a mesh vertex all of whose triangles turn away from a camera cannot be seen.

Applied after the depth test to the pairs of samples that have a mesh (``mesh/faces``, ScanNet).
A triangle faces the camera at ``c`` when ``n · (c − m) > 0`` (``n`` its normal by the winding,
``m`` its centroid); on a plane the sign is the same for every point of the plane, so a vertex
seen on any of its faces keeps at least one facing triangle. Vertices in no triangle are kept.
Float64 throughout; per view, only the triangles of the vertices in its pairs are tested.
"""

from __future__ import annotations

import numpy as np


class BackFaces:
    """Triangle planes of one mesh and each vertex's triangles (CSR), for repeated per-view tests."""

    def __init__(self, xyz: np.ndarray, faces: np.ndarray) -> None:
        """``xyz`` (P, 3) vertices, ``faces`` (T, 3) int vertex indices (counter-clockwise seen
        from the side the surface can be seen from, as ScanNet's meshes wind)."""
        p = np.asarray(xyz, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
        self.normal = np.cross(b - a, c - a)  # (T, 3)
        self.offset = np.einsum("ij,ij->i", self.normal, (a + b + c) / 3.0)  # n . m
        owner = faces.ravel()
        order = np.argsort(owner, kind="stable")
        self.triangles = (order // 3).astype(np.int64)  # triangles of vertex i: triangles[start[i]:start[i + 1]]
        self.start = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=p.shape[0]))])

    def facing(self, vertices: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """(N,) bool per entry of ``vertices`` (N,) int: some triangle of the vertex faces a camera
        at ``centre`` (3,), or the vertex is in no triangle."""
        vertices = np.asarray(vertices, dtype=np.int64)
        lo, count = self.start[vertices], self.start[vertices + 1] - self.start[vertices]
        # indices of every (entry, triangle) incidence, entry by entry
        first = np.repeat(np.cumsum(count) - count, count)
        inc = self.triangles[np.repeat(lo, count) + np.arange(first.size) - first]
        faces_cam = self.normal[inc] @ np.asarray(centre, dtype=np.float64) > self.offset[inc]
        hits = np.bincount(np.repeat(np.arange(vertices.size), count), weights=faces_cam, minlength=vertices.size)
        return (hits > 0) | (count == 0)


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
