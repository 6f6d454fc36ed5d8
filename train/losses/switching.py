"""Prediction-consistency switching: drawing each element's cross-entropy target.

Every label *origin* (``pseudo``: the pipeline's refined labels; ``pred2d`` / ``pred3d``: the 2D
/ 3D network's SAM-refined predictions) has a realisation in each modality. A pixel's own
realisation is the origin's map at that pixel; its *paired* realisation is the origin's point
array at a random point the pixel pairs with. A point's own realisation is the origin's point
array; its paired realisation is the origin's map at a random pixel the point pairs with.

The config gives weights per *source* from a network's point of view (``pseudo``, ``self``,
``cross``); :func:`origin_weights` turns them into weights per origin. For each element the
target is drawn among the available (non-ignore) realisations: an origin's weight is split
equally between its available own and paired realisations (paired ones only with switching
on), and the element takes realisation r with probability weight(r) / total. An element with
no available realisation is ignored (255).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from pipeline.vocab import IGNORE

SOURCE_ORIGIN: dict[str, dict[str, str]] = {
    "2d": {"pseudo": "pseudo", "self": "pred2d", "cross": "pred3d"},
    "3d": {"pseudo": "pseudo", "self": "pred3d", "cross": "pred2d"},
}
"""Network → source → origin."""


def origin_weights(sources: Mapping[str, float], net: str, origins: Sequence[str]) -> torch.Tensor:
    """Weights (O,) float32 of ``origins`` for network ``net`` (``2d`` / ``3d``)."""
    weights = {origin: 0.0 for origin in origins}
    for source, origin in SOURCE_ORIGIN[net].items():
        if origin in weights:
            weights[origin] += float(sources.get(source, 0.0))
    return torch.tensor([weights[o] for o in origins], dtype=torch.float32)


def draw_targets(
    own: torch.Tensor,
    paired: torch.Tensor | None,
    weights: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one target per element.

    Args:
        own: (O, ...) uint8 own-modality realisations per origin (255 = unavailable).
        paired: (O, ...) uint8 paired realisations, or None (no switching).
        weights: (O,) float origin weights (0 disables an origin).
        generator: CPU generator for the uniform draws (reproducible per step).

    Returns:
        (...) int64 class index per element, 255 where nothing is available.
    """
    shape = own.shape[1:]
    n_origins = own.shape[0]
    own = own.reshape(n_origins, -1)
    cand = own if paired is None else torch.cat([own, paired.reshape(n_origins, -1)], 0)
    avail = (cand != IGNORE).float()
    w = weights.to(own.device, torch.float32)
    w = w.repeat(cand.shape[0] // n_origins)[:, None] * avail
    per_origin = avail.reshape(-1, n_origins, avail.shape[1]).sum(0)  # (O, M)
    w = w / per_origin.clamp(min=1).repeat(cand.shape[0] // n_origins, 1)
    cum = torch.cumsum(w, 0)
    total = cum[-1]
    u = torch.rand(total.shape, generator=generator).to(own.device) * total
    pick = (cum <= u[None]).sum(0).clamp(max=cand.shape[0] - 1)
    out = cand.gather(0, pick[None]).squeeze(0).long()
    out[total <= 0] = IGNORE
    return out.reshape(shape)
