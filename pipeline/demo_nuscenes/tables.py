"""The 13 tables of nuScenes v1.0 (plus ``lidarseg``) for the written scenes.

Tokens are hashes of the seed and names (:func:`spec.token`); a sample_data record shares its
token with its ego_pose (as in nuScenes) and, for the lidar, with its lidarseg record. Only
keyframes exist (no sweeps): every sample_data record has ``is_key_frame: true`` and its
prev/next chain runs through the scene's keyframes of that channel. ``instance`` and
``sample_annotation`` are empty (the demo has no 3D box annotations).
"""

from __future__ import annotations

from pipeline.demo_nuscenes import spec
from pipeline.demo_nuscenes.categories import category_records
from pipeline.demo_nuscenes.defects import Defects
from pipeline.demo_nuscenes.files import lidarseg_filename
from pipeline.demo_nuscenes.scene import SceneMeta

TABLES: tuple[str, ...] = (
    "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
    "sample_annotation", "sample_data", "scene", "sensor", "visibility",
)
"""The 13 table files of a version folder (``lidarseg.json`` comes on top)."""

ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("vehicle.moving", "Vehicle is moving."),
    ("vehicle.stopped", "Vehicle, with a driver, is stopped."),
    ("vehicle.parked", "Vehicle is parked with no driver."),
    ("cycle.with_rider", "There is a rider on the bicycle or motorcycle."),
    ("cycle.without_rider", "There is no rider on the bicycle or motorcycle."),
    ("pedestrian.sitting_lying_down", "The pedestrian is sitting or lying down."),
    ("pedestrian.standing", "The pedestrian is standing."),
    ("pedestrian.moving", "The pedestrian is moving."),
)
VISIBILITY: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)


def _chain(tokens: list[str], i: int) -> tuple[str, str]:
    return (tokens[i - 1] if i > 0 else "", tokens[i + 1] if i + 1 < len(tokens) else "")


def _sensor_records(seed: int) -> list[dict]:
    channels = [(spec.LIDAR, "lidar")] + [(c, "camera") for c in spec.CAMERAS]
    return [{"token": spec.token(seed, "sensor", c), "channel": c, "modality": m} for c, m in channels]


def _calibrated(seed: int, scene: SceneMeta, defects: Defects) -> list[dict]:
    out = []
    for channel, mount in scene.rig.items():
        factor = defects.rotation_factor(scene.name, channel)
        out.append({
            "token": spec.token(seed, "calibrated_sensor", scene.name, channel),
            "sensor_token": spec.token(seed, "sensor", channel),
            "translation": list(mount.translation),
            "rotation": [v * factor for v in mount.rotation] if factor != 1.0 else list(mount.rotation),
            "camera_intrinsic": mount.intrinsic_record(),
        })
    return out


def _scene_samples(seed: int, scene: SceneMeta, tables: dict[str, list[dict]]) -> None:
    """Append the scene's sample, sample_data, ego_pose and lidarseg records to ``tables``."""
    name = scene.name
    samples = [spec.sample_token(seed, name, k) for k in range(len(scene.keyframes))]
    scene_token = spec.token(seed, "scene", name)
    for k, frames in enumerate(scene.keyframes):
        prev, nxt = _chain(samples, k)
        tables["sample"].append({"token": samples[k], "timestamp": frames[spec.LIDAR].timestamp, "prev": prev,
                                 "next": nxt, "scene_token": scene_token})
    for channel in scene.rig:
        sd = [spec.sample_data_token(seed, name, channel, k) for k in range(len(scene.keyframes))]
        for k, frames in enumerate(scene.keyframes):
            frame = frames[channel]
            prev, nxt = _chain(sd, k)
            tables["sample_data"].append({
                "token": sd[k], "sample_token": samples[k], "ego_pose_token": sd[k],
                "calibrated_sensor_token": spec.token(seed, "calibrated_sensor", name, channel),
                "timestamp": frame.timestamp, "fileformat": "pcd" if channel == spec.LIDAR else "jpg",
                "is_key_frame": True, "height": frame.height, "width": frame.width, "filename": frame.filename,
                "prev": prev, "next": nxt,
            })
            tables["ego_pose"].append({"token": sd[k], "timestamp": frame.timestamp, "rotation": list(frame.rotation),
                                       "translation": list(frame.translation)})
            if channel == spec.LIDAR:
                tables["lidarseg"].append({"token": sd[k], "sample_data_token": sd[k],
                                           "filename": lidarseg_filename(sd[k])})


def _scene_record(seed: int, scene: SceneMeta) -> dict:
    first, last = spec.sample_token(seed, scene.name, 0), spec.sample_token(seed, scene.name, len(scene.keyframes) - 1)
    return {
        "token": spec.token(seed, "scene", scene.name), "log_token": spec.token(seed, "log", scene.name),
        "nbr_samples": len(scene.keyframes), "first_sample_token": first, "last_sample_token": last,
        "name": scene.name, "description": scene.description,
    }


def map_records(seed: int, scenes: list[SceneMeta]) -> list[dict]:
    """One map per location used, listing the logs recorded there; its PNG is ``maps/<token>.png``."""
    out = []
    for location in sorted({s.log.location for s in scenes}):
        token = spec.token(seed, "map", location)
        logs = [spec.token(seed, "log", s.name) for s in scenes if s.log.location == location]
        out.append({"category": "semantic_prior", "token": token, "filename": f"maps/{token}.png", "log_tokens": logs})
    return out


def build_tables(seed: int, scenes: list[SceneMeta], defects: Defects) -> dict[str, list[dict]]:
    """Table name → records, for the 13 tables and ``lidarseg``."""
    tables: dict[str, list[dict]] = {name: [] for name in TABLES + ("lidarseg",)}
    tables["attribute"] = [{"token": spec.token(seed, "attribute", n), "name": n, "description": d} for n, d in ATTRIBUTES]
    tables["visibility"] = [{"description": d, "token": t, "level": lvl} for t, lvl, d in VISIBILITY]
    tables["category"] = category_records(lambda name: spec.token(seed, "category", name))
    tables["sensor"] = _sensor_records(seed)
    tables["map"] = map_records(seed, scenes)
    for scene in scenes:
        log = scene.log
        tables["log"].append({"token": spec.token(seed, "log", scene.name), "logfile": log.logfile,
                              "vehicle": log.vehicle, "date_captured": log.date_captured, "location": log.location})
        tables["calibrated_sensor"] += _calibrated(seed, scene, defects)
        tables["scene"].append(_scene_record(seed, scene))
        _scene_samples(seed, scene, tables)
    return tables
