"""The few array operations the projection kernel needs, all writing into given buffers.

Two implementations of one interface: :class:`NumpyOps` (CPU) and :class:`TorchOps` (CUDA, or
CPU on request). Measured here on CPU, numpy's float32 comparisons and masked writes into bool
buffers run about 8x faster than torch's, and its per-call overhead is lower; on a GPU torch is
the only choice. The kernel (:mod:`pipeline.project.kernel`) is written once against this
interface, so both backends compute the same float32 operations in the same order.
"""

from __future__ import annotations

import numpy as np


class NumpyOps:
    """numpy arrays; every method writes into ``out`` (or ``a`` in place) and allocates nothing."""

    name = "numpy"

    def __init__(self) -> None:
        self.device = "cpu"

    # buffers and transfers
    def empty(self, n: int, dtype: str):
        return np.empty(n, dtype=dtype)

    def asarray(self, data: np.ndarray):
        return np.ascontiguousarray(data)

    def host(self, a) -> np.ndarray:
        return a

    def view(self, a, shape):
        return a.reshape(shape)

    # arithmetic (b may be a scalar or a broadcastable array)
    def sub(self, a, b, out):
        return np.subtract(a, b, out=out)

    def add(self, a, b, out):
        return np.add(a, b, out=out)

    def mul(self, a, b, out):
        return np.multiply(a, b, out=out)

    def addmul(self, acc, a, b, tmp):
        """``acc += a * b``."""
        np.multiply(a, b, out=tmp)
        return np.add(acc, tmp, out=acc)

    def reciprocal(self, a, out):
        return np.divide(1.0, a, out=out)

    def abs(self, a, out):
        return np.abs(a, out=out)

    def floor(self, a, out):
        return np.floor(a, out=out)

    def clamp(self, a, lo, hi, out):
        np.maximum(a, lo, out=out)  # np.clip goes through a slower Python wrapper
        return np.minimum(out, hi, out=out)

    def maximum(self, a, b, out):
        return np.maximum(a, b, out=out)

    def minimum(self, a, b, out):
        return np.minimum(a, b, out=out)

    def remainder(self, a, b, out):
        return np.remainder(a, b, out=out)

    # comparisons and logic
    def lt(self, a, b, out):
        return np.less(a, b, out=out)

    def le(self, a, b, out):
        return np.less_equal(a, b, out=out)

    def gt(self, a, b, out):
        return np.greater(a, b, out=out)

    def ge(self, a, b, out):
        return np.greater_equal(a, b, out=out)

    def and_(self, a, b, out):
        return np.logical_and(a, b, out=out)

    def or_(self, a, b, out):
        return np.logical_or(a, b, out=out)

    def not_(self, a, out):
        return np.logical_not(a, out=out)

    # copies and gathers
    def copy(self, dst, src):
        np.copyto(dst, src, casting="unsafe")
        return dst

    def fill(self, a, value):
        a.fill(value)
        return a

    def fill_where(self, a, mask, value):
        """``a[mask] = value``."""
        np.copyto(a, value, where=mask)
        return a

    def take_rows(self, src, index, out):
        """``out = src[:, index]`` for ``src`` (k, n, ...) and integer ``index``."""
        return np.take(src, index, axis=1, out=out, mode="clip")

    def take(self, src, index, out):
        """``out = src[index]`` for 1-D ``src`` and ``index``."""
        return np.take(src, index, out=out, mode="clip")


class TorchOps:
    """torch tensors on ``device``, same interface as :class:`NumpyOps`."""

    name = "torch"

    def __init__(self, device) -> None:
        import torch

        self.torch = torch
        self.device = device

    def _dtype(self, dtype: str):
        return {"float32": self.torch.float32, "bool": self.torch.bool, "int64": self.torch.int64, "int16": self.torch.int16}[dtype]

    def empty(self, n: int, dtype: str):
        return self.torch.empty(n, dtype=self._dtype(dtype), device=self.device)

    def asarray(self, data: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(data)).to(self.device)

    def host(self, a) -> np.ndarray:
        return a.cpu().numpy()

    def view(self, a, shape):
        return a.view(shape)

    def sub(self, a, b, out):
        return self.torch.sub(a, b, out=out)

    def add(self, a, b, out):
        return self.torch.add(a, b, out=out)

    def mul(self, a, b, out):
        return self.torch.mul(a, b, out=out)

    def addmul(self, acc, a, b, tmp):
        return acc.addcmul_(a, b)

    def reciprocal(self, a, out):
        return self.torch.reciprocal(a, out=out)

    def abs(self, a, out):
        return self.torch.abs(a, out=out)

    def floor(self, a, out):
        return self.torch.floor(a, out=out)

    def clamp(self, a, lo, hi, out):
        return self.torch.clamp(a, lo, hi, out=out)

    def maximum(self, a, b, out):
        return self.torch.maximum(a, b, out=out)

    def minimum(self, a, b, out):
        return self.torch.minimum(a, b, out=out)

    def remainder(self, a, b, out):
        return self.torch.remainder(a, b, out=out)

    def lt(self, a, b, out):
        return self.torch.lt(a, b, out=out)

    def le(self, a, b, out):
        return self.torch.le(a, b, out=out)

    def gt(self, a, b, out):
        return self.torch.gt(a, b, out=out)

    def ge(self, a, b, out):
        return self.torch.ge(a, b, out=out)

    def and_(self, a, b, out):
        return self.torch.logical_and(a, b, out=out)

    def or_(self, a, b, out):
        return self.torch.logical_or(a, b, out=out)

    def not_(self, a, out):
        return self.torch.logical_not(a, out=out)

    def copy(self, dst, src):
        return dst.copy_(src)

    def fill(self, a, value):
        return a.fill_(value)

    def fill_where(self, a, mask, value):
        return a.masked_fill_(mask, value)

    def take_rows(self, src, index, out):
        return self.torch.index_select(src, 1, index, out=out)

    def take(self, src, index, out):
        return self.torch.index_select(src, 0, index, out=out)


def make_ops(device: str):
    """:class:`NumpyOps` for ``cpu``, :class:`TorchOps` for CUDA devices (``auto`` picks CUDA when
    available); ``torch-cpu`` forces torch on the CPU (for tests and measurements)."""
    if device == "torch-cpu":
        return TorchOps("cpu")
    if device == "cpu":
        return NumpyOps()
    from pipeline.devices import resolve_device

    dev = resolve_device(device, "project.device")
    return TorchOps(dev) if dev.type != "cpu" else NumpyOps()
