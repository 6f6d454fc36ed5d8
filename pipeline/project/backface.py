"""Back-face test: a mesh vertex all of whose triangles turn away from a camera cannot be seen.

Applied after the depth test to the pairs of samples that have a mesh (``mesh/faces``, ScanNet).
A triangle faces the camera at ``c`` when ``n · (c − m) > 0`` (``n`` its normal by the winding,
``m`` its centroid); on a plane the sign is the same for every point of the plane, so a vertex
seen on any of its faces keeps at least one facing triangle. Vertices in no triangle are kept.
Float64 throughout (a per-view pass over the triangles, vectorised).
"""

from __future__ import annotations

import numpy as np


class BackFaces:
    """Triangle normals and centroids of one mesh, for repeated per-view tests."""

    def __init__(self, xyz: np.ndarray, faces: np.ndarray) -> None:
        """``xyz`` (P, 3) vertices, ``faces`` (T, 3) int vertex indices (counter-clockwise seen
        from the side the surface can be seen from, as ScanNet's meshes wind)."""
        p = np.asarray(xyz, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64)
        a, b, c = p[self.faces[:, 0]], p[self.faces[:, 1]], p[self.faces[:, 2]]
        self.normal = np.cross(b - a, c - a)
        self.centroid = (a + b + c) / 3.0
        self.in_triangle = np.zeros(p.shape[0], dtype=bool)
        self.in_triangle[self.faces.ravel()] = True

    def facing_vertices(self, centre: np.ndarray) -> np.ndarray:
        """(P,) bool: vertices with a triangle facing a camera at ``centre`` (3,), or in no triangle."""
        facing = np.einsum("ij,ij->i", self.normal, np.asarray(centre, dtype=np.float64) - self.centroid) > 0
        out = ~self.in_triangle
        out[self.faces[facing].ravel()] = True
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
            keep[lo:hi] = back.facing_vertices(poses[v, :3, 3])[point[lo:hi]]
    view = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    counts = np.bincount(view[keep], minlength=offsets.size - 1)
    new_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(offsets.dtype)
    return new_offsets, point[keep], pixel[keep], int((~keep).sum())
