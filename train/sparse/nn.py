"""Layers of the torch backend, operating on :class:`SparseTensor`."""

from __future__ import annotations

import math

import torch
from torch import nn

from train.sparse.conv_function import sparse_conv_features
from train.sparse.kernel_map import down_map, submanifold_map, up_map
from train.sparse.tensor import SparseTensor


def kaiming_fan_out_(weight: torch.Tensor, kernel_volume: int, out_channels: int) -> None:
    """He-normal initialisation with fan-out ``kernel_volume * out_channels`` (for ReLU nets)."""
    std = math.sqrt(2.0 / max(1, kernel_volume * out_channels))
    with torch.no_grad():
        weight.normal_(0.0, std)


class SparseConv3d(nn.Module):
    """Sparse 3D convolution with a cubic kernel.

    - ``stride == 1``: submanifold convolution (odd kernel), output sites = input sites.
    - ``stride > 1``: downsampling onto the input sites floored to the coarser grid.
    - ``transposed=True`` (``stride > 1``): back onto the finer set the input was made from.

    Parameters: ``weight`` (k**3, C_in, C_out) in :func:`kernel_offsets` order, optional ``bias``
    (C_out,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = False,
        transposed: bool = False,
    ) -> None:
        super().__init__()
        if transposed and stride < 2:
            raise ValueError("a transposed sparse convolution needs stride >= 2")
        if stride == 1 and kernel_size % 2 == 0:
            raise ValueError(f"a stride-1 sparse convolution needs an odd kernel size, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.transposed = transposed
        volume = kernel_size**3
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        kaiming_fan_out_(self.weight, volume, out_channels)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, transposed={self.transposed}, bias={self.bias is not None}"
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.num_channels != self.in_channels:
            raise ValueError(f"{self}: input has {x.num_channels} channels")
        cs = x.coordinate_set
        if self.transposed:
            out_set, kmap = up_map(cs, self.kernel_size, self.stride)
        elif self.stride == 1:
            out_set, kmap = cs, submanifold_map(cs, self.kernel_size)
        else:
            out_set, kmap = down_map(cs, self.kernel_size, self.stride)
        feats = sparse_conv_features(x.features, self.weight, kmap)
        if self.bias is not None:
            feats = feats + self.bias.to(feats.dtype)
        return SparseTensor(feats, out_set)


class SparseBatchNorm(nn.Module):
    """Batch normalisation over all active sites of the batch (features (M, C)).

    Wraps an ``nn.BatchNorm1d`` as ``.bn`` (MinkowskiEngine's layout, so the state-dict keys are
    the same and ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts the inner module for DDP).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.bn(x.features))


class SparseReLU(nn.ReLU):
    """ReLU on the features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.features))
