"""Building the two networks from the config, and the module that runs both on a batch."""

from __future__ import annotations

import torch
from torch import nn

from train.config import Net2DConfig, Net3DConfig
from train.data.batch import Batch


def build_2d(cfg: Net2DConfig, num_classes: int, latent_dim: int) -> nn.Module:
    """DeepLabV3 + projection head (:class:`train.models.deeplab.DeepLab2D`)."""
    from train.models.deeplab import DeepLab2D

    return DeepLab2D(num_classes, latent_dim, cfg.backbone, cfg.backbone_weights, cfg.head_hidden)


def build_3d(cfg: Net3DConfig, num_classes: int, latent_dim: int) -> nn.Module:
    """MinkUNet34 + projection head on the configured sparse backend (``train.models.minkunet``)."""
    from train.models.minkunet import MINKUNET34C, MINKUNET_SMALL, MINKUNET_TINY, MinkUNet34

    layout = {"full": MINKUNET34C, "small": MINKUNET_SMALL, "tiny": MINKUNET_TINY}[cfg.size]
    return MinkUNet34(
        cfg.in_channels,
        num_classes,
        latent_dim=latent_dim,
        backend=cfg.backend,
        config=layout,
        head_hidden=cfg.head_hidden,
    )


class CNSModel(nn.Module):
    """Both networks; ``forward`` runs what the losses need on a :class:`train.data.batch.Batch`.

    Returns a dict: ``logits2d`` (V, K, h, w), ``latent2d`` (V, D, h/8, w/8), ``logits3d``
    (N, K) per point, ``latent3d`` (N, D) per point (voxel outputs mapped back through the
    voxelisation's inverse). ``net3d`` None: image-only data, the 3D outputs are left out.
    """

    def __init__(self, net2d: nn.Module, net3d: nn.Module | None, voxel_size: float) -> None:
        super().__init__()
        self.net2d = net2d
        self.net3d = net3d
        self.voxel_size = voxel_size

    def forward_3d(self, xyz: torch.Tensor, feats: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (N, 3), features (N, C), CSR offsets (B+1,) → per-point (logits (N, K), latent (N, D))."""
        from train.sparse import pool_features, voxelize

        vox = voxelize(xyz, offsets, self.voxel_size)
        vfeats = pool_features(feats, vox, "mean")
        logits, latent = self.net3d(vfeats, vox.coords)
        return vox.to_points(logits), vox.to_points(latent)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Both networks on a batch: its crops (2D) and its points with CSR ``point_offsets`` (3D)."""
        logits2d, latent2d = self.net2d(batch.images)
        if self.net3d is None:
            return {"logits2d": logits2d, "latent2d": latent2d}
        logits3d, latent3d = self.forward_3d(batch.xyz, batch.feats, batch.point_offsets)
        return {"logits2d": logits2d, "latent2d": latent2d, "logits3d": logits3d, "latent3d": latent3d}
