"""Images of one view: colour, depth (z, mm), raw-category labels and instances.

The colour camera and the depth camera share the pose but have their own intrinsics and size
(see :mod:`pipeline.demo.cameras`). Label and instance images are at colour resolution, like
ScanNet's ``label-filt`` / ``instance-filt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.demo.boxes import BoxSet
from pipeline.demo.raycast import cast_image
from pipeline.demo.texture import face_table, surface_colour, to_uint8

MAX_DEPTH_MM = 65535


@dataclass(frozen=True)
class ViewImages:
    """One view's images (colour size ``(Wc, Hc)``, depth size ``(Wd, Hd)``)."""

    color: np.ndarray  # (Hc, Wc, 3) uint8
    label: np.ndarray  # (Hc, Wc) uint16 raw category id, 0 = nothing
    instance: np.ndarray  # (Hc, Wc) uint16 instance id, 0 = nothing
    depth_mm: np.ndarray  # (Hd, Wd) uint16 z-depth in millimetres, 0 = no return


def render_color(boxes: BoxSet, pose: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (H, W, 3) uint8, raw label (H, W) uint16 and instance (H, W) uint16 images."""
    hits = cast_image(boxes, pose, intrinsics, size)
    height, width = hits.t.shape
    idx = (hits.box.astype(np.int64) * 6 + hits.face).reshape(-1)
    valid = hits.box.reshape(-1) >= 0
    t = hits.t.reshape(-1)
    dirs = hits.dirs.reshape(3, -1)
    if not valid.all():
        idx, t, dirs = idx[valid], t[valid], dirs[:, valid]
    points = pose[:3, 3, None] + t * dirs
    color = np.zeros((height * width, 3), dtype=np.uint8)
    color[valid] = to_uint8(surface_colour(face_table(boxes), idx, points))
    label = np.zeros(height * width, dtype=np.uint16)
    label[valid] = boxes.raw.reshape(-1)[idx]
    instance = np.zeros(height * width, dtype=np.uint16)
    instance[valid] = boxes.instance.reshape(-1)[idx]
    color, label, instance = color.reshape(height, width, 3), label.reshape(height, width), instance.reshape(height, width)
    return color, label, instance


def render_depth(boxes: BoxSet, pose: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth image (H, W) uint16: z-depth of the first hit in mm (rounded), 0 = no hit or too far."""
    t = cast_image(boxes, pose, intrinsics, size).t
    mm = np.rint(t * 1000.0)
    ok = np.isfinite(mm) & (mm > 0) & (mm <= MAX_DEPTH_MM)
    return np.where(ok, mm, 0).astype(np.uint16)


def render_view(
    boxes: BoxSet, pose: np.ndarray,
    color_k: np.ndarray, color_size: tuple[int, int],
    depth_k: np.ndarray, depth_size: tuple[int, int],
) -> ViewImages:
    """All images of the view at ``pose`` (cam-to-world 4x4, float64)."""
    color, label, instance = render_color(boxes, pose, color_k, color_size)
    return ViewImages(color, label, instance, render_depth(boxes, pose, depth_k, depth_size))
