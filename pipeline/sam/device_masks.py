"""Masks still on the model's device → the ``sam`` store's per-view arrays (:class:`ViewMasks`).

The torch counterparts of :mod:`pipeline.sam.masks` (numpy) for the batched generator: resizing to
the label size by the same nearest-pixel-centre rule, areas, boxes, the segment-id map in the
same nesting order (same tie rule) and run lengths (:func:`pipeline.stores.sam_codecs.encode_rle_batch`),
all computed where the masks are; only the label-size results are copied to the host. Each
function equals its numpy counterpart exactly (tests/test_sam_batched.py).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.images import nearest_indices
from pipeline.sam.masks import ViewMasks, paint_order
from pipeline.stores.sam_codecs import encode_rle_batch


def resize_masks_torch(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks (M, H, W) → (M, size[1], size[0]), the same pixels as ``resize_masks`` picks."""
    _, height, width = masks.shape
    if (width, height) == tuple(size):
        return masks
    rows = torch.as_tensor(nearest_indices(height, size[1]), device=masks.device)
    cols = torch.as_tensor(nearest_indices(width, size[0]), device=masks.device)
    return masks.index_select(1, rows).index_select(2, cols)


def mask_boxes_torch(masks: torch.Tensor) -> torch.Tensor:
    """Boxes (M, 4) int32 (x, y, w, h) as :func:`pipeline.sam.masks.mask_boxes`; zeros if empty."""
    m, height, width = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    y0 = rows.to(torch.uint8).argmax(dim=1)
    y1 = height - 1 - rows.flip(1).to(torch.uint8).argmax(dim=1)
    x0 = cols.to(torch.uint8).argmax(dim=1)
    x1 = width - 1 - cols.flip(1).to(torch.uint8).argmax(dim=1)
    boxes = torch.stack([x0, y0, x1 - x0, y1 - y0], dim=1).to(torch.int32)
    return torch.where(rows.any(dim=1)[:, None], boxes, torch.zeros_like(boxes))


def paint_segments_torch(masks: torch.Tensor, order: np.ndarray) -> torch.Tensor:
    """Segment-id map (H, W) int32: each pixel takes the covering mask painted last in ``order``
    (:func:`pipeline.sam.masks.paint_order`); -1 where no mask covers it."""
    m, height, width = masks.shape
    if m == 0:
        return torch.full((height, width), -1, dtype=torch.int32, device=masks.device)
    rank = torch.empty(m, dtype=torch.int32, device=masks.device)
    rank[torch.as_tensor(order, device=masks.device)] = torch.arange(1, m + 1, dtype=torch.int32, device=masks.device)
    top, _ = (masks.to(torch.int32) * rank[:, None, None]).max(dim=0)  # 0 = no mask, else paint rank
    index = torch.as_tensor(np.concatenate([[-1], order]).astype(np.int32), device=masks.device)
    return index[top.long()]


def view_masks_from_device(masks: torch.Tensor, predicted_iou: torch.Tensor, stability_score: torch.Tensor,
                           label_size: tuple[int, int], nesting_order: str) -> ViewMasks:
    """Masks (M, H, W) bool on any device at image size → :class:`ViewMasks` at ``label_size`` (W, H),
    equal to ``ViewMasks.from_masks(resize_masks(masks.cpu().numpy(), label_size), ...)``."""
    small = resize_masks_torch(masks, label_size)
    area = small.sum(dim=(1, 2)).cpu().numpy().astype(np.int64)
    order = paint_order(area, nesting_order)
    return ViewMasks(
        runs=encode_rle_batch(small),
        area=area,
        bbox=mask_boxes_torch(small).cpu().numpy(),
        predicted_iou=predicted_iou.detach().float().cpu().numpy().reshape(-1),
        stability_score=stability_score.detach().float().cpu().numpy().reshape(-1),
        segments=paint_segments_torch(small, order).cpu().numpy(),
    )
