"""Ray casting against oriented boxes (slab test in each box's frame), float64.

Rays are ``origin + t * dir``. With camera rays whose camera-frame direction has z = 1, the hit
parameter ``t`` *is* the z-depth. A box hit from outside is its entry point; the room box
(``inside``) is hit at its exit point, since cameras are inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from pipeline.demo.boxes import BoxSet

_EPS = 1e-9
_NEAR = 1e-4  # metres; nothing lies this close to a camera (cameras keep clear of furniture)
_EDGES = np.array([(i, j) for i in range(8) for j in range(8) if i < j and (i ^ j) in (1, 2, 4)])


def _slab(o_local: np.ndarray, half: np.ndarray, d_local: Iterable[np.ndarray], inside: bool) -> tuple[np.ndarray, list]:
    """Slab test given the box-frame origin (3,) and the three box-frame direction components.

    Returns the hit parameter (``inf`` = miss) and, per axis, (the bound that can give ``t``,
    the direction component) for :func:`_faces`.
    """
    t_enter = t_exit = None
    bounds = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for a, d in enumerate(d_local):
            inv = 1.0 / d
            t1 = (-half[a] - o_local[a]) * inv
            t2 = (half[a] - o_local[a]) * inv
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            t_enter = near if t_enter is None else np.maximum(t_enter, near)
            t_exit = far if t_exit is None else np.minimum(t_exit, far)
            bounds.append((far if inside else near, d))
    if inside:
        t = np.where(t_exit > _EPS, t_exit, np.inf)
    else:
        t = np.where((t_enter <= t_exit) & (t_enter > _EPS), t_enter, np.inf)
    return t, bounds


def _faces(t: np.ndarray, bounds: list, inside: bool, select=Ellipsis) -> np.ndarray:
    """Face index (int8) of hits ``t`` (already restricted by ``select``) from :func:`_slab` bounds."""
    axis = np.full(t.shape, 2, dtype=np.int8)
    for a in (1, 0):  # the axis whose bound gave t (ties: lowest axis)
        axis = np.where(bounds[a][0][select] == t, np.int8(a), axis)
    d_axis = np.choose(axis, [bounds[0][1][select], bounds[1][1][select], bounds[2][1][select]])
    positive_side = (d_axis > 0) if inside else (d_axis < 0)
    return (2 * axis + positive_side).astype(np.int8)


def box_hits(
    boxes: BoxSet, b: int, origin: np.ndarray, dirs: np.ndarray, want_face: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """First hit of rays from ``origin`` (3,) along ``dirs`` (3, ...) (component-first) with box ``b``.

    Returns ``t`` (...) float64 (``inf`` where the ray misses or the box is behind it) and,
    if ``want_face``, the face index (...) int8 (see :mod:`pipeline.demo.boxes`; meaningless
    where ``t`` is inf).
    """
    rot = boxes.rotation[b]
    o_local = (origin - boxes.centre[b]) @ rot  # R^T (o - c)
    d_local = (rot[0, a] * dirs[0] + rot[1, a] * dirs[1] + rot[2, a] * dirs[2] for a in range(3))
    inside = bool(boxes.inside[b])
    t, bounds = _slab(o_local, boxes.half[b], d_local, inside)
    return t, (_faces(t, bounds, inside) if want_face else None)


def pixel_directions(intrinsics: np.ndarray, size: tuple[int, int], rotation: np.ndarray) -> np.ndarray:
    """World directions (3, H, W) of pixel-centre rays, scaled so their camera-frame z is 1.

    ``rotation`` is the camera-to-world rotation (3, 3); pixel ``(x, y)`` has its centre at
    integer coordinates (see :mod:`pipeline.camera`).
    """
    width, height = size
    k = np.asarray(intrinsics, dtype=np.float64)
    xs = (np.arange(width, dtype=np.float64) - k[0, 2]) / k[0, 0]
    ys = (np.arange(height, dtype=np.float64) - k[1, 2]) / k[1, 1]
    rot = np.asarray(rotation, dtype=np.float64)
    return np.stack([rot[i, 0] * xs[None, :] + rot[i, 1] * ys[:, None] + rot[i, 2] for i in range(3)])


def _screen_rect(boxes: BoxSet, b: int, pose: np.ndarray, intrinsics: np.ndarray,
                 size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (x0, x1, y0, y1), end-exclusive, that box ``b`` can cover; None if unseen."""
    width, height = size
    if boxes.inside[b]:
        return 0, width, 0, height
    cam = (boxes.corners(b) - pose[:3, 3]) @ pose[:3, :3]
    z = cam[:, 2]
    front = z > _NEAR
    if not front.any():
        return None
    if not front.all():
        # clip the box at z = _NEAR: keep corners in front plus the edges' crossing points
        i, j = _EDGES[:, 0], _EDGES[:, 1]
        cross = front[i] != front[j]
        w = (_NEAR - z[i[cross]]) / (z[j[cross]] - z[i[cross]])
        points = cam[i[cross]] + w[:, None] * (cam[j[cross]] - cam[i[cross]])
        cam = np.concatenate([cam[front], points])
        z = np.maximum(cam[:, 2], _NEAR)
    u = intrinsics[0, 0] * cam[:, 0] / z + intrinsics[0, 2]
    v = intrinsics[1, 1] * cam[:, 1] / z + intrinsics[1, 2]
    x0 = max(0, math.floor(u.min() + 0.5) - 1)
    x1 = min(width, math.floor(u.max() + 0.5) + 2)
    y0 = max(0, math.floor(v.min() + 0.5) - 1)
    y1 = min(height, math.floor(v.max() + 0.5) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


@dataclass(frozen=True)
class ImageHits:
    """Per-pixel first hits of one camera: ``t`` = z-depth (m, inf = none), box and face indices."""

    t: np.ndarray  # (H, W) float64
    box: np.ndarray  # (H, W) int32, -1 = none
    face: np.ndarray  # (H, W) int8
    dirs: np.ndarray  # (3, H, W) float64 world ray directions (camera z = 1)


def cast_image(boxes: BoxSet, pose: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int]) -> ImageHits:
    """Cast one ray per pixel of a ``size`` (W, H) camera at ``pose`` (cam-to-world 4x4).

    A z-buffer over boxes; each box only tests the pixels of its projected bounding rectangle,
    with ray directions built in the box frame from the pixel's normalised camera coordinates.
    """
    width, height = size
    pose = np.asarray(pose, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    xs = (np.arange(width, dtype=np.float64) - k[0, 2]) / k[0, 0]
    ys = (np.arange(height, dtype=np.float64) - k[1, 2]) / k[1, 1]
    cam_rot, origin = pose[:3, :3], pose[:3, 3]
    zbuf = np.full((height, width), np.inf)
    box = np.full((height, width), -1, dtype=np.int32)
    face = np.zeros((height, width), dtype=np.int8)
    for b in range(len(boxes)):
        rect = _screen_rect(boxes, b, pose, k, size)
        if rect is None:
            continue
        x0, x1, y0, y1 = rect
        rot = boxes.rotation[b]
        m = rot.T @ cam_rot  # camera frame -> box frame
        o_local = (origin - boxes.centre[b]) @ rot
        xr, yr = xs[x0:x1], ys[y0:y1]
        d_local = ((m[a, 0] * xr + m[a, 2])[None, :] + (m[a, 1] * yr)[:, None] for a in range(3))
        inside = bool(boxes.inside[b])
        t, bounds = _slab(o_local, boxes.half[b], d_local, inside)
        closer = t < zbuf[y0:y1, x0:x1]
        if not closer.any():
            continue
        t_win = t[closer]
        zbuf[y0:y1, x0:x1][closer] = t_win
        box[y0:y1, x0:x1][closer] = b
        face[y0:y1, x0:x1][closer] = _faces(t_win, bounds, inside, closer)
    return ImageHits(zbuf, box, face, pixel_directions(k, size, cam_rot))


def first_hit_t(boxes: BoxSet, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Smallest hit parameter (N,) over all boxes for rays (N, 3) from ``origin`` (inf = none)."""
    planar = np.ascontiguousarray(np.asarray(dirs, dtype=np.float64).T)
    best = np.full(planar.shape[1], np.inf)
    for b in range(len(boxes)):
        t, _ = box_hits(boxes, b, origin, planar, want_face=False)
        np.minimum(best, t, out=best)
    return best
