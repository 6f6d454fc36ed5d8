"""Kernel maps: for every kernel offset, which input rows feed which output rows.

Offset convention (MinkowskiEngine's for cubic kernels): an odd kernel of size ``k`` spans
``-(k//2) .. k//2`` per axis, an even kernel spans ``0 .. k-1``; offsets are in units of the
*input* tensor stride. Offsets are enumerated with x fastest and z slowest (offset ``i`` has
``dx = r[i % k]``, ``dy = r[(i // k) % k]``, ``dz = r[i // k**2]``), which is MinkowskiEngine's
order, so its kernels ``(k**3, C_in, C_out)`` are ours without permutation. A dense
``(k, k, k)`` kernel indexed ``[dx, dy, dz]`` corresponds to ``W[i]`` with ``i`` its Fortran-order
flat index.

- Stride 1 ("submanifold"): output sites are the input sites,
  ``out[o] = sum_i x[o + d_i * s] @ W_i``.
- Stride ``f`` down: output sites are the input sites floored to the grid ``f * s`` (see
  :meth:`CoordinateSet.coarser`), ``out[o] = sum_i x[o + d_i * s] @ W_i``.
- Transposed stride ``f`` up onto the finer set: the down map with the roles swapped,
  ``out[o + d_i * s] += x[o] @ W_i`` (``s`` the finer stride).

For a fixed offset every output row has at most one input row and vice versa, so a per-offset
scatter never writes a destination row twice (what makes the convolution deterministic, see
:mod:`train.sparse.conv_function`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from train.sparse.coords import CoordinateSet, offset_delta

MAX_KERNEL = 7


def kernel_offsets(kernel_size: int) -> torch.Tensor:
    """Offsets ``(dx, dy, dz)`` of a cubic kernel in our order: (k**3, 3) int64, x fastest."""
    if not 1 <= kernel_size <= MAX_KERNEL:
        raise ValueError(f"kernel size must lie in [1, {MAX_KERNEL}], got {kernel_size}")
    r = range(-(kernel_size // 2), kernel_size // 2 + 1) if kernel_size % 2 else range(kernel_size)
    zyx = torch.tensor(list(itertools.product(r, r, r)), dtype=torch.int64)
    return zyx.flip(1)


@dataclass(frozen=True)
class KernelMap:
    """Per-offset row pairs of a sparse convolution.

    Attributes:
        in_rows: per offset, (P_i,) int64 input rows.
        out_rows: per offset, (P_i,) int64 output rows; ``out_rows[i]`` is unique, as is ``in_rows[i]``.
        identity: index of an offset whose pairs are ``(r, r)`` for every row (the centre of a
            stride-1 kernel), handled without gather/scatter; None if there is none.
        num_in: number of input rows.
        num_out: number of output rows.
    """

    in_rows: tuple[torch.Tensor, ...]
    out_rows: tuple[torch.Tensor, ...]
    identity: int | None
    num_in: int
    num_out: int

    @property
    def volume(self) -> int:
        return len(self.in_rows)

    def transposed(self) -> KernelMap:
        """The same pairs with inputs and outputs swapped (for the transposed convolution)."""
        return KernelMap(self.out_rows, self.in_rows, self.identity, self.num_out, self.num_in)

    def num_pairs(self) -> int:
        return sum(int(r.numel()) for r in self.in_rows)


def _query(
    source: CoordinateSet, target: CoordinateSet, deltas: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """For each key delta: rows ``o`` of ``source`` and rows ``j`` of ``target`` with
    ``key_target[j] == key_source[o] + delta``."""
    src_rows = None if source.order is None else source.order
    outs, ins = [], []
    for delta in deltas.tolist():
        found = target.lookup_keys(source.keys + delta)
        hit = found >= 0
        pos = hit.nonzero().squeeze(1)
        outs.append(pos if src_rows is None else src_rows[pos])
        ins.append(found[pos])
    return outs, ins


def submanifold_map(coords: CoordinateSet, kernel_size: int) -> KernelMap:
    """Kernel map of a stride-1 convolution on ``coords`` (cached on the set)."""
    key = ("submanifold", kernel_size)
    hit = coords.cache.get(key)
    if hit is not None:
        return hit
    if kernel_size % 2 == 0:
        raise ValueError(f"a stride-1 sparse convolution needs an odd kernel size, got {kernel_size}")
    offs = kernel_offsets(kernel_size) * coords.stride
    vol = offs.shape[0]
    centre = vol // 2
    n = len(coords)
    # Offsets come in mirrored pairs (i, vol-1-i): the map of -d is the map of d swapped.
    half = offset_delta(offs[:centre]).to(coords.device)
    outs, ins = _query(coords, coords, half)
    ident = torch.arange(n, device=coords.device)
    in_rows = ins + [ident] + outs[::-1]
    out_rows = outs + [ident] + ins[::-1]
    kmap = KernelMap(tuple(in_rows), tuple(out_rows), centre, n, n)
    coords.cache[key] = kmap
    return kmap


def down_map(coords: CoordinateSet, kernel_size: int, stride: int) -> tuple[CoordinateSet, KernelMap]:
    """Coarse set and kernel map of a stride-``stride`` convolution from ``coords`` (cached on the
    coarse set, which keeps its finer set alive, not the other way round)."""
    if stride < 2:
        raise ValueError(f"a downsampling convolution needs stride >= 2, got {stride}")
    coarse = coords.coarser(stride)
    key = ("down", kernel_size, stride)
    kmap = coarse.cache.get(key)
    if kmap is None:
        deltas = offset_delta(kernel_offsets(kernel_size) * coords.stride).to(coords.device)
        outs, ins = _query(coarse, coords, deltas)
        kmap = coarse.cache[key] = KernelMap(tuple(ins), tuple(outs), None, len(coords), len(coarse))
    return coarse, kmap


def up_map(coords: CoordinateSet, kernel_size: int, stride: int) -> tuple[CoordinateSet, KernelMap]:
    """Finer set and kernel map of a transposed convolution from ``coords`` back onto the set it
    was downsampled from (the down map of that set, transposed)."""
    finer = coords.finer
    if finer is None:
        raise ValueError(
            f"transposed convolution from {coords}: this coordinate set was not made by downsampling, "
            "so there is no finer set to return to"
        )
    if finer.stride * stride != coords.stride:
        raise ValueError(
            f"transposed convolution with stride {stride} from tensor stride {coords.stride} does not "
            f"land on the finer set at tensor stride {finer.stride}"
        )
    key = ("up", kernel_size, stride)
    hit = coords.cache.get(key)
    if hit is None:
        _, kmap = down_map(finer, kernel_size, stride)
        hit = coords.cache[key] = (finer, kmap.transposed())
    return hit
