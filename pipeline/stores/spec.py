"""What a store declaration is made of: arrays with named dimensions, and the store's contract.

:class:`ArraySpec` declares one array of a sample group (path, dtype, named dimensions);
:class:`StoreSpec` declares one store: its name (the directory under ``<results>/``, the
trainer's role and the CLI option are all this one name), the stage that writes it, its arrays,
the stores it reads and the config sections its content depends on. The declarations
themselves live in :mod:`pipeline.stores.registry`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import UserError

CHUNK_BYTES: int = 1 << 20
"""Target size of an inner chunk of an array that is not per-view."""


class StoreError(UserError):
    """A store is missing, incomplete, of another kind or layout version, or lacks an array."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a sample group.

    ``dims`` names each axis. Named sizes must agree across a sample's arrays: ``view`` (V),
    ``point`` (P), ``pair``, ``mask``, ``run``, ``byte``, ``face``, image sizes ``H``/``W``
    (colour, working resolution), ``Hd``/``Wd`` (depth), ``Hl``/``Wl`` (label maps), ``Hc``/
    ``Wc`` (SAM embedding cells), ``C`` (channels). ``view+1`` / ``mask+1`` are CSR offsets.
    Integer strings are fixed sizes.
    """

    path: str
    dtype: str
    dims: tuple[str, ...]
    doc: str
    required: bool = True
    compress: bool = True

    def check(self, array: np.ndarray, sizes: dict[str, int], where: str) -> None:
        """Validate dtype/rank/sizes of ``array``; records named sizes into ``sizes``."""
        if array.dtype != np.dtype(self.dtype):
            raise StoreError(f"{where}: {self.path} must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.dims):
            raise StoreError(f"{where}: {self.path} must have dims {self.dims}, got shape {array.shape}")
        for dim, size in zip(self.dims, array.shape):
            if dim.isdigit():
                if size != int(dim):
                    raise StoreError(f"{where}: {self.path} axis {dim!r} must be {dim}, got {size}")
                continue
            name, extra = (dim[:-2], 1) if dim.endswith("+1") else (dim, 0)
            known = sizes.setdefault(name, size - extra)
            if known != size - extra:
                raise StoreError(f"{where}: {self.path} has {name}={size - extra}, other arrays say {known}")


def array(path: str, dtype: str, dims: str, doc: str, required: bool = True, compress: bool = True) -> ArraySpec:
    """Shorthand for an :class:`ArraySpec` with comma-separated ``dims``."""
    return ArraySpec(path, dtype, tuple(dims.split(",")) if dims else (), doc, required, compress)


@dataclass(frozen=True)
class StoreSpec:
    """One store of a shard: ``<results>/<name>/<shard>.zarr``.

    ``stage`` is the command/rule family that writes it (``refine`` writes ``refined``),
    ``reads`` the stores that stage reads (by name), ``config`` the dotted config keys its content
    depends on (a change reruns it), ``trainer_arrays`` the optional arrays the trainer needs
    every sample of this store to hold, ``labels`` whether its values are class indices of the
    vocabulary it records (root attribute ``vocabulary``). ``arrays`` are per sample,
    ``store_arrays`` store-level (group ``_store``).
    """

    name: str
    stage: str
    doc: str
    arrays: tuple[ArraySpec, ...]
    reads: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    store_arrays: tuple[ArraySpec, ...] = field(default=())
    trainer_arrays: tuple[str, ...] = ()
    labels: bool = False

    def spec(self, path: str, store_level: bool = False) -> ArraySpec:
        """The declared :class:`ArraySpec` called ``path`` (raises :class:`StoreError` if undeclared)."""
        for item in self.store_arrays if store_level else self.arrays:
            if item.path == path:
                return item
        raise StoreError(f"store {self.name!r} declares no array {path!r}")

    def declares(self, path: str) -> bool:
        """True if ``path`` is a declared per-sample array."""
        return any(item.path == path for item in self.arrays)


def chunking(spec: ArraySpec, shape: tuple[int, ...], itemsize: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Inner chunk and shard shape for an array: one chunk per view, else ~1 MiB row blocks.

    The shard covers the whole array, so each array is a single file.
    """
    shape1 = tuple(max(1, s) for s in shape)
    if spec.dims and spec.dims[0] == "view":
        chunk = (1, *shape1[1:])
    else:
        row_bytes = max(1, itemsize * int(np.prod(shape1[1:], dtype=np.int64)))
        rows = max(1, min(shape1[0], CHUNK_BYTES // row_bytes)) if shape1 else 1
        chunk = (rows, *shape1[1:]) if shape1 else ()
    if not chunk:
        return (), ()
    shard = (math.ceil(shape1[0] / chunk[0]) * chunk[0], *shape1[1:])
    return chunk, shard
