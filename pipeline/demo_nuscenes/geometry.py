"""Rigid-transform maths of the nuScenes format: quaternions [w, x, y, z], T(t, q), the lidar → camera chain.

With T(t, q) = [[R(q), t], [0, 1]] and R from the *normalised* quaternion, a lidar point goes to
a camera by ``T(cs_cam)^-1 · T(ego@t_cam)^-1 · T(ego@t_lidar) · T(cs_lidar)`` (the devkit's
``map_pointcloud_to_image``). Everything here is float64.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from pipeline.camera import invert_rigid


def quaternion_matrix(q: ArrayLike) -> np.ndarray:
    """Rotation matrix (3, 3) of quaternion ``q`` = [w, x, y, z] (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(np.asarray(q, dtype=np.float64))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_quaternion(rot: np.ndarray) -> list[float]:
    """Unit quaternion [w, x, y, z] (w >= 0) of rotation matrix ``rot`` (3, 3)."""
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q) / np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return [float(v) for v in q]


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation (3, 3) by ``yaw`` radians about z."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def transform(translation: ArrayLike, rotation: ArrayLike) -> np.ndarray:
    """T(t, q) (4, 4): ``translation`` [x, y, z] m, ``rotation`` a quaternion [w, x, y, z] or a (3, 3) matrix."""
    out = np.eye(4)
    rot = np.asarray(rotation, dtype=np.float64)
    out[:3, :3] = rot if rot.shape == (3, 3) else quaternion_matrix(rot)
    out[:3, 3] = np.asarray(translation, dtype=np.float64)
    return out


def lidar_to_camera(cs_lidar: np.ndarray, ego_lidar: np.ndarray, ego_cam: np.ndarray, cs_cam: np.ndarray) -> np.ndarray:
    """The chain (4, 4) from the lidar frame at t_lidar to the camera frame at t_cam (all args 4x4)."""
    return invert_rigid(cs_cam) @ invert_rigid(ego_cam) @ ego_lidar @ cs_lidar


def project_points(points: np.ndarray, chain: np.ndarray, intrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lidar points (N, 3) → pixel coordinates (N, 2) and camera-frame depth z (N,), metres, float64."""
    cam = np.asarray(points, dtype=np.float64) @ chain[:3, :3].T + chain[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = cam @ np.asarray(intrinsic, dtype=np.float64).T
        uv = uvw[:, :2] / uvw[:, 2:3]
    return uv, z


def in_image(uv: np.ndarray, depth: np.ndarray, size: tuple[int, int], min_depth: float = 1.0) -> np.ndarray:
    """The devkit's keep mask (N,) bool: depth > ``min_depth`` and 1 < u < W - 1, 1 < v < H - 1."""
    width, height = size
    with np.errstate(invalid="ignore"):
        return (depth > min_depth) & (uv[:, 0] > 1) & (uv[:, 0] < width - 1) & (uv[:, 1] > 1) & (uv[:, 1] < height - 1)
