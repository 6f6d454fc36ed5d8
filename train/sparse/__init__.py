"""Sparse 3D convolution behind a small interface of ours (see docs/method.md).

Public API:
- :class:`SparseTensor`, :class:`CoordinateSet`, :func:`cat` — the torch backend's tensor.
- :class:`SparseConv3d`, :class:`SparseBatchNorm`, :class:`SparseReLU` — its layers.
- :func:`voxelize`, :func:`pool_features`, :class:`Voxelization` — points <-> voxels.
- :class:`SparseBackend`, :func:`get_backend` — the interface networks are built on
  (``torch``, ``minkowski`` or ``spconv``).
"""

from train.sparse.backend import SparseBackend, TorchBackend, get_backend, minkowski_available, spconv_available
from train.sparse.coords import CoordinateSet, pack_keys, unpack_keys
from train.sparse.kernel_map import KernelMap, kernel_offsets
from train.sparse.nn import SparseBatchNorm, SparseConv3d, SparseReLU
from train.sparse.tensor import SparseTensor, cat
from train.sparse.voxelize import Voxelization, batch_index, pool_features, voxelize

__all__ = [
    "CoordinateSet",
    "KernelMap",
    "SparseBackend",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseReLU",
    "SparseTensor",
    "TorchBackend",
    "Voxelization",
    "batch_index",
    "cat",
    "get_backend",
    "kernel_offsets",
    "minkowski_available",
    "pack_keys",
    "pool_features",
    "spconv_available",
    "unpack_keys",
    "voxelize",
]
