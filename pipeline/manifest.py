"""Parquet manifests: one row per sample of a shard; a merged copy for users."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from pipeline.atomic import atomic_file
from pipeline.input_checks import SAMPLE_COUNTERS

COLUMNS = ("id", "dataset", "kind", "split", "shard", "n_views", "n_points", "n_views_skipped", "source", "store", *SAMPLE_COUNTERS)
"""Columns; the last ones are the sample-level input-check counts (:mod:`pipeline.input_checks`),
null for samples whose adapter does not count them."""


def _write_atomic(table, out: Path) -> None:
    import pyarrow.parquet as pq

    with atomic_file(out) as tmp:
        pq.write_table(table, tmp)


def shard_manifest(store: str | Path):
    """The manifest table (pyarrow) of one prepared store."""
    import pyarrow as pa

    from pipeline.stores import StoreReader

    reader = StoreReader(store, "prepared")
    rows = {c: [] for c in COLUMNS}
    for sample in reader.samples:
        attrs = reader.sample_attrs(sample)
        skipped = attrs.get("skipped_views", {}).get("invalid_pose", [])
        rows["id"].append(sample)
        rows["dataset"].append(reader.attrs.get("dataset"))
        rows["kind"].append(reader.attrs.get("kind"))
        rows["split"].append(attrs.get("split", reader.attrs.get("split")))
        rows["shard"].append(reader.attrs.get("shard"))
        rows["n_views"].append(int(attrs["sizes"].get("view", 0)))
        rows["n_points"].append(int(attrs["sizes"].get("point", 0)))
        rows["n_views_skipped"].append(len(skipped))
        rows["source"].append(json.dumps({"scene_dir": attrs.get("source")}))
        rows["store"].append(str(store))
        checks = attrs.get("input_checks")
        for name in SAMPLE_COUNTERS:
            rows[name].append(None if checks is None else int(checks.get(name, 0)))
    return pa.table(rows, schema=manifest_schema())


def manifest_schema():
    """The pyarrow schema of a manifest (columns :data:`COLUMNS`)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()), ("dataset", pa.string()), ("kind", pa.string()), ("split", pa.string()),
            ("shard", pa.string()), ("n_views", pa.int32()), ("n_points", pa.int64()),
            ("n_views_skipped", pa.int32()), ("source", pa.string()), ("store", pa.string()),
            *((name, pa.int64()) for name in SAMPLE_COUNTERS),
        ]
    )


def write_shard_manifest(store: str | Path, out: str | Path) -> Path:
    """Write the manifest of one prepared store to ``out`` (Parquet, atomic)."""
    _write_atomic(shard_manifest(store), Path(out))
    return Path(out)


def merge_manifests(inputs: Sequence[str | Path], out: str | Path) -> Path:
    """Concatenate shard manifests into one Parquet file (a convenience output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in inputs]
    merged = pa.concat_tables(tables) if tables else manifest_schema().empty_table()
    _write_atomic(merged.sort_by([("split", "ascending"), ("id", "ascending")]), Path(out))
    return Path(out)


def _run_shard(args: argparse.Namespace) -> int:
    write_shard_manifest(args.store, args.out)
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    merge_manifests(args.inputs, args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "manifest",
        help="write the Parquet manifest of a prepared store",
        description="One row per sample: id, dataset, split, shard, number of views and points, source paths.",
    )
    parser.add_argument("--store", required=True, help="prepared store (<results>/prepared/<shard>.zarr)")
    parser.add_argument("--out", required=True, help="output .parquet")
    parser.set_defaults(func=_run_shard)
    merge = sub.add_parser(
        "merge-manifests",
        help="concatenate shard manifests into one Parquet file",
        description="Convenience output for users; no stage reads it.",
    )
    merge.add_argument("--out", required=True, help="output .parquet")
    merge.add_argument("inputs", nargs="*", help="shard manifests")
    merge.set_defaults(func=_run_merge)
