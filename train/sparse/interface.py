"""The sparse-convolution interface networks are written against (:class:`SparseBackend`).

A network builds its layers through a :class:`SparseBackend` (``conv``, ``conv_transpose``,
``batch_norm``, ``relu``, ``cat``) and converts its input with ``backend.tensor(features, coords)``;
it never touches a backend's own types. The backends are in :mod:`train.sparse.backend`
(``torch``), :mod:`train.sparse.minkowski_backend` and :mod:`train.sparse.spconv_backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


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
