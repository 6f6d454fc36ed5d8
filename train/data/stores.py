"""The stores of one shard as the trainer sees them, and their checks before training starts.

A shard's stores are the ``prepare``, ``refine``, ``points`` and ``sam`` stores (plus ``clip``
for its vocabulary record and ``predictions`` in stage 2). :func:`open_shards` opens them all
and checks, before any step runs, that they hold the same samples, come from the configured
vocabulary (root attribute ``vocabulary``), hold every array the trainer reads and agree on
sizes; every failure is a :class:`pipeline.layout.StoreError` naming the store and the problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pipeline.camera import sam_valid_grid
from pipeline.layout import StoreError, StoreReader
from pipeline.vocab import Benchmark

log = logging.getLogger(__name__)

ROLE_STAGES: dict[str, str] = {
    "prepared": "prepare",
    "clip": "clip",
    "sam": "sam",
    "refined": "refine",
    "points": "points",
    "predictions": "predictions",
}
"""Trainer role -> stage name of the store filling it."""

REQUIRED_ARRAYS: dict[str, tuple[str, ...]] = {
    "prepared": ("points/xyz", "views/image_size", "views/pose"),
    "refined": ("views/label",),
    "points": ("points/label", "views/pair_offsets", "pairs/point", "pairs/pixel"),
    "sam": ("views/segments", "views/features"),
    "predictions": ("views/label", "views/label_3d", "points/label", "points/label_2d"),
}
"""Arrays each role must hold for every sample (beyond the stage's own required arrays)."""


@dataclass
class ShardStores:
    """Readers of one shard's stores (``None`` for roles not given)."""

    name: str
    prepared: StoreReader
    refined: StoreReader | None = None
    points: StoreReader | None = None
    sam: StoreReader | None = None
    clip: StoreReader | None = None
    predictions: StoreReader | None = None
    samples: list[str] = field(default_factory=list)

    def reader(self, role: str) -> StoreReader:
        store = getattr(self, role)
        if store is None:
            raise StoreError(f"shard {self.name}: no {role} store given")
        return store

    def paths(self) -> dict[str, str]:
        return {role: str(getattr(self, role).path) for role in ROLE_STAGES if getattr(self, role) is not None}


def _shard_name(path: str | Path) -> str:
    name = Path(path).name
    return name[: -len(".zarr")] if name.endswith(".zarr") else name


def check_vocabulary(reader: StoreReader, bench: Benchmark) -> bool:
    """Raise if ``reader``'s root attribute ``vocabulary`` names another benchmark or classes.

    Returns whether the store records a vocabulary at all.
    """
    vocab = reader.attrs.get("vocabulary")
    if not isinstance(vocab, dict):
        return False
    if vocab.get("benchmark") not in (None, bench.name):
        raise StoreError(
            f"{reader.path}: made for vocabulary {vocab.get('benchmark')!r}, but the trainer is configured for "
            f"{bench.name!r} (vocabulary.benchmark); rerun the pipeline or fix the config"
        )
    names = vocab.get("class_names")
    if names is not None and list(names) != list(bench.class_names):
        raise StoreError(
            f"{reader.path}: its class names {list(names)[:4]}... differ from benchmark {bench.name!r}'s; "
            "the labels would mean other classes. Rerun the pipeline with this vocabulary"
        )
    return True


def _check_sample(shard: ShardStores, sample: str, roles: Sequence[str]) -> None:
    prep = shard.prepared
    sizes = prep.sample_attrs(sample)["sizes"]
    for role in roles:
        reader = getattr(shard, role)
        if reader is None:
            continue
        for name in REQUIRED_ARRAYS.get(role, ()):
            if not reader.has(sample, name):
                raise StoreError(f"{reader.path}: sample {sample!r} lacks required array {name!r}")
        other = reader.sample_attrs(sample).get("sizes", {})
        for dim in ("view", "point"):
            if dim in other and dim in sizes and other[dim] != sizes[dim]:
                raise StoreError(
                    f"{reader.path}: sample {sample!r} has {dim}={other[dim]} but the prepared store "
                    f"{prep.path} has {sizes[dim]}; the stores come from different runs"
                )
    label_sizes = {}
    for role in ("refined", "sam", "predictions"):
        reader = getattr(shard, role)
        if reader is not None:
            s = reader.sample_attrs(sample)["sizes"]
            if "Hl" in s:
                label_sizes[role] = (s["Wl"], s["Hl"])
    if len(set(label_sizes.values())) > 1:
        raise StoreError(f"shard {shard.name} sample {sample!r}: label resolutions differ between stores: {label_sizes}")
    if shard.sam is not None and "sam" in roles:
        image_sizes = prep.read(sample, "views/image_size")
        if len(image_sizes) and (image_sizes != image_sizes[0]).any():
            raise StoreError(f"{prep.path}: sample {sample!r} has views of different sizes; the trainer needs one size per sample")
        s = shard.sam.sample_attrs(sample)["sizes"]
        if len(image_sizes):
            grid = sam_valid_grid((int(image_sizes[0][0]), int(image_sizes[0][1])))
            if (s.get("Hc"), s.get("Wc")) != grid:
                raise StoreError(
                    f"{shard.sam.path}: sample {sample!r} has a {s.get('Hc')}x{s.get('Wc')} feature grid, but SAM's "
                    f"valid grid of a {tuple(int(v) for v in image_sizes[0])} image is {grid[0]}x{grid[1]}"
                )


def open_shards(
    stores: dict[str, Sequence[str | Path]],
    bench: Benchmark,
    roles: Sequence[str],
) -> list[ShardStores]:
    """Open and check the stores of several shards.

    ``stores`` maps a role (``prepared``, ``refined``, ``points``, ``sam``, ``clip``,
    ``predictions``) to store paths, one per shard, in the same shard order (matched by file
    name). ``roles`` are the roles the caller needs (each must be given). Raises
    :class:`StoreError` naming the store and the problem.
    """
    for role in roles:
        if not stores.get(role):
            raise StoreError(f"no {role} stores given (needed: {', '.join(roles)})")
    prepared = list(stores["prepared"])
    by_role: dict[str, dict[str, Path]] = {}
    for role, paths in stores.items():
        if role not in ROLE_STAGES:
            raise StoreError(f"unknown store role {role!r}; known: {sorted(ROLE_STAGES)}")
        if not paths:
            continue
        named = {_shard_name(p): Path(p) for p in paths}
        missing = sorted({_shard_name(p) for p in prepared} - set(named))
        if missing:
            raise StoreError(f"no {role} store for shard(s) {missing} (given: {[str(p) for p in paths]})")
        by_role[role] = named
    shards = []
    recorded = False
    for path in prepared:
        name = _shard_name(path)
        opened = {role: StoreReader(by_role[role][name], ROLE_STAGES[role]) for role in by_role}
        shard = ShardStores(name=name, **opened)
        shard.samples = list(shard.prepared.samples)
        for role, reader in opened.items():
            if role == "prepared":
                continue
            reader.require_samples(shard.prepared, f"rerun the stage that writes {role} stores")
            recorded |= check_vocabulary(reader, bench)
        for sample in shard.samples:
            _check_sample(shard, sample, list(by_role))
        shards.append(shard)
    if not recorded and any(r in by_role for r in ("clip", "refined", "points", "predictions")):
        log.warning("no store records its vocabulary (root attribute 'vocabulary'); label values are checked while reading")
    return shards


def stores_from_args(args, roles: Sequence[str]) -> dict[str, list[str]]:
    """``{role: paths}`` from a parsed namespace with ``--<role>`` list options."""
    return {role: list(getattr(args, role, None) or []) for role in ROLE_STAGES if getattr(args, role, None)}
