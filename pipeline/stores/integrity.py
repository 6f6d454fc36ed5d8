"""Store integrity on read: a finished store whose content is damaged is refused and moved aside.

What counts as damage (in a store whose root attributes say it is a finished store of ours):

* a chunk (shard) file an array's shape and chunking call for is missing: the writer writes every
  chunk, even one holding only the fill value (``write_empty_chunks``), so a missing file never
  means "zeros" (zarr alone would return the fill value and say nothing);
* an array's recorded shape disagrees with its declaration and the sample's recorded sizes
  (``view``, ``point``, ...), or its dtype with the declared one;
* a sample group, or an array the sample records (or that its store requires), has no readable
  metadata;
* a chunk fails to decode: every chunk carries a CRC-32C, so a truncated or altered chunk fails
  its checksum instead of decoding to other numbers.

:func:`damaged` then renames the store directory to ``<name>.damaged-<UTC time>`` beside it and
returns a :class:`StoreDamaged` whose one-line message names the store, sample and array, says
where the store went and that rerunning recomputes it: the store's producer output is missing,
so the next ``snakemake`` run schedules the producer and everything downstream of it.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pipeline.stores.spec import ArraySpec, StoreError

log = logging.getLogger(__name__)

ALL_CHUNKS_KEY: str = "all_chunks_written"
"""Root attribute: true when the writer wrote every chunk (stores written before it existed may
lack the files of chunks holding only the fill value, so their missing files are not damage)."""

DAMAGED_INFIX: str = ".damaged-"
"""A store moved aside is renamed ``<name>.zarr.damaged-<UTC time>`` (gitignored, never an output)."""


class StoreDamaged(StoreError):
    """A finished store's content is damaged (missing or corrupt chunk, shape that disagrees)."""


def _where(path: Path, sample: str | None, name: str | None) -> str:
    parts = [str(path)]
    if sample is not None:
        parts.append(f"sample {sample!r}")
    if name is not None:
        parts.append(f"array {name!r}")
    return ", ".join(parts)


def move_aside(path: str | Path) -> Path | None:
    """Rename store ``path`` to ``<path>.damaged-<UTC time>``; None if it is already gone."""
    path = Path(path)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}{DAMAGED_INFIX}{stamp}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def damaged(path: str | Path, sample: str | None, name: str | None, problem: str) -> StoreDamaged:
    """Move the damaged store ``path`` aside and return the error to raise (one line)."""
    path = Path(path)
    where = _where(path, sample, name)
    try:
        target = move_aside(path)
    except OSError as err:
        return StoreDamaged(f"{where}: {problem}; the store is damaged and could not be moved aside ({err}): delete it and rerun to recompute it")
    moved = f"moved aside to {target.name}" if target is not None else "already moved aside (by another reader)"
    log.debug("%s: %s; store %s", where, problem, moved)
    return StoreDamaged(f"{where}: {problem}; the store is damaged and was {moved}: rerun (snakemake) to recompute it")


def chunk_keys(arr: Any) -> list[str]:
    """Keys (paths below the array) of every chunk file (shard, for sharded arrays) of a zarr v3 array."""
    outer = arr.shards or arr.chunks
    grid = [math.ceil(s / c) if c else 0 for s, c in zip(arr.shape, outer)]
    return [arr.metadata.encode_chunk_key(coords) for coords in itertools.product(*(range(n) for n in grid))]


def missing_chunks(array_dir: Path, arr: Any) -> list[str]:
    """The chunk files of ``arr`` (stored at ``array_dir``) that are absent."""
    return [key for key in chunk_keys(arr) if not os.path.isfile(array_dir / key)]


def shape_problem(spec: ArraySpec, shape: tuple[int, ...], dtype: Any, sizes: Mapping[str, int]) -> str | None:
    """Why ``shape``/``dtype`` disagree with ``spec`` and the recorded ``sizes``, or None."""
    if np.dtype(dtype) != np.dtype(spec.dtype):
        return f"dtype {np.dtype(dtype)} but the store declares {spec.dtype}"
    if len(shape) != len(spec.dims):
        return f"shape {tuple(shape)} but the store declares dims {spec.dims}"
    for dim, size in zip(spec.dims, shape):
        if dim.isdigit():
            expected = int(dim)
        else:
            name, extra = (dim[:-2], 1) if dim.endswith("+1") else (dim, 0)
            if name not in sizes:
                continue
            expected = int(sizes[name]) + extra
        if size != expected:
            return f"shape {tuple(shape)} disagrees with the sample's recorded sizes ({dim}={expected})"
    return None


class CheckedArray:
    """A zarr array whose reads turn a chunk that fails to decode into :class:`StoreDamaged`.

    Indexing works as on the zarr array; other attributes (``shape``, ``dtype``, ...) are the
    zarr array's. ``on_damage(problem)`` builds the error (and moves the store aside).
    """

    def __init__(self, arr: Any, on_damage: Callable[[str], StoreDamaged]) -> None:
        self._arr = arr
        self._on_damage = on_damage

    def __getitem__(self, index: Any) -> Any:
        try:
            return self._arr[index]
        except (IndexError, TypeError, MemoryError, StoreError):
            raise
        except Exception as err:
            problem = _decode_problem(self._arr)
            if problem is None:
                raise
            raise self._on_damage(problem) from err

    def __len__(self) -> int:
        return len(self._arr)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not forwarded (and no recursion while unpickling)
            raise AttributeError(name)
        return getattr(self._arr, name)


def _decode_problem(arr: Any) -> str | None:
    """The one-line problem if the whole array fails to read too (damage), else None (the
    caller's selection was at fault)."""
    try:
        arr[...]
    except MemoryError:
        return None
    except Exception as again:  # zarr/numcodecs raise ValueError, RuntimeError, OSError, ...
        text = str(again).splitlines()[0] if str(again) else type(again).__name__
        return f"a chunk fails to decode ({type(again).__name__}: {text[:160]})"
    return None
