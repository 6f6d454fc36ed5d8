"""Generate the nuImages-format demo dataset end to end.

Each log is a street of the nuScenes demo (:mod:`pipeline.demo_nuscenes`: street, rig, drive,
ray-cast cameras); each of its samples is one key camera image, a camera drawn at random among
the six at 2 Hz keyframe times. Output (``<root>/``, built in a hidden sibling and renamed when
complete)::

    samples/CAM_*/<log>__CAM_*__<ts>.jpg     the key camera images (pinhole: camera_distortion is 0)
    v1.0-train/*.json, v1.0-val/*.json       the ten tables per split (:mod:`.tables`)
    demo_defects.json                        what ``--defects`` changed (not part of the format)

Annotations as nuImages has them: one object_ann per visible object instance of the 23 object
classes (mask = its pixels, COCO RLE, base64), one surface_ann per image for
``flat.driveable_surface`` and one for ``vehicle.ego`` where visible; sidewalks, terrain,
buildings, vegetation and sky stay unannotated (0). ``--defects``: one object's mask is null and
one image file is not written (its records kept).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_directory
from pipeline.datasets.nuimages_masks import encode_mask
from pipeline.demo_nuimages import spec
from pipeline.demo_nuimages.tables import Annotation, ImageRecord, build_tables
from pipeline.demo_nuscenes import spec as street_spec
from pipeline.demo_nuscenes.files import camera_filename, write_jpeg, write_table
from pipeline.demo_nuscenes.geometry import transform
from pipeline.demo_nuscenes.render import render_camera
from pipeline.demo_nuscenes.scene import build_street_drive
from pipeline.errors import UserError
from pipeline.vocab import NUIMAGES_CATEGORIES

log = logging.getLogger(__name__)

DRIVEABLE, EGO = 24, 31
"""Fine indices of the two surface categories (as the nuScenes demo's boxes carry them)."""
FINE_NAMES: dict[int, str] = {i: n for i, n in enumerate(
    ["noise", *[n for n in NUIMAGES_CATEGORIES if n not in ("vehicle.ego", "flat.driveable_surface")]])} | {
    DRIVEABLE: "flat.driveable_surface", EGO: "vehicle.ego"}
"""Fine index → nuImages category name (the lidarseg numbering the renderer uses)."""


@dataclass(frozen=True)
class NuImagesDemoOptions:
    """Settings of the dataset (see ``python -m pipeline demo-nuimages --help``)."""

    logs: int = spec.DEFAULT_LOGS
    val: int = spec.DEFAULT_VAL
    seed: int = 0
    samples_per_log: int = spec.DEFAULT_SAMPLES
    camera_size: tuple[int, int] = spec.DEFAULT_CAMERA_SIZE
    defects: bool = False
    jpeg_quality: int = spec.DEFAULT_JPEG_QUALITY

    def validate(self) -> None:
        """Raise :class:`UserError` naming the option that is out of range."""
        try:
            spec.log_names(self.logs, self.val)
        except ValueError as err:
            raise UserError(f"--logs/--val: {err}") from None
        if not 1 <= self.samples_per_log <= 40:
            raise UserError(f"--samples-per-log must be in 1..40, got {self.samples_per_log}")
        w, h = self.camera_size
        if not (16 <= w <= 3200 and 16 <= h <= 1800):
            raise UserError(f"--camera-size must be W in 16..3200 and H in 16..1800, got {w} {h}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")


def _rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng(street_spec.scene_seed(seed, f"nuimages/{name}", purpose))


def annotations(seed: int, sample_data: str, labels: np.ndarray, instances: np.ndarray) -> list[Annotation]:
    """The annotations of one rendered image: surfaces (driveable surface, ego) then one object per
    visible instance of an object class, in instance order. ``labels`` (H, W) fine indices,
    ``instances`` (H, W) instance ids."""
    out = []
    for fine in (DRIVEABLE, EGO):
        mask = labels == fine
        if mask.any():
            out.append(Annotation("surface", spec.token(seed, "surface_ann", sample_data, fine), FINE_NAMES[fine], encode_mask(mask)))
    objects = (labels >= 1) & (labels <= 23)
    for inst in np.unique(instances[objects]):
        mask = objects & (instances == inst)
        fine = int(np.bincount(labels[mask]).argmax())
        ys, xs = np.nonzero(mask)
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        out.append(Annotation("object", spec.token(seed, "object_ann", sample_data, int(inst)), FINE_NAMES[fine], encode_mask(mask), bbox))
    return out


def generate_log(root: Path, name: str, split: str, options: NuImagesDemoOptions) -> list[ImageRecord]:
    """Render and write log ``name``'s images below ``root``; returns their records."""
    seed, size = options.seed, tuple(options.camera_size)
    drive = build_street_drive(lambda purpose: _rng(seed, name, purpose), size, options.samples_per_log, stride=4)
    info, rig, times, trajectory, world = drive.log, drive.rig, drive.times, drive.trajectory, drive.world
    choice = _rng(seed, name, "cameras")
    records = []
    for k, stamp in enumerate(times):
        channel = street_spec.CAMERAS[int(choice.integers(0, len(street_spec.CAMERAS)))]
        mount, ts = rig[channel], stamp[channel]
        translation, rotation = trajectory.record((ts - info.start_us) / 1e6)
        ego = transform(translation, rotation)
        image, labels, instances = render_camera(world.boxes_at(ego), ego @ mount.matrix(), mount.intrinsic, size)
        filename = camera_filename(channel, street_spec.file_stem(info.logfile, channel, ts))
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        write_jpeg(root / filename, image, options.jpeg_quality)
        sample = spec.sample_token(seed, name, k)
        sd = spec.token(seed, "sample_data", name, k)
        records.append(ImageRecord(
            split, info.logfile, info.vehicle, info.date_captured, info.location, sample, sd, channel, ts, filename, size[0], size[1],
            mount.translation, mount.rotation, mount.intrinsic_record(), (0.0, 0.0, 0.0, 0.0, 0.0), tuple(translation),
            tuple(rotation), annotations(seed, sd, labels, instances)))
    return records


def _defects(root: Path, records: list[ImageRecord]) -> tuple[list[ImageRecord], dict]:
    """Null the mask of the first object of the first training image that has one; delete the
    image of the last training sample."""
    train = [i for i, r in enumerate(records) if r.split == "train"]
    done: dict = {}
    for i in train:
        objects = [a for a in records[i].annotations if a.kind == "object"]
        if objects:
            nulled = [replace(a, mask=None) if a is objects[0] else a for a in records[i].annotations]
            records[i] = replace(records[i], annotations=nulled)
            done["null_mask"] = {"sample": records[i].sample, "object_ann": objects[0].token}
            break
    missing = records[train[-1]]
    (root / missing.filename).unlink()
    done["missing_image"] = {"sample": missing.sample, "filename": missing.filename}
    return records, done


def generate_dataset(root: str | Path, options: NuImagesDemoOptions) -> Path:
    """Write the whole dataset at ``root`` atomically (replacing what was there); returns ``root``."""
    options.validate()
    start = time.perf_counter()
    train, val = spec.log_names(options.logs, options.val)
    root = Path(root)
    with atomic_directory(root) as out:
        records: list[ImageRecord] = []
        for split, names in (("train", train), ("val", val)):
            for name in names:
                records += generate_log(out, name, split, options)
        defects: dict = {}
        if options.defects:
            records, defects = _defects(out, records)
        for version, tables in build_tables(options.seed, records).items():
            (out / version).mkdir()
            for table, rows in tables.items():
                write_table(out / version / f"{table}.json", rows)
        (out / "demo_defects.json").write_text(json.dumps(defects, indent=1) + "\n")
    log.info("nuImages demo: %d logs (%d val) x %d images, written to %s in %.1f s",
             options.logs, options.val, options.samples_per_log, root, time.perf_counter() - start)
    return root
