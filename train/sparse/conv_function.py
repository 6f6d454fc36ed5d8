"""The sparse convolution itself: gather, per-offset matrix products, gather-sum.

``out[o] = x[o] @ W_centre + sum over pairs (i, o) of offset k: x[i] @ W_k``, computed per chunk of
kernel offsets (see :meth:`KernelMap.plan`):

1. per offset: gather its input rows (small enough to stay in cache) and multiply by the offset's
   weight into that offset's block of a chunk-sized product buffer,
2. sum the products into their output rows with one ``embedding_bag(mode="sum")`` over the pairs
   of the chunk grouped by output row.

The backward pass does the same with the roles of inputs and outputs swapped for the input
gradient, and ``x_k^T @ grad_k`` per offset for the kernel gradient. The autograd function saves
only its input features and weight; gathers are recomputed in the backward pass. Chunks bound the
transient buffers to about ``CHUNK_ELEMENTS`` values each.

Determinism: there is no scatter and no atomic operation. Every output row is summed by one
thread in a fixed order (centre term first, then the chunks in offset order, within a chunk the
pairs in offset order), so results are bit-identical from run to run on CPU and CUDA.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from train.sparse.kernel_map import Chunk, KernelMap

CHUNK_ELEMENTS = 1 << 24
"""Target size (values) of each per-chunk buffer (gathered rows, products)."""


def _max_pairs(channels: int) -> int:
    """Pairs per chunk for the widest side of a convolution, rounded down to a power of two so a
    kernel map keeps few plans."""
    n = max(1024, CHUNK_ELEMENTS // max(1, channels))
    return 1 << (n.bit_length() - 1)


def _bag_sum(values: torch.Tensor, bags_perm: torch.Tensor, bags_offsets: torch.Tensor) -> torch.Tensor:
    return F.embedding_bag(bags_perm, values, bags_offsets, mode="sum", include_last_offset=True)


def _chunk_products(
    src: torch.Tensor, src_rows: torch.Tensor, chunk: Chunk, weights: list[torch.Tensor], out_channels: int
) -> torch.Tensor:
    """Per pair ``p`` of the chunk: ``src[src_rows[p]] @ weights[offset of p]`` -> (P_c, out_channels)."""
    y = src.new_empty(src_rows.shape[0], out_channels)
    b = chunk.bounds
    for j, k in enumerate(chunk.offsets):
        torch.mm(src.index_select(0, src_rows[b[j] : b[j + 1]]), weights[k], out=y[b[j] : b[j + 1]])
    return y


class SparseConvFunction(torch.autograd.Function):
    """Autograd function of a sparse convolution with a precomputed kernel map.

    forward(x (N_in, C_in), weight (K, C_in, C_out), kmap) -> (N_out, C_out)
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:  # type: ignore[override]
        if weight.shape[0] != kmap.volume:
            raise ValueError(f"weight has {weight.shape[0]} kernel offsets, the kernel map {kmap.volume}")
        if x.shape[0] != kmap.num_in:
            raise ValueError(f"features have {x.shape[0]} rows, the coordinate set {kmap.num_in}")
        x = x.contiguous()
        c_in, c_out = weight.shape[1], weight.shape[2]
        w = list(weight.unbind(0))
        out = x @ w[kmap.identity] if kmap.identity is not None else None
        for chunk in kmap.plan(_max_pairs(max(c_in, c_out))):
            y = _chunk_products(x, chunk.in_rows, chunk, w, c_out)
            s = _bag_sum(y, chunk.out_bags.perm, chunk.out_bags.offsets)
            out = s if out is None else out.add_(s)
        if out is None:
            out = x.new_zeros(kmap.num_out, c_out)
        ctx.save_for_backward(x, weight)
        ctx.kmap = kmap
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        g = grad_out.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        c_in, c_out = weight.shape[1], weight.shape[2]
        wt = [wk.t() for wk in weight.unbind(0)]
        grad_x = grad_w = None
        if need_w:
            grad_w = torch.zeros_like(weight)
            if kmap.identity is not None:
                torch.mm(x.t(), g, out=grad_w[kmap.identity])
        if need_x and kmap.identity is not None:
            grad_x = g @ wt[kmap.identity]
        for chunk in kmap.plan(_max_pairs(max(c_in, c_out))):
            b = chunk.bounds
            z = g.new_empty(chunk.out_rows.shape[0], c_in) if need_x else None
            for j, k in enumerate(chunk.offsets):
                gk = g.index_select(0, chunk.out_rows[b[j] : b[j + 1]])
                if z is not None:
                    torch.mm(gk, wt[k], out=z[b[j] : b[j + 1]])
                if grad_w is not None:
                    torch.mm(x.index_select(0, chunk.in_rows[b[j] : b[j + 1]]).t(), gk, out=grad_w[k])
            if z is not None:
                s = _bag_sum(z, chunk.in_bags.perm, chunk.in_bags.offsets)
                grad_x = s if grad_x is None else grad_x.add_(s)
        if need_x and grad_x is None:
            grad_x = torch.zeros_like(x)
        return grad_x, grad_w, None


def sparse_conv_features(x: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Apply a sparse convolution to features.

    Under autocast the features and weight are cast to the autocast dtype first (gradients flow
    back to the full-precision weight through the cast).

    Args:
        x: (N_in, C_in) features, rows in the input coordinate set's order.
        weight: (K, C_in, C_out) kernel, offsets in :func:`kernel_offsets` order.
        kmap: the kernel map between the input and output coordinate sets.

    Returns:
        (N_out, C_out) features in the output coordinate set's row order.
    """
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        x, weight = x.to(dt), weight.to(dt)
        with torch.autocast(dev, enabled=False):
            return SparseConvFunction.apply(x, weight, kmap)
    if weight.dtype != x.dtype:
        raise TypeError(f"features are {x.dtype} but the kernel is {weight.dtype}")
    return SparseConvFunction.apply(x, weight, kmap)
