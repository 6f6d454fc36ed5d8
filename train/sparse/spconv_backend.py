"""spconv 2.x behind the sparse interface (optional; used only when asked for by name).

Install: ``pip install -e ".[spconv]"`` gives spconv's CPU build (slow, what CI tests parity with);
spconv is meant for CUDA, where one installs the build matching the CUDA runtime instead, e.g.
``pip install spconv-cu120`` (never both: they ship the same ``spconv`` module).

Mapping onto MinkowskiEngine's semantics (see :mod:`train.sparse.backend`):

- ``conv`` with stride 1 is a ``SubMConv3d`` (submanifold: output sites = input sites, the kernel
  centred, offsets in units of the tensor stride, which spconv gets by working on the coarse grid's
  own indices).
- ``conv`` with stride ``f`` is a ``SparseConv3d`` with kernel ``f``, stride ``f``, no padding:
  output index ``o`` gathers inputs ``f * o + d`` for ``d`` in ``0 .. f-1``, i.e. every site floored
  onto the coarser grid, MinkowskiEngine's even-kernel rule. Other kernel sizes with a stride would
  add sites MinkowskiEngine does not have (spconv's output set is every index some kernel offset
  reaches), so they are refused.
- ``conv_transpose`` is a ``SparseInverseConv3d``, which returns exactly onto the sites of the
  ``SparseConv3d`` whose indice key it names.
- batch norm and ReLU are the torch backend's (:class:`~train.sparse.nn.SparseBatchNorm`,
  :class:`~train.sparse.nn.SparseReLU`), which act on ``x.features`` and ``x.replace(...)``, so the
  state-dict keys of batch norms are the same on both backends.

Tensors are :class:`SpconvTensor`: a ``spconv.SparseConvTensor`` plus the tensor stride and the
origin the coordinates were shifted by. spconv wants non-negative indices, so
:meth:`SpconvBackend.tensor` subtracts an origin, the coordinate minimum floored to a multiple of
:data:`~train.sparse.coords.MAX_STRIDE` (512); the spatial shape is the extent rounded up to a
multiple of 512. Because the origin is a multiple of every stride, flooring the shifted indices is
flooring the original coordinates (negative ones too), and every strided level has an exact integer
spatial shape. spconv's neighbour search is hashed, so a large spatial shape costs nothing.

Indice keys. Our interface builds layers without keys, and ``SparseInverseConv3d`` needs the key of
its down convolution. Keys are derived at forward time from the tensor stride, never at
construction: a down convolution to tensor stride ``S`` records its index pairs under
``cns_s{S}_down``, and a transposed convolution from stride ``S`` uses that key, so it returns
through the most recent down convolution of the tensor's own lineage to stride ``S`` (the key
travels in the tensor's ``indice_dict``, which spconv copies into every output). This is right for
any encoder/decoder order, not only MinkUNet's construction order, and fails loudly (ValueError)
where MinkowskiEngine would: a transposed convolution from a tensor that no down convolution made.
Submanifold convolutions share their index pairs per stride and kernel size (``cns_s{S}_subm{k}``),
as spconv's own networks do. A down convolution drops the keys at its output stride and coarser
from the dict it passes on, so a network that comes back down to a stride it visited before
builds fresh pairs rather than reusing stale ones.

Weights: spconv 2.x stores ``weight`` as (C_out, k, k, k, C_in), the three kernel axes in the order
of the index columns (x, y, z), correlation-style (kernel index ``a`` along x reads the input at
``x + a - k // 2`` for odd ``k``, ``x + a`` for even); measured on spconv 2.3.8. Exception: for a
1x1x1 kernel spconv 2.3.8 multiplies by ``weight.view(C_in, C_out)``, i.e. reads the same memory as
(C_in, C_out). :mod:`train.models.convert_spconv` converts state dicts both ways.

spconv 2.3.8's CPU backward pass needs a CUDA driver for nothing (it asks for the current CUDA
stream and never uses it); where CUDA is unavailable, :func:`import_spconv` points that lookup
at the null stream (:func:`_cpu_backward_shim`), so training runs on the CPU build.

On the CPU each spconv convolution, forward and backward, runs with one torch thread
(:func:`_cpu_single_thread`, :func:`_single_thread_cpu_backward`): with two, the CPU build returned
wrong features in a few of 40 repeated forward passes, and wrong gradients now and then.

Under the trainer's CUDA bf16 autocast, spconv casts its convolution inputs to float16 (its
``custom_fwd``); its CPU build has no bfloat16 kernels at all.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
from types import ModuleType
from typing import Any

import torch
from torch import nn

from train.sparse.coords import MAX_STRIDE, CoordinateSet
from train.sparse.interface import SparseBackend
from train.sparse.nn import SparseBatchNorm, SparseReLU, kaiming_fan_out_

INSTALL_HINT = 'pip install -e ".[spconv]" (CPU build) or, on CUDA, the matching spconv-cu12x wheel (e.g. pip install spconv-cu120)'
"""What to run when spconv is missing."""
KEY_PREFIX = "cns_s"
"""Prefix of the indice keys this backend sets (``cns_s{stride}_{kind}``)."""


class _DropFxNotice(logging.Filter):
    """Drops torch's one-off notice about ``is_fx_tracing``, which spconv's tensor class triggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("is_fx_tracing will return true")


