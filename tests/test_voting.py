"""The one voting rule (pipeline.voting): numpy and torch, keys of every kind, both IGNORE policies."""

import numpy as np
import pytest
import torch

from pipeline import voting as votes_mod
from pipeline.pairs import pair_labels
from pipeline.vocab import IGNORE
from pipeline.voting import majority, majority_torch, mask_majority, segment_majority, segment_majority_torch


def test_majority_votes_agreement_ties_and_unseen_points():
    point = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = np.array([5, 5, 2, 3, 1, IGNORE, IGNORE, 4, 4, IGNORE], dtype=np.uint8)
    out = majority(point, labels, 5)
    np.testing.assert_array_equal(out.label, [5, 1, 4, IGNORE, IGNORE])  # point 1: tie 3/1 -> lowest class
    np.testing.assert_array_equal(out.votes, [3, 2, 2, 0, 0])  # IGNORE casts no vote
    np.testing.assert_allclose(out.agreement, [2 / 3, 0.5, 1.0, 0.0, 0.0])


def test_chunked_tables_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(0)
    point = rng.integers(0, 1000, 20000)
    labels = rng.integers(0, 20, 20000).astype(np.uint8)
    labels[rng.random(20000) < 0.1] = IGNORE
    whole = majority(point, labels, 1000)
    rank = rng.random(20000)
    whole_ranked = majority(point, labels, 1000, rank=rank)
    monkeypatch.setattr(votes_mod, "_MAX_CELLS", 20 * 7)  # 7 points per table
    chunked = majority(point, labels, 1000)
    np.testing.assert_array_equal(whole_ranked.label, majority(point, labels, 1000, rank=rank).label)
    np.testing.assert_array_equal(whole.label, chunked.label)
    np.testing.assert_array_equal(whole.votes, chunked.votes)
    np.testing.assert_array_equal(whole.winner_votes, chunked.winner_votes)
    expected = [np.bincount(labels[(point == p) & (labels != IGNORE)], minlength=20).argmax() for p in range(50)]
    np.testing.assert_array_equal(whole.label[:50], expected)


def test_pair_labels_reads_each_view_at_its_pixels():
    maps = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    offsets = np.array([0, 2, 3])
    pixel = np.array([0, 11, 5])
    np.testing.assert_array_equal(pair_labels(maps, offsets, pixel), [0, 11, 12 + 5])


def test_ties_go_to_the_lowest_ranked_vote():
    point = np.array([0, 0, 1, 1, 1, 1, 2, 2, 3, 3])
    labels = np.array([3, 1, 4, 4, 2, 2, 6, 6, 5, 7], dtype=np.uint8)
    rank = np.array([1.0, 2.0, 5.0, 3.0, 4.0, 9.0, 1.0, 2.0, 2.0, 2.0])
    out = majority(point, labels, 4, rank=rank)
    # point 0: tie 3/1, class 3 holds the nearer vote; point 1: tie 4/2, nearest vote (3.0) is a 4;
    # point 2: no tie; point 3: equal ranks -> lowest class
    np.testing.assert_array_equal(out.label, [3, 4, 6, 5])
    np.testing.assert_array_equal(majority(point, labels, 4).label, [1, 2, 6, 5])  # no rank: lowest class
    # a non-tied point is never changed by ranks; IGNORE votes and their ranks are skipped
    p2 = np.array([0, 0, 0, 0])
    l2 = np.array([2, 2, 1, IGNORE], dtype=np.uint8)
    np.testing.assert_array_equal(majority(p2, l2, 1, rank=np.array([5.0, 6.0, 0.0, -1.0])).label, [2])
    rng = np.random.default_rng(1)
    point = rng.integers(0, 300, 3000)
    labels = rng.integers(0, 6, 3000).astype(np.uint8)
    rank = rng.random(3000)
    out = majority(point, labels, 300, rank=rank)
    for p in range(300):
        sel = point == p
        counts = np.bincount(labels[sel], minlength=6)
        top = np.flatnonzero(counts == counts.max())
        votes = sel & np.isin(labels, top)
        expected = labels[votes][np.argmin(rank[votes])] if top.size > 1 else top[0]
        assert out.label[p] == expected, p


