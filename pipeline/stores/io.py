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
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from pipeline.atomic import WRITE_ERRNOS, naming_output, output_error, prepare_parent, replace
from pipeline.provenance import code_version
from pipeline.stores.registry import LAYOUT_VERSION, store_spec
from pipeline.stores.spec import ArraySpec, StoreError, chunking

_SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ROOT_KEYS: tuple[str, ...] = ("store", "layout_version", "samples", "created", "code_version", "complete")
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
        from zarr.codecs import ZstdCodec

        chunk, shard = chunking(spec, data.shape, data.dtype.itemsize)
        kwargs: dict[str, Any] = {"compressors": [ZstdCodec(level=3)] if spec.compress else None}
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
        group.attrs.update(_jsonable({**(attrs or {}), "sizes": sizes}))
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
    """Read a finished store; refuses incomplete stores, other layout versions and other stores."""

    def __init__(self, path: str | Path, store: str | None = None) -> None:
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

    def __iter__(self) -> Iterator[str]:
        return iter(self.samples)

    def require_samples(self, reference: "StoreReader", hint: str = "rerun that stage") -> None:
        """Raise :class:`StoreError` naming this store unless it holds every sample of ``reference``
        (stores of one shard from different stages must cover the same samples)."""
        have = set(self.samples)
        missing = [s for s in reference.samples if s not in have]
        if missing:
            raise StoreError(f"{self.path}: lacks samples {missing[:5]} of {reference.path}; {hint}")

    def require_vocabulary(self, benchmark: str, class_names: Sequence[str]) -> bool:
        """Raise :class:`StoreError` if the root attribute ``vocabulary`` names another benchmark or
        other classes; returns whether the store records a vocabulary at all."""
        vocab = self.attrs.get("vocabulary")
        if not isinstance(vocab, dict):
            return False
        if vocab.get("benchmark") not in (None, benchmark):
            raise StoreError(
                f"{self.path}: made for vocabulary {vocab.get('benchmark')!r}, but this run is configured for "
                f"{benchmark!r} (vocabulary.benchmark); rerun the pipeline or fix the config"
            )
        names = vocab.get("class_names")
        if names is not None and list(names) != list(class_names):
            raise StoreError(
                f"{self.path}: its class names {list(names)[:4]}... differ from benchmark {benchmark!r}'s; "
                "the labels would mean other classes. Rerun the pipeline with this vocabulary"
            )
        return True

    def _check_sample(self, sample_id: str) -> None:
        if sample_id not in self.samples:
            raise StoreError(f"{self.path}: no sample {sample_id!r}")

    def sample_attrs(self, sample_id: str) -> dict[str, Any]:
        """Attributes of a sample group (including ``sizes``: the named dimension sizes)."""
        self._check_sample(sample_id)
        return dict(self.root[sample_id].attrs)

    def has(self, sample_id: str, name: str) -> bool:
        """True if the sample holds array ``name``."""
        self._check_sample(sample_id)
        try:
            self.root[f"{sample_id}/{name}"]
        except KeyError:
            return False
        return True

    def array(self, sample_id: str, name: str):
        """The lazy ``zarr.Array`` ``name`` of a sample (index it to read)."""
        self._check_sample(sample_id)
        self.spec.spec(name)
        try:
            return self.root[f"{sample_id}/{name}"]
        except KeyError:
            raise StoreError(f"{self.path}: sample {sample_id!r} has no array {name!r}") from None

    def read(self, sample_id: str, name: str, index: Any = Ellipsis) -> np.ndarray:
        """Read ``name`` (or ``[index]`` of it) of a sample as a numpy array."""
        return np.asarray(self.array(sample_id, name)[index])

    def read_store_array(self, name: str) -> np.ndarray:
        """Read a store-level array (``_store/...``)."""
        self.spec.spec(name, store_level=True)
        try:
            return np.asarray(self.root[name][...])
        except KeyError:
            raise StoreError(f"{self.path}: no store-level array {name!r}") from None

    def has_store_array(self, name: str) -> bool:
        """True if the store holds the store-level array ``name``."""
        try:
            self.root[name]
        except KeyError:
            return False
        return True
