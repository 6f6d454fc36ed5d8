"""The batch contract: one declaration of every field an item and a batch carry, and the collate.

:data:`FIELDS` is the only place fields are written out. Each :class:`Field` gives its dtype,
its shape in an item (symbolic dims), the axis along which items are concatenated, and, for
*index* fields, the :data:`SPACES` entry whose rows its values index. :func:`collate` has no
per-field code: it concatenates every field along its axis and adds to each index field the
running total of its space over the items before (``-1``, "none", stays ``-1``).

Points are concatenated with **CSR offsets** ``point_offsets`` (B+1,): the points of sample ``b``
are rows ``point_offsets[b]:point_offsets[b+1]``. This is the convention of the stores' ragged
arrays (``views/pair_offsets``, ``masks/rle_offsets``) and of :func:`train.sparse.voxelize`; it
is *not* Pointcept's ``offset`` (B,) of cumulative ends, which is ``point_offsets[1:]``.

Item dims: ``n`` kept points (one per voxel with grid sampling), ``C`` input channels, ``O``
label origins (:data:`train.data.sample.ORIGINS` order), ``v`` views, ``h, w`` crop size, ``c``
feature rows (``v`` x SAM cells, 0 without features), ``D`` feature width. A batch has the
same dims with ``N``, ``V``, ``F`` the sums of ``n``, ``v``, ``c`` over its ``B`` items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

SPACES: dict[str, str] = {
    "points": "rows of xyz: the item's kept points (n)",
    "pixels": "crop pixels of the item's views, flat over (view, y, x) (v * h * w)",
    "cells": "rows of features: SAM cells of the item's views (c)",
    "segments": "SAM segments of the item's views (Item.segment_count; ids unique within the item)",
    "samples": "the item itself (1)",
}
"""Index spaces: what an index field's values count (their size per item in parentheses)."""


