"""Majority voting of labels, the one rule every stage uses (numpy, and torch for the trainer).

A *vote* is a (key, label) pair: the key is what is being labelled (a point, a SAM mask, a
segment, a pixel), the label a class index or :data:`~pipeline.vocab.IGNORE`. The rule:

* **IGNORE votes** follow the ``ignore`` policy: ``abstain`` (default) — they are not counted;
  ``compete`` — IGNORE is a candidate like any class (a key voted mostly IGNORE stays IGNORE).
* The **winner** is the label with the most votes. **Ties** go, when a ``rank`` per vote is
  given, to the tied label holding the vote of lowest rank (the project stage ranks by the
  point's depth in the view: the nearest view resolves it best); otherwise, or among equal
  ranks, to the lowest class index (IGNORE, the largest value, loses every tie).
* A key with **no counted vote** gets IGNORE, 0 votes and agreement 0.

Where each stage uses it (docs/method.md, "One voting rule"): refine (votes = a mask's CLIP
pixels, :func:`mask_majority`), project (votes = a point's pairs, ranked by depth with
``project.tie_break: nearest``), predict and the trainer's online targets (votes = a SAM
segment's pixels, :func:`segment_majority`; a pixel's points and a point's pixels through
the pairs, ranked as in project).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.vocab import IGNORE

IGNORE_POLICIES: tuple[str, ...] = ("abstain", "compete")
"""How IGNORE votes count: ``abstain`` (not at all, the default) or ``compete`` (as a candidate)."""
TIE_BREAKS: tuple[str, ...] = ("nearest", "lowest")
"""``project.tie_break``: ``nearest`` ranks votes by depth; ``lowest`` takes the lowest class index."""

_MAX_CELLS = 1 << 24
"""Largest (keys x candidates) count table built at once (int64: 128 MiB)."""


@dataclass
class Votes:
    """Per-key result: ``label`` (K,) uint8, ``votes`` (K,) int64 counted votes, ``winner_votes`` (K,) int64."""

    label: np.ndarray
    votes: np.ndarray
    winner_votes: np.ndarray

    @property
    def agreement(self) -> np.ndarray:
        """Winner's share of the votes (K,) float32; 0 where there are no votes."""
        out = np.zeros(self.votes.shape, dtype=np.float32)
        has = self.votes > 0
        out[has] = self.winner_votes[has] / self.votes[has]
        return out

    @property
    def decided(self) -> np.ndarray:
        """(K,) bool: the key had at least one counted vote (its label may be IGNORE under ``compete``)."""
        return self.votes > 0


def _check_policy(ignore: str) -> None:
    if ignore not in IGNORE_POLICIES:
        raise ValueError(f"ignore policy must be one of {IGNORE_POLICIES}, got {ignore!r}")


def _columns(labels: np.ndarray, n_classes: int | None, ignore: str) -> tuple[np.ndarray | None, np.ndarray, int, int]:
    """Counted votes: (mask over votes, or None for all; candidate column per counted vote;
    candidates; classes). IGNORE's column is ``classes`` (counted only under ``compete``)."""
    _check_policy(ignore)
    is_ignore = labels == IGNORE
    any_ignore = bool(is_ignore.any())
    if any_ignore:
        voted = labels[~is_ignore]
        top = int(voted.max()) + 1 if voted.size else 0
    else:
        top = int(labels.max()) + 1 if labels.size else 0
    if n_classes is None:
        n_classes = top
    elif top > n_classes:
        raise ValueError(f"label {top - 1} is not a class of {n_classes} (nor IGNORE)")
    n_cand = n_classes + (1 if ignore == "compete" else 0)
    if not any_ignore:
        return None, labels.astype(np.int64), n_cand, n_classes
    if ignore == "compete":
        return None, np.where(is_ignore, n_classes, labels.astype(np.int64)), n_cand, n_classes
    keep = ~is_ignore
    return keep, labels[keep].astype(np.int64), n_cand, n_classes


