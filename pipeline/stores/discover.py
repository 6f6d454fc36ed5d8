"""Finding a run's stores on disk: ``<results>/<store>/<split>-NNN.zarr`` for the splits asked.

What the trainer's ``--results`` option uses instead of one ``--<store>`` list per store (the
Snakemake rules keep passing their exact inputs). Stale shards of an earlier shard count are
the hazard of globbing: their samples also sit in the current shards, so a sample found in two
shards of a split is an error naming both, and so is a gap in a split's shard numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pipeline.shards import parse_shard
from pipeline.stores.spec import StoreError


def split_shards(results: str | Path, store: str, splits: Sequence[str]) -> list[Path]:
    """Store folders ``<results>/<store>/<split>-NNN.zarr`` of ``splits``, sorted by split order then index."""
    folder = Path(results) / store
    found: list[tuple[int, int, Path]] = []
    if folder.is_dir():
        for path in folder.glob("*.zarr"):
            try:
                split, index = parse_shard(path.name[: -len(".zarr")])
            except ValueError:
                continue
            if split in splits:
                found.append((list(splits).index(split), index, path))
    return [path for _, _, path in sorted(found)]


def _root_samples(path: Path) -> list[str]:
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError) as err:
        raise StoreError(f"{path}: unreadable store metadata ({err}); delete it and rerun its stage") from None
    return list(attrs.get("samples") or [])


def discover_stores(results: str | Path, stores: Sequence[str], required: Sequence[str], splits: Sequence[str]) -> dict[str, list[str]]:
    """``{store: [paths]}`` of ``stores`` found under ``results`` for ``splits``.

    Every store in ``required`` must have the same shards as ``prepared``; optional stores may be
    missing entirely, not partly. Raises :class:`StoreError` naming the folder and the fix when a
    split has no prepared shards, shard numbers have gaps, a sample is in two shards, or a store
    lacks some shards.
    """
    results = Path(results)
    prepared = split_shards(results, "prepared", splits)
    if not prepared:
        raise StoreError(f"{results / 'prepared'}: no shards of split(s) {', '.join(splits)} (is --results the "
                         "config's `results` folder, and did the pseudo_labels target run?)")
    by_split: dict[str, list[int]] = {}
    owner: dict[str, str] = {}
    for path in prepared:
        split, index = parse_shard(path.name[: -len(".zarr")])
        by_split.setdefault(split, []).append(index)
        for sample in _root_samples(path):
            if sample in owner:
                raise StoreError(f"{path}: sample {sample} is also in {owner[sample]}; stale shards of another shard count? "
                                 f"delete the shards not in the current config from every store folder of {results}")
            owner[sample] = path.name
    for split, indices in by_split.items():
        if indices != list(range(len(indices))):
            raise StoreError(f"{results / 'prepared'}: split {split} has shards {indices}, not 000..{len(indices) - 1:03d}; "
                             "a shard is missing (rerun pseudo_labels) or stale")
    names = [p.name for p in prepared]
    out: dict[str, list[str]] = {"prepared": [str(p) for p in prepared]}
    for store in stores:
        if store == "prepared":
            continue
        paths = split_shards(results, store, splits)
        have = [p.name for p in paths]
        if not paths and store not in required:
            continue
        if have != names:
            missing = sorted(set(names) - set(have))
            raise StoreError(f"{results / store}: shards {missing or sorted(set(have) - set(names))} "
                             f"{'missing' if missing else 'have no prepared store'} (rerun the pipeline for them, or delete stale ones)")
        out[store] = [str(p) for p in paths]
    return out
