"""Camera maths: the one module that knows poses, intrinsics, pixel conventions and SAM's grid.

Conventions (used everywhere in this project)
---------------------------------------------
* Camera frame: OpenCV / ScanNet, x right, y down, z forward, metres.
* Pose: 4x4 camera-to-sample-frame ("cam_to_world"), as ScanNet's ``pose/N.txt``.
* Intrinsics ``K``: 3x3, pixel units, **pixel centres at integer coordinates** (ScanNet's
  ``cx ≈ (W - 1) / 2``). A projected coordinate ``u`` falls in pixel ``floor(u + 0.5)``
  (nearest pixel centre); it is inside the image iff ``-0.5 <= u < W - 0.5``.
* Image sizes are ``(width, height)`` tuples; arrays are indexed ``[row=y, col=x]``.
"""

from __future__ import annotations

import math

import numpy as np

SAM_LONG_SIDE: int = 1024
"""SAM resizes the longest image side to this many pixels, then pads bottom/right."""
SAM_PATCH: int = 16
"""Input pixels per SAM embedding cell (1024 / 64)."""


def pose_is_valid(pose: np.ndarray, atol: float = 1e-3) -> bool:
    """True if ``pose`` (4, 4) is finite and its rotation block is orthonormal with det +1."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        return False
    rot = pose[:3, :3]
    return bool(np.allclose(rot @ rot.T, np.eye(3), atol=atol) and abs(np.linalg.det(rot) - 1.0) < atol)


def invert_rigid(pose: np.ndarray) -> np.ndarray:
    """Inverse of rigid transform(s) ``pose`` (..., 4, 4) via R^T (exact, no general inverse)."""
    pose = np.asarray(pose)
    out = np.zeros_like(pose)
    rot_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rot_t, pose[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def quaternion_to_rotation(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) float64 of a quaternion [w, x, y, z] (scalar first, as nuScenes and
    the Hamilton convention write it); the quaternion is normalised first. A zero or non-finite
    quaternion raises ``ValueError``. Also accepts (..., 4) → (..., 3, 3)."""
    q = np.asarray(quaternion, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"a quaternion has 4 components [w, x, y, z], got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(q)) or np.any(norm < 1e-12):
        raise ValueError("quaternion must be finite and non-zero")
    w, x, y, z = np.moveaxis(q / norm, -1, 0)
    rot = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return rot.reshape(q.shape[:-1] + (3, 3))


def rigid_transform(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    """T(t, q) = [[R(q), t], [0, 1]] (4, 4) float64 from a translation (3,) in metres and a
    quaternion [w, x, y, z] (normalised here); maps child-frame points into the parent frame."""
    t = np.asarray(translation, dtype=np.float64)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise ValueError(f"translation must be 3 finite numbers, got {t.tolist()}")
    out = np.eye(4)
    out[:3, :3] = quaternion_to_rotation(quaternion)
    out[:3, 3] = t
    return out


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply 4x4 ``transform`` to ``points`` (N, 3); returns (N, 3) in ``points``' dtype."""
    transform = np.asarray(transform)
    rot = transform[:3, :3].astype(points.dtype, copy=False)
    trans = transform[:3, 3].astype(points.dtype, copy=False)
    return points @ rot.T + trans


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of camera-frame points (N, 3) → (uv (N, 2), depth z (N,)), metres.

    Points with z <= 0 get non-finite or meaningless uv; callers mask on ``z``.
    """
    k = np.asarray(intrinsics, dtype=points_cam.dtype)
    z = points_cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = k[0, 0] * points_cam[:, 0] / z + k[0, 2]
        v = k[1, 1] * points_cam[:, 1] / z + k[1, 2]
    return np.stack([u, v], axis=1), z


def pixel_index(coords: np.ndarray) -> np.ndarray:
    """Continuous pixel coordinates → integer pixel indices (nearest centre, ``floor(c + 0.5)``)."""
    return np.floor(coords + 0.5).astype(np.int64)


def backproject_depth(depth_m: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Depth image (H, W) in metres → camera-frame points (H, W, 3), float32; 0 stays 0."""
    height, width = depth_m.shape
    k = np.asarray(intrinsics, dtype=np.float64)
    xs = (np.arange(width, dtype=np.float64) - k[0, 2]) / k[0, 0]
    ys = (np.arange(height, dtype=np.float64) - k[1, 2]) / k[1, 1]
    z = depth_m.astype(np.float64)
    pts = np.stack([xs[None, :] * z, ys[:, None] * z, z], axis=-1)
    return pts.astype(np.float32)


def scale_intrinsics(intrinsics: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics (3, 3) for the image resized from ``src_size`` to ``dst_size`` (W, H).

    Resizing maps pixel *edges* linearly (what PIL and torchvision do), so with integer pixel
    centres: ``f' = f * s`` and ``c' = (c + 0.5) * s - 0.5`` per axis.
    """
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    k[0, 0] *= sx
    k[0, 1] *= sx
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    k[1, 1] *= sy
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return k


def sam_resized_size(image_size: tuple[int, int], long_side: int = SAM_LONG_SIDE) -> tuple[int, int]:
    """Size (W, H) of the image after SAM's longest-side resize (same rounding as SAM's)."""
    width, height = image_size
    scale = long_side / max(width, height)
    return int(width * scale + 0.5), int(height * scale + 0.5)


def sam_valid_grid(image_size: tuple[int, int], long_side: int = SAM_LONG_SIDE, patch: int = SAM_PATCH) -> tuple[int, int]:
    """Rows and columns (H_cells, W_cells) of SAM's embedding that hold image, not padding.

    640x480 (4:3) → (48, 64); 1600x900 (16:9) → (36, 64).
    """
    new_w, new_h = sam_resized_size(image_size, long_side)
    return math.ceil(new_h / patch), math.ceil(new_w / patch)


def sam_cell_index(
    xy: np.ndarray, image_size: tuple[int, int], long_side: int = SAM_LONG_SIDE, patch: int = SAM_PATCH
) -> np.ndarray:
    """Integer pixel indices (N, 2) as (x, y) of an image of ``image_size`` → SAM cells (N, 2) (col, row).

    The mapping follows SAM's own resize (longest side to ``long_side``, rounded as SAM
    rounds) and not ``64 / W``: pixel centre ``x + 0.5`` lands at ``(x + 0.5) * W' / W`` in
    the resized image, which lies in cell ``floor(. / patch)``. Cells index the valid
    (unpadded) grid of :func:`sam_valid_grid`. This is the only pixel → cell mapping; the SAM
    stage and the trainer both call it.
    """
    xy = np.asarray(xy)
    new_w, new_h = sam_resized_size(image_size, long_side)
    rows, cols = sam_valid_grid(image_size, long_side, patch)
    col = np.floor((xy[..., 0] + 0.5) * (new_w / image_size[0]) / patch).astype(np.int64)
    row = np.floor((xy[..., 1] + 0.5) * (new_h / image_size[1]) / patch).astype(np.int64)
    return np.stack([np.clip(col, 0, cols - 1), np.clip(row, 0, rows - 1)], axis=-1)
