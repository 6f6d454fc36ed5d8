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

For a fixed offset every output row has at most one input row and vice versa.

A :class:`KernelMap` also prepares its *execution plan* (:meth:`KernelMap.plan`): the offsets in
chunks of bounded size, each with the concatenated input and output rows of its pairs and, for
both directions, the pairs grouped by destination row ("bags": a stable sort of the destination
rows, so within a bag pairs stay in offset order). The convolution reduces per-pair products into
destination rows with ``embedding_bag`` over these bags: a gather-sum, no scatter, no atomics.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from train.sparse.coords import CoordinateSet, offset_delta

MAX_KERNEL = 7


@dataclass(frozen=True)
class Bags:
    """Pairs grouped by destination row: destination ``r`` sums pairs ``perm[offsets[r]:offsets[r+1]]``.

    Attributes:
        perm: (P,) int64 pair indices sorted by destination row (stable: offset order within a row).
        offsets: (N+1,) int64 bag boundaries into ``perm``.
    """

    perm: torch.Tensor
    offsets: torch.Tensor

    @staticmethod
    def of(destinations: torch.Tensor, num_rows: int) -> Bags:
        perm = torch.sort(destinations, stable=True).indices
        offsets = torch.zeros(num_rows + 1, dtype=torch.int64, device=destinations.device)
        offsets[1:] = torch.cumsum(torch.bincount(destinations, minlength=num_rows), 0)
        return Bags(perm, offsets)


@dataclass(frozen=True)
class Chunk:
    """A group of kernel offsets processed together.

    Attributes:
        offsets: kernel offset indices in this chunk.
        bounds: ``bounds[j]:bounds[j+1]`` are the pairs of ``offsets[j]`` in the concatenation.
        in_rows: (P_c,) int64 input row of every pair.
        out_rows: (P_c,) int64 output row of every pair.
        out_bags: pairs grouped by output row (forward reduction).
        in_bags: pairs grouped by input row (input-gradient reduction).
    """

    offsets: tuple[int, ...]
    bounds: tuple[int, ...]
    in_rows: torch.Tensor
    out_rows: torch.Tensor
    out_bags: Bags
    in_bags: Bags


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
    _plans: dict[int, tuple[Chunk, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def volume(self) -> int:
        return len(self.in_rows)

    def transposed(self) -> KernelMap:
        """The same pairs with inputs and outputs swapped (for the transposed convolution)."""
        return KernelMap(self.out_rows, self.in_rows, self.identity, self.num_out, self.num_in)

    def num_pairs(self) -> int:
        return sum(int(r.numel()) for r in self.in_rows)

    def plan(self, max_pairs: int) -> tuple[Chunk, ...]:
        """Non-identity offsets in chunks of at most ``max_pairs`` pairs (an offset with more
        pairs forms a chunk of its own); cached per ``max_pairs``."""
        hit = self._plans.get(max_pairs)
        if hit is not None:
            return hit
        groups: list[list[int]] = []
        size = 0
        for i, rows in enumerate(self.in_rows):
            n = int(rows.numel())
            if i == self.identity or n == 0:
                continue
            if not groups or size + n > max_pairs:
                groups.append([])
                size = 0
            groups[-1].append(i)
            size += n
        chunks = []
        for g in groups:
            bounds = [0]
            for i in g:
                bounds.append(bounds[-1] + int(self.in_rows[i].numel()))
            rin = torch.cat([self.in_rows[i] for i in g])
            rout = torch.cat([self.out_rows[i] for i in g])
            chunks.append(
                Chunk(tuple(g), tuple(bounds), rin, rout, Bags.of(rout, self.num_out), Bags.of(rin, self.num_in))
            )
        plan = tuple(chunks)
        self._plans[max_pairs] = plan
        return plan


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
    """Coarse set and kernel map of a stride-``stride`` convolution from ``coords`` (cached)."""
    if stride < 2:
        raise ValueError(f"a downsampling convolution needs stride >= 2, got {stride}")
    key = ("down", kernel_size, stride)
    hit = coords.cache.get(key)
    if hit is not None:
        return hit
    coarse = coords.coarser(stride)
    deltas = offset_delta(kernel_offsets(kernel_size) * coords.stride).to(coords.device)
    outs, ins = _query(coarse, coords, deltas)
    kmap = KernelMap(tuple(ins), tuple(outs), None, len(coords), len(coarse))
    coords.cache[key] = (coarse, kmap)
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
