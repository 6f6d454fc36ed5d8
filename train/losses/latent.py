"""Latent-space consistency: 1 - cosine between projected network features and SAM's.

2D: each sampled pixel's projected feature (bilinearly sampled from the stride-8 map, which is
what upsampling the map to the crop would give) against the SAM feature of the cell that the
pixel's *original* (pre-crop) coordinates fall in (:func:`pipeline.camera.sam_cell_index`,
via the batch's ``cells``). 3D: each voxel's projected feature against the SAM feature at a
random pixel it pairs with in this step's views (the batch's ``latent3d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos over rows of (M, D) tensors; 0 (with a graph) when M = 0."""
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    return (1.0 - F.cosine_similarity(pred.float(), target.float(), dim=1, eps=1e-8)).mean()


def sample_pixels(valid: torch.Tensor, per_view: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``per_view`` random valid pixels per view (0 = all).

    ``valid`` (V, h, w) bool → (view (S,), flat pixel (S,)) int64.
    """
    n_views, h, w = valid.shape
    flat = valid.reshape(n_views, -1)
    if per_view <= 0 or per_view >= h * w:
        view, pix = torch.nonzero(flat, as_tuple=True)
        return view, pix
    score = torch.rand(flat.shape, generator=generator).to(valid.device)
    score = torch.where(flat, score, torch.full_like(score, -1.0))
    top = torch.topk(score, per_view, dim=1)
    keep = top.values >= 0
    view = torch.arange(n_views, device=valid.device)[:, None].expand_as(top.indices)
    return view[keep], top.indices[keep]


def latent_loss_2d(
    latent_map: torch.Tensor,
    cells: torch.Tensor,
    features: torch.Tensor,
    per_view: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """2D latent loss.

    Args:
        latent_map: (V, D, h', w') projected features at the network's output stride.
        cells: (V, h, w) int64 row of ``features`` per crop pixel (-1 = padding).
        features: (F, D) SAM features.
        per_view: pixels sampled per view (0 = all valid pixels).
    """
    n_views, h, w = cells.shape
    latent_map = latent_map.float()  # bf16 under autocast: sample in float32 (bf16 grid coordinates are off by pixels)
    view, pix = sample_pixels(cells >= 0, per_view, generator)
    if view.numel() == 0:
        return latent_map.sum() * 0.0
    x = (pix % w).float()
    y = torch.div(pix, w, rounding_mode="floor").float()
    grid = torch.stack([(x + 0.5) / w * 2 - 1, (y + 0.5) / h * 2 - 1], dim=-1)  # (S, 2)
    # one grid row per view: pad the per-view sample lists to a rectangle
    counts = torch.bincount(view, minlength=n_views)
    width = int(counts.max())
    order = torch.argsort(view, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(view.numel(), device=view.device) - starts[view[order]]
    padded = torch.zeros(n_views, width, 2, device=latent_map.device, dtype=latent_map.dtype)
    padded[view[order], slot] = grid[order].to(latent_map.dtype)
    sampled = F.grid_sample(latent_map, padded[:, None], mode="bilinear", padding_mode="border", align_corners=False)
    pred = sampled[:, :, 0].permute(0, 2, 1)[view[order], slot]  # (S, D)
    target = features[cells.reshape(n_views, -1)[view[order], pix[order]]]
    return cosine_loss(pred, target)


def latent_loss_3d(latent: torch.Tensor, index: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """3D latent loss: ``latent`` (N, D) against ``features[index]`` where ``index`` (N,) >= 0."""
    rows = torch.nonzero(index >= 0, as_tuple=True)[0]
    return cosine_loss(latent[rows], features[index[rows]])
