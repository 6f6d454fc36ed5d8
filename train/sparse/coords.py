"""Sparse voxel coordinate sets: packed int64 keys, sorted lookup and the stride hierarchy.

A coordinate set holds the active sites of one sparse tensor at one *tensor stride* ``s``:
integer rows ``[batch, x, y, z]`` whose spatial parts are multiples of ``s`` (MinkowskiEngine's
convention: coarse levels keep the units of the finest grid). Every row is packed into one int64
*key* (batch in the top bits, each axis biased to be non-negative), so that

- lookup of arbitrary coordinates is a ``searchsorted`` into the sorted keys, and
- the key of ``c + d`` is ``key(c) + delta(d)`` for any offset ``d`` that keeps ``c + d`` in range
  (the axis fields never carry into each other), which makes neighbour queries one add.

Coordinate sets are immutable. Kernel maps and coarser levels are cached on them, so every
convolution of a network that works on the same set shares one neighbour search.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

AXIS_BITS = 18
"""Bits per spatial axis in a packed key."""
BATCH_BITS = 63 - 3 * AXIS_BITS
"""Bits for the batch index (the sign bit stays clear so keys sort as integers)."""
COORD_LIMIT = (1 << (AXIS_BITS - 1)) - 4096
"""Spatial coordinates must lie in ``[-COORD_LIMIT, COORD_LIMIT)``; the margin to the field size
keeps every neighbour query (kernel offset times tensor stride) inside its field."""
MAX_BATCH = (1 << BATCH_BITS) - 1
"""Largest batch index a key can hold."""
MAX_STRIDE = 512
"""Largest tensor stride; with kernels up to 7 every query stays within the key margin."""
_BIAS = 1 << (AXIS_BITS - 1)
_MASK = (1 << AXIS_BITS) - 1


def pack_keys(coords: torch.Tensor) -> torch.Tensor:
    """Pack integer coordinates into int64 keys.

    Args:
        coords: (M, 4) integer tensor, rows ``[batch, x, y, z]``.

    Returns:
        (M,) int64 keys; the key order is (batch, x, y, z) lexicographic.

    Raises:
        ValueError: a batch index or coordinate is outside the packable range.
    """
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coordinates must have shape (M, 4) [batch, x, y, z], got {tuple(coords.shape)}")
    if coords.dtype.is_floating_point or coords.dtype == torch.bool:
        raise ValueError(f"coordinates must be integers, got {coords.dtype}")
    c = coords.to(torch.int64)
    if c.numel():
        bmin, bmax = int(c[:, 0].min()), int(c[:, 0].max())
        if bmin < 0 or bmax > MAX_BATCH:
            raise ValueError(f"batch indices must lie in [0, {MAX_BATCH}], got [{bmin}, {bmax}]")
        xyz = c[:, 1:]
        lo, hi = int(xyz.min()), int(xyz.max())
        if lo < -COORD_LIMIT or hi >= COORD_LIMIT:
            raise ValueError(
                f"voxel coordinates must lie in [{-COORD_LIMIT}, {COORD_LIMIT}), got [{lo}, {hi}]: "
                "use a larger voxel size or shift the points towards the origin"
            )
    return _pack_unchecked(c)


def _pack_unchecked(c: torch.Tensor) -> torch.Tensor:
    key = c[:, 0] << AXIS_BITS
    key = (key | (c[:, 1] + _BIAS)) << AXIS_BITS
    key = (key | (c[:, 2] + _BIAS)) << AXIS_BITS
    return key | (c[:, 3] + _BIAS)


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_keys`: (M,) int64 keys -> (M, 4) int32 ``[batch, x, y, z]``."""
    z = (keys & _MASK) - _BIAS
    y = ((keys >> AXIS_BITS) & _MASK) - _BIAS
    x = ((keys >> (2 * AXIS_BITS)) & _MASK) - _BIAS
    b = keys >> (3 * AXIS_BITS)
    return torch.stack([b, x, y, z], dim=1).to(torch.int32)


def offset_delta(offsets: torch.Tensor) -> torch.Tensor:
    """Key increments of spatial offsets: (K, 3) integer offsets -> (K,) int64 deltas."""
    o = offsets.to(torch.int64)
    return (o[:, 0] << (2 * AXIS_BITS)) + (o[:, 1] << AXIS_BITS) + o[:, 2]


