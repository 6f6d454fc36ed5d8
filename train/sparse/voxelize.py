"""Voxelisation of a batch of point clouds (concatenated points + offsets) and the way back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from train.sparse.coords import pack_keys, unpack_keys


@dataclass(frozen=True)
class Voxelization:
    """Unique voxels of a point batch and the maps between points and voxels.

    Attributes:
        coords: (M, 4) int32 ``[batch, x, y, z]`` voxel coordinates, sorted by (batch, x, y, z).
        inverse: (N,) int64 voxel row of every point (``values[inverse]`` maps voxel values back).
        counts: (M,) int64 number of points in each voxel.
        first_point: (M,) int64 lowest point index inside each voxel.
        offsets: (B+1,) int64 voxel offsets per sample (voxels of sample b are rows
            ``offsets[b]:offsets[b+1]``).
        origin: (B, 3) int64 voxel coordinate that was subtracted per sample (zeros when not shifted).
    """

    coords: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor
    first_point: torch.Tensor
    offsets: torch.Tensor
    origin: torch.Tensor

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    def to_points(self, values: torch.Tensor) -> torch.Tensor:
        """Per-voxel values (M, ...) -> per-point values (N, ...)."""
        return values.index_select(0, self.inverse)


def batch_index(offsets: torch.Tensor) -> torch.Tensor:
    """Sample index of every point: (B+1,) int64 offsets -> (offsets[-1],) int64."""
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"offsets must be a 1-D (B+1,) tensor, got shape {tuple(offsets.shape)}")
    lengths = offsets[1:] - offsets[:-1]
    if int(offsets[0]) != 0 or bool((lengths < 0).any()):
        raise ValueError("offsets must start at 0 and be non-decreasing")
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=offsets.device), lengths)


def voxelize(
    points: torch.Tensor,
    offsets: torch.Tensor,
    voxel_size: float,
    shift_to_origin: bool = True,
) -> Voxelization:
    """Quantise points to voxels and deduplicate.

    Args:
        points: (N, 3) float xyz in metres, samples concatenated.
        offsets: (B+1,) int64 point offsets per sample, ``offsets[0] == 0``, ``offsets[-1] == N``.
        voxel_size: voxel edge length in metres.
        shift_to_origin: subtract each sample's minimum voxel coordinate so coordinates start at 0
            (keeps georeferenced clouds inside the packable range; convolutions are translation
            equivariant up to where the stride-2 grids fall).

    Returns:
        The :class:`Voxelization`; voxel ``v`` contains points with ``floor(p / voxel_size)`` equal
        to ``coords[v, 1:] + origin[batch]``.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got shape {tuple(points.shape)}")
    if not voxel_size > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_size}")
    offsets = offsets.to(device=points.device, dtype=torch.int64)
    if int(offsets[-1]) != points.shape[0]:
        raise ValueError(f"offsets end at {int(offsets[-1])} but there are {points.shape[0]} points")
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points contain NaN or infinite coordinates")
    batch = batch_index(offsets)
    num_samples = offsets.numel() - 1
    grid = torch.floor(points.to(torch.float64) / voxel_size).to(torch.int64)
    origin = torch.zeros(num_samples, 3, dtype=torch.int64, device=points.device)
    if shift_to_origin and grid.shape[0]:
        big = torch.iinfo(torch.int64).max
        origin = torch.full_like(origin, big).scatter_reduce_(
            0, batch[:, None].expand(-1, 3), grid, reduce="amin", include_self=True
        )
        origin = torch.where(origin == big, torch.zeros_like(origin), origin)
        grid = grid - origin.index_select(0, batch)
    keys = pack_keys(torch.cat([batch[:, None], grid], dim=1))
    uniq, inverse, counts = torch.unique(keys, sorted=True, return_inverse=True, return_counts=True)
    n = points.shape[0]
    first = torch.full((uniq.numel(),), n, dtype=torch.int64, device=points.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=points.device), reduce="amin")
    coords = unpack_keys(uniq)
    per_sample = torch.bincount(coords[:, 0].to(torch.int64), minlength=num_samples)
    voxel_offsets = torch.zeros(num_samples + 1, dtype=torch.int64, device=points.device)
    voxel_offsets[1:] = torch.cumsum(per_sample, 0)
    return Voxelization(coords, inverse, counts, first, voxel_offsets, origin)


def pool_features(
    features: torch.Tensor, vox: Voxelization, mode: Literal["mean", "first"] = "mean"
) -> torch.Tensor:
    """Per-point features (N, C) -> per-voxel features (M, C).

    ``mean`` averages the points of a voxel with a sort-based segment reduction (deterministic on
    every device, no atomics); ``first`` takes the lowest-index point of each voxel.
    """
    if features.shape[0] != vox.inverse.shape[0]:
        raise ValueError(f"{features.shape[0]} feature rows for {vox.inverse.shape[0]} points")
    if mode == "first":
        return features.index_select(0, vox.first_point)
    if mode == "mean":
        order = torch.sort(vox.inverse, stable=True).indices
        return torch.segment_reduce(features.index_select(0, order), "mean", lengths=vox.counts, axis=0)
    raise ValueError(f"unknown pooling mode {mode!r} (expected 'mean' or 'first')")