def import_spconv() -> ModuleType:
    """Import ``spconv.pytorch``.

    Raises:
        ImportError: spconv is not installed or does not load; the message names the install command.
    """
    try:
        import spconv.pytorch as spconv
    except ImportError as err:
        raise ImportError(f"the spconv sparse backend needs spconv 2.x ({err}); install it with: {INSTALL_HINT}") from err
    ops = importlib.import_module("spconv.pytorch.ops")
    _cpu_backward_shim(ops)
    _single_thread_cpu_backward(ops)
    fx_log = logging.getLogger("torch.fx._symbolic_trace")
    if not any(isinstance(f, _DropFxNotice) for f in fx_log.filters):
        fx_log.addFilter(_DropFxNotice())
    return spconv


def _null_stream() -> int:
    return 0


def _cpu_backward_shim(ops: ModuleType) -> None:
    """Where CUDA is unavailable, make ``spconv.pytorch.ops.get_current_stream`` return 0.

    spconv 2.3.8's backward of a native (CPU) convolution asks torch for the current CUDA stream
    before it looks at the device, and never uses it on CPU; without a CUDA driver that call
    raises, so no CPU backward pass runs. Nothing changes where CUDA is available.
    """
    if torch.cuda.is_available() or getattr(ops, "get_current_stream", None) is _null_stream:
        return
    ops.get_current_stream = _null_stream


