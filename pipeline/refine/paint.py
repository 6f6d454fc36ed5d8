"""Refinement of one view: each SAM mask's majority CLIP label, painted in a nesting order.

Everything here works on one view at label resolution and knows nothing about stores.

* A mask's votes are the CLIP labels of all of its pixels (its full extent, including the
  pixels of smaller masks nested inside it); the winner follows the one voting rule
  (:func:`pipeline.voting.mask_majority`: ``ignore`` policy, ties to the lowest class). A mask
  with no counted vote (every pixel IGNORE under ``abstain``) paints nothing.
* Overlapping masks are resolved by painting winners in a *paint order* (later masks overwrite
  earlier ones): the nesting order decides whether the smallest covering mask (part level) or
  the largest (object level) gives a pixel its label. Pixels covered by no painting mask keep
  their CLIP label.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.voting import mask_majority


def paint(labels: np.ndarray, masks: np.ndarray, winners: np.ndarray, decided: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Paint mask ``winners`` (M,) uint8 over ``labels`` (H, W) uint8 in ``order`` (mask indices,
    later overwrite). Masks with ``decided[m]`` False are skipped, so their pixels fall through to
    the next covering mask, or keep their CLIP label. Returns a new (H, W) uint8 map."""
    out = np.array(labels, dtype=np.uint8, copy=True)
    for m in np.asarray(order, dtype=np.int64):
        if decided[m]:
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
    votes = mask_majority(labels, masks, ignore)
    out = []
    for order in orders:
        order = np.asarray(order, dtype=np.int64)
        if sorted(order.tolist()) != list(range(masks.shape[0])):
            raise ValueError(f"a paint order must be a permutation of range({masks.shape[0]})")
        out.append(paint(labels, masks, votes.label, votes.decided, order))
    return out
