"""Which boxes a camera can see: a conservative frustum test of all boxes at once.

Ray casting costs per box, so renders and visibility tests start from the boxes whose corners
are not all behind one plane of the camera's viewing frustum (near plane at 1 cm, the four
image borders). A box failing that test cannot be hit by any ray of the image.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.camera import invert_rigid
from pipeline.demo.boxes import BoxSet

NEAR: float = 0.01
_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def box_corners(boxes: BoxSet) -> np.ndarray:
    """Corners (B, 8, 3) of every box, in the boxes' frame."""
    return boxes.centre[:, None, :] + np.einsum("kj,bj,bij->bki", _SIGNS, boxes.half, boxes.rotation)


def subset(boxes: BoxSet, index: np.ndarray) -> BoxSet:
    """The boxes at ``index`` (int array), in that order."""
    return BoxSet(**{f.name: getattr(boxes, f.name)[index] for f in dataclasses.fields(BoxSet)})


def camera_corners(boxes: BoxSet, cam_pose: np.ndarray) -> np.ndarray:
    """Corners (B, 8, 3) in the camera frame of the camera at ``cam_pose`` (cam → boxes' frame, 4x4)."""
    world_to_cam = invert_rigid(np.asarray(cam_pose, dtype=np.float64))
    return box_corners(boxes) @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]


def in_frustum(boxes: BoxSet, cam_pose: np.ndarray, intrinsic: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Indices (int64, ascending) of boxes that may cover a pixel of the ``size`` (W, H) image."""
    cam = camera_corners(boxes, cam_pose)
    k = np.asarray(intrinsic, dtype=np.float64)
    width, height = size
    x, y, z = cam[..., 0], cam[..., 1], cam[..., 2]
    # pixel u = fx x / z + cx lies in [-0.5, W - 0.5]  <=>  fx x + (cx + 0.5) z >= 0  and  fx x + (cx - W + 0.5) z <= 0
    left = k[0, 0] * x + (k[0, 2] + 0.5) * z
    right = k[0, 0] * x + (k[0, 2] - width + 0.5) * z
    top = k[1, 1] * y + (k[1, 2] + 0.5) * z
    bottom = k[1, 1] * y + (k[1, 2] - height + 0.5) * z
    out = (np.all(z <= NEAR, axis=1) | np.all(left < 0, axis=1) | np.all(right > 0, axis=1)
           | np.all(top < 0, axis=1) | np.all(bottom > 0, axis=1))
    return np.flatnonzero(~out)
