"""Masks of a view → the ``sam`` store's arrays: boxes, nesting (paint) order, segment-id maps.

The run-length codec itself is :mod:`pipeline.stores.sam_codecs`.

Nesting order of the segment-id map (``views/segments``), for a pixel covered by several masks:

* ``part`` (default): the pixel takes the **smallest** covering mask (parts painted over objects).
* ``object``: the pixel takes the **largest** covering mask (objects painted over parts).

Ties in area go to the lower mask index. Pixels covered by no mask are ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pipeline.stores.sam_codecs import encode_rle

NESTING_ORDERS = ("part", "object")
DEFAULT_NESTING_ORDER = "part"


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes (M, 4) int32 as (x, y, w, h) of masks (M, H, W): inclusive pixel extent, w = x1 - x0
    like SAM's ``box_xyxy_to_xywh`` of its xyxy box (so a one-pixel mask has w = 0); zeros if empty."""
    masks = np.asarray(masks, dtype=bool)
    boxes = np.zeros((masks.shape[0], 4), dtype=np.int32)
    rows_any = masks.any(axis=2)
    cols_any = masks.any(axis=1)
    for i in range(masks.shape[0]):
        ys = np.flatnonzero(rows_any[i])
        xs = np.flatnonzero(cols_any[i])
        if ys.size:
            boxes[i] = (xs[0], ys[0], xs[-1] - xs[0], ys[-1] - ys[0])
    return boxes


def paint_order(areas: np.ndarray, nesting_order: str) -> np.ndarray:
    """Indices in painting order (later ones overwrite earlier ones) for :func:`paint_segments`."""
    if nesting_order not in NESTING_ORDERS:
        raise ValueError(f"nesting order must be one of {NESTING_ORDERS}, got {nesting_order!r}")
    areas = np.asarray(areas, dtype=np.int64)
    index = np.arange(areas.size)
    # lexsort: last key is primary. Lower index must be painted last among equal areas.
    if nesting_order == "part":
        return np.lexsort((-index, -areas))  # large first, small last
    return np.lexsort((-index, areas))  # small first, large last


def paint_segments(masks: np.ndarray, nesting_order: str = DEFAULT_NESTING_ORDER, areas: np.ndarray | None = None) -> np.ndarray:
    """Segment-id map (H, W) int32 from masks (M, H, W) bool in a nesting order (module doc); -1 = none."""
    masks = np.asarray(masks, dtype=bool)
    if areas is None:
        areas = masks.sum(axis=(1, 2))
    seg = np.full(masks.shape[1:], -1, dtype=np.int32)
    for m in paint_order(areas, nesting_order):
        seg[masks[m]] = m
    return seg


@dataclass
class ViewMasks:
    """The masks of one view at label resolution, ready to be packed into a store."""

    runs: list[np.ndarray] = field(default_factory=list)
    area: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bbox: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))
    predicted_iou: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    stability_score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    segments: np.ndarray | None = None

    @classmethod
    def from_masks(
        cls, masks: np.ndarray, predicted_iou: np.ndarray, stability_score: np.ndarray, nesting_order: str
    ) -> "ViewMasks":
        """Encode masks (M, Hl, Wl) bool with their scores and paint the segment-id map."""
        masks = np.asarray(masks, dtype=bool)
        area = masks.sum(axis=(1, 2)).astype(np.int64)
        return cls(
            runs=[encode_rle(m) for m in masks],
            area=area,
            bbox=mask_boxes(masks),
            predicted_iou=np.asarray(predicted_iou, dtype=np.float32).reshape(-1),
            stability_score=np.asarray(stability_score, dtype=np.float32).reshape(-1),
            segments=paint_segments(masks, nesting_order, area),
        )

    def __len__(self) -> int:
        return len(self.runs)


def pack_views(views: Sequence[ViewMasks]) -> dict[str, np.ndarray]:
    """Concatenate per-view masks into the store arrays of a sample (``views/mask_offsets``, ``masks/*``,
    ``views/segments``)."""
    counts = [len(v) for v in views]
    view_off = np.zeros(len(views) + 1, dtype=np.int64)
    np.cumsum(counts, out=view_off[1:])
    runs = [r for v in views for r in v.runs]
    rle_off = np.zeros(len(runs) + 1, dtype=np.int64)
    np.cumsum([r.size for r in runs], out=rle_off[1:])
    return {
        "views/mask_offsets": view_off,
        "masks/rle_offsets": rle_off,
        "masks/rle": np.concatenate(runs).astype(np.uint32) if runs else np.zeros(0, np.uint32),
        "masks/area": np.concatenate([v.area for v in views]).astype(np.int64) if views else np.zeros(0, np.int64),
        "masks/bbox": np.concatenate([v.bbox for v in views]).astype(np.int32) if views else np.zeros((0, 4), np.int32),
        "masks/predicted_iou": np.concatenate([v.predicted_iou for v in views]).astype(np.float32) if views else np.zeros(0, np.float32),
        "masks/stability_score": np.concatenate([v.stability_score for v in views]).astype(np.float32) if views else np.zeros(0, np.float32),
        "views/segments": np.stack([v.segments for v in views]).astype(np.int32),
    }
