"""MaskCLIP dense features from an open_clip ViT image tower.

The tower runs as usual up to its last transformer block. In the last block every patch token
skips query-key attention and keeps only its own value path::

    y = ln_1(x);  v = y W_v^T + b_v;  a = out_proj(v)        # no softmax(q k^T), no mixing
    x = x + ls_1(a);  x = x + ls_2(mlp(ln_2(x)))              # residuals and MLP as usual
    f = ln_post(x) @ proj                                      # joint image-text space

The class token is dropped (it cannot influence patch tokens in the last block, so it is
removed before it). Features are L2-normalised per location in float32. For inputs other than
the native size the positional embedding's patch grid is resized bicubically
(``align_corners=False``); the class token's embedding is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import UserError


@dataclass
class DenseOutput:
    """MaskCLIP output for a batch of B images on a gh x gw patch grid.

    ``features``: (B, D, gh, gw) float32, unit L2 norm over D per location.
    ``keys``: (B, gh * gw, width) float32 last-block keys (for key smoothing), or None.
    """

    features: torch.Tensor
    keys: torch.Tensor | None


def resize_positional_embedding(pos: torch.Tensor, native_grid: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """Resize a ViT positional embedding (1 + gh0*gw0, C) to a (gh, gw) patch grid.

    Row 0 (class token) is kept; the patch rows, laid out row-major as (gh0, gw0), are
    resized with bicubic interpolation (``align_corners=False``) in float32. Returns
    (1 + gh*gw, C) in ``pos``'s dtype; ``pos`` itself when the grid is unchanged.
    """
    if tuple(grid) == tuple(native_grid):
        return pos
    gh0, gw0 = native_grid
    cls, patches = pos[:1], pos[1:]
    if patches.shape[0] != gh0 * gw0:
        raise ValueError(f"positional embedding has {patches.shape[0]} patch rows, expected {gh0}x{gw0}")
    grid_map = patches.float().reshape(1, gh0, gw0, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(grid_map, size=tuple(grid), mode="bicubic", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(pos.dtype)
    return torch.cat([cls, resized], dim=0)


class MaskClipEncoder(nn.Module):
    """Dense MaskCLIP features from an open_clip ``VisionTransformer`` (weights shared, frozen).

    ``forward(images)`` takes normalised images (B, 3, H, W) with H, W multiples of the patch
    size and returns a :class:`DenseOutput` on the (H / patch, W / patch) grid.
    """

    def __init__(self, visual: Any) -> None:
        super().__init__()
        from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

        if not isinstance(visual, VisionTransformer):
            raise UserError(f"MaskCLIP needs open_clip's VisionTransformer image tower, got {type(visual).__name__}")
        if visual.attn_pool is not None or visual.proj is None:
            raise UserError("MaskCLIP needs a ViT with a plain projection head (no attentional pooling)")
        last = visual.transformer.resblocks[-1]
        if not isinstance(last, ResidualAttentionBlock) or not last.attn._qkv_same_embed_dim:
            raise UserError(
                "MaskCLIP needs open_clip's default ResidualAttentionBlock (nn.MultiheadAttention with a fused "
                f"in-projection); this model uses {type(last).__name__}"
            )
        self.visual = visual
        self.patch_size: tuple[int, int] = tuple(visual.patch_size)  # (ph, pw)
        self.native_grid: tuple[int, int] = tuple(visual.grid_size)  # (gh0, gw0)
        self._pos_cache: dict[tuple, torch.Tensor] = {}

    def positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """Positional embedding (1 + gh*gw, width) for a (gh, gw) patch grid (cached)."""
        pos = self.visual.positional_embedding
        key = (tuple(grid), pos.device, pos.dtype, pos._version)
        if key not in self._pos_cache:
            self._pos_cache = {key: resize_positional_embedding(pos.detach(), self.native_grid, grid)}
        return self._pos_cache[key]

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (gh, gw) of an input image (height, width); both must be multiples of the patch."""
        ph, pw = self.patch_size
        if height % ph or width % pw:
            raise UserError(f"CLIP input size {width}x{height} is not a multiple of the patch size {pw}x{ph}")
        return height // ph, width // pw

    def forward(self, images: torch.Tensor, return_keys: bool = False) -> DenseOutput:
        visual = self.visual
        batch = images.shape[0]
        grid = self.grid_for(images.shape[-2], images.shape[-1])
        x = visual.conv1(images)  # (B, width, gh, gw)
        x = x.flatten(2).transpose(1, 2)  # (B, gh*gw, width), row-major patches
        cls = visual.class_embedding.to(x.dtype).expand(batch, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding(grid).to(x.dtype)
        x = visual.ln_pre(x)
        transformer = visual.transformer
        if not transformer.batch_first:
            x = x.transpose(0, 1)
        for block in transformer.resblocks[:-1]:
            x = block(x)
        if not transformer.batch_first:
            x = x.transpose(0, 1)
        x = x[:, 1:]  # drop the class token: nothing in the last block lets it reach the patches
        last = transformer.resblocks[-1]
        width = x.shape[-1]
        y = last.ln_1(x)
        weight, bias = last.attn.in_proj_weight, last.attn.in_proj_bias
        w_k, w_v = weight[width : 2 * width], weight[2 * width :]
        b_k = bias[width : 2 * width] if bias is not None else None
        b_v = bias[2 * width :] if bias is not None else None
        value = F.linear(y, w_v, b_v)
        x = x + last.ls_1(last.attn.out_proj(value))
        x = x + last.ls_2(last.mlp(last.ln_2(x)))
        x = visual.ln_post(x)
        feats = x @ visual.proj  # (B, gh*gw, D)
        with torch.autocast(device_type=images.device.type, enabled=False):
            feats = F.normalize(feats.float(), dim=-1)
            keys = F.linear(y.float(), w_k.float(), None if b_k is None else b_k.float()) if return_keys else None
        features = feats.transpose(1, 2).reshape(batch, -1, grid[0], grid[1])
        return DenseOutput(features=features, keys=keys)
