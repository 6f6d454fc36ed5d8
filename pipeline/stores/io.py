"""Reading and writing stores: atomic writers, checked readers.

Zarr format 3, written by a single process. Inside a store, one group per sample (its id),
holding the arrays its :class:`~pipeline.stores.spec.StoreSpec` declares. Every array is one
Zarr *shard* (one file) cut into inner chunks (one per view for per-view arrays, about 1 MiB
otherwise), so a store holds a few files per array and sample, whatever the number of views,
and a reader still fetches a single view without reading the others.

Writers are atomic: :class:`StoreWriter` builds the store under a hidden temporary sibling
(``.<name>.partial-<pid>-<random>``) and renames it into place only after every sample was
written and the root attributes say ``complete: true``. A killed job leaves only the hidden
temporary, which the next writer of the same path removes; readers refuse stores that lack
``complete`` or carry another layout version.

Every chunk is written, even one holding only the fill value, and carries a CRC-32C; readers
check each array they open against the chunk files on disk and the sample's recorded sizes, and
a chunk that fails to decode, a missing chunk file or a shape that disagrees moves the store
aside as damaged (:mod:`pipeline.stores.integrity`), so the next run recomputes it.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from pipeline.atomic import WRITE_ERRNOS, naming_output, output_error, prepare_parent, replace
from pipeline.provenance import code_version
from pipeline.stores.integrity import ALL_CHUNKS_KEY, CheckedArray, StoreDamaged, damaged, missing_chunks, shape_problem
from pipeline.stores.registry import LAYOUT_VERSION, check_vocabulary, store_spec
from pipeline.stores.spec import ArraySpec, StoreError, chunking

_SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ROOT_KEYS: tuple[str, ...] = ("store", "layout_version", "samples", "created", "code_version", "complete", ALL_CHUNKS_KEY)
"""Root attributes every writer sets itself (callers' ``attrs`` may not override them)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


class StoreWriter:
    """Write one store atomically.

    >>> with StoreWriter(out, "prepared", attrs={"dataset": "demo"}) as w:  # doctest: +SKIP
    ...     w.add_sample("scene0000_00", {"views/pose": poses, ...}, attrs={"split": "train"})

    On success the store appears at ``path`` with the root attributes of :data:`ROOT_KEYS` and
    the caller's ``attrs``; on an exception nothing appears and the temporary is removed.
    """

    def __init__(self, path: str | Path, store: str, attrs: Mapping[str, Any] | None = None) -> None:
        import zarr

        self.path = Path(path)
        self.spec = store_spec(store)
        self.attrs = {k: v for k, v in dict(attrs or {}).items() if k not in ROOT_KEYS}
        self.samples: list[str] = []
        self._store_level_written: set[str] = set()
        self.tmp = prepare_parent(self.path)
        with naming_output(self.path, any_oserror=True):
            self.root = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        self._closed = False

    def _write(self, group_path: str, spec: ArraySpec, data: np.ndarray) -> None:
        from zarr.codecs import Crc32cCodec, ZstdCodec

        chunk, shard = chunking(spec, data.shape, data.dtype.itemsize)
        # every chunk carries a checksum, and is written even when it holds only the fill value,
        # so a reader tells damage (a missing file, altered bytes) from data (integrity.py)
        compressors = [ZstdCodec(level=3), Crc32cCodec()] if spec.compress else [Crc32cCodec()]
        kwargs: dict[str, Any] = {"compressors": compressors, "config": {"write_empty_chunks": True}}
        if chunk:
            kwargs.update(chunks=chunk, shards=shard)
        arr = self.root.create_array(
            name=f"{group_path}/{spec.path}" if group_path else spec.path,
            shape=data.shape, dtype=data.dtype, fill_value=0, **kwargs,
        )
        if data.size:
            arr[...] = data

    def _checked(self, sample_id: str, arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        where = f"{self.path} sample {sample_id}"
        declared = {s.path: s for s in self.spec.arrays}
        unknown = sorted(set(arrays) - set(declared))
        if unknown:
            raise StoreError(f"{where}: arrays {unknown} are not declared for store {self.spec.name!r} (pipeline/stores/registry.py)")
        missing = sorted(p for p, s in declared.items() if s.required and p not in arrays)
        if missing:
            raise StoreError(f"{where}: required arrays {missing} missing")
        sizes: dict[str, int] = {}
        checked = {}
        for name, data in arrays.items():
            data = np.ascontiguousarray(data)
            declared[name].check(data, sizes, where)
            checked[name] = data
        return checked, sizes

    def add_sample(self, sample_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> None:
        """Validate ``arrays`` against the store's declaration and write them as group ``sample_id``."""
        if self._closed:
            raise StoreError(f"{self.path}: writer already closed")
        if not _SAMPLE_ID.match(sample_id) or sample_id.startswith("_"):
            raise StoreError(f"{self.path}: invalid sample id {sample_id!r}")
        if sample_id in self.samples:
            raise StoreError(f"{self.path}: sample {sample_id!r} written twice")
        checked, sizes = self._checked(sample_id, arrays)
        group = self.root.create_group(sample_id)
        for name, data in checked.items():
            self._write(sample_id, self.spec.spec(name), data)
        group.attrs.update(_jsonable({**(attrs or {}), "sizes": sizes, "arrays": sorted(checked)}))
        self.samples.append(sample_id)

    def add_store_array(self, path: str, data: np.ndarray) -> None:
        """Write a store-level array (declared in the store's ``store_arrays``)."""
        spec = self.spec.spec(path, store_level=True)
        data = np.ascontiguousarray(data)
        spec.check(data, {}, str(self.path))
        if path in self._store_level_written:
            raise StoreError(f"{self.path}: store array {path!r} written twice")
        self._write("", spec, data)
        self._store_level_written.add(path)

    def commit(self) -> Path:
        """Finish the store and move it into place (replacing an older store at ``path``)."""
        if self._closed:
            raise StoreError(f"{self.path}: writer already closed")
        meta = {
            **_jsonable(self.attrs),
            "store": self.spec.name,
            "layout_version": LAYOUT_VERSION,
            "samples": list(self.samples),
            "created": _now(),
            "code_version": code_version(),
            "complete": True,
            ALL_CHUNKS_KEY: True,
        }
        try:
            with naming_output(self.path, any_oserror=True):
                self.root.attrs.update(meta)
                replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Remove the temporary store; nothing appears at ``path``."""
        self._closed = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
            if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
                raise output_error(self.path, exc) from exc


class StoreReader:
    """Read a finished store; refuses incomplete stores, other layout versions and other stores.

    ``benchmark`` (``vocabulary.benchmark``), when given, is checked against the vocabulary a
    labels store records (:meth:`require_vocabulary`): every stage that reads a labels store
    passes it. Arrays are checked as they are opened and read (:mod:`pipeline.stores.integrity`):
    damage raises :class:`~pipeline.stores.integrity.StoreDamaged` and moves the store aside.
    """

    def __init__(self, path: str | Path, store: str | None = None, benchmark: str | None = None) -> None:
        import zarr

        self.path = Path(path)
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: store not found")
        try:
            self.root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
        except Exception as err:  # zarr raises several types for unreadable metadata
            raise StoreError(f"{self.path}: not a readable Zarr v3 store ({err})") from err
        self.attrs: dict[str, Any] = dict(self.root.attrs)
        if not self.attrs.get("complete"):
            raise StoreError(f"{self.path}: store is incomplete (a writer did not finish); delete it and rerun")
        if self.attrs.get("layout_version") != LAYOUT_VERSION:
            raise StoreError(
                f"{self.path}: layout version {self.attrs.get('layout_version')} but this code reads {LAYOUT_VERSION}; rerun the stage"
            )
        if store is not None and self.attrs.get("store") != store:
            raise StoreError(f"{self.path}: expected a {store!r} store, found {self.attrs.get('store')!r}")
        self.spec = store_spec(self.attrs["store"])
        self.samples: list[str] = list(self.attrs["samples"])
        self._all_chunks = bool(self.attrs.get(ALL_CHUNKS_KEY))
        self._sample_attrs: dict[str, dict[str, Any]] = {}
        self._arrays: dict[str, CheckedArray] = {}
        if benchmark is not None and self.spec.labels:
            self.require_vocabulary(benchmark)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}}

    def __iter__(self) -> Iterator[str]:
        return iter(self.samples)

    def require_samples(self, reference: "StoreReader", hint: str = "rerun that stage") -> None:
        """Raise :class:`StoreError` naming this store unless it holds every sample of ``reference``
        (stores of one shard from different stages must cover the same samples)."""
        have = set(self.samples)
        missing = [s for s in reference.samples if s not in have]
        if missing:
            raise StoreError(f"{self.path}: lacks samples {missing[:5]} of {reference.path}; {hint}")

    def require_vocabulary(self, benchmark: str, class_names: Sequence[str] | None = None) -> bool:
        """Raise :class:`StoreError` if the root attribute ``vocabulary`` names another benchmark or
        other classes than ``benchmark``'s (or ``class_names``); returns whether the store records a
        vocabulary at all (:func:`pipeline.stores.registry.check_vocabulary`, the one check)."""
        return check_vocabulary(self.attrs, self.path, benchmark, class_names)

    def damaged(self, sample_id: str | None, name: str | None, problem: str) -> StoreDamaged:
        """Move this store aside as damaged; returns the one-line error naming store, sample, array."""
        self._arrays.clear()
        return damaged(self.path, sample_id, name, problem)

    def _check_sample(self, sample_id: str) -> None:
        if sample_id not in self.samples:
            raise StoreError(f"{self.path}: no sample {sample_id!r}")

    def _group_attrs(self, sample_id: str) -> dict[str, Any]:
        self._check_sample(sample_id)
        if sample_id not in self._sample_attrs:
            try:
                self._sample_attrs[sample_id] = dict(self.root[sample_id].attrs)
            except KeyError:
                raise self.damaged(sample_id, None, "the sample's group is missing") from None
            except Exception as err:  # unreadable group metadata
                raise self.damaged(sample_id, None, f"the sample's group metadata is unreadable ({type(err).__name__})") from err
        return self._sample_attrs[sample_id]

    def sample_attrs(self, sample_id: str) -> dict[str, Any]:
        """Attributes of a sample group (including ``sizes``: the named dimension sizes)."""
        return copy.deepcopy(self._group_attrs(sample_id))

    def has(self, sample_id: str, name: str) -> bool:
        """True if the sample holds array ``name``."""
        recorded = self._group_attrs(sample_id).get("arrays")
        if recorded is not None:
            return name in recorded
        try:
            self.root[f"{sample_id}/{name}"]
        except KeyError:
            return False
        return True

    def _open(self, sample_id: str | None, name: str, spec: ArraySpec, sizes: Mapping[str, int], expected: bool) -> CheckedArray:
        key = f"{sample_id}/{name}" if sample_id is not None else name
        try:
            arr = self.root[key]
        except KeyError:
            if expected:
                raise self.damaged(sample_id, name, "its metadata is missing, though the sample records it") from None
            where = f"sample {sample_id!r} has" if sample_id is not None else "has"
            raise StoreError(f"{self.path}: {where} no array {name!r}") from None
        except Exception as err:  # unreadable array metadata
            raise self.damaged(sample_id, name, f"its metadata is unreadable ({type(err).__name__})") from err
        problem = shape_problem(spec, arr.shape, arr.dtype, sizes)
        if problem is None and self._all_chunks:
            missing = missing_chunks(self.path / key, arr)
            if missing:
                problem = f"chunk file {missing[0]!r} is missing ({len(missing)} of the array's chunk files)"
        if problem is not None:
            raise self.damaged(sample_id, name, problem)
        return CheckedArray(arr, lambda why: self.damaged(sample_id, name, why))

    def array(self, sample_id: str, name: str) -> CheckedArray:
        """The lazy array ``name`` of a sample, checked against its chunk files and the sample's
        sizes (index it to read; a chunk that fails to decode raises ``StoreDamaged``)."""
        spec = self.spec.spec(name)
        key = f"{sample_id}/{name}"
        if key not in self._arrays:
            attrs = self._group_attrs(sample_id)
            recorded = attrs.get("arrays")
            expected = name in recorded if recorded is not None else spec.required
            self._arrays[key] = self._open(sample_id, name, spec, attrs.get("sizes", {}), expected)
        return self._arrays[key]

    def read(self, sample_id: str, name: str, index: Any = Ellipsis) -> np.ndarray:
        """Read ``name`` (or ``[index]`` of it) of a sample as a numpy array."""
        return np.asarray(self.array(sample_id, name)[index])

    def read_store_array(self, name: str) -> np.ndarray:
        """Read a store-level array (``_store/...``)."""
        spec = self.spec.spec(name, store_level=True)
        if name not in self._arrays:
            self._arrays[name] = self._open(None, name, spec, {}, expected=False)
        return np.asarray(self._arrays[name][...])

    def has_store_array(self, name: str) -> bool:
        """True if the store holds the store-level array ``name``."""
        try:
            self.root[name]
        except KeyError:
            return False
        return True
