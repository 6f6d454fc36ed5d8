"""Dataset adapters: each reads one dataset format into prepared samples.

An adapter has ``kind``, ``list_samples(split) -> [ids]``, ``root_attrs() -> dict`` (label
spaces and maps for the store's root attributes) and ``load(sample_id, split) ->
PreparedSample`` whose arrays follow :data:`pipeline.stores.registry.PREPARED`.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import UserError

KINDS = ("scannet", "nuscenes", "nuimages")

KIND_KEYS: dict[str, tuple[str, ...]] = {
    "scannet": ("scans_dir", "label_map", "frame_skip"),
    "nuscenes": ("nuscenes",),
    "nuimages": ("nuimages",),
}
"""Keys of the ``dataset`` section that only one kind reads. A prepared store depends on its own
kind's keys only, so that a key added for another kind does not rerun ``prepare`` (and everything
after it) on existing results."""


def other_kinds_keys(kind: str) -> tuple[str, ...]:
    """The ``dataset`` keys that only kinds other than ``kind`` read."""
    return tuple(key for other, keys in KIND_KEYS.items() if other != kind for key in keys)


def make_adapter(dataset: dict[str, Any], threads: int = 2):
    """Build the adapter for a validated ``dataset`` config section."""
    kind = dataset.get("kind", "scannet")
    if kind == "scannet":
        from pipeline.datasets.scannet import ScanNetAdapter, ScanNetOptions

        return ScanNetAdapter(ScanNetOptions.from_config(dataset, threads=threads))
    if kind == "nuscenes":
        from pipeline.datasets.nuscenes import NuScenesAdapter, NuScenesOptions

        return NuScenesAdapter(NuScenesOptions.from_config(dataset, threads=threads))
    if kind == "nuimages":
        from pipeline.datasets.nuimages import NuImagesAdapter, NuImagesOptions

        return NuImagesAdapter(NuImagesOptions.from_config(dataset))
    raise UserError(f"config key dataset.kind: unknown dataset kind {kind!r}; known: {KINDS}")