@dataclass(frozen=True)
class Field:
    """One field of items and batches: ``dtype``, item ``shape`` (symbolic dims or ints), the
    concatenation ``axis``, and ``index``: the space whose rows the values index (or None)."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]
    axis: int
    doc: str
    index: str | None = None


FIELDS: tuple[Field, ...] = (
    Field("xyz", "float32", ("n", 3), 0, "augmented point coordinates, metres"),
    Field("feats", "float32", ("n", "C"), 0, "network input channels per point (train.net3d.input_features)"),
    Field("point_index", "int64", ("n",), 0, "original index of each point in its sample (not shifted: per sample)"),
    Field("own3d", "uint8", ("O", "n"), 1, "each origin's own 3D realisation per point (255 = none)"),
    Field("paired3d", "uint8", ("O", "n"), 1, "each origin's 2D realisation at a random pair of the point (255 = none)"),
    Field("latent3d", "int64", ("n",), 0, "feature row at a random pair of the point in this step's views", "cells"),
    Field("images", "float32", ("v", 3, "h", "w"), 0, "crops normalised with ImageNet statistics, 0 in padding"),
    Field("own2d", "uint8", ("O", "v", "h", "w"), 1, "each origin's own 2D realisation per crop pixel (255 = none)"),
    Field("paired2d", "uint8", ("O", "v", "h", "w"), 1, "each origin's 3D realisation at a random point of the pixel"),
    Field("cells", "int64", ("v", "h", "w"), 0, "feature row of each crop pixel's SAM cell (-1 = padding)", "cells"),
    Field("features", "float16", ("c", "D"), 0, "SAM features of the views' cells, view-major"),
    Field("segments", "int64", ("v", "h", "w"), 0, "SAM segment of each crop pixel (online predictions only)", "segments"),
    Field("pix_row3d", "int64", ("v", "h", "w"), 0, "point row of a point paired with the pixel (online only)", "points"),
    Field("row_pix2d", "int64", ("n",), 0, "crop pixel paired with the point in this step's crops (online only)", "pixels"),
    Field("view_sample", "int64", ("v",), 0, "sample (batch slot) of each view", "samples"),
)
"""Every field of :class:`Item` (numpy) and :class:`Batch` (torch), in this order."""

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)


class _Fields:
    """Attribute access to a ``values`` dict holding exactly the :data:`FIELDS`."""

    def __init__(self, values: dict[str, Any]) -> None:
        if set(values) != set(FIELD_NAMES):
            raise ValueError(f"fields {sorted(set(FIELD_NAMES) - set(values))} missing, {sorted(set(values) - set(FIELD_NAMES))} unknown")
        self.values = values

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")
        if values is None or name not in values:
            raise AttributeError(name)
        return values[name]


class Item(_Fields):
    """One sample's contribution to a batch: the :data:`FIELDS` as numpy arrays, plus the sample
    id, the number of SAM segment ids used (``segment_count``), the view indices (v,) int64 and
    the :class:`train.data.augment.Crop` of each view (tests)."""

    def __init__(self, sample_id: str, values: dict[str, np.ndarray], segment_count: int, views: np.ndarray, crops: list) -> None:
        super().__init__(values)
        self.sample_id = sample_id
        self.segment_count = int(segment_count)
        self.views = views
        self.crops = crops

    def dims(self) -> dict[str, int]:
        """The item's symbolic dims (``n``, ``v``, ...) bound from its arrays; raises ``ValueError``
        naming the field when a dtype, rank or dim disagrees with :data:`FIELDS`."""
        dims: dict[str, int] = {}
        for f in FIELDS:
            array = self.values[f.name]
            if array.dtype != np.dtype(f.dtype) or array.ndim != len(f.shape):
                raise ValueError(f"item field {f.name}: {array.dtype} {array.shape}, expected {f.dtype} of shape {f.shape}")
            for dim, size in zip(f.shape, array.shape):
                if dims.setdefault(str(dim), size if isinstance(dim, str) else dim) != size:
                    raise ValueError(f"item field {f.name}: dim {dim} is {size}, elsewhere {dims[str(dim)]}")
        return dims

    def space_sizes(self) -> dict[str, int]:
        """Size of each of :data:`SPACES` in this item."""
        d = self.dims()
        return {"points": d["n"], "pixels": d["v"] * d["h"] * d["w"], "cells": d["c"], "segments": self.segment_count, "samples": 1}


class Batch(_Fields):
    """A training batch: the :data:`FIELDS` as tensors (index fields into the whole batch), the
    items' ``sample_ids`` and ``point_offsets`` (B+1,) int64, CSR (see the module docstring)."""

    def __init__(self, sample_ids: list[str], point_offsets: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        super().__init__(values)
        self.sample_ids = sample_ids
        self.point_offsets = point_offsets

    def to(self, device: torch.device) -> "Batch":
        """The batch with every tensor on ``device`` (non-blocking copies)."""
        moved = {k: v.to(device, non_blocking=True) for k, v in self.values.items()}
        return Batch(self.sample_ids, self.point_offsets.to(device, non_blocking=True), moved)


def _shift(index: np.ndarray, by: int) -> np.ndarray:
    """Index values moved by ``by``; ``-1`` (none) stays ``-1``."""
    return np.where(index >= 0, index + by, -1)


def collate(items: Sequence[Item]) -> Batch:
    """Concatenate items into a :class:`Batch` following :data:`FIELDS` (no per-field code);
    every tensor is C-contiguous (the memory layout decides which kernels run, hence rounding).

    Raises ``ValueError`` naming the field and dim when items disagree on a dim that is not
    concatenated (one crop size, feature width, origin count and channel count per batch).
    """
    dims = [it.dims() for it in items]
    for f in FIELDS:
        for axis, dim in enumerate(f.shape):
            sizes = {d[str(dim)] for d in dims}
            if axis != f.axis and len(sizes) > 1:
                raise ValueError(f"items of one batch differ in field {f.name} dim {dim}: {sorted(sizes)} "
                                 "(one crop size, feature width and origin count per batch)")
    sizes = np.array([[it.space_sizes()[s] for s in SPACES] for it in items], dtype=np.int64).reshape(len(items), len(SPACES))
    starts = np.cumsum(sizes, axis=0) - sizes  # (B, spaces) running totals before each item
    column = {space: i for i, space in enumerate(SPACES)}
    values = {}
    for f in FIELDS:
        parts = [it.values[f.name] for it in items]
        if f.index is not None:
            parts = [_shift(p, int(starts[b, column[f.index]])) for b, p in enumerate(parts)]
        values[f.name] = torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=f.axis)))
    point_offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum(sizes[:, column["points"]], out=point_offsets[1:])
    return Batch([it.sample_id for it in items], torch.from_numpy(point_offsets), values)