def majority(
    keys: np.ndarray,
    labels: np.ndarray,
    n_keys: int,
    rank: np.ndarray | None = None,
    ignore: str = "abstain",
    n_classes: int | None = None,
) -> Votes:
    """Majority label per key (module rule) from votes ``keys`` (N,) int in ``[0, n_keys)`` and
    ``labels`` (N,) uint8; ``rank`` (N,) float optional; ``n_classes`` defaults to the largest
    voted class + 1. Returns :class:`Votes` of length ``n_keys``."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if keys.shape != labels.shape:
        raise ValueError(f"{keys.size} keys but {labels.size} labels")
    keep, column, n_cand, n_cls = _columns(labels, n_classes, ignore)
    if keep is not None:
        keys = keys[keep]
    if rank is not None:
        rank = np.asarray(rank, dtype=np.float64).reshape(-1)
        rank = rank if keep is None else rank[keep]
    out_label = np.full(n_keys, IGNORE, dtype=np.uint8)
    out_votes = np.zeros(n_keys, dtype=np.int64)
    out_win = np.zeros(n_keys, dtype=np.int64)
    if keys.size == 0 or n_cand == 0:
        return Votes(out_label, out_votes, out_win)
    step = max(1, _MAX_CELLS // n_cand)
    for lo in range(0, n_keys, step):
        hi = min(n_keys, lo + step)
        whole = lo == 0 and hi == n_keys
        sel = slice(None) if whole else (keys >= lo) & (keys < hi)
        k, c = (keys, column) if whole else (keys[sel] - lo, column[sel])
        table = np.bincount(k * n_cand + c, minlength=(hi - lo) * n_cand).reshape(hi - lo, n_cand)
        best = np.argmax(table, axis=1)  # first maximum: the lowest column
        win = table[np.arange(hi - lo), best]
        if rank is not None:
            best = _break_ties(table, win, k, c, rank[sel], best)
        has = win > 0
        out_label[lo:hi][has] = np.where(best[has] == n_cls, IGNORE, best[has]).astype(np.uint8)
        out_win[lo:hi] = win
        out_votes[lo:hi] = table.sum(axis=1)
    return Votes(out_label, out_votes, out_win)


def _break_ties(table: np.ndarray, win: np.ndarray, key: np.ndarray, column: np.ndarray, rank: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``best`` with ties between top columns of ``table`` (K, C) given to the column of the
    lowest-ranked vote among them (equal ranks: the lowest column)."""
    tied = (table == win[:, None]).sum(axis=1) > 1
    cand = tied[key] & (table[key, column] == win[key])  # votes for a top column of a tied key
    if not cand.any():
        return best
    k, c, r = key[cand], column[cand], rank[cand]
    order = np.lexsort((c, r, k))  # per key: smallest rank first, then lowest column
    k, c = k[order], c[order]
    first = np.ones(k.size, dtype=bool)
    first[1:] = k[1:] != k[:-1]
    out = best.copy()
    out[k[first]] = c[first]
    return out


