"""A camera's image and its per-pixel fine labels, by ray casting through pixel centres.

Surfaces are shaded by :mod:`pipeline.demo.texture` (per-class materials, per-instance colours,
per-face textures); pixels whose ray hits nothing show a sky gradient (label 0).
"""

from __future__ import annotations

import numpy as np

from pipeline.demo.boxes import BoxSet
from pipeline.demo.render import render_color
from pipeline.demo_nuscenes.culling import in_frustum, subset

SKY_HORIZON = np.array([0.80, 0.85, 0.90])
SKY_ZENITH = np.array([0.35, 0.52, 0.80])


def sky(intrinsic: np.ndarray, size: tuple[int, int], rotation: np.ndarray) -> np.ndarray:
    """Sky colours (H, W, 3) uint8 by the elevation of each pixel's ray (``rotation``: camera → global)."""
    width, height = size
    k = np.asarray(intrinsic, dtype=np.float64)
    xs = ((np.arange(width) - k[0, 2]) / k[0, 0])[None, :]
    ys = ((np.arange(height) - k[1, 2]) / k[1, 1])[:, None]
    up = (rotation[2, 0] * xs + rotation[2, 1] * ys + rotation[2, 2]) / np.sqrt(xs * xs + ys * ys + 1.0)
    up = np.clip(up, 0.0, 1.0) ** 0.6
    rgb = SKY_HORIZON + up[..., None] * (SKY_ZENITH - SKY_HORIZON)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def render_camera(boxes: BoxSet, pose: np.ndarray, intrinsic: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8, fine labels (H, W) uint8 (0 = sky) and instance ids (H, W) uint16
    (0 = sky) of the camera at ``pose`` (cam → global 4x4).

    ``boxes`` carry the fine index in their ``raw`` column (never 0 for a surface). Only the
    boxes in the camera's frustum are cast (:mod:`pipeline.demo_nuscenes.culling`).
    """
    pose = np.asarray(pose, dtype=np.float64)
    color, label, instance = render_color(subset(boxes, in_frustum(boxes, pose, intrinsic, size)), pose, intrinsic, size)
    empty = label == 0
    if empty.any():
        color[empty] = sky(intrinsic, size, pose[:3, :3])[empty]
    return color, label.astype(np.uint8), instance
