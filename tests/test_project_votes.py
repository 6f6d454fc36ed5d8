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
    monkeypatch.setattr(votes_mod, "_MAX_CELLS", 20 * 7)  # 7 points per table
    chunked = majority(point, labels, 1000)
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