def segment_majority(labels: np.ndarray, segments: np.ndarray, ignore: str = "abstain", n_classes: int | None = None) -> np.ndarray:
    """Every pixel of a segment takes the segment's majority label.

    ``labels`` (...) uint8, ``segments`` (...) int segment ids (-1 = none). Pixels in no segment,
    and segments without a counted vote, keep their label. Returns a new (...) uint8 array.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    seg = np.asarray(segments).astype(np.int64).reshape(-1)
    lab = labels.reshape(-1)
    inside = seg >= 0
    out = lab.copy()
    if not inside.any():
        return out.reshape(labels.shape)
    uniq, inv = np.unique(seg[inside], return_inverse=True)
    votes = majority(inv, lab[inside], uniq.size, ignore=ignore, n_classes=n_classes)
    take = votes.decided[inv]
    out[np.flatnonzero(inside)[take]] = votes.label[inv[take]]
    return out.reshape(labels.shape)


def mask_majority(labels: np.ndarray, masks: np.ndarray, ignore: str = "abstain") -> Votes:
    """Majority label of each (possibly overlapping) mask over all of its pixels.

    ``labels`` (H, W) uint8, ``masks`` (M, H, W) bool → :class:`Votes` of length M.
    """
    labels = np.asarray(labels)
    masks = np.asarray(masks)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be a (H, W) uint8 map, got {labels.dtype} {labels.shape}")
    if masks.dtype != np.bool_ or masks.ndim != 3 or masks.shape[1:] != labels.shape:
        raise ValueError(f"masks must be (M, {labels.shape[0]}, {labels.shape[1]}) bool, got {masks.dtype} {masks.shape}")
    mask_id, pixel = np.nonzero(masks.reshape(masks.shape[0], labels.size))
    return majority(mask_id, labels.reshape(-1)[pixel], masks.shape[0], ignore=ignore)


# --------------------------------------------------------------------------------------
# torch versions (the trainer's online targets): the same rule on tensors
# --------------------------------------------------------------------------------------


def majority_torch(keys, labels, n_keys: int, n_classes: int, rank=None, ignore: str = "abstain"):
    """:func:`majority` on tensors: ``keys`` (N,) int64, ``labels`` (N,) int (255 = IGNORE),
    ``rank`` (N,) float or None → (label (K,) int64, votes (K,) int64, winner_votes (K,) int64)."""
    import torch

    _check_policy(ignore)
    labels = labels.reshape(-1).long()
    keys = keys.reshape(-1).long()
    is_ignore = labels == IGNORE
    if bool(((labels >= n_classes) & ~is_ignore).any()):
        raise ValueError(f"a label is not a class of {n_classes} (nor IGNORE)")
    keep = torch.ones_like(is_ignore) if ignore == "compete" else ~is_ignore
    n_cand = n_classes + (1 if ignore == "compete" else 0)
    column = torch.where(is_ignore, torch.full_like(labels, n_classes), labels)[keep]
    keys = keys[keep]
    table = torch.bincount(keys * n_cand + column, minlength=n_keys * n_cand).reshape(n_keys, n_cand)
    win = table.max(dim=1).values if n_keys else torch.zeros(0, dtype=torch.int64)
    best = table.eq(win[:, None]).long().argmax(dim=1) if n_keys else win.clone()  # the first maximum: the lowest column
    if rank is not None and keys.numel():
        best = _break_ties_torch(table, win, keys, column, rank.reshape(-1)[keep], best)
    label = torch.where(best == n_classes, torch.full_like(best, IGNORE), best)
    label = torch.where(win > 0, label, torch.full_like(label, IGNORE))
    return label, torch.bincount(keys, minlength=n_keys), win


def _break_ties_torch(table, win, key, column, rank, best):
    import torch

    tied = table.eq(win[:, None]).sum(dim=1) > 1
    cand = tied[key] & table[key, column].eq(win[key])
    if not bool(cand.any()):
        return best
    k, c, r = key[cand], column[cand], rank[cand].double()
    for which in (1, 2, 0):  # stable sorts, least significant first: per key, smallest rank, lowest column
        order = torch.sort((k, c, r)[which], stable=True).indices
        k, c, r = k[order], c[order], r[order]
    first = torch.ones_like(k, dtype=torch.bool)
    first[1:] = k[1:] != k[:-1]
    out = best.clone()
    out[k[first]] = c[first]
    return out


def segment_majority_torch(labels, segments, n_classes: int, ignore: str = "abstain"):
    """:func:`segment_majority` on tensors: ``labels`` (...) int (255 = IGNORE), ``segments`` (...)
    int64 (-1 = none) → (...) int64."""
    import torch

    lab = labels.reshape(-1).long()
    seg = segments.reshape(-1)
    inside = seg >= 0
    if not bool(inside.any()):
        return labels.long().clone()
    uniq, inv = torch.unique(seg[inside], return_inverse=True)
    winner, votes, _ = majority_torch(inv, lab[inside], uniq.numel(), n_classes, ignore=ignore)
    out = lab.clone()
    idx = torch.nonzero(inside).reshape(-1)
    take = votes[inv] > 0
    out[idx[take]] = winner[inv[take]]
    return out.reshape(labels.shape)