def _single_thread_cpu_backward(ops: ModuleType) -> None:
    """Run spconv's convolution backward ops on one torch thread when their tensors are on the CPU
    (:func:`_cpu_single_thread` explains why; the backward runs in spconv's autograd functions,
    outside our modules' ``forward``, so the guard goes on the ops they call). Idempotent."""
    for name in ("indice_conv_backward", "implicit_gemm_backward"):
        fn = getattr(ops, name, None)
        if fn is None or getattr(fn, "_cns_single_thread", False):
            continue

        @functools.wraps(fn)
        def guarded(features, *args, _fn=fn, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - spconv's own signature
            with _cpu_single_thread(features):
                return _fn(features, *args, **kwargs)

        guarded._cns_single_thread = True  # type: ignore[attr-defined]
        setattr(ops, name, guarded)


def _key(stride: int, kind: str) -> str:
    return f"{KEY_PREFIX}{stride}_{kind}"


def _key_stride(key: Any) -> int | None:
    """Tensor stride of one of our keys, None for any other key."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
        return None
    head = key[len(KEY_PREFIX) :].split("_", 1)[0]
    return int(head) if head.isdigit() else None



def _same_indices(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two (M, 4) int32 index tensors are the same rows in the same order."""
    if a.shape != b.shape:
        return False
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True
    return bool(torch.equal(a, b.to(a.device)))


class SpconvTensor:
    """A ``spconv.SparseConvTensor`` with its tensor stride and coordinate origin.

    Attributes:
        sp: the spconv tensor; ``sp.indices`` (M, 4) int32 ``[batch, i, j, k]`` on the grid of
            this stride, ``sp.features`` (M, C).
        stride: tensor stride in finest-grid voxels.
        origin: (x, y, z) subtracted from the input coordinates (a multiple of 512).
    """

    __slots__ = ("sp", "stride", "origin")

    def __init__(self, sp: Any, stride: int, origin: tuple[int, int, int]) -> None:
        self.sp = sp
        self.stride = int(stride)
        self.origin = origin

    @property
    def features(self) -> torch.Tensor:
        """(M, C) features."""
        return self.sp.features

    @property
    def coords(self) -> torch.Tensor:
        """(M, 4) int32 ``[batch, x, y, z]`` in the input's units (multiples of ``stride``)."""
        ind = self.sp.indices.to(torch.int64)
        origin = torch.tensor(self.origin, dtype=torch.int64, device=ind.device)
        return torch.cat([ind[:, :1], ind[:, 1:] * self.stride + origin], 1).to(torch.int32)

    def __len__(self) -> int:
        return int(self.sp.features.shape[0])

    def __repr__(self) -> str:
        return f"SpconvTensor(n={len(self)}, channels={self.sp.features.shape[1]}, stride={self.stride})"

    def replace(self, features: torch.Tensor) -> SpconvTensor:
        """Same sites, new (M, C') features."""
        return SpconvTensor(self.sp.replace_feature(features), self.stride, self.origin)

    def same_sites(self, other: SpconvTensor, what: str) -> None:
        """Raise ValueError unless ``other`` has the same sites in the same row order."""
        if self.stride != other.stride or not _same_indices(self.sp.indices, other.sp.indices):
            raise ValueError(f"{what} needs tensors on the same sites in the same order, got {self} and {other}")

    def __add__(self, other: SpconvTensor) -> SpconvTensor:
        self.same_sites(other, "addition")
        return self.replace(self.features + other.features)


def _without_levels(sp: Any, min_stride: int) -> Any:
    """``sp`` with our indice keys at stride ``min_stride`` and coarser removed (a shallow copy
    when there are any; ``sp`` itself is not changed)."""
    stale = [k for k in sp.indice_dict if (s := _key_stride(k)) is not None and s >= min_stride]
    if not stale:
        return sp
    out = sp.shadow_copy()
    out.indice_dict = {k: v for k, v in sp.indice_dict.items() if k not in stale}
    return out


@contextlib.contextmanager
def _cpu_single_thread(features: torch.Tensor):
    """One torch thread while spconv runs a convolution on CPU ``features``: its CPU build (2.3.8)
    returns wrong results now and then with 2 intra-op threads (measured: 5 of 40 identical forward
    passes of a tiny MinkUNet differed, by up to 1.6, none with 1 thread). CUDA is left alone."""
    if features.device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.cache
def _layer_classes() -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    """Our three convolution modules, subclasses of spconv's (so parameters are spconv's
    ``weight`` and ``bias``), taking and returning :class:`SpconvTensor`."""
    spconv = import_spconv()

    class SubmanifoldConv(spconv.SubMConv3d):
        """Stride-1 convolution on the input sites (odd kernel)."""

        def forward(self, x: SpconvTensor) -> SpconvTensor:  # type: ignore[override]
            k = self.kernel_size[0]
            self.indice_key = None if k == 1 else _key(x.stride, f"subm{k}")
            with _cpu_single_thread(x.features):
                return SpconvTensor(super().forward(x.sp), x.stride, x.origin)

    class DownConv(spconv.SparseConv3d):
        """Kernel ``f``, stride ``f``: onto the input sites floored to the coarser grid."""

        def forward(self, x: SpconvTensor) -> SpconvTensor:  # type: ignore[override]
            out_stride = x.stride * self.stride[0]
            if out_stride > MAX_STRIDE:
                raise ValueError(f"tensor stride {out_stride} exceeds the supported {MAX_STRIDE}")
            self.indice_key = _key(out_stride, "down")
            with _cpu_single_thread(x.features):
                return SpconvTensor(super().forward(_without_levels(x.sp, out_stride)), out_stride, x.origin)

    class UpConv(spconv.SparseInverseConv3d):
        """Transposed convolution back onto the sites the input was downsampled from."""

        def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool) -> None:
            super().__init__(in_channels, out_channels, kernel_size, indice_key="cns_unset", bias=bias)
            self.up_stride = stride

        def extra_repr(self) -> str:
            return super().extra_repr() + f", up_stride={self.up_stride}"

        def forward(self, x: SpconvTensor) -> SpconvTensor:  # type: ignore[override]
            key = _key(x.stride, "down")
            data = x.sp.find_indice_pair(key)
            if data is None:
                raise ValueError(
                    f"transposed convolution from {x}: no down convolution made this tensor, so there are no finer "
                    "sites to return to"
                )
            if list(data.stride) != [self.up_stride] * 3:
                raise ValueError(
                    f"transposed convolution with stride {self.up_stride} from tensor stride {x.stride}: the tensor "
                    f"was made by a stride-{data.stride[0]} convolution"
                )
            self.indice_key = key
            with _cpu_single_thread(x.features):
                return SpconvTensor(super().forward(x.sp), x.stride // self.up_stride, x.origin)

    return SubmanifoldConv, DownConv, UpConv


class SpconvBackend(SparseBackend):
    """spconv 2.x layers (see the module docstring). Convolution parameters are spconv's
    ``weight`` (C_out, k, k, k, C_in) and ``bias`` (C_out,), He-initialised like the other
    backends' (bias zero); batch norms are the torch backend's."""

    name = "spconv"

    def __init__(self) -> None:
        self.spconv = import_spconv()
        self._subm, self._down, self._up = _layer_classes()

    def tensor(self, features: torch.Tensor, coords: torch.Tensor) -> SpconvTensor:
        """Stride-1 tensor from (M, C) features and (M, 4) unique int ``[batch, x, y, z]``
        (negative coordinates allowed); rows keep the input order."""
        CoordinateSet(coords)  # same checks as the torch backend: duplicates and range raise here
        if coords.shape[0] == 0:
            raise ValueError("the spconv backend needs at least one active site")
        c = coords.to(device=features.device, dtype=torch.int64)
        xyz = c[:, 1:]
        lo = torch.div(xyz.min(0).values, MAX_STRIDE, rounding_mode="floor") * MAX_STRIDE
        extent = xyz.max(0).values - lo + 1
        shape = (torch.div(extent + MAX_STRIDE - 1, MAX_STRIDE, rounding_mode="floor") * MAX_STRIDE).tolist()
        indices = torch.cat([c[:, :1], xyz - lo], 1).to(torch.int32).contiguous()
        batch_size = int(c[:, 0].max()) + 1
        sp = self.spconv.SparseConvTensor(features, indices, shape, batch_size)
        origin = tuple(int(v) for v in lo.tolist())
        return SpconvTensor(sp, 1, origin)  # type: ignore[arg-type]

    def features(self, x: SpconvTensor) -> torch.Tensor:
        return x.sp.features

    def rows_of(self, x: SpconvTensor, coords: torch.Tensor) -> torch.Tensor | None:
        if x.stride == 1 and len(x) == coords.shape[0] and bool(torch.equal(x.coords, coords.to(x.sp.indices.device, torch.int32))):
            return None
        sites = CoordinateSet(x.coords, stride=x.stride)
        rows = sites.lookup(coords.to(sites.device))
        if bool((rows < 0).any()):
            raise KeyError("some queried coordinates are not active sites of the tensor")
        return rows.to(x.sp.features.device)

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False) -> nn.Module:
        if stride == 1:
            if kernel_size % 2 == 0:
                raise ValueError(f"a stride-1 sparse convolution needs an odd kernel size, got {kernel_size}")
            m = self._subm(in_channels, out_channels, kernel_size, bias=bias)
        else:
            if kernel_size != stride:
                raise ValueError(
                    f"the spconv backend has strided convolutions with kernel size = stride only (got kernel "
                    f"{kernel_size}, stride {stride}): spconv's output sites for other kernels are not MinkowskiEngine's"
                )
            m = self._down(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        kaiming_fan_out_(m.weight, kernel_size**3, out_channels)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
        return m

    def conv_transpose(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = False
    ) -> nn.Module:
        if stride < 2:
            raise ValueError("a transposed sparse convolution needs stride >= 2")
        if kernel_size != stride:
            raise ValueError(
                f"the spconv backend has transposed convolutions with kernel size = stride only (got kernel "
                f"{kernel_size}, stride {stride}), the inverse of its strided convolutions"
            )
        m = self._up(in_channels, out_channels, kernel_size, stride, bias)
        kaiming_fan_out_(m.weight, kernel_size**3, out_channels)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
        return m

    def batch_norm(self, channels: int, momentum: float = 0.1) -> nn.Module:
        return SparseBatchNorm(channels, momentum=momentum)

    def relu(self) -> nn.Module:
        return SparseReLU(inplace=True)

    def cat(self, *tensors: SpconvTensor) -> SpconvTensor:
        """Channels of tensors on identical sites (same indices in the same order), joined."""
        from train.sparse.tensor import cat

        return cat(*tensors)
