"""Refinement of one view: mask winners (the one voting rule) painted in a nesting order."""

import numpy as np
import pytest

from pipeline.refine.paint import refine_view
from pipeline.voting import mask_majority
from pipeline.vocab import IGNORE


def _rect(shape, y0, y1, x0, x1):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_majority_fills_each_mask_and_outside_pixels_keep_their_label():
    labels = np.full((6, 8), 7, dtype=np.uint8)
    labels[0:3, 0:4] = 2
    labels[0, 0] = 5  # minority inside mask 0
    labels[1, 1] = 9
    masks = np.stack([_rect((6, 8), 0, 3, 0, 4), _rect((6, 8), 3, 6, 4, 8)])
    labels[3:6, 4:8] = 1
    labels[5, 7] = 3
    labels[4, 0] = 4  # outside every mask
    (out,) = refine_view(labels, masks, [[0, 1]])
    assert np.all(out[0:3, 0:4] == 2)
    assert np.all(out[3:6, 4:8] == 1)
    outside = ~masks.any(axis=0)
    np.testing.assert_array_equal(out[outside], labels[outside])
    assert out[4, 0] == 4


def test_nesting_order_decides_overlaps_and_votes_use_the_whole_mask():
    # an object (whole image) mostly class 3, with a part (left half) mostly class 1
    labels = np.full((4, 8), 3, dtype=np.uint8)
    labels[:, :3] = 1  # 12 of the part's 16 pixels are 1, the object's majority stays 3 (20 vs 12)
    whole = np.ones((4, 8), dtype=bool)
    part = _rect((4, 8), 0, 4, 0, 4)
    masks = np.stack([whole, part])
    big_first = [0, 1]  # part painted last: part-level
    small_first = [1, 0]  # object painted last: object-level
    part_level, object_level = refine_view(labels, masks, [big_first, small_first])
    assert np.all(part_level[:, :4] == 1) and np.all(part_level[:, 4:] == 3)
    assert np.all(object_level == 3)


def test_ignore_pixels_abstain_or_compete():
    labels = np.full((4, 4), IGNORE, dtype=np.uint8)
    labels[0, :3] = 6  # 3 labelled pixels, 13 ignore
    masks = np.ones((1, 4, 4), dtype=bool)
    (abstain,) = refine_view(labels, masks, [[0]], ignore="abstain")
    (compete,) = refine_view(labels, masks, [[0]], ignore="compete")
    assert np.all(abstain == 6)
    assert np.all(compete == IGNORE)
    votes = mask_majority(labels, masks, "abstain")
    assert votes.label[0] == 6 and votes.votes[0] == 3 and votes.winner_votes[0] == 3


def test_mask_without_votes_falls_through_to_the_next_mask():
    labels = np.full((4, 4), 2, dtype=np.uint8)
    labels[:2, :2] = IGNORE
    outer = np.ones((4, 4), dtype=bool)
    inner = _rect((4, 4), 0, 2, 0, 2)  # all ignore: no votes
    labels[2:, 2:] = 8  # outer votes: 8 for class 2, 4 for class 8
    (out,) = refine_view(labels, np.stack([outer, inner]), [[0, 1]])
    assert np.all(out == 2)  # inner (painted last) has no winner, so outer's label shows through


def test_ties_go_to_the_lowest_class():
    labels = np.array([[4, 4, 1, 1]], dtype=np.uint8)
    assert mask_majority(labels, np.ones((1, 1, 4), dtype=bool)).label[0] == 1


def test_no_masks_and_bad_inputs():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (out,) = refine_view(labels, np.zeros((0, 3, 4), dtype=bool), [[]])
    np.testing.assert_array_equal(out, labels)
    with pytest.raises(ValueError, match="permutation"):
        refine_view(labels, np.ones((2, 3, 4), dtype=bool), [[0, 0]])
    with pytest.raises(ValueError, match="uint8"):
        refine_view(labels.astype(np.int32), np.ones((1, 3, 4), dtype=bool), [[0]])
    with pytest.raises(ValueError, match="ignore policy"):
        mask_majority(labels, np.ones((1, 3, 4), dtype=bool), "vote")


def test_random_masks_match_a_per_mask_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (20, 30)).astype(np.uint8)
    labels[rng.random((20, 30)) < 0.1] = IGNORE
    masks = rng.random((6, 20, 30)) < 0.3
    order = rng.permutation(6)
    (out,) = refine_view(labels, masks, [order])
    expected = labels.copy()
    for m in order:
        values = labels[masks[m]]
        values = values[values != IGNORE]
        if values.size:
            expected[masks[m]] = np.bincount(values, minlength=5).argmax()
    np.testing.assert_array_equal(out, expected)
