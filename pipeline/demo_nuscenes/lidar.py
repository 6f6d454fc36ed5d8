"""The spinning roof lidar: one ray per (beam, azimuth), cast at the lidar's timestamp.

Beams are spread evenly over -30.67..+10.67 degrees of elevation (the HDL-32E's field of view),
azimuths evenly over a turn. Rays are cast in the lidar frame against the boxes moved into it;
each box only tests the rays of its angular window (a conservative bound from its corners), so
a sweep costs about as much as the rays that can hit something. Returns within 80 m are kept,
ordered by azimuth then beam, as x, y, z (lidar frame), intensity and ring (beam index).

Intensity (0..255, whole numbers): the material's reflectivity times (0.35 + 0.65 cos incidence)
times a range falloff (15 m / r)^0.4 clipped to 0.3..1.6, plus noise of 2 units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.camera import invert_rigid
from pipeline.demo.boxes import BoxSet
from pipeline.demo.raycast import box_hits
from pipeline.demo_nuscenes.parts import move_boxes

ELEVATION_DEG: tuple[float, float] = (-30.67, 10.67)
MAX_RANGE: float = 80.0
_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


@dataclass(frozen=True)
class Sweep:
    """One keyframe's returns: ``points`` (N, 5) float32 (x, y, z m, intensity, ring), ``labels``
    (N,) uint8 fine index, ``box`` (N,) int32 index of the box each return lies on."""

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray


def beam_elevations(beams: int) -> np.ndarray:
    """Elevation (rad) of each beam (B,), ascending."""
    return np.radians(np.linspace(ELEVATION_DEG[0], ELEVATION_DEG[1], beams))


def ray_directions(beams: int, azimuths: int) -> np.ndarray:
    """Unit ray directions (3, B, A) in the lidar frame."""
    el = beam_elevations(beams)[:, None]
    az = (2 * np.pi * np.arange(azimuths) / azimuths)[None, :]
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)])


def _window(boxes: BoxSet, b: int, elevations: np.ndarray, azimuths: int) -> tuple[slice, np.ndarray] | None:
    """Beam slice and azimuth indices that may hit box ``b`` (lidar at the origin); None if none."""
    corners = boxes.centre[b] + (_SIGNS * boxes.half[b]) @ boxes.rotation[b].T
    zmin, zmax = corners[:, 2].min(), corners[:, 2].max()
    centre = boxes.centre[b, :2]
    dist = float(np.hypot(*centre))
    radius = float(np.max(np.hypot(*(corners[:, :2] - centre).T)))
    near, far = max(0.0, dist - radius), dist + radius
    if near > MAX_RANGE:
        return None
    lo = math.atan2(zmin, near if zmin < 0 else far)
    hi = math.atan2(zmax, near if zmax > 0 else far)
    b0, b1 = np.searchsorted(elevations, lo, "left"), np.searchsorted(elevations, hi, "right")
    if b0 >= b1:
        return None
    if near <= 0.0:
        return slice(b0, b1), np.arange(azimuths)
    step = 2 * np.pi / azimuths
    phi, half = math.atan2(centre[1], centre[0]), math.asin(min(1.0, radius / dist))
    j0, j1 = math.ceil((phi - half) / step), math.floor((phi + half) / step)
    if j1 < j0:
        return None
    if j1 - j0 + 1 >= azimuths:
        return slice(b0, b1), np.arange(azimuths)
    return slice(b0, b1), np.arange(j0, j1 + 1) % azimuths


def _cast(boxes: BoxSet, beams: int, azimuths: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First hits of the ray grid: t (B, A) m, box (B, A) int32 (-1 none), face (B, A) int8, directions."""
    dirs = ray_directions(beams, azimuths)
    elevations = beam_elevations(beams)
    tbuf = np.full((beams, azimuths), np.inf)
    box = np.full((beams, azimuths), -1, dtype=np.int32)
    face = np.zeros((beams, azimuths), dtype=np.int8)
    origin = np.zeros(3)
    for b in range(len(boxes)):
        win = _window(boxes, b, elevations, azimuths)
        if win is None:
            continue
        rows, cols = win
        t, f = box_hits(boxes, b, origin, dirs[:, rows][:, :, cols])
        cur = tbuf[rows, cols]
        closer = t < cur
        if not closer.any():
            continue
        tbuf[rows, cols] = np.where(closer, t, cur)
        box[rows, cols] = np.where(closer, b, box[rows, cols])
        face[rows, cols] = np.where(closer, f, face[rows, cols])
    return tbuf, box, face, dirs


def _intensity(rng: np.random.Generator, boxes: BoxSet, box: np.ndarray, face: np.ndarray, dirs: np.ndarray,
               rng_m: np.ndarray, reflect: np.ndarray) -> np.ndarray:
    axis = face.astype(np.int64) // 2
    normal = boxes.rotation[box, :, axis]  # (N, 3) local axis of the face, in the lidar frame
    cos = np.abs(np.einsum("ij,ij->i", normal, dirs))
    falloff = np.clip((15.0 / np.maximum(rng_m, 0.1)) ** 0.4, 0.3, 1.6)
    value = reflect[box] * (0.35 + 0.65 * cos) * falloff + rng.normal(0.0, 2.0, box.shape)
    return np.clip(np.rint(value), 0.0, 255.0)


def cast_sweep(boxes: BoxSet, reflect: np.ndarray, lidar_pose: np.ndarray, beams: int, azimuths: int,
               rng: np.random.Generator) -> Sweep:
    """One sweep from the lidar at ``lidar_pose`` (4, 4, lidar → global) over ``boxes`` (global frame).

    ``reflect`` (B,) is each box's reflectivity; ``rng`` draws the intensity noise.
    """
    local = move_boxes(boxes, invert_rigid(np.asarray(lidar_pose, dtype=np.float64)))
    tbuf, box, face, dirs = _cast(local, beams, azimuths)
    # order by azimuth, then beam (the firing order of a spinning lidar)
    tbuf, box, face = tbuf.T.reshape(-1), box.T.reshape(-1), face.T.reshape(-1)
    dirs = dirs.transpose(0, 2, 1).reshape(3, -1)
    ring = np.tile(np.arange(beams, dtype=np.float64), azimuths)
    keep = np.flatnonzero((box >= 0) & (tbuf <= MAX_RANGE))
    t, hit_box, hit_face, d = tbuf[keep], box[keep], face[keep], dirs[:, keep].T
    xyz = d * t[:, None]
    intensity = _intensity(rng, local, hit_box, hit_face, d, t, reflect)
    points = np.column_stack([xyz, intensity, ring[keep]]).astype(np.float32)
    labels = local.raw[hit_box, hit_face].astype(np.uint8)
    return Sweep(points, labels, hit_box.astype(np.int32))
