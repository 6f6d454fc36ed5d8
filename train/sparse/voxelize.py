"""Voxelisation of a batch of point clouds (concatenated points + offsets) and the way back.

:func:`voxel_keys` is the project's one definition of a point's voxel (floor of the
coordinates over the voxel size, shifted to the sample's origin, packed by
:func:`train.sparse.coords.pack_keys` with its range checked): the network's voxelisation
(:func:`voxelize`), the data pipeline's grid sampling (:func:`train.data.augment.grid_sample`)
and the voxelisation oracle (``bench/voxel_oracle.py``) all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from train.sparse.coords import COORD_LIMIT, pack_keys, unpack_keys


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
        """M, the number of voxels."""
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


def _check_points(points: torch.Tensor, offsets: torch.Tensor, voxel_size: float) -> torch.Tensor:
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got shape {tuple(points.shape)}")
    if not voxel_size > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_size}")
    offsets = offsets.to(device=points.device, dtype=torch.int64)
    if int(offsets[-1]) != points.shape[0]:
        raise ValueError(f"offsets end at {int(offsets[-1])} but there are {points.shape[0]} points")
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points contain NaN or infinite coordinates")
    return offsets


def _check_range(grid: torch.Tensor, voxel_size: float) -> None:
    """Raise if voxel coordinates (N, 3) int64 do not fit a packed key (:data:`COORD_LIMIT` per axis)."""
    if not grid.numel():
        return
    lo, hi = grid.amin(0), grid.amax(0)
    if int(lo.min()) >= -COORD_LIMIT and int(hi.max()) < COORD_LIMIT:
        return
    axis = int(torch.argmax(torch.maximum(hi, -lo - 1)))
    extent = int(hi[axis] - lo[axis]) + 1
    raise ValueError(
        f"voxel coordinates along {'xyz'[axis]} span [{int(lo[axis])}, {int(hi[axis])}] "
        f"({extent} voxels of {voxel_size} m = {extent * voxel_size:.1f} m), outside the [{-COORD_LIMIT}, {COORD_LIMIT}) "
        "a packed voxel key holds per axis: use a larger voxel size, or split the sample"
    )


def voxel_keys(
    points: torch.Tensor,
    offsets: torch.Tensor,
    voxel_size: float,
    shift_to_origin: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The packed voxel key of every point: the one definition of "same voxel" in the project.

    Args:
        points: (N, 3) float xyz in metres, samples concatenated.
        offsets: (B+1,) int64 CSR point offsets per sample (``offsets[0] == 0``, ``offsets[-1] == N``).
        voxel_size: voxel edge length in metres.
        shift_to_origin: subtract each sample's minimum voxel coordinate first.

    Returns:
        ``(keys (N,) int64, origin (B, 3) int64)``: :func:`train.sparse.coords.pack_keys` of
        ``[sample, floor(p / voxel_size) - origin[sample]]``, so keys sort by (sample, x, y, z).

    Raises:
        ValueError: bad input, or a sample whose voxel coordinates do not fit a key (the message
            names the voxel size and the extent).
    """
    offsets = _check_points(points, offsets, voxel_size)
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
    _check_range(grid, voxel_size)
    return pack_keys(torch.cat([batch[:, None], grid], dim=1)), origin


def point_voxel_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """:func:`voxel_keys` of one sample's points (P, 3) float (numpy, metres) → (P,) int64 keys,
    shifted to the sample's origin; equal keys = same voxel, and keys sort by (x, y, z)."""
    points = torch.from_numpy(np.array(xyz, dtype=np.float64).reshape(-1, 3))
    keys, _ = voxel_keys(points, torch.tensor([0, points.shape[0]]), voxel_size)
    return keys.numpy()


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
    keys, origin = voxel_keys(points, offsets, voxel_size, shift_to_origin)
    num_samples = origin.shape[0]
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
