"""Mask encoding (pipeline.stores.sam_codecs) and segment-id maps (pipeline.sam.masks)."""

import numpy as np
import pytest
import torch
from segment_anything.utils.amg import batched_mask_to_box, box_xyxy_to_xywh

from pipeline.sam.masks import ViewMasks, mask_boxes, pack_views, paint_segments
from pipeline.stores.sam_codecs import decode_masks, decode_rle, encode_rle


@pytest.mark.parametrize("case", ["random", "empty", "full", "starts_on", "single"])
def test_rle_round_trip(case):
    rng = np.random.default_rng(1)
    mask = {
        "random": rng.random((17, 23)) > 0.6,
        "empty": np.zeros((5, 7), bool),
        "full": np.ones((5, 7), bool),
        "starts_on": np.eye(6, dtype=bool),
        "single": np.pad(np.ones((1, 1), bool), ((2, 3), (4, 1))),
    }[case]
    runs = encode_rle(mask)
    assert runs.dtype == np.uint32 and int(runs.sum()) == mask.size
    assert runs[1::2].sum() == mask.sum(), "odd runs are foreground"
    if mask.ravel()[0]:
        assert runs[0] == 0, "runs start with a (possibly empty) background run"
    np.testing.assert_array_equal(decode_rle(runs, mask.shape), mask)


def test_rle_is_row_major():
    mask = np.zeros((3, 4), bool)
    mask[0, 1:3] = True  # flat indices 1, 2 in row-major order (C order)
    np.testing.assert_array_equal(encode_rle(mask), [1, 2, 9])
    with pytest.raises(ValueError, match="sum"):
        decode_rle(np.array([1, 2, 8]), (3, 4))


def test_boxes_match_sam_convention():
    rng = np.random.default_rng(2)
    masks = rng.random((6, 20, 30)) > 0.97
    masks[0] = False
    ours = mask_boxes(masks)
    ref = np.stack([box_xyxy_to_xywh(b).numpy() for b in batched_mask_to_box(torch.as_tensor(masks))])
    np.testing.assert_array_equal(ours, ref)


def _nested():
    """Object (whole image middle), part inside it, sub-part inside the part, and a lone mask."""
    masks = np.zeros((4, 10, 10), bool)
    masks[0, 1:9, 1:9] = True  # object, area 64
    masks[1, 2:6, 2:6] = True  # part, area 16
    masks[2, 3:4, 3:4] = True  # sub-part, area 1
    masks[3, 0, 9] = True  # lone, area 1 (same area as sub-part)
    return masks


def test_nesting_orders():
    masks = _nested()
    part = paint_segments(masks, "part")
    obj = paint_segments(masks, "object")
    assert part[3, 3] == 2 and part[2, 5] == 1 and part[7, 7] == 0 and part[0, 9] == 3 and part[0, 0] == -1
    assert obj[3, 3] == 0 and obj[2, 5] == 0 and obj[7, 7] == 0 and obj[0, 9] == 3 and obj[0, 0] == -1
    # definition: part = smallest covering mask, object = largest covering mask
    areas = masks.reshape(4, -1).sum(1)
    for y in range(10):
        for x in range(10):
            cover = np.flatnonzero(masks[:, y, x])
            if cover.size:
                assert part[y, x] == cover[np.argmin(areas[cover])]
                assert obj[y, x] == cover[np.argmax(areas[cover])]


def test_ties_go_to_lower_index():
    masks = np.zeros((3, 4, 4), bool)
    masks[0, :2] = True
    masks[1, 1:3] = True  # same area 8, overlaps row 1
    masks[2, 3] = True
    for order in ("part", "object"):
        assert paint_segments(masks, order)[1, 0] == 0
    with pytest.raises(ValueError, match="nesting order"):
        paint_segments(masks, "sideways")


def test_pack_and_decode():
    masks_a = _nested()
    masks_b = np.zeros((0, 10, 10), bool)
    views = [
        ViewMasks.from_masks(masks_a, np.linspace(0.9, 0.6, 4), np.full(4, 0.95), "part"),
        ViewMasks.from_masks(masks_b, np.zeros(0), np.zeros(0), "part"),
    ]
    arrays = pack_views(views)
    np.testing.assert_array_equal(arrays["views/mask_offsets"], [0, 4, 4])
    np.testing.assert_array_equal(arrays["masks/area"], [64, 16, 1, 1])
    assert arrays["views/segments"].shape == (2, 10, 10) and (arrays["views/segments"][1] == -1).all()
    back = decode_masks(arrays["masks/rle"], arrays["masks/rle_offsets"], range(4), (10, 10))
    np.testing.assert_array_equal(back, masks_a)
    assert arrays["masks/predicted_iou"].dtype == np.float32
