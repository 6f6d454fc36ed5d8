"""Max voting of CLIP labels inside SAM masks: the pure, vectorised core of the refine stage.

Everything here works on one view at label resolution and knows nothing about stores.

* A mask's *votes* are the CLIP labels of all of its pixels (its full extent, including the
  pixels of smaller masks nested inside it), counted with one ``bincount`` over
  ``(mask, label)`` pairs. How :data:`~pipeline.vocab.IGNORE` pixels count is the ``ignore``
  policy: ``abstain`` (default) — they cast no vote; ``compete`` — IGNORE is a candidate like any
  class (a mask that is mostly "ceiling", a prompt-only class mapped to ignore, stays ignore).
* A mask's *winner* is its most voted label; ties go to the lowest class index. A mask with no
  votes (every pixel IGNORE under ``abstain``) has no winner and paints nothing.
* Overlapping masks are resolved by painting winners in a *paint order* (later masks overwrite
  earlier ones): the nesting order decides whether the smallest covering mask (part level) or
  the largest (object level) gives a pixel its label. Pixels covered by no painting mask keep
  their CLIP label.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.vocab import IGNORE

IGNORE_POLICIES: tuple[str, ...] = ("abstain", "compete")
"""How IGNORE pixels vote: ``abstain`` (no vote, the default) or ``compete`` (IGNORE is a candidate)."""

_BINS = 256  # uint8 labels: one bin per possible value


def _check(labels: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    masks = np.asarray(masks)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be a (H, W) uint8 map, got {labels.dtype} {labels.shape}")
    if masks.dtype != np.bool_ or masks.ndim != 3 or masks.shape[1:] != labels.shape:
        raise ValueError(f"masks must be (M, {labels.shape[0]}, {labels.shape[1]}) bool, got {masks.dtype} {masks.shape}")
    return labels, masks


def mask_votes(labels: np.ndarray, masks: np.ndarray, ignore: str = "abstain") -> np.ndarray:
    """Label histogram of every mask.

    ``labels`` (H, W) uint8 class indices (IGNORE = 255), ``masks`` (M, H, W) bool.
    Returns votes (M, 256) int64: ``votes[m, c]`` = pixels of mask ``m`` labelled ``c``; the
    IGNORE column is zero under the ``abstain`` policy.
    """
    if ignore not in IGNORE_POLICIES:
        raise ValueError(f"ignore policy must be one of {IGNORE_POLICIES}, got {ignore!r}")
    labels, masks = _check(labels, masks)
    n_masks = masks.shape[0]
    mask_id, pixel = np.nonzero(masks.reshape(n_masks, labels.size))
    keys = mask_id * _BINS + labels.reshape(-1)[pixel]
    votes = np.bincount(keys, minlength=n_masks * _BINS).reshape(n_masks, _BINS)
    if ignore == "abstain":
        votes[:, IGNORE] = 0
    return votes


def mask_winners(votes: np.ndarray) -> np.ndarray:
    """Winning label (M,) uint8 of each mask from ``votes`` (M, 256); IGNORE where no votes.

    Ties go to the lowest class index (``argmax`` takes the first maximum). Under the
    ``compete`` policy a mask whose winner is IGNORE also returns IGNORE; :func:`paint` tells the
    two apart with ``has_votes``.
    """
    votes = np.asarray(votes)
    winners = np.argmax(votes, axis=1).astype(np.uint8)
    winners[votes.sum(axis=1) == 0] = IGNORE
    return winners


def paint(labels: np.ndarray, masks: np.ndarray, winners: np.ndarray, has_votes: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Paint mask winners over ``labels`` (H, W) uint8 in ``order`` (mask indices, later overwrite).

    Masks with ``has_votes[m]`` False are skipped, so their pixels fall through to the next
    covering mask, or keep their CLIP label. Returns a new (H, W) uint8 map.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    for m in np.asarray(order, dtype=np.int64):
        if has_votes[m]:
            out[masks[m]] = winners[m]
    return out


def refine_view(
    labels: np.ndarray, masks: np.ndarray, orders: Sequence[Sequence[int]], ignore: str = "abstain"
) -> list[np.ndarray]:
    """Refine one view's CLIP labels with its SAM masks, once per paint order.

    ``labels`` (H, W) uint8, ``masks`` (M, H, W) bool, ``orders``: one or more paint orders
    (each a permutation of ``range(M)``, later masks overwrite earlier ones). The votes are
    counted once and shared. Returns one refined (H, W) uint8 map per order.
    """
    labels, masks = _check(labels, masks)
    votes = mask_votes(labels, masks, ignore)
    winners = mask_winners(votes)
    has_votes = votes.sum(axis=1) > 0
    out = []
    for order in orders:
        order = np.asarray(order, dtype=np.int64)
        if sorted(order.tolist()) != list(range(masks.shape[0])):
            raise ValueError(f"a paint order must be a permutation of range({masks.shape[0]})")
        out.append(paint(labels, masks, winners, has_votes, order))
    return out
