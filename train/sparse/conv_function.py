"""The sparse convolution itself: per kernel offset, gather input rows, multiply, scatter-add.

``out[o] = x[o] @ W_centre + sum over pairs (i, o) of offset k: x[i] @ W_k``: the centre offset of a
stride-1 kernel is one dense product; every other offset gathers its input rows
(``index_select``), multiplies by ``W_k`` and adds the product into its output rows
(``index_add_``). The backward pass gathers ``grad_out`` rows per offset, adds
``grad_k @ W_k^T`` into the input gradient and computes ``x_k^T @ grad_k`` for the kernel gradient.
The autograd function saves only its input features and weight (the kernel map is shared and
cached); per-offset gathers are recomputed in the backward pass, and per-offset buffers live only
for one offset.

Determinism. Within one offset the destination rows of the scatter are unique (each output has at
most one input at a given offset and vice versa, see :mod:`train.sparse.kernel_map`), so no call
ever adds twice into the same element; offsets are applied in a fixed order. On CPU the sum is
therefore the same, bit for bit, on every run; on CUDA ``index_add_`` uses atomic adds, but each
element receives exactly one per call, so the value written is the same ``old + y`` every time.
The test suite checks bit-identical outputs and gradients across runs (on CPU).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from train.sparse.kernel_map import KernelMap


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
        w = weight.unbind(0)
        if kmap.identity is not None:
            out = x @ w[kmap.identity]
        else:
            out = x.new_zeros(kmap.num_out, weight.shape[2])
        for k, (rin, rout) in enumerate(zip(kmap.in_rows, kmap.out_rows)):
            if k == kmap.identity or rin.numel() == 0:
                continue
            out.index_add_(0, rout, x.index_select(0, rin) @ w[k])
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
        wt = [wk.t() for wk in weight.unbind(0)]
        grad_x = grad_w = None
        if need_w:
            grad_w = torch.zeros_like(weight)
            if kmap.identity is not None:
                torch.mm(x.t(), g, out=grad_w[kmap.identity])
        if need_x:
            grad_x = g @ wt[kmap.identity] if kmap.identity is not None else torch.zeros_like(x)
        for k, (rin, rout) in enumerate(zip(kmap.in_rows, kmap.out_rows)):
            if k == kmap.identity or rin.numel() == 0:
                continue
            gk = g.index_select(0, rout)
            if grad_x is not None:
                grad_x.index_add_(0, rin, gk @ wt[k])
            if grad_w is not None:
                torch.mm(x.index_select(0, rin).t(), gk, out=grad_w[k])
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
