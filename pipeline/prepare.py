"""The ``prepare`` stage: read one shard's samples with the dataset adapter into a Zarr store."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from pipeline import input_checks
from pipeline.config import config_hash, stage_config

log = logging.getLogger(__name__)

def prepare_options(dataset: dict[str, Any]) -> dict[str, Any]:
    """The subset of the ``dataset`` section that a prepared store depends on (the registry's
    ``prepared`` config keys; the rest only decide membership)."""
    from pipeline.stores import stage_options

    return stage_options({"dataset": dataset}, "prepared", missing_ok=True).get("dataset", {})


def _dataset_checks(adapter, split: str) -> dict[str, int]:
    """The adapter's dataset-level counts for ``split`` (split-file duplicates), if it has any."""
    check = getattr(adapter, "dataset_checks", None)
    return check(split) if check is not None else {}


def prepare_shard(
    dataset: dict[str, Any], shard: str, split: str, samples: Sequence[str], out: str | Path, threads: int = 2
) -> Path:
    """Read ``samples`` of ``split`` and write the prepared store ``out`` atomically.

    ``dataset`` is the validated ``dataset`` config section. Any bad input file raises
    :class:`pipeline.errors.InputFileError` naming it; then nothing is written. Suspicious inputs
    that the adapter counts (:mod:`pipeline.input_checks`) are summed into the root attribute
    ``input_checks`` and logged as one warning.
    """
    from pipeline.progress import progress

    from pipeline.datasets import make_adapter
    from pipeline.stores import StoreWriter

    adapter = make_adapter(dataset, threads=threads)
    if hasattr(adapter, "select"):  # adapters that index per shard (nuImages: a shard's annotations only)
        adapter.select(split, list(samples))
    options = prepare_options(dataset)
    attrs = {
        "dataset": dataset.get("name"),
        "kind": adapter.kind,
        "shard": shard,
        "split": split,
        "source": str(dataset.get("root")),
        "options": options,
        "config_hash": config_hash(options),
        **adapter.root_attrs(),
    }
    start = time.perf_counter()
    counts = []
    with StoreWriter(out, "prepared", attrs=attrs) as writer:
        for sample in progress(list(samples), desc=f"prepare {shard}", unit="sample"):
            prepared = adapter.load(sample, split)
            writer.add_sample(prepared.sample_id, prepared.arrays, prepared.attrs)
            counts.append(prepared.attrs.get("input_checks", {}))
        writer.attrs["input_checks"] = input_checks.total([*counts, _dataset_checks(adapter, split)])
    log.info("prepared %d samples of %s in %.1f s -> %s", len(samples), shard, time.perf_counter() - start, out)
    found = input_checks.describe(writer.attrs["input_checks"])
    if found:
        log.warning("%s: input checks counted %s (root attribute input_checks, the manifest, the report; "
                    "docs/data-layout.md, Input checks)", shard, found)
    return Path(out)


def _run(args: argparse.Namespace) -> int:
    dataset = stage_config(args.options)["dataset"]
    prepare_shard(dataset, args.shard, args.split, args.samples, args.out, threads=args.threads)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "prepare",
        help="read one shard of a dataset into a prepared Zarr store",
        description=(
            "Read the given samples with the dataset adapter (ScanNet export format) and write one "
            "prepared store: points, views (pose, intrinsics at working and native resolution, "
            "encoded images, depth), raw 2D/3D labels. The store appears only when complete."
        ),
    )
    parser.add_argument("--out", required=True, help="output store path (<results>/prepared/<shard>.zarr)")
    parser.add_argument("--shard", required=True, help="shard name, e.g. train-000 (recorded in metadata)")
    parser.add_argument("--split", required=True, help="split of these samples (train, val, ...)")
    parser.add_argument("--samples", nargs="+", required=True, help="sample ids (ScanNet: scene names)")
    parser.add_argument("--options", required=True, help='{"dataset": {...}}: the dataset keys the prepared store depends on, as JSON (pipeline/stores/registry.py)')
    parser.add_argument("--threads", type=int, default=2, help="threads decoding frames (default 2)")
    parser.set_defaults(func=_run)
