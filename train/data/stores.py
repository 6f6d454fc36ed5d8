"""The stores of one shard as the trainer sees them, and their checks before training starts.

Which stores a command reads is the registry's business (:func:`pipeline.stores.trainer_stores`).
:func:`open_shards` opens them per shard and checks, before any step runs, that they hold the
same samples, come from the configured vocabulary (root attribute ``vocabulary``, checked by
the readers), hold every
array the trainer reads and agree on sizes; every failure is a
:class:`pipeline.stores.StoreError` naming the store and the problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from pipeline.camera import sam_valid_grid
from pipeline.stores import STORES, StoreError, StoreReader, shard_of, store_spec
from pipeline.vocab import Benchmark

log = logging.getLogger(__name__)


@dataclass
class ShardStores:
    """Readers of one shard's stores, by store name; ``samples`` in the prepared store's order."""

    name: str
    readers: dict[str, StoreReader]
    samples: list[str] = field(default_factory=list)

    def reader(self, store: str) -> StoreReader:
        """The reader of store ``store`` (raises :class:`StoreError` if it was not given)."""
        if store not in self.readers:
            raise StoreError(f"shard {self.name}: no {store} store given")
        return self.readers[store]

    def get(self, store: str) -> StoreReader | None:
        """The reader of store ``store``, or None."""
        return self.readers.get(store)

    @property
    def prepared(self) -> StoreReader:
        """The prepared store's reader."""
        return self.reader("prepared")


def _check_sizes(shard: ShardStores, sample: str) -> None:
    prep = shard.prepared
    sizes = prep.sample_attrs(sample)["sizes"]
    label_sizes = {}
    for name, reader in shard.readers.items():
        for array in store_spec(name).trainer_arrays:
            if array.startswith("points/") and shard.get("points") is None:  # image-only samples have no points
                continue
            if not reader.has(sample, array):
                raise StoreError(f"{reader.path}: sample {sample!r} lacks required array {array!r}")
        other = reader.sample_attrs(sample).get("sizes", {})
        for dim in ("view", "point"):
            if dim in other and dim in sizes and other[dim] != sizes[dim]:
                raise StoreError(
                    f"{reader.path}: sample {sample!r} has {dim}={other[dim]} but the prepared store "
                    f"{prep.path} has {sizes[dim]}; the stores come from different runs"
                )
        if "Hl" in other:
            label_sizes[name] = (other["Wl"], other["Hl"])
    if len(set(label_sizes.values())) > 1:
        raise StoreError(f"shard {shard.name} sample {sample!r}: label resolutions differ between stores: {label_sizes}")


def _check_sam_grid(shard: ShardStores, sample: str) -> None:
    sam, prep = shard.get("sam"), shard.prepared
    if sam is None:
        return
    image_sizes = prep.read(sample, "views/image_size")
    if not len(image_sizes):
        return
    if (image_sizes != image_sizes[0]).any():
        raise StoreError(f"{prep.path}: sample {sample!r} has views of different sizes; the trainer needs one size per sample")
    s = sam.sample_attrs(sample)["sizes"]
    grid = sam_valid_grid((int(image_sizes[0][0]), int(image_sizes[0][1])))
    if (s.get("Hc"), s.get("Wc")) != grid:
        raise StoreError(
            f"{sam.path}: sample {sample!r} has a {s.get('Hc')}x{s.get('Wc')} feature grid, but SAM's "
            f"valid grid of a {tuple(int(v) for v in image_sizes[0])} image is {grid[0]}x{grid[1]}"
        )


def _by_shard(stores: Mapping[str, Sequence[str | Path]], required: Sequence[str]) -> dict[str, dict[str, Path]]:
    """{store name: {shard: path}}, every store covering the prepared stores' shards."""
    for name in required:
        if not stores.get(name):
            raise StoreError(f"no {name} stores given (needed: {', '.join(required)})")
    shards = [shard_of(str(p)) for p in stores["prepared"]]
    out: dict[str, dict[str, Path]] = {}
    for name, paths in stores.items():
        if name not in STORES:
            raise StoreError(f"unknown store {name!r}; known: {list(STORES)}")
        if not paths:
            continue
        named = {shard_of(str(p)): Path(p) for p in paths}
        missing = sorted(set(shards) - set(named))
        if missing:
            raise StoreError(f"no {name} store for shard(s) {missing} (given: {[str(p) for p in paths]})")
        out[name] = named
    return out


def open_shards(stores: Mapping[str, Sequence[str | Path]], bench: Benchmark, required: Sequence[str]) -> list[ShardStores]:
    """Open and check the stores of several shards.

    ``stores`` maps a store name (``prepared``, ``refined``, ...) to paths, one per shard
    (matched to the prepared stores by file name); ``required`` are the stores the caller cannot
    do without. Raises :class:`StoreError` naming the store and the problem.
    """
    by_name = _by_shard(stores, required)
    out, recorded = [], False
    for path in stores["prepared"]:
        name = shard_of(str(path))
        # the readers check each labels store's vocabulary record (pipeline.stores.registry.check_vocabulary)
        readers = {store: StoreReader(paths[name], store, benchmark=bench.name) for store, paths in by_name.items()}
        shard = ShardStores(name=name, readers=readers, samples=list(readers["prepared"].samples))
        for store, reader in readers.items():
            if store == "prepared":
                continue
            reader.require_samples(shard.prepared, f"rerun the stage that writes {store} stores")
            recorded |= store_spec(store).labels and isinstance(reader.attrs.get("vocabulary"), dict)
        for sample in shard.samples:
            _check_sizes(shard, sample)
            _check_sam_grid(shard, sample)
        out.append(shard)
    if not recorded and any(store_spec(r).labels for r in by_name):
        log.warning("no store records its vocabulary (root attribute 'vocabulary'); label values are checked while reading")
    return out
