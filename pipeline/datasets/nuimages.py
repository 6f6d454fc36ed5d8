"""nuImages v1.0 adapter: one sample = one nuImages sample's key camera image; no points, no depth.

Below ``dataset.root``::

    <version>/*.json             the ten tables (read by :mod:`.nuimages_tables`), one folder per split:
                                 dataset.nuimages.versions maps a split to it (train → v1.0-train, ...)
    samples/<CHANNEL>/*.jpg      the key camera images (sweeps/ is never read)

The prepared sample (docs/data-layout.md, "The nuImages sample"): sample id = the sample token;
one view (``views/frame`` = the camera's index in :data:`pipeline.datasets.nuscenes.CAMERAS`),
its pose the identity (the sample frame is the camera frame: there are no points to relate),
intrinsics scaled to the working size. nuImages images are *distorted* (``camera_distortion``):
they are kept as they are, the distortion recorded in the sample attribute ``distortion``;
2D-only work needs no rectification (labels and images share the pixel grid). Ground truth is
the devkit's ``get_segmentation`` (:func:`.nuimages_masks.semantic_mask`), stored as raw fine
indices (``views/label``, label space ``nuimages``, names in the root attribute
``nuimages_categories``) and object instances (``views/instance``) at the working size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

import numpy as np

from pipeline import camera, images
from pipeline.datasets.nuimages_masks import fine_indices, semantic_mask
from pipeline.datasets.nuimages_tables import NuImagesTables
from pipeline.datasets.nuscenes import CAMERAS
from pipeline.datasets.nuscenes_tables import read_table
from pipeline.datasets.scannet import PreparedSample
from pipeline.datasets.scannet_files import read_color
from pipeline.errors import InputFileError, UserError

VERSIONS: dict[str, str] = {"train": "v1.0-train", "val": "v1.0-val", "test": "v1.0-test", "mini": "v1.0-mini"}
"""Default split → version folder."""


@dataclass(frozen=True)
class NuImagesOptions:
    """Adapter options (the ``dataset`` config section and its ``nuimages`` subsection)."""

    root: Path
    versions: dict[str, str] = field(default_factory=lambda: dict(VERSIONS))
    working_size: tuple[int, int] = (800, 450)
    image_codec: str = "jpeg"
    jpeg_quality: int = 95

    @classmethod
    def from_config(cls, dataset: dict[str, Any]) -> NuImagesOptions:
        """Options from a validated ``dataset`` section."""
        nui = dataset.get("nuimages") or {}
        return cls(
            root=Path(dataset["root"]),
            versions={**VERSIONS, **dict(nui.get("versions") or {})},
            working_size=tuple(int(v) for v in dataset.get("working_size", (800, 450))),
            image_codec=dataset.get("image_codec", "jpeg"),
            jpeg_quality=int(dataset.get("jpeg_quality", 95)),
        )


class NuImagesAdapter:
    """Reads nuImages samples into :class:`PreparedSample` objects (tables indexed once per version)."""

    kind = "nuimages"

    def __init__(self, options: NuImagesOptions) -> None:
        self.options = options
        self._tables: dict[str, NuImagesTables] = {}
        self._keep: set[str] | None = None
        self._split: str | None = None

    def version(self, split: str) -> str:
        """The version folder of ``split``."""
        try:
            return self.options.versions[split]
        except KeyError:
            raise UserError(f"config key dataset.nuimages.versions: no version folder for split {split!r}; "
                            f"known: {sorted(self.options.versions)}") from None

    def select(self, split: str, samples: Collection[str]) -> None:
        """Index only these samples of ``split`` (a shard's images and annotations), before the first load."""
        self._keep = set(samples)
        self._split = split
        self._tables.clear()

    def tables(self, split: str) -> NuImagesTables:
        """The indexed tables of ``split``'s version (read on first use)."""
        version = self.version(split)
        if version not in self._tables:
            self._tables[version] = NuImagesTables(self.options.root, version, self._keep)
        return self._tables[version]

    # -- dataset level ----------------------------------------------------------------------
    def list_samples(self, split: str) -> list[str]:
        """Sample tokens of ``split``'s version, in table order (reads sample.json only)."""
        version = self.version(split)
        path = self.options.root / version / "sample.json"
        if not path.is_file():
            raise InputFileError(path, f"table file not found; dataset.root must hold {version}/ with the ten nuImages tables "
                                       f"(split {split!r}, dataset.nuimages.versions)")
        out = []
        for rec in read_table(path, version):
            if not isinstance(rec, dict) or "token" not in rec:
                raise InputFileError(path, f"a record lacks field 'token'; re-extract the nuImages {version} metadata")
            out.append(str(rec["token"]))
        return out

    def sample_scene(self, sample_id: str) -> str:
        """nuImages has no scenes: the logfile a sample comes from (``dataset.scenes`` filters by it).
        Reads sample.json and log.json of the configured versions only (once)."""
        if not hasattr(self, "_log_of"):
            self._log_of: dict[str, str] = {}
            for version in dict.fromkeys(self.options.versions.values()):
                folder = self.options.root / version
                if not (folder / "sample.json").is_file():
                    continue
                logs = {r.get("token"): r.get("logfile") for r in read_table(folder / "log.json", version) if isinstance(r, dict)}
                for rec in read_table(folder / "sample.json", version):
                    if isinstance(rec, dict) and rec.get("log_token") in logs:
                        self._log_of[str(rec.get("token"))] = str(logs[rec["log_token"]])
        if sample_id not in self._log_of:
            raise UserError(f"sample {sample_id!r} is in no nuImages version below {self.options.root} (or its log is missing)")
        return self._log_of[sample_id]

    def root_attrs(self) -> dict[str, Any]:
        """Store-level attributes: ``kind``, ``version`` (of the selected split), ``label_spaces``
        (``views``: ``nuimages``) and ``nuimages_categories`` ([[fine index, name], ...] of the
        version's category table, numbered as ``get_segmentation`` numbers them)."""
        if self._split is None:
            raise UserError("nuImages adapter: select(split, samples) before root_attrs()")
        tables = self.tables(self._split)
        index = fine_indices(tables.categories.values())
        return {"kind": self.kind, "version": tables.version, "label_spaces": {"views": "nuimages"},
                "nuimages_categories": sorted([index[n], n] for n in tables.categories.values())}

    # -- sample level ---------------------------------------------------------------------------
    def load(self, sample_id: str, split: str) -> PreparedSample:
        """Read one sample (``sample_id`` = sample token) → arrays named as in
        :data:`pipeline.stores.registry.PREPARED`: one view, its image, raw fine labels and instances."""
        tables = self.tables(split)
        if sample_id not in tables.samples:
            raise InputFileError(tables.path("sample"), f"no sample with token {sample_id!r}")
        if tables.samples[sample_id][0] not in tables.cameras:  # not among the selected samples: index them all
            tables = self._tables[tables.version] = NuImagesTables(self.options.root, tables.version, None)
        cam = tables.camera_of(sample_id)
        path = tables.root / cam.filename
        if not path.is_file():
            raise InputFileError(path, f"image of sample {sample_id} (sample_data {cam.token}) not found; unpack the nuImages samples/ archive")
        rgb = read_color(path)
        native = (rgb.shape[1], rgb.shape[0])
        if native != (cam.width, cam.height):
            raise InputFileError(path, f"image is {native[0]}x{native[1]} but sample_data {cam.token} says {cam.width}x{cam.height}")
        index = fine_indices(tables.categories.values())
        labels, instances, nulls = semantic_mask(tables.surfaces[cam.token], tables.objects[cam.token], index, native,
                                                 (tables.path("surface_ann"), tables.path("object_ann")))
        work = tuple(int(v) for v in self.options.working_size)
        image = images.resize_image(rgb, work)
        arrays: dict[str, np.ndarray] = {
            "views/frame": np.asarray([CAMERAS.index(cam.channel) if cam.channel in CAMERAS else -1], np.int64),
            "views/pose": np.eye(4, dtype=np.float64)[None],
            "views/image_size": np.asarray([work], np.int32),
            "views/intrinsics": camera.scale_intrinsics(cam.intrinsic, native, work)[None].astype(np.float64),
            "views/native_size": np.asarray([native], np.int32),
            "views/native_intrinsics": cam.intrinsic[None].astype(np.float64),
            "views/label": images.resize_labels(labels, work).astype(np.uint16)[None],
            "views/instance": images.resize_labels(instances, work).astype(np.uint16)[None],
        }
        if self.options.image_codec == "raw":
            arrays["views/image"] = image[None]
        else:
            arrays["views/image_bytes"], arrays["views/image_offsets"] = images.encode_images([image], self.options.image_codec,
                                                                                              self.options.jpeg_quality)
        attrs = {
            "split": split,
            "version": tables.version,
            "camera_token": cam.token,
            "channel": cam.channel,
            "filename": cam.filename,
            "timestamp": cam.timestamp,
            "log": tables.logfile_of(sample_id),
            "distortion": list(cam.distortion),
            "rectified": False,
            "annotations": {"surface": len(tables.surfaces[cam.token]), "object": len(tables.objects[cam.token])},
            "image_codec": self.options.image_codec,
            "input_checks": {"null_masks": nulls},
        }
        return PreparedSample(sample_id, split, arrays, attrs)
