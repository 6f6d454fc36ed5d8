"""nuScenes v1.0 adapter (with lidarseg): one sample = one LIDAR_TOP key frame, its views the cameras.

Below ``dataset.root``::

    <version>/*.json                       the tables (read by :mod:`.nuscenes_tables`)
    samples/<CHANNEL>/*.{jpg,pcd.bin}      key frames; sweeps/LIDAR_TOP/*.pcd.bin (sweeps > 0)
    lidarseg/<version>/<token>_lidarseg.bin   uint8 fine index per key-frame point (absent in v1.0-test)

The prepared sample (docs/data-layout.md, "The nuScenes sample"): sample id = the sample token; ``points/*`` in
the key frame's lidar frame (:mod:`.nuscenes_points`); ``views/*`` one per camera of
``dataset.nuscenes.cameras`` whose image exists, posed camera → lidar through both ego poses
(:mod:`.nuscenes_views`). Raw fine indices are kept; vocabularies map them by name downstream.
The tables are read once per adapter, on first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.datasets.nuscenes_points import point_arrays
from pipeline.datasets.nuscenes_splits import split_scenes
from pipeline.datasets.nuscenes_tables import LIDAR_CHANNEL, NuScenesTables
from pipeline.datasets.nuscenes_truth import demo_truth_views, has_demo_truth
from pipeline.datasets.nuscenes_views import view_arrays
from pipeline.datasets.scannet import PreparedSample
from pipeline.errors import InputFileError
from pipeline.vocab import NUSCENES_FINE_TO_CLASS

log = logging.getLogger(__name__)

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")


@dataclass(frozen=True)
class NuScenesOptions:
    """Adapter options (the ``dataset`` config section and its ``nuscenes`` subsection)."""

    root: Path
    version: str = "v1.0-trainval"
    cameras: tuple[str, ...] = CAMERAS
    sweeps: int = 0
    split_file: str | None = None
    working_size: tuple[int, int] = (800, 450)
    image_codec: str = "jpeg"
    jpeg_quality: int = 95
    threads: int = 2

    @classmethod
    def from_config(cls, dataset: dict[str, Any], threads: int = 2) -> NuScenesOptions:
        """Options from a validated ``dataset`` section."""
        nus = dataset.get("nuscenes") or {}
        return cls(
            root=Path(dataset["root"]),
            version=str(nus.get("version", "v1.0-trainval")),
            cameras=tuple(nus.get("cameras", CAMERAS)),
            sweeps=int(nus.get("sweeps", 0)),
            split_file=nus.get("split_file"),
            working_size=tuple(int(v) for v in dataset.get("working_size", (800, 450))),
            image_codec=dataset.get("image_codec", "jpeg"),
            jpeg_quality=int(dataset.get("jpeg_quality", 95)),
            threads=threads,
        )


def checked_categories(tables: NuScenesTables) -> list[list]:
    """``[[index, name], ...]`` sorted by index from the lidarseg ``category.json``: every record
    needs an ``index`` (unique) and a name among the 32 fine classes."""
    path = tables.path("category")
    out = []
    for index, name in tables.categories or ():
        if index is None:
            raise InputFileError(path, f"category {name!r} has no 'index'; lidarseg needs the category.json of the lidarseg release")
        if name not in NUSCENES_FINE_TO_CLASS:
            raise InputFileError(path, f"unknown category {name!r} (index {index}): not one of the 32 nuScenes lidarseg classes; "
                                       "use the category.json of the nuScenes lidarseg release")
        out.append([index, name])
    indices = [i for i, _ in out]
    if len(set(indices)) != len(indices):
        raise InputFileError(path, "two categories share one 'index'; use the category.json of the lidarseg release")
    if not out:
        raise InputFileError(path, "no categories; lidarseg labels need the lidarseg category.json")
    return sorted(out)


class NuScenesAdapter:
    """Reads nuScenes key frames into :class:`PreparedSample` objects."""

    kind = "nuscenes"

    def __init__(self, options: NuScenesOptions) -> None:
        self.options = options
        self._tables: NuScenesTables | None = None
        self._categories: list[list] | None = None

    @property
    def tables(self) -> NuScenesTables:
        """The indexed tables (read on first use; sweep chains kept only when ``sweeps > 0``)."""
        if self._tables is None:
            self._tables = NuScenesTables(self.options.root, self.options.version, keep_sweeps=self.options.sweeps > 0)
        return self._tables

    @property
    def labelled(self) -> bool:
        """True when the version has lidarseg labels (``lidarseg.json``)."""
        return bool(self.tables.lidarseg)

    def categories(self) -> list[list]:
        """The checked ``[[index, name], ...]`` of the lidarseg category table."""
        if self._categories is None:
            self._categories = checked_categories(self.tables)
        return self._categories

    # -- dataset level ----------------------------------------------------------------------
    def list_samples(self, split: str) -> list[str]:
        """Sample tokens of ``split``'s scenes present in this version: scenes in the split's
        order (the official lists are sorted by name), samples in time order."""
        split_file = self.options.split_file
        scenes = split_scenes(split, self.options.root / split_file if split_file else None)
        tokens: list[str] = []
        present = 0
        for name in scenes:
            scene = self.tables.scene_by_name.get(name)
            if scene is not None:
                present += 1
                tokens.extend(scene.samples)
        if present < len(scenes):
            log.info("split %s: %d of its %d scenes are in %s", split, present, len(scenes), self.options.version)
        if not tokens:
            log.warning("split %s: none of its %d scenes has samples in %s", split, len(scenes), self.tables.folder)
        return tokens

    def sample_scene(self, sample_id: str) -> str:
        """The name of the scene a sample (token) belongs to (``dataset.scenes`` filters by it)."""
        return self.tables.scene_of(sample_id).name

    def root_attrs(self) -> dict[str, Any]:
        """Store-level attributes: ``kind``, ``version``, ``label_spaces`` and, with lidarseg,
        ``lidarseg_categories`` ([[index, name], ...])."""
        attrs: dict[str, Any] = {"kind": self.kind, "version": self.options.version, "label_spaces": {}}
        if self.labelled:
            attrs["label_spaces"] = {"points": "nuscenes-lidarseg"}
            attrs["lidarseg_categories"] = self.categories()
        if self.labelled and has_demo_truth(self.options.root):
            attrs["label_spaces"]["views"] = "nuscenes-lidarseg"  # the demo's per-pixel truth (demo only)
            attrs["demo_truth"] = True
        return attrs

    # -- sample level ---------------------------------------------------------------------------
    def load(self, sample_id: str, split: str) -> PreparedSample:
        """Read one key frame (``sample_id`` = sample token) → arrays named as in
        :data:`pipeline.stores.registry.PREPARED`."""
        tables = self.tables
        sample = tables.samples.get(sample_id)
        if sample is None:
            raise InputFileError(tables.path("sample"), f"no sample with token {sample_id!r}; list samples with the adapter of this version")
        key_frames = tables.key_frames(sample_id)
        if LIDAR_CHANNEL not in key_frames:
            raise InputFileError(tables.path("sample_data"), f"sample {sample_id} has no key-frame {LIDAR_CHANNEL} record; re-extract the metadata")
        lidar = tables.sample_data[key_frames[LIDAR_CHANNEL]]
        indices = [i for i, _ in self.categories()] if self.labelled else None
        arrays, point_attrs = point_arrays(tables, lidar, indices, self.options.sweeps)
        views, view_attrs = view_arrays(tables, sample, lidar, self.options)
        arrays.update(views)
        if self.labelled and has_demo_truth(self.options.root):
            channels = [self.options.cameras[int(i)] for i in views["views/frame"]]
            arrays.update(demo_truth_views(self.options.root, sample_id, channels, tuple(self.options.working_size)))
        attrs = {
            "split": split,
            "scene": tables.scene_of(sample_id).name,
            "lidar_token": lidar.token,
            "timestamp": lidar.timestamp,
            "image_codec": self.options.image_codec,
            **view_attrs,
            **point_attrs,
        }
        return PreparedSample(sample_id, split, arrays, attrs)