class CoordinateSet:
    """The active sites of a sparse tensor at one tensor stride.

    Rows keep the order they were given in (features are stored in that order); ``keys`` is the
    sorted key array and ``order`` maps a sorted position to its row (``None`` when the rows are
    already sorted, the case for every set this module creates).

    Attributes:
        coords: (M, 4) int32 ``[batch, x, y, z]``, spatial parts multiples of ``stride``.
        stride: tensor stride in finest-grid voxels.
        batch_size: number of samples (largest batch index + 1, or as given).
        keys: (M,) int64 sorted keys.
        order: (M,) int64 row of each sorted key, or None for identity.
        finer: the set this one was downsampled from (None for an input set).
    """

    def __init__(
        self,
        coords: torch.Tensor,
        stride: int = 1,
        batch_size: int | None = None,
        *,
        _keys: torch.Tensor | None = None,
        _sorted: bool = False,
    ) -> None:
        if stride < 1:
            raise ValueError(f"tensor stride must be >= 1, got {stride}")
        keys = pack_keys(coords) if _keys is None else _keys
        self.coords = coords.to(torch.int32)
        self.stride = int(stride)
        if _sorted:
            self.keys, self.order = keys, None
        else:
            sorted_keys, order = torch.sort(keys, stable=True)
            if sorted_keys.numel() > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
                raise ValueError("coordinates contain duplicate rows; voxelize the points first")
            identity = bool((order == torch.arange(order.numel(), device=order.device)).all())
            self.keys, self.order = sorted_keys, (None if identity else order)
        if stride > 1 and self.coords.numel() and bool((self.coords[:, 1:] % stride != 0).any()):
            raise ValueError(f"coordinates at tensor stride {stride} must be multiples of {stride}")
        if batch_size is None:
            batch_size = int(self.coords[:, 0].max()) + 1 if self.coords.numel() else 0
        self.batch_size = int(batch_size)
        self.finer: CoordinateSet | None = None
        # Coarser sets are referenced weakly (they hold their finer set strongly), so a batch's
        # sets and kernel maps form no reference cycle and are freed as soon as its tensors are.
        self._coarser: dict[int, weakref.ref[CoordinateSet]] = {}
        self.cache: dict[Any, Any] = {}

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def device(self) -> torch.device:
        return self.coords.device

    def __repr__(self) -> str:
        return f"CoordinateSet(n={len(self)}, stride={self.stride}, batch_size={self.batch_size})"

    def lookup_keys(self, query: torch.Tensor) -> torch.Tensor:
        """Rows of the given keys: (Q,) int64 keys -> (Q,) int64 rows, -1 where absent."""
        n = self.keys.numel()
        if n == 0:
            return torch.full_like(query, -1)
        pos = torch.searchsorted(self.keys, query).clamp_(max=n - 1)
        found = self.keys[pos] == query
        rows = pos if self.order is None else self.order[pos]
        return torch.where(found, rows, torch.full_like(rows, -1))

    def lookup(self, coords: torch.Tensor) -> torch.Tensor:
        """Rows of the given coordinates: (Q, 4) int -> (Q,) int64, -1 where absent."""
        return self.lookup_keys(pack_keys(coords.to(self.device)))

    def coarser(self, factor: int) -> CoordinateSet:
        """The set at stride ``stride * factor``: every site floored to that grid, deduplicated.

        Cached (while the coarser set is alive), so the encoder's downsampling and the decoder's
        upsampling meet the same objects.
        """
        if factor < 1:
            raise ValueError(f"stride factor must be >= 1, got {factor}")
        if factor == 1:
            return self
        if self.stride * factor > MAX_STRIDE:
            raise ValueError(f"tensor stride {self.stride * factor} exceeds the supported {MAX_STRIDE}")
        ref = self._coarser.get(factor)
        hit = ref() if ref is not None else None
        if hit is not None:
            return hit
        new_stride = self.stride * factor
        c = self.coords.to(torch.int64)
        c = torch.cat([c[:, :1], torch.div(c[:, 1:], new_stride, rounding_mode="floor") * new_stride], 1)
        keys = torch.unique(_pack_unchecked(c), sorted=True)
        out = CoordinateSet(unpack_keys(keys), new_stride, self.batch_size, _keys=keys, _sorted=True)
        out.finer = self
        self._coarser[factor] = weakref.ref(out)
        return out
