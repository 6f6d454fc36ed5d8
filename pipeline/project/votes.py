"""Multi-view majority voting of per-pair labels into per-point labels (numpy, vectorised).

A point's votes are the labels of the pixels it projects to, one per view that sees it.
IGNORE labels cast no vote. The winner is the most voted class. Ties go, when a ``rank`` per
pair is given, to the tied class of the lowest-ranked vote (the project stage ranks by the
point's depth in the view: the nearest view resolves the point best); otherwise, or among
equal ranks, to the lowest class index. ``agreement`` is the winner's share of the votes (1.0 = every view agrees). Points with
no vote get IGNORE, 0 votes and agreement 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.vocab import IGNORE

_MAX_CELLS = 1 << 24
"""Largest (points x classes) count table built at once (int64: 128 MiB)."""


@dataclass
class PointVotes:
    """Per-point result: ``label`` (P,) uint8, ``votes`` (P,) int64, ``winner_votes`` (P,) int64."""

    label: np.ndarray
    votes: np.ndarray
    winner_votes: np.ndarray

    @property
    def agreement(self) -> np.ndarray:
        """Winner's share of the votes (P,) float32; 0 where there are no votes."""
        out = np.zeros(self.votes.shape, dtype=np.float32)
        has = self.votes > 0
        out[has] = self.winner_votes[has] / self.votes[has]
        return out


def pair_labels(label_maps: np.ndarray, view_offsets: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Label of each pair (N,) uint8 read from ``label_maps`` (V, Hl, Wl) at the pairs' flat pixels."""
    n_views = label_maps.shape[0]
    counts = np.diff(view_offsets)
    if counts.size != n_views:
        raise ValueError(f"{n_views} label maps but {counts.size} views of pairs")
    view = np.repeat(np.arange(n_views, dtype=np.int64), counts)
    flat = label_maps.reshape(n_views, -1)
    return flat[view, np.asarray(pixel, dtype=np.int64)]


def majority(point: np.ndarray, labels: np.ndarray, n_points: int, rank: np.ndarray | None = None) -> PointVotes:
    """Majority label per point from pairs (``point`` (N,) int, ``labels`` (N,) uint8).

    ``rank`` (N,) float, optional: breaks ties between equally voted classes in favour of the
    class holding the vote of smallest rank (then the lowest class index).
    """
    point = np.asarray(point, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.uint8)
    keep = labels != IGNORE
    point, labels = point[keep], labels[keep].astype(np.int64)
    out_label = np.full(n_points, IGNORE, dtype=np.uint8)
    out_votes = np.bincount(point, minlength=n_points).astype(np.int64)
    out_win = np.zeros(n_points, dtype=np.int64)
    if point.size == 0:
        return PointVotes(out_label, out_votes, out_win)
    n_classes = int(labels.max()) + 1
    step = max(1, _MAX_CELLS // n_classes)
    for lo in range(0, n_points, step):
        hi = min(n_points, lo + step)
        sel = (point >= lo) & (point < hi) if (lo > 0 or hi < n_points) else slice(None)
        table = np.bincount((point[sel] - lo) * n_classes + labels[sel], minlength=(hi - lo) * n_classes)
        table = table.reshape(hi - lo, n_classes)
        best = np.argmax(table, axis=1)  # first maximum: ties go to the lowest class index
        win = table[np.arange(hi - lo), best]
        if rank is not None:
            best = _break_ties(table, win, point[sel] - lo, labels[sel], np.asarray(rank, dtype=np.float64)[keep][sel], best)
        has = win > 0
        out_label[lo:hi][has] = best[has].astype(np.uint8)
        out_win[lo:hi] = win
    return PointVotes(out_label, out_votes, out_win)


def _break_ties(table: np.ndarray, win: np.ndarray, point: np.ndarray, labels: np.ndarray, rank: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``best`` (P,) with ties between top classes of ``table`` (P, C) given to the class of the
    lowest-ranked pair among them (equal ranks: lowest class, as before)."""
    tied = (table == win[:, None]).sum(axis=1) > 1
    cand = tied[point] & (table[point, labels] == win[point])  # pairs voting for a top class of a tied point
    if not cand.any():
        return best
    p, lab, r = point[cand], labels[cand], rank[cand]
    order = np.lexsort((lab, r, p))  # per point: smallest rank first, then lowest class
    p, lab = p[order], lab[order]
    first = np.ones(p.size, dtype=bool)
    first[1:] = p[1:] != p[:-1]
    out = best.copy()
    out[p[first]] = lab[first]
    return out
