"""Shared pieces of the tests that drive the real `snakemake` command in a temporary directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_demo_config(num_scenes: int, views: int, **sections) -> dict:
    """A demo config small enough for a test: ``num_scenes`` scenes (1 val), ``views`` views each,
    tiny images, coarse mesh, the real-world defects on; ``sections`` are added at the top level."""
    return {
        "results": "results",
        "dataset": {
            "root": "results/data",
            "shards": {"train": 2, "val": 1},
            "frame_skip": 1,
            "working_size": [96, 72],
            "demo": {"enabled": True, "num_scenes": num_scenes, "num_val": 1, "views": views, "color_size": [162, 121],
                     "depth_size": [80, 60], "vertex_spacing": 0.25, "defects": True},
        },
        **sections,
    }


def snakemake_command(workdir: Path, config: dict, *args: str) -> list[str]:
    """The `snakemake` command line for ``workdir`` with ``config`` written to its config.yaml."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]


def snakemake_env() -> dict:
    """The environment for it: this checkout's packages importable."""
    return dict(os.environ, PYTHONPATH=str(REPO))


def store_arrays(workdir: Path, stages: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every array of every store of ``stages`` (default: prepared and the pseudo-label stores)
    under ``workdir``/results, metadata excluded, keyed by stage/store/sample/array (store-level
    arrays under the sample name ``_store``): what two runs must agree on, array by array."""
    from pipeline.stores import PSEUDO_LABEL_STORES, StoreReader
    from tests.factory import sample_arrays

    out = {}
    for stage in stages or ("prepared", *PSEUDO_LABEL_STORES):
        for store in sorted((workdir / "results" / stage).glob("*.zarr")):
            reader = StoreReader(store)
            for sample in reader.samples:
                for name, data in sample_arrays(reader, sample).items():
                    out[f"{stage}/{store.name}/{sample}/{name}"] = data
            for spec in reader.spec.store_arrays:
                if reader.has_store_array(spec.path):
                    out[f"{stage}/{store.name}/_store/{spec.path}"] = reader.read_store_array(spec.path)
    return out


def report_tables(workdir: Path) -> dict[str, dict]:
    """The pseudo-label report's per-split JSON tables under ``workdir``/results, by file name."""
    folder = workdir / "results" / "reports" / "pseudo_labels"
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
