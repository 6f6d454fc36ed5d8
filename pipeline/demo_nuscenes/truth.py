"""Ground truth for tests: which keyframe lidar points a camera truly sees.

A point counts as seen by a camera when (1) the devkit's chain puts it inside the image
(camera-frame z > 1 m, 1 < u < W - 1, 1 < v < H - 1; :mod:`pipeline.demo_nuscenes.geometry`),
and (2) the ray from the camera centre, at the camera's own timestamp (the ego has moved since
the lidar fired), towards the point's global position hits nothing before it: the first hit
lies within :data:`TOLERANCE` of the point. Points are taken as written (float32, lidar frame).
"""

from __future__ import annotations

import numpy as np

from pipeline.demo.boxes import BoxSet
from pipeline.demo.raycast import box_hits
from pipeline.demo_nuscenes.culling import camera_corners, in_frustum, subset
from pipeline.demo_nuscenes.geometry import in_image, project_points

TOLERANCE: float = 0.01
"""Metres the first hit may lie before the point for the point to count as seen."""


def _pixel_rects(corners_cam: np.ndarray, intrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per box, (u0, u1, v0, v1) (B, 4) bounding its corners' projections, and whether it is
    bounded (False where a corner lies behind the camera: the box may cover any pixel)."""
    z = corners_cam[..., 2]
    bounded = np.all(z > 1e-3, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsic[0, 0] * corners_cam[..., 0] / z + intrinsic[0, 2]
        v = intrinsic[1, 1] * corners_cam[..., 1] / z + intrinsic[1, 2]
    rects = np.stack([u.min(axis=1) - 1, u.max(axis=1) + 1, v.min(axis=1) - 1, v.max(axis=1) + 1], axis=1)
    return rects, bounded


def first_hits(boxes: BoxSet, cam_pose: np.ndarray, intrinsic: np.ndarray, size: tuple[int, int],
               uv: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Hit parameter t (N,) of the first surface on each ray ``C + t (X - C)`` (X = ``targets`` (N, 3), global).

    ``uv`` (N, 2) are the targets' pixel coordinates (inside the ``size`` image): only boxes in the
    frustum are tested, each against the rays inside its projected bounding rectangle.
    """
    origin = cam_pose[:3, 3]
    dirs = np.ascontiguousarray((targets - origin).T)  # (3, N)
    best = np.full(targets.shape[0], np.inf)
    index = in_frustum(boxes, cam_pose, intrinsic, size)
    near = subset(boxes, index)
    rects, bounded = _pixel_rects(camera_corners(near, cam_pose), intrinsic)
    for i in range(len(near)):
        if bounded[i]:
            u0, u1, v0, v1 = rects[i]
            sel = np.flatnonzero((uv[:, 0] >= u0) & (uv[:, 0] <= u1) & (uv[:, 1] >= v0) & (uv[:, 1] <= v1))
            if sel.size == 0:
                continue
        else:
            sel = slice(None)
        t, _ = box_hits(near, i, origin, dirs[:, sel], want_face=False)
        best[sel] = np.minimum(best[sel], t)
    return best


def visible_points(boxes: BoxSet, points: np.ndarray, lidar_to_global: np.ndarray, chain: np.ndarray,
                   cam_pose: np.ndarray, intrinsic: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sorted int64 indices of ``points`` (N, 3+, lidar frame) the camera truly sees.

    ``boxes``: the world at the camera's timestamp; ``lidar_to_global`` (4, 4) at the lidar's;
    ``chain`` (4, 4) lidar → camera (the devkit's); ``cam_pose`` (4, 4) camera → global at the
    camera's timestamp; ``intrinsic`` (3, 3); ``size`` (W, H) of the image.
    """
    xyz = np.asarray(points[:, :3], dtype=np.float64)
    uv, depth = project_points(xyz, chain, intrinsic)
    cand = np.flatnonzero(in_image(uv, depth, size))
    if cand.size == 0:
        return cand.astype(np.int64)
    targets = xyz[cand] @ lidar_to_global[:3, :3].T + lidar_to_global[:3, 3]
    t = first_hits(boxes, cam_pose, intrinsic, size, uv[cand], targets)
    length = np.linalg.norm(targets - cam_pose[:3, 3], axis=1)
    seen = (1.0 - t) * length <= TOLERANCE
    return cand[seen].astype(np.int64)
