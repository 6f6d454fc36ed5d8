"""The ten nuImages tables of a set of written images (one version folder per split).

Records carry the fields of nuImages' schema (``docs/schema_nuimages.md`` of the devkit):
log, sample (``key_camera_token``), sample_data (key frames only, ``prev``/``next`` empty: the
demo writes no sweeps), calibrated_sensor (with ``camera_distortion``), ego_pose, sensor,
category (all 25 names, no ``index``), attribute (empty), object_ann (``bbox`` [xmin, ymin, xmax,
ymax], ``mask``), surface_ann. Tokens are SHA-256 based (:func:`spec.token`), so the tables are
a function of the seed and the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.demo_nuimages import spec
from pipeline.vocab import NUIMAGES_CATEGORIES

TABLES: tuple[str, ...] = ("attribute", "calibrated_sensor", "category", "ego_pose", "log", "object_ann", "sample",
                           "sample_data", "sensor", "surface_ann")
CAMERA_CHANNELS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT",
)


@dataclass(frozen=True)
class Annotation:
    """An annotation to write: ``kind`` (``object`` or ``surface``), category name, mask
    (``{"size", "counts"}`` or None for a null mask) and, for objects, bbox [xmin, ymin, xmax, ymax]."""

    kind: str
    token: str
    category: str
    mask: dict | None
    bbox: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One written key camera image and everything its records need (poses: translation m,
    rotation [w, x, y, z]; intrinsic 3x3 pixels; distortion OpenCV k1, k2, p1, p2, k3)."""

    split: str
    logfile: str
    vehicle: str
    date_captured: str
    location: str
    sample: str
    sample_data: str
    channel: str
    timestamp: int
    filename: str
    width: int
    height: int
    cam_translation: tuple[float, float, float]
    cam_rotation: tuple[float, float, float, float]
    intrinsic: list[list[float]]
    distortion: tuple[float, ...]
    ego_translation: tuple[float, float, float]
    ego_rotation: tuple[float, float, float, float]
    annotations: list[Annotation] = field(default_factory=list)


def _version_tables(seed: int, images: list[ImageRecord]) -> dict[str, list[dict]]:
    t: dict[str, list[dict]] = {name: [] for name in TABLES}
    categories = {name: spec.token(seed, "category", name) for name in NUIMAGES_CATEGORIES}
    t["category"] = [{"token": tok, "name": name, "description": f"demo {name}"} for name, tok in categories.items()]
    sensors = {c: spec.token(seed, "sensor", c) for c in CAMERA_CHANNELS}
    t["sensor"] = [{"token": tok, "channel": c, "modality": "camera"} for c, tok in sensors.items()]
    logs: dict[str, str] = {}
    calibrations: dict[tuple[str, str], str] = {}
    for im in images:
        if im.logfile not in logs:
            logs[im.logfile] = spec.token(seed, "log", im.logfile)
            t["log"].append({"token": logs[im.logfile], "logfile": im.logfile, "vehicle": im.vehicle,
                             "date_captured": im.date_captured, "location": im.location})
        key = (im.logfile, im.channel)
        if key not in calibrations:
            calibrations[key] = spec.token(seed, "calibrated_sensor", *key)
            t["calibrated_sensor"].append({
                "token": calibrations[key], "sensor_token": sensors[im.channel], "translation": list(im.cam_translation),
                "rotation": list(im.cam_rotation), "camera_intrinsic": im.intrinsic, "camera_distortion": list(im.distortion)})
        ego = spec.token(seed, "ego_pose", im.sample_data)
        t["ego_pose"].append({"token": ego, "translation": list(im.ego_translation), "rotation": list(im.ego_rotation),
                              "timestamp": im.timestamp, "rotation_rate": [0.0, 0.0, 0.0], "acceleration": [0.0, 0.0, 0.0],
                              "speed": 0.0})
        t["sample"].append({"token": im.sample, "timestamp": im.timestamp, "log_token": logs[im.logfile],
                            "key_camera_token": im.sample_data})
        t["sample_data"].append({
            "token": im.sample_data, "sample_token": im.sample, "ego_pose_token": ego, "calibrated_sensor_token": calibrations[key],
            "timestamp": im.timestamp, "fileformat": "jpg", "is_key_frame": True, "height": im.height, "width": im.width,
            "filename": im.filename, "prev": "", "next": ""})
        for ann in im.annotations:
            record = {"token": ann.token, "sample_data_token": im.sample_data, "category_token": categories[ann.category]}
            if ann.kind == "object":
                record.update(attribute_tokens=[], bbox=list(ann.bbox or (0, 0, 0, 0)), mask=ann.mask)
                t["object_ann"].append(record)
            else:
                record["mask"] = ann.mask
                t["surface_ann"].append(record)
    return t


def build_tables(seed: int, images: list[ImageRecord]) -> dict[str, dict[str, list[dict]]]:
    """``{version folder: {table: records}}``: the images of each split in their version
    (:data:`spec.VERSIONS`), every version with all ten tables."""
    out = {}
    for split, version in spec.VERSIONS.items():
        out[version] = _version_tables(seed, [im for im in images if im.split == split])
    return out
