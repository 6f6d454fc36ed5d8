"""Synthetic RGB-D scenes of axis-aligned boxes for projection tests and benchmarks (numpy only).

A room (the inside of a box) holds furniture boxes; points are sampled on every box face; the
depth images are ray-cast exactly (slab test) and quantised to millimetres like ScanNet's; the
cameras stand inside the room looking around. Colour and depth intrinsics differ and are not
proportional. A test fixture (tests/test_project_geometry.py) and the scene of
bench/project.py; nothing here is used by the pipeline itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticScene:
    """Points (P, 3) float32 with per-point box ids, and V RGB-D views (see :class:`pipeline.project.reference.Cameras`)."""

    points: np.ndarray
    box_of_point: np.ndarray
    poses: np.ndarray
    color_k: np.ndarray
    color_size: tuple[int, int]
    depth: np.ndarray
    depth_k: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray


def _boxes(rng: np.random.Generator, n_furniture: int, room: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    rx, ry, rz = room
    lo = [np.array([-rx / 2, -ry / 2, 0.0])]
    hi = [np.array([rx / 2, ry / 2, rz])]
    for _ in range(n_furniture):
        size = rng.uniform([0.3, 0.3, 0.3], [1.2, 1.2, 1.5])
        centre = rng.uniform([-rx / 2 + 0.8, -ry / 2 + 0.8], [rx / 2 - 0.8, ry / 2 - 0.8])
        lo.append(np.array([centre[0] - size[0] / 2, centre[1] - size[1] / 2, 0.0]))
        hi.append(np.array([centre[0] + size[0] / 2, centre[1] + size[1] / 2, size[2]]))
    return np.stack(lo), np.stack(hi)


def _sample_faces(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_points`` points spread over all box faces in proportion to their area."""
    faces = []  # (box, axis, side)
    areas = []
    for b in range(lo.shape[0]):
        ext = hi[b] - lo[b]
        for axis in range(3):
            other = [a for a in range(3) if a != axis]
            for side in (0, 1):
                faces.append((b, axis, side))
                areas.append(ext[other[0]] * ext[other[1]])
    areas = np.asarray(areas)
    face = rng.choice(len(faces), size=n_points, p=areas / areas.sum())
    pts = np.empty((n_points, 3))
    box = np.empty(n_points, dtype=np.int32)
    for f, (b, axis, side) in enumerate(faces):
        sel = face == f
        k = int(sel.sum())
        p = rng.uniform(lo[b], hi[b], size=(k, 3))
        p[:, axis] = hi[b, axis] if side else lo[b, axis]
        pts[sel] = p
        box[sel] = b
    return pts.astype(np.float32), box


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cam-to-world pose (4, 4): OpenCV axes, z toward ``target``, image up roughly world +z."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = eye
    return pose


def ray_cast(lo: np.ndarray, hi: np.ndarray, pose: np.ndarray, k: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Exact z-depth (H, W) float64 of the first box surface at each pixel centre (inf = none)
    and the index (H, W) int32 of that box (-1 = none).

    Box 0 is the room, seen from inside (its exit point); others are hit from outside.
    """
    width, height = size
    xs = (np.arange(width) - k[0, 2]) / k[0, 0]
    ys = (np.arange(height) - k[1, 2]) / k[1, 1]
    cam = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], np.ones((1, 1))), axis=-1).reshape(-1, 3)
    dirs = cam @ pose[:3, :3].T  # world directions with camera z = 1, so t is the z-depth
    origin = pose[:3, 3]
    best = np.full(dirs.shape[0], np.inf)
    which = np.full(dirs.shape[0], -1, dtype=np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = [1.0 / dirs[:, a] for a in range(3)]
        for b in range(lo.shape[0]):
            t_near = np.full(dirs.shape[0], -np.inf)
            t_far = np.full(dirs.shape[0], np.inf)
            for a in range(3):
                t1 = (lo[b, a] - origin[a]) * inv[a]
                t2 = (hi[b, a] - origin[a]) * inv[a]
                np.fmax(t_near, np.fmin(t1, t2), out=t_near)
                np.fmin(t_far, np.fmax(t1, t2), out=t_far)
            if b == 0:
                t = np.where(t_far > 1e-9, t_far, np.inf)
            else:
                t = np.where((t_near <= t_far) & (t_near > 1e-9), t_near, np.inf)
            closer = t < best
            best[closer] = t[closer]
            which[closer] = b
    return best.reshape(height, width), which.reshape(height, width)


def make_scene(
    n_points: int = 150_000,
    n_views: int = 100,
    depth_size: tuple[int, int] = (640, 480),
    color_size: tuple[int, int] = (648, 484),
    n_furniture: int = 10,
    hole_fraction: float = 0.02,
    seed: int = 0,
) -> SyntheticScene:
    """A deterministic synthetic scene (module docstring). Depth in millimetres, holes = 0."""
    rng = np.random.default_rng(seed)
    room = (6.0, 5.0, 2.8)
    lo, hi = _boxes(rng, n_furniture, room)
    points, box = _sample_faces(rng, lo, hi, n_points)
    sx, sy = depth_size[0] / 640, depth_size[1] / 480
    depth_k = np.array([[577.6 * sx, 0, (318.9 + 0.5) * sx - 0.5], [0, 578.7 * sy, (242.7 + 0.5) * sy - 0.5], [0, 0, 1]])
    cx, cy = color_size[0] / 1296, color_size[1] / 968
    color_k = np.array([[1169.6 * cx, 0, (646.3 + 0.5) * cx - 0.5], [0, 1167.1 * cy, (489.9 + 0.5) * cy - 0.5], [0, 0, 1]])
    poses = np.empty((n_views, 4, 4))
    depth = np.empty((n_views, depth_size[1], depth_size[0]), dtype=np.uint16)
    for v in range(n_views):
        angle = 2 * math.pi * v / n_views
        eye = np.array([1.6 * math.cos(angle), 1.3 * math.sin(angle), rng.uniform(1.3, 1.7)])
        target = np.array([rng.uniform(-2.5, 2.5), rng.uniform(-2.0, 2.0), rng.uniform(0.2, 1.2)])
        if np.linalg.norm(target[:2] - eye[:2]) < 1.0:
            target[:2] = -eye[:2]
        poses[v] = look_at(eye, target)
        z, _ = ray_cast(lo, hi, poses[v], depth_k, depth_size)
        mm = np.where(np.isfinite(z), np.round(z * 1000.0), 0.0)
        holes = rng.random(mm.shape) < hole_fraction
        mm[holes] = 0
        depth[v] = np.clip(mm, 0, 65535).astype(np.uint16)
    return SyntheticScene(points, box, poses, color_k, tuple(color_size), depth, depth_k, lo, hi)
