"""The sparse-convolution interface networks are written against, and its backends.

A network builds its layers through a :class:`SparseBackend` (``conv``, ``conv_transpose``,
``batch_norm``, ``relu``, ``cat``) and converts its input with ``backend.tensor(features, coords)``;
it never touches a backend's own types. Two backends:

- ``torch`` (:class:`TorchBackend`): pure PyTorch, CPU and CUDA, no compiled extension.
- ``minkowski``: MinkowskiEngine, when importable (:mod:`train.sparse.minkowski_backend`).

Layer semantics are MinkowskiEngine's: a stride-1 convolution keeps the input sites, a strided
convolution floors the sites to the coarser grid, a transposed strided convolution returns onto
the finer sites the input was downsampled from, ``cat`` joins the channels of tensors on the same
sites.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from train.sparse.nn import SparseBatchNorm, SparseConv3d, SparseReLU
from train.sparse.tensor import SparseTensor, cat

BACKEND_NAMES = ("auto", "torch", "minkowski")


class SparseBackend(ABC):
    """Factory of sparse layers plus conversion of tensors in and out of the backend."""

    name: str

    @abstractmethod
    def tensor(self, features: torch.Tensor, coords: torch.Tensor) -> Any:
        """A stride-1 sparse tensor from (M, C) features and (M, 4) unique int ``[batch, x, y, z]``."""

    @abstractmethod
    def features(self, x: Any) -> torch.Tensor:
        """(M, C) features of a backend tensor, in the backend's row order."""

    @abstractmethod
    def rows_of(self, x: Any, coords: torch.Tensor) -> torch.Tensor | None:
        """Rows of ``x`` at the given (Q, 4) sites, or None when ``x``'s rows already are those
        sites in that order (stride-1 output of ``tensor(features, coords)``)."""

    @abstractmethod
    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False) -> nn.Module:
        """Convolution (stride 1: same sites; stride > 1: down onto the coarser grid), He-initialised."""

    @abstractmethod
    def conv_transpose(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = False
    ) -> nn.Module:
        """Transposed strided convolution back onto the finer sites, He-initialised."""

    @abstractmethod
    def batch_norm(self, channels: int, momentum: float = 0.1) -> nn.Module:
        """Batch normalisation of the features."""

    @abstractmethod
    def relu(self) -> nn.Module:
        """In-place ReLU of the features."""

    @abstractmethod
    def cat(self, *tensors: Any) -> Any:
        """Channel concatenation of tensors on the same sites."""

    def features_in_order(self, x: Any, coords: torch.Tensor) -> torch.Tensor:
        """(Q, C) features of ``x`` at the given sites, in the order of ``coords``."""
        rows = self.rows_of(x, coords)
        f = self.features(x)
        return f if rows is None else f.index_select(0, rows)


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


def get_backend(name: str | SparseBackend = "torch") -> SparseBackend:
    """Backend by name: ``torch``, ``minkowski`` or ``auto`` (MinkowskiEngine when importable,
    else torch). A backend instance is returned as is.

    Raises:
        ValueError: unknown name.
        ImportError: ``minkowski`` asked for but MinkowskiEngine does not import.
    """
    if isinstance(name, SparseBackend):
        return name
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown sparse backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        name = "minkowski" if minkowski_available() else "torch"
    if name == "torch":
        return TorchBackend()
    from train.sparse.minkowski_backend import MinkowskiBackend

    return MinkowskiBackend()
