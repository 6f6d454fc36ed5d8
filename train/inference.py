"""Running trained networks on whole samples: every view, every point, no augmentation."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.images import resize_image
from train.data.steps import normalise_image, point_features


@torch.inference_mode()
def predict_views(
    net2d: torch.nn.Module,
    images: np.ndarray,
    input_size: tuple[int, int],
    output_size: tuple[int, int] | None = None,
    device: torch.device = torch.device("cpu"),
    batch: int = 4,
) -> np.ndarray:
    """Class index per pixel of whole views.

    ``images`` (V, H, W, 3) uint8 are resized to ``input_size`` (W, H) (the label resolution the
    network was trained at); logits are bilinearly resized to ``output_size`` (default: the
    input size) before the argmax. Returns (V, H_out, W_out) uint8.
    """
    out_w, out_h = output_size or input_size
    preds = np.zeros((images.shape[0], out_h, out_w), np.uint8)
    for start in range(0, images.shape[0], batch):
        chunk = np.stack([normalise_image(resize_image(img, input_size)) for img in images[start : start + batch]])
        logits, _ = net2d(torch.from_numpy(chunk).to(device))
        if (logits.shape[-1], logits.shape[-2]) != (out_w, out_h):
            logits = F.interpolate(logits.float(), size=(out_h, out_w), mode="bilinear", align_corners=False)
        preds[start : start + batch] = logits.argmax(1).cpu().numpy().astype(np.uint8)
    return preds


@torch.inference_mode()
def predict_points(
    net3d: torch.nn.Module,
    xyz: np.ndarray,
    rgb: np.ndarray,
    input_features: Sequence[str],
    voxel_size: float,
    device: torch.device = torch.device("cpu"),
    intensity: np.ndarray | None = None,
) -> np.ndarray:
    """Class index of every point (P,) uint8: voxelise (mean features per voxel), run, map back.
    ``rgb`` (P, 3) uint8, ``intensity`` (P,) float32 or None (lidar datasets)."""
    from train.sparse import pool_features, voxelize

    if xyz.shape[0] == 0:
        return np.zeros(0, np.uint8)
    pts = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32)).to(device)
    feats = torch.from_numpy(point_features(xyz, rgb, input_features, intensity)).to(device)
    offsets = torch.tensor([0, xyz.shape[0]], dtype=torch.int64, device=device)
    vox = voxelize(pts, offsets, voxel_size)
    logits, _ = net3d(pool_features(feats, vox, "mean"), vox.coords)
    return vox.to_points(logits.argmax(1)).cpu().numpy().astype(np.uint8)

