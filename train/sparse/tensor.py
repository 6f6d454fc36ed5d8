"""The sparse tensor of the torch backend: features on a :class:`CoordinateSet`."""

from __future__ import annotations

import torch

from train.sparse.coords import CoordinateSet


class SparseTensor:
    """Features on the active sites of a sparse voxel grid.

    Attributes:
        features: (M, C) float tensor, row ``r`` belongs to ``coordinate_set.coords[r]``.
        coordinate_set: the sites, their tensor stride and the cached kernel maps.
    """

    __slots__ = ("features", "coordinate_set")

    def __init__(self, features: torch.Tensor, coordinate_set: CoordinateSet) -> None:
        if features.dim() != 2:
            raise ValueError(f"features must be (M, C), got shape {tuple(features.shape)}")
        if features.shape[0] != len(coordinate_set):
            raise ValueError(
                f"{features.shape[0]} feature rows for {len(coordinate_set)} coordinates"
            )
        if features.device != coordinate_set.device:
            raise ValueError(f"features on {features.device}, coordinates on {coordinate_set.device}")
        self.features = features
        self.coordinate_set = coordinate_set

    @classmethod
    def from_coords(
        cls,
        features: torch.Tensor,
        coords: torch.Tensor,
        stride: int = 1,
        batch_size: int | None = None,
    ) -> SparseTensor:
        """Build from (M, C) features and (M, 4) integer ``[batch, x, y, z]`` unique coordinates."""
        return cls(features, CoordinateSet(coords.to(features.device), stride, batch_size))

    @property
    def coords(self) -> torch.Tensor:
        """(M, 4) int32 ``[batch, x, y, z]``."""
        return self.coordinate_set.coords

    @property
    def stride(self) -> int:
        return self.coordinate_set.stride

    @property
    def batch_size(self) -> int:
        return self.coordinate_set.batch_size

    @property
    def num_channels(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __repr__(self) -> str:
        return (
            f"SparseTensor(n={len(self)}, channels={self.num_channels}, stride={self.stride}, "
            f"batch_size={self.batch_size}, dtype={self.features.dtype}, device={self.features.device})"
        )

    def replace(self, features: torch.Tensor) -> SparseTensor:
        """Same sites, new (M, C') features."""
        return SparseTensor(features, self.coordinate_set)

    def same_sites(self, other: SparseTensor, what: str) -> None:
        if other.coordinate_set is not self.coordinate_set:
            raise ValueError(
                f"{what} needs tensors on the same coordinate set, got {self.coordinate_set} "
                f"and {other.coordinate_set}"
            )

    def __add__(self, other: SparseTensor) -> SparseTensor:
        self.same_sites(other, "addition")
        return self.replace(self.features + other.features)

    def features_at(self, coords: torch.Tensor) -> torch.Tensor:
        """Features at the given sites: (Q, 4) integer coordinates -> (Q, C).

        Raises:
            KeyError: a queried site is not active.
        """
        rows = self.coordinate_set.lookup(coords)
        if bool((rows < 0).any()):
            raise KeyError(f"{int((rows < 0).sum())} queried coordinates are not active sites")
        return self.features.index_select(0, rows)


def cat(*tensors: SparseTensor) -> SparseTensor:
    """Concatenate the channels of tensors on the same coordinate set. Works for any backend tensor
    with ``features``, ``replace(features)`` and ``same_sites(other, what)`` (the spconv backend's too)."""
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    first = tensors[0]
    for t in tensors[1:]:
        first.same_sites(t, "concatenation")
    return first.replace(torch.cat([t.features for t in tensors], dim=1))
