"""Multi-view majority voting of pair labels into point labels."""

import numpy as np

from pipeline.project import votes as votes_mod
from pipeline.project.votes import majority, pair_labels
from pipeline.vocab import IGNORE


def test_majority_votes_agreement_ties_and_unseen_points():
    point = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = np.array([5, 5, 2, 3, 1, IGNORE, IGNORE, 4, 4, IGNORE], dtype=np.uint8)
    out = majority(point, labels, n_points=5)
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
