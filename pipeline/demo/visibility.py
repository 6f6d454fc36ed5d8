"""Ground truth for tests: which mesh vertices a view truly sees, from ray casting alone.

Independent of the depth image: a vertex counts as seen by a view when it projects inside the
*colour* image (colour intrinsics and size, pixel-centre convention of :mod:`pipeline.camera`),
lies in front of the camera, and the first surface hit by the ray from the camera centre toward
it is the vertex itself (within ``tolerance`` metres along the ray). Depth holes do not change
it, and it uses the colour camera, whose field of view differs slightly from the depth camera's.
"""

from __future__ import annotations

import numpy as np

from pipeline.demo.boxes import BoxSet
from pipeline.demo.raycast import first_hit_t

VISIBILITY_TOLERANCE: float = 2e-3
"""Metres a ray's first hit may lie before the vertex for the vertex to count as seen."""


def visible_vertices(
    boxes: BoxSet,
    vertices: np.ndarray,
    pose: np.ndarray,
    color_k: np.ndarray,
    color_size: tuple[int, int],
    tolerance: float = VISIBILITY_TOLERANCE,
) -> np.ndarray:
    """Sorted indices (int64) of ``vertices`` (V, 3) seen by the colour camera at ``pose`` (4x4)."""
    pts = np.asarray(vertices, dtype=np.float64)
    pose = np.asarray(pose, dtype=np.float64)
    origin = pose[:3, 3]
    cam = (pts - origin) @ pose[:3, :3]
    z = cam[:, 2]
    width, height = color_size
    with np.errstate(divide="ignore", invalid="ignore"):
        u = color_k[0, 0] * cam[:, 0] / z + color_k[0, 2]
        v = color_k[1, 1] * cam[:, 1] / z + color_k[1, 2]
    cand = np.flatnonzero((z > 1e-6) & (u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5))
    if cand.size == 0:
        return cand.astype(np.int64)
    dirs = pts[cand] - origin  # the vertex is at t = 1
    t = first_hit_t(boxes, origin, dirs)
    seen = (1.0 - t) * np.linalg.norm(dirs, axis=1) <= tolerance
    return cand[seen].astype(np.int64)
