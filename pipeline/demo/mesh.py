"""The scene mesh: every visible box face tessellated as a grid, with colours and labels.

Faces are cut into a grid of cells no larger than ``spacing`` (two triangles each), so vertices
lie inside surfaces and not only at corners and silhouettes. Vertices shared by faces of one
box are merged (a box is a closed, connected surface); hidden faces (touching another part or
the floor) get no vertices. Triangles wind counter-clockwise seen from where the surface can be
seen (outside a furniture box, inside the room).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.demo.boxes import FACE_AXES, BoxSet
from pipeline.demo.texture import face_table, surface_colour, to_uint8

_CROSS_SIGN = (1, -1, 1)  # e_a1 x e_a2 = _CROSS_SIGN[a] * e_a for FACE_AXES[a]


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


def _face_grid(half: np.ndarray, face: int, spacing: float, inside: bool) -> tuple[np.ndarray, np.ndarray]:
    """Local vertices (n, 3) and triangles (m, 3) of one box face."""
    axis = face // 2
    a1, a2 = FACE_AXES[axis]
    n1 = max(1, math.ceil(2 * half[a1] / spacing - 1e-9))
    n2 = max(1, math.ceil(2 * half[a2] / spacing - 1e-9))
    g1, g2 = np.meshgrid(np.linspace(-half[a1], half[a1], n1 + 1), np.linspace(-half[a2], half[a2], n2 + 1), indexing="ij")
    local = np.empty((g1.size, 3))
    local[:, axis] = half[axis] if face % 2 else -half[axis]
    local[:, a1] = g1.ravel()
    local[:, a2] = g2.ravel()
    i, j = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    v00 = (i * (n2 + 1) + j).ravel()
    v10, v01, v11 = v00 + (n2 + 1), v00 + 1, v00 + n2 + 2
    tris = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
    wanted = (1 if face % 2 else -1) * (-1 if inside else 1)
    if _CROSS_SIGN[axis] != wanted:
        tris = tris[:, [0, 2, 1]]
    return local, tris


def tessellate(boxes: BoxSet, spacing: float) -> Mesh:
    """Mesh of all non-hidden faces of ``boxes`` with grid ``spacing`` (m)."""
    verts, tris, v_box, v_face = [], [], [], []
    offset = 0
    for b in range(len(boxes)):
        pts, faces_of_box, fids = [], [], []
        count = 0
        for f in range(6):
            if boxes.hidden[b, f]:
                continue
            local, tri = _face_grid(boxes.half[b], f, spacing, bool(boxes.inside[b]))
            pts.append(local)
            faces_of_box.append(tri + count)
            fids.append(np.full(local.shape[0], f, dtype=np.int8))
            count += local.shape[0]
        if not pts:
            continue
        local = np.concatenate(pts)
        key = np.rint(local * 1e6).astype(np.int64)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(first, kind="stable")  # keep first-occurrence order
        new_id = np.empty_like(order)
        new_id[order] = np.arange(order.size)
        keep = first[order]
        local = local[keep]
        tri = new_id[inverse[np.concatenate(faces_of_box)]]
        verts.append(boxes.centre[b] + local @ boxes.rotation[b].T)
        tris.append(tri + offset)
        v_box.append(np.full(local.shape[0], b, dtype=np.int32))
        v_face.append(np.concatenate(fids)[keep])
        offset += local.shape[0]
    box = np.concatenate(v_box)
    face = np.concatenate(v_face)
    world = np.concatenate(verts)
    rgb = surface_colour(face_table(boxes), box.astype(np.int64) * 6 + face, world.T)
    return Mesh(
        vertices=world.astype(np.float32),
        colours=to_uint8(rgb),
        faces=np.concatenate(tris).astype(np.int32),
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
