"""MinkowskiEngine behind the sparse interface (used when it imports).

MinkowskiEngine 0.5.4 is unmaintained since 2023. Importing it on Python >= 3.10 needs the alias
``collections.Sequence = collections.abc.Sequence`` first; this module is the one place that sets
it. Install: ``.ci/install_minkowski.sh`` (CPU build); CUDA users see docs/method.md.
"""

from __future__ import annotations

import collections
import collections.abc
import warnings
from types import ModuleType
from typing import Any

import torch
from torch import nn

from train.sparse.interface import SparseBackend
from train.sparse.coords import CoordinateSet
from train.sparse.nn import kaiming_fan_out_


def import_minkowski() -> ModuleType:
    """Import MinkowskiEngine (with the Python >= 3.10 shim).

    Raises:
        ImportError: not installed or its extension does not load.
    """
    if not hasattr(collections, "Sequence"):
        collections.Sequence = collections.abc.Sequence  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        # A CPU build says so at every import; that is what CI builds on purpose.
        warnings.filterwarnings("ignore", message="The MinkowskiEngine was compiled with CPU_ONLY flag")
        import MinkowskiEngine as ME

    return ME



class MinkowskiBackend(SparseBackend):
    """Layers are MinkowskiEngine's own modules, so a network built on this backend has the
    parameter names of MinkowskiEngine's example networks (``kernel``, ``bn.weight``, ...)."""

    name = "minkowski"

    def __init__(self) -> None:
        self.ME = import_minkowski()

    def tensor(self, features: torch.Tensor, coords: torch.Tensor) -> Any:
        CoordinateSet(coords)  # same checks as the torch backend: duplicates and range raise here
        return self.ME.SparseTensor(features=features, coordinates=coords.to(device=features.device, dtype=torch.int32))

    def features(self, x: Any) -> torch.Tensor:
        return x.F

    def rows_of(self, x: Any, coords: torch.Tensor) -> torch.Tensor | None:
        sites = CoordinateSet(x.C.to(torch.int32), stride=1)
        rows = sites.lookup(coords.to(sites.device))
        if bool((rows < 0).any()):
            raise KeyError("some queried coordinates are not active sites of the tensor")
        return rows.to(x.F.device)

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False) -> nn.Module:
        m = self.ME.MinkowskiConvolution(
            in_channels, out_channels, kernel_size=kernel_size, stride=stride, bias=bias, dimension=3
        )
        kaiming_fan_out_(m.kernel, kernel_size**3, out_channels)
        return m

    def conv_transpose(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = False
    ) -> nn.Module:
        m = self.ME.MinkowskiConvolutionTranspose(
            in_channels, out_channels, kernel_size=kernel_size, stride=stride, bias=bias, dimension=3
        )
        kaiming_fan_out_(m.kernel, kernel_size**3, out_channels)
        return m

    def batch_norm(self, channels: int, momentum: float = 0.1) -> nn.Module:
        return self.ME.MinkowskiBatchNorm(channels, momentum=momentum)

    def relu(self) -> nn.Module:
        return self.ME.MinkowskiReLU(inplace=True)

    def cat(self, *tensors: Any) -> Any:
        return self.ME.cat(*tensors)
