"""Synthetic indoor-like ground truth for the CLIP-stage tests (scannet20 class indices)."""

from __future__ import annotations

import numpy as np

# scannet20 indices
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, COUNTER, DESK = range(13)
CURTAIN, FRIDGE, SHOWER, TOILET, SINK, BATHTUB, OTHER = range(13, 20)


def synthetic_scene(seed: int, n_views: int = 6, size: tuple[int, int] = (160, 120), n_objects: int = 10):
    """Views of one synthetic room: (classes (V, H, W) uint8, instances (V, H, W) uint16).

    Wall above a horizon, floor below, rectangles of object classes with scene-wide instance
    ids; the camera pans, so objects shift between views. A strip of pixels has no label (255).
    """
    rng = np.random.default_rng(seed)
    width, height = size
    room_w = width * 3
    objects = []
    for inst in range(1, n_objects + 1):
        cls = int(rng.choice([CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, COUNTER,
                              DESK, CURTAIN, FRIDGE, TOILET, SINK, OTHER]))
        w = int(rng.integers(width // 8, width // 3))
        h = int(rng.integers(height // 6, height // 2))
        x = int(rng.integers(0, room_w - w))
        y = int(rng.integers(height // 5, height - h))
        objects.append((inst, cls, x, y, w, h))
    classes = np.empty((n_views, height, width), np.uint8)
    instances = np.zeros((n_views, height, width), np.uint16)
    for v in range(n_views):
        shift = int(v * (room_w - width) / max(1, n_views - 1))
        horizon = int(height * (0.55 + 0.05 * np.sin(v)))
        view = np.full((height, width), WALL, np.uint8)
        view[horizon:] = FLOOR
        inst_view = np.zeros((height, width), np.uint16)
        inst_view[:horizon] = 1000
        inst_view[horizon:] = 1001
        for inst, cls, x, y, w, h in objects:
            x0, x1 = max(0, x - shift), min(width, x - shift + w)
            if x0 < x1:
                view[y : y + h, x0:x1] = cls
                inst_view[y : y + h, x0:x1] = inst
        view[: height // 12] = 255  # e.g. ceiling: no ground truth
        inst_view[: height // 12] = 0
        classes[v], instances[v] = view, inst_view
    return classes, instances


def miou(pred: np.ndarray, gt: np.ndarray, n_classes: int = 20) -> float:
    """Mean IoU in percent over classes present in ``gt`` (pixels with gt 255 ignored; pred 255 a miss)."""
    from pipeline.metrics import confusion, mean_iou

    return 100 * mean_iou(confusion(gt, pred, n_classes))
