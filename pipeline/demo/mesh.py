"""The scene mesh: every visible box face tessellated as a grid, with colours and labels.

Faces are cut into a grid of cells no larger than ``spacing`` (two triangles each), so vertices
lie inside surfaces and not only at corners and silhouettes. Like a real reconstructed mesh
(depth fusion, then marching cubes), the mesh has

* **no vertex on a geometric edge**: each face's grid is *inset* from all the face's borders
  (``inset``, 1 cm by default, at most a quarter of the face's width). A vertex exactly on a
  crease or a silhouette edge belongs to two surfaces at once, so its visibility and label would
  be ambiguous to within a pixel; real meshes round such edges. Every vertex lies exactly on its
  box face, and every triangle lies within one face: the faces of a box are separate patches,
  with a gap ``2 * inset`` wide along each edge. We tried joining them by bevel strips (a closed
  surface): the renderer, the depth maps and the visibility ground truth use the sharp boxes, so
  a bevel is geometry no image shows, and it put the outer row of a face turned away from the
  camera on the bevelled mesh's silhouette while the sharp corner hides it (measured: 6.9 % of
  the truly visible pairs were such false positives of the projection with bevels, 1.7 % without).
* **no surface where no camera can look**: hidden faces (entirely covered by another part, the
  floor or a wall) get no vertices, and vertices of partly covered faces that lie inside or on
  another box (the wall behind a picture or a door, the floor under a cabinet, a seat's underside
  where a leg meets it) are dropped with the triangles whose corners are all covered; the mesh
  is open there, as a real reconstruction is where nothing was observed. The covered vertices of
  triangles that reach out of the covered region stay, so visible surface is never cut away.

Triangles wind counter-clockwise seen from where the surface can be seen (outside a furniture
box, inside the room).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.demo.boxes import FACE_AXES, BoxSet
from pipeline.demo.texture import face_table, surface_colour, to_uint8

MESH_INSET: float = 0.01
"""Metres between a face's border and its outermost vertex rows (capped at a quarter of the face's width)."""

COVER_TOLERANCE: float = 1e-5
"""Metres: a vertex this close to (or inside) another box counts as covered by it."""


def covered_vertices(boxes: BoxSet, vertices: np.ndarray, owner: np.ndarray, tol: float = COVER_TOLERANCE) -> np.ndarray:
    """(V,) bool: vertices (V, 3) lying inside or on (within ``tol``) a furniture box other than
    their ``owner`` (V,) box; the room box covers nothing (every vertex is inside it)."""
    covered = np.zeros(vertices.shape[0], dtype=bool)
    for b in range(len(boxes)):
        if boxes.inside[b]:
            continue
        local = np.abs((vertices - boxes.centre[b]) @ boxes.rotation[b])
        covered |= np.all(local <= boxes.half[b] + tol, axis=1) & (owner != b)
    return covered


@dataclass(frozen=True)
class Mesh:
    """Triangle mesh (V vertices, F triangles) with per-vertex attributes."""

    vertices: np.ndarray  # (V, 3) float32, world metres
    colours: np.ndarray  # (V, 3) uint8
    faces: np.ndarray  # (F, 3) int32
    nyu40: np.ndarray  # (V,) uint16
    instance: np.ndarray  # (V,) int32
    part: np.ndarray  # (V,) int32
    box: np.ndarray  # (V,) int32
    box_face: np.ndarray  # (V,) int8


def _axis_positions(half: float, spacing: float, inset_lo: float, inset_hi: float) -> np.ndarray:
    """Grid coordinates along one in-plane axis of a face: cells no longer than ``spacing``, the
    first and last rows ``inset_lo`` / ``inset_hi`` inside the border (each capped at ``half / 2``)."""
    n = max(1, math.ceil(2 * half / spacing - 1e-9))
    return np.linspace(-half + min(inset_lo, half / 2), half - min(inset_hi, half / 2), n + 1)


def _face_grid(half: np.ndarray, face: int, spacing: float, insets: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Local vertices (n1 * n2, 3), triangles (m, 3) (winding not yet fixed) and grid shape of one face.

    ``insets`` (6,): inset of the face's border toward each face of the box. Vertex ``(i, j)``
    (position ``i`` along ``FACE_AXES[axis][0]``, ``j`` along the other) has index ``i * n2 + j``.
    """
    axis = face // 2
    a1, a2 = FACE_AXES[axis]
    p1 = _axis_positions(half[a1], spacing, insets[2 * a1], insets[2 * a1 + 1])
    p2 = _axis_positions(half[a2], spacing, insets[2 * a2], insets[2 * a2 + 1])
    g1, g2 = np.meshgrid(p1, p2, indexing="ij")
    local = np.empty((g1.size, 3))
    local[:, axis] = half[axis] if face % 2 else -half[axis]
    local[:, a1] = g1.ravel()
    local[:, a2] = g2.ravel()
    n1, n2 = p1.size, p2.size
    i, j = np.meshgrid(np.arange(n1 - 1), np.arange(n2 - 1), indexing="ij")
    v00 = (i * n2 + j).ravel()
    v10, v01, v11 = v00 + n2, v00 + 1, v00 + n2 + 1
    tris = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
    return local, tris, (n1, n2)