def test_compete_makes_ignore_a_candidate_that_loses_ties():
    point = np.array([0, 0, 0, 1, 1, 2, 2])
    labels = np.array([IGNORE, IGNORE, 3, IGNORE, 2, IGNORE, IGNORE], dtype=np.uint8)
    out = majority(point, labels, 3, ignore="compete")
    np.testing.assert_array_equal(out.label, [IGNORE, 2, IGNORE])  # 1: tie IGNORE/2 -> the class
    np.testing.assert_array_equal(out.votes, [3, 2, 2])
    assert out.decided.all()  # every key had votes, even those whose winner is IGNORE
    with pytest.raises(ValueError, match="ignore policy"):
        majority(point, labels, 3, ignore="vote")


def test_segment_majority_keeps_pixels_outside_segments_and_segments_without_votes():
    labels = np.array([[1, 1, 2, IGNORE], [3, 3, IGNORE, IGNORE]], np.uint8)
    segments = np.array([[0, 0, 0, 1], [-1, 2, 1, 1]])
    np.testing.assert_array_equal(segment_majority(labels, segments), [[1, 1, 1, IGNORE], [3, 3, IGNORE, IGNORE]])
    compete = segment_majority(np.array([[1, IGNORE, IGNORE]], np.uint8), np.array([[0, 0, 0]]), ignore="compete")
    np.testing.assert_array_equal(compete, [[IGNORE, IGNORE, IGNORE]])


def test_mask_majority_counts_the_full_extent_of_nested_masks():
    labels = np.zeros((4, 4), np.uint8)
    labels[:2, :2] = 5
    masks = np.stack([np.ones((4, 4), bool), np.pad(np.ones((2, 2), bool), ((0, 2), (0, 2)))])
    out = mask_majority(labels, masks)
    np.testing.assert_array_equal(out.label, [0, 5])  # 12 of 16 vs the part's 4 of 4
    np.testing.assert_array_equal(out.votes, [16, 4])


@pytest.mark.parametrize("ignore", ["abstain", "compete"])
@pytest.mark.parametrize("ranked", [False, True])
def test_numpy_and_torch_agree_on_random_votes(ignore, ranked):
    rng = np.random.default_rng(3)
    for trial in range(20):
        n, keys, classes = int(rng.integers(0, 400)), int(rng.integers(1, 60)), int(rng.integers(1, 6))
        key = rng.integers(0, keys, n)
        labels = rng.integers(0, classes, n).astype(np.uint8)
        labels[rng.random(n) < 0.3] = IGNORE
        rank = rng.integers(0, 4, n).astype(np.float64) if ranked else None  # integer ranks: ties of ranks too
        ours = majority(key, labels, keys, rank=rank, ignore=ignore, n_classes=classes)
        label, votes, win = majority_torch(torch.from_numpy(key), torch.from_numpy(labels.astype(np.int64)), keys, classes,
                                           rank=None if rank is None else torch.from_numpy(rank), ignore=ignore)
        np.testing.assert_array_equal(label.numpy(), ours.label, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(votes.numpy(), ours.votes)
        np.testing.assert_array_equal(win.numpy(), ours.winner_votes)


@pytest.mark.parametrize("ignore", ["abstain", "compete"])
def test_segment_majority_numpy_and_torch_agree(ignore):
    rng = np.random.default_rng(4)
    for _ in range(20):
        labels = rng.integers(0, 5, (12, 17)).astype(np.uint8)
        labels[rng.random(labels.shape) < 0.25] = IGNORE
        segments = rng.integers(-1, 9, labels.shape)
        ours = segment_majority(labels, segments, ignore, n_classes=5)
        theirs = segment_majority_torch(torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(segments), 5, ignore)
        np.testing.assert_array_equal(theirs.numpy(), ours)
