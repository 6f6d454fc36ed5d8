"""The backends of the sparse-convolution interface (:mod:`train.sparse.interface`), and the
choice between them. Three backends:

- ``torch`` (:class:`TorchBackend`): pure PyTorch, CPU and CUDA, no compiled extension.
- ``minkowski``: MinkowskiEngine, when importable (:mod:`train.sparse.minkowski_backend`).
- ``spconv``: spconv 2.x, optional, only when asked for by name (:mod:`train.sparse.spconv_backend`).

Layer semantics are MinkowskiEngine's: a stride-1 convolution keeps the input sites, a strided
convolution floors the sites to the coarser grid, a transposed strided convolution returns onto
the finer sites the input was downsampled from, ``cat`` joins the channels of tensors on the same
sites.
"""

from __future__ import annotations

import torch
from torch import nn

from train.sparse.interface import SparseBackend
from train.sparse.nn import SparseBatchNorm, SparseConv3d, SparseReLU
from train.sparse.tensor import SparseTensor, cat

BACKEND_NAMES = ("auto", "torch", "minkowski", "spconv")


class TorchBackend(SparseBackend):
    """Pure-PyTorch sparse convolution (:mod:`train.sparse.nn`); deterministic on every device
    (see :mod:`train.sparse.conv_function`)."""

    name = "torch"

    def tensor(self, features: torch.Tensor, coords: torch.Tensor) -> SparseTensor:
        return SparseTensor.from_coords(features, coords)

    def features(self, x: SparseTensor) -> torch.Tensor:
        return x.features

    def rows_of(self, x: SparseTensor, coords: torch.Tensor) -> torch.Tensor | None:
        if x.stride == 1 and x.coords.shape == coords.shape and bool((x.coords == coords.to(x.coords)).all()):
            return None
        rows = x.coordinate_set.lookup(coords)
        if bool((rows < 0).any()):
            raise KeyError("some queried coordinates are not active sites of the tensor")
        return rows

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False) -> nn.Module:
        return SparseConv3d(in_channels, out_channels, kernel_size, stride, bias)

    def conv_transpose(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = False
    ) -> nn.Module:
        return SparseConv3d(in_channels, out_channels, kernel_size, stride, bias, transposed=True)

    def batch_norm(self, channels: int, momentum: float = 0.1) -> nn.Module:
        return SparseBatchNorm(channels, momentum=momentum)

    def relu(self) -> nn.Module:
        return SparseReLU(inplace=True)

    def cat(self, *tensors: SparseTensor) -> SparseTensor:
        return cat(*tensors)


def minkowski_available() -> bool:
    """Whether MinkowskiEngine imports here."""
    from train.sparse.minkowski_backend import import_minkowski

    try:
        import_minkowski()
    except ImportError:
        return False
    return True


def spconv_available() -> bool:
    """Whether spconv 2.x imports here."""
    from train.sparse.spconv_backend import import_spconv

    try:
        import_spconv()
    except ImportError:
        return False
    return True


def get_backend(name: str | SparseBackend = "torch") -> SparseBackend:
    """Backend by name: ``torch``, ``minkowski``, ``spconv`` or ``auto`` (MinkowskiEngine when
    importable, else torch; never spconv). A backend instance is returned as is.

    Raises:
        ValueError: unknown name.
        ImportError: ``minkowski`` or ``spconv`` asked for but it does not import (the spconv
            message names the install command).
    """
    if isinstance(name, SparseBackend):
        return name
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown sparse backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        name = "minkowski" if minkowski_available() else "torch"
    if name == "torch":
        return TorchBackend()
    if name == "spconv":
        from train.sparse.spconv_backend import SpconvBackend

        return SpconvBackend()
    from train.sparse.minkowski_backend import MinkowskiBackend

    return MinkowskiBackend()