def _wind(local: np.ndarray, tris: np.ndarray, outward: np.ndarray, inside: bool) -> np.ndarray:
    """Reorder triangles so they wind counter-clockwise seen from the visible side: outside along
    ``outward`` (T, 3) for furniture boxes, the opposite side for the room seen from inside."""
    a, b, c = local[tris[:, 0]], local[tris[:, 1]], local[tris[:, 2]]
    facing = np.einsum("ij,ij->i", np.cross(b - a, c - a), outward)
    flip = (facing < 0) != inside
    tris = tris.copy()
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def _face_normal(face: int) -> np.ndarray:
    n = np.zeros(3)
    n[face // 2] = 1.0 if face % 2 else -1.0
    return n


def _box_mesh(half: np.ndarray, hidden: np.ndarray, spacing: float, inset: float, inside: bool):
    """Local vertices, triangles and per-vertex face ids of one box (visible faces only).

    Every face grid is inset ``inset`` from all its borders; faces are separate patches (see the
    module docstring). With ``inset`` 0 the grids reach the edges and vertices shared by two faces
    are merged.
    """
    insets = np.full(6, float(inset))
    pts, tris, fids, outward = [], [], [], []
    count = 0
    for f in range(6):
        if hidden[f]:
            continue
        local, tri, _ = _face_grid(half, f, spacing, insets)
        pts.append(local)
        tris.append(tri + count)
        outward.append(np.broadcast_to(_face_normal(f), tri.shape))
        fids.append(np.full(local.shape[0], f, dtype=np.int8))
        count += local.shape[0]
    if not pts:
        return None
    local = np.concatenate(pts)
    tri = _wind(local, np.concatenate(tris), np.concatenate(outward), inside)
    fid = np.concatenate(fids)
    # vertices on an edge shared by two faces are merged
    key = np.rint(local * 1e6).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")  # keep first-occurrence order
    new_id = np.empty_like(order)
    new_id[order] = np.arange(order.size)
    keep = first[order]
    return local[keep], new_id[inverse[tri]], fid[keep]


def tessellate(boxes: BoxSet, spacing: float, inset: float = MESH_INSET) -> Mesh:
    """Mesh of all non-hidden faces of ``boxes`` with grid ``spacing`` (m), face grids ``inset`` (m)
    from the faces' borders (0: vertices on the edges, shared by adjacent faces), vertices covered
    by another box dropped."""
    verts, tris, v_box, v_face = [], [], [], []
    offset = 0
    for b in range(len(boxes)):
        built = _box_mesh(boxes.half[b], boxes.hidden[b], spacing, inset, bool(boxes.inside[b]))
        if built is None:
            continue
        local, tri, fid = built
        verts.append(boxes.centre[b] + local @ boxes.rotation[b].T)
        tris.append(tri + offset)
        v_box.append(np.full(local.shape[0], b, dtype=np.int32))
        v_face.append(fid)
        offset += local.shape[0]
    box = np.concatenate(v_box)
    face = np.concatenate(v_face)
    world = np.concatenate(verts)
    faces = np.concatenate(tris)
    covered = covered_vertices(boxes, world, box)
    if covered.any():
        # a triangle goes when all its corners are covered; a covered vertex stays while a kept
        # triangle uses it (the row under an object's border), so visible surface stays whole
        faces = faces[~covered[faces].all(axis=1)]
        keep = ~covered
        keep[faces.ravel()] = True
        new_id = np.cumsum(keep) - 1
        faces = new_id[faces]
        box, face, world = box[keep], face[keep], world[keep]
    rgb = surface_colour(face_table(boxes), box.astype(np.int64) * 6 + face, world.T)
    return Mesh(
        vertices=world.astype(np.float32),
        colours=to_uint8(rgb),
        faces=faces.astype(np.int32),
        nyu40=boxes.nyu40[box, face].astype(np.uint16),
        instance=boxes.instance[box, face].astype(np.int32),
        part=boxes.part[box, face].astype(np.int32),
        box=box,
        box_face=face,
    )


def label_colour(nyu40: np.ndarray) -> np.ndarray:
    """Display colour (N, 3) uint8 per nyu40 id for ``*_vh_clean_2.labels.ply`` (0 → black)."""
    ids = np.asarray(nyu40, dtype=np.float64)
    rgb = 0.2 + 0.75 * ((ids[:, None] * np.array([0.618034, 0.414214, 0.732051]) + np.array([0.0, 0.3, 0.6])) % 1.0)
    rgb[ids == 0] = 0.0
    return to_uint8(rgb)
