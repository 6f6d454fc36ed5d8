"""nuScenes v1.0 tables: ``<root>/<version>/*.json`` read once and indexed, without the devkit.

Only what the adapter needs is kept: sample_data records of camera and lidar key frames (plus
every lidar sweep when sweeps are aggregated), the ego poses they reference, and the small
tables whole. Each table file is parsed exactly once; queries are dictionary look-ups, never
table scans. The big tables are filtered while parsing (``object_pairs_hook``), so their full
record dicts never coexist, and are read only when a sample is loaded (listing samples reads
scene.json and sample.json alone). On a v1.0-trainval-sized table set (2.67 M sample_data and
ego_pose records, 1.4 + 0.6 GB of JSON) that takes about 50 s and 2.7 GB at peak (the text of
sample_data.json), keeping about 0.8 GB.

Errors are :class:`~pipeline.errors.InputFileError` naming the table file: a missing file,
malformed JSON, a record lacking a field, a record referencing a token that its target table
does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline.errors import InputFileError

LIDAR_CHANNEL = "LIDAR_TOP"
TABLES = ("attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
          "sample_annotation", "sample_data", "scene", "sensor", "visibility")
"""The 13 tables of a nuScenes version folder (``lidarseg.json`` comes with the lidarseg release)."""


class SampleData(NamedTuple):
    """One kept sample_data record (timestamps in µs; ``prev`` is ``""`` at a chain's start)."""

    token: str
    sample_token: str
    ego_pose_token: str
    calibrated_sensor_token: str
    filename: str
    timestamp: int
    is_key_frame: bool
    prev: str


class Calibration(NamedTuple):
    """A calibrated_sensor record joined with its sensor: sensor → ego extrinsics."""

    channel: str
    modality: str
    translation: tuple[float, float, float]  # metres, sensor origin in the ego frame
    rotation: tuple[float, float, float, float]  # [w, x, y, z], as stored (not normalised)
    intrinsic: np.ndarray | None  # (3, 3) float64 for cameras, else None


class Sample(NamedTuple):
    """A sample (key frame): its scene, timestamp (µs) and key-frame sample_data by channel."""

    token: str
    scene_token: str
    timestamp: int
    data: dict[str, str]


class Scene(NamedTuple):
    """A scene: its name (``scene-XXXX``) and its sample tokens in time order."""

    token: str
    name: str
    samples: tuple[str, ...]


def _fix(version: str) -> str:
    return f"re-extract the {version} metadata (tables of one release must come together)"


def read_table(path: Path, version: str, hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> list:
    """Parse table file ``path`` (a JSON list of records); ``hook`` turns each record's key/value
    pairs into what is kept (see ``json.loads``' ``object_pairs_hook``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(path, f"table file not found; dataset.root must hold {path.parent.name}/ with all nuScenes tables ({_fix(version)})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(path, f"cannot read table ({err}); {_fix(version)}") from None
    try:
        records = json.loads(text, object_pairs_hook=hook) if hook else json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(path, f"malformed JSON ({err.msg} at line {err.lineno}, column {err.colno}); {_fix(version)}") from None
    if not isinstance(records, list):
        raise InputFileError(path, f"a table must be a JSON list of records, found {type(records).__name__}; {_fix(version)}")
    return records


def _get(record: dict, key: str, path: Path, version: str) -> Any:
    try:
        return record[key]
    except (KeyError, TypeError):
        token = record.get("token", "?") if isinstance(record, dict) else "?"
        raise InputFileError(path, f"record {token} lacks field {key!r}; {_fix(version)}") from None


def _missing_ref(path: Path, token: str, field: str, value: str, target: str, version: str) -> InputFileError:
    return InputFileError(path, f"record {token} has {field} {value!r}, which {target}.json does not hold; {_fix(version)}")


class NuScenesTables:
    """The indexed tables of one nuScenes version (``<root>/<version>/``).

    Read at once (small): ``calibration`` (calibrated_sensor token → :class:`Calibration`),
    ``scenes`` (token → :class:`Scene`), ``scene_by_name``, ``samples`` (token → :class:`Sample`),
    ``lidarseg`` (lidar sample_data token → file name relative to root; empty without
    ``lidarseg.json`` or with an empty one, as v1.0-test) and ``categories`` ([(index or None,
    name)] in table order; None without ``category.json``). Read on first use (the big tables,
    which listing samples does not need): ``sample_data`` (token → :class:`SampleData`), the ego
    poses, :meth:`key_frames`. ``keep_sweeps`` keeps every LIDAR_TOP sample_data record (the
    ``prev`` chains of sweeps); without it only key frames are kept.
    """

    def __init__(self, root: str | Path, version: str, keep_sweeps: bool = False) -> None:
        self.root = Path(root)
        self.version = version
        self.folder = self.root / version
        self.keep_sweeps = keep_sweeps
        if not self.folder.is_dir():
            raise InputFileError(self.folder, f"nuScenes table folder not found; check dataset.root and dataset.nuscenes.version ({version})")
        self.calibration = self._read_calibration()
        self.scenes, self.scene_by_name, self.samples = self._read_scenes()
        self.lidarseg = self._read_lidarseg()
        self.categories = self._read_categories()
        self._sample_data: dict[str, SampleData] | None = None

    def _load_frames(self) -> dict[str, SampleData]:
        """Read sample_data.json and ego_pose.json (once) and index them."""
        if self._sample_data is None:
            self._sample_data = self._read_sample_data()
            self._index_key_frames()
            self._pose_rows, self._poses = self._read_ego_poses()
            self._check_lidarseg()
        return self._sample_data

    @property
    def sample_data(self) -> dict[str, SampleData]:
        """The kept sample_data records by token."""
        return self._load_frames()

    def key_frames(self, sample_token: str) -> dict[str, str]:
        """Channel → key-frame sample_data token of sample ``sample_token``."""
        self._load_frames()
        return self.samples[sample_token].data

    def path(self, table: str) -> Path:
        """The file of ``table``."""
        return self.folder / f"{table}.json"

    # -- small tables ------------------------------------------------------------------------
    def _read_calibration(self) -> dict[str, Calibration]:
        v = self.version
        path = self.path("sensor")
        sensors = {}
        for rec in read_table(path, v):
            sensors[_get(rec, "token", path, v)] = (str(_get(rec, "channel", path, v)), str(_get(rec, "modality", path, v)))
        path = self.path("calibrated_sensor")
        out = {}
        for rec in read_table(path, v):
            token, sensor = _get(rec, "token", path, v), _get(rec, "sensor_token", path, v)
            if sensor not in sensors:
                raise _missing_ref(path, token, "sensor_token", sensor, "sensor", v)
            channel, modality = sensors[sensor]
            k = _get(rec, "camera_intrinsic", path, v)
            intrinsic = None
            if modality == "camera":
                intrinsic = np.asarray(k, dtype=np.float64)
                if intrinsic.shape != (3, 3) or not np.all(np.isfinite(intrinsic)) or intrinsic[0, 0] <= 0 or intrinsic[1, 1] <= 0:
                    raise InputFileError(path, f"record {token} ({channel}): camera_intrinsic must be a 3x3 matrix with positive focal lengths; {_fix(v)}")
            t, q = _get(rec, "translation", path, v), _get(rec, "rotation", path, v)
            if len(t) != 3 or len(q) != 4:
                raise InputFileError(path, f"record {token}: translation needs 3 and rotation 4 numbers [w, x, y, z]; {_fix(v)}")
            out[token] = Calibration(channel, modality, tuple(map(float, t)), tuple(map(float, q)), intrinsic)
        return out

    def _read_scenes(self) -> tuple[dict[str, Scene], dict[str, Scene], dict[str, Sample]]:
        v = self.version
        path = self.path("scene")
        names: dict[str, str] = {}
        for rec in read_table(path, v):
            names[_get(rec, "token", path, v)] = str(_get(rec, "name", path, v))
        path = self.path("sample")
        samples: dict[str, Sample] = {}
        by_scene: dict[str, list[tuple[int, str]]] = {token: [] for token in names}
        for rec in read_table(path, v):
            token, scene, stamp = _get(rec, "token", path, v), _get(rec, "scene_token", path, v), int(_get(rec, "timestamp", path, v))
            if scene not in names:
                raise _missing_ref(path, token, "scene_token", scene, "scene", v)
            samples[token] = Sample(token, scene, stamp, {})
            by_scene[scene].append((stamp, token))
        scenes = {token: Scene(token, name, tuple(t for _, t in sorted(by_scene[token]))) for token, name in names.items()}
        by_name = {}
        for scene in scenes.values():
            if scene.name in by_name:
                raise InputFileError(self.path("scene"), f"scene name {scene.name!r} appears twice; {_fix(v)}")
            by_name[scene.name] = scene
        return scenes, by_name, samples

    # -- the big tables, filtered while parsing ----------------------------------------------
    def _read_sample_data(self) -> dict[str, SampleData]:
        v, path, calibration, keep_sweeps = self.version, self.path("sample_data"), self.calibration, self.keep_sweeps

        def hook(pairs: list[tuple[str, Any]]) -> SampleData | None:
            rec = dict(pairs)
            token, cs = _get(rec, "token", path, v), _get(rec, "calibrated_sensor_token", path, v)
            if cs not in calibration:
                raise _missing_ref(path, token, "calibrated_sensor_token", cs, "calibrated_sensor", v)
            key = bool(_get(rec, "is_key_frame", path, v))
            modality = calibration[cs].modality
            if not (modality == "lidar" and (key or keep_sweeps) or modality == "camera" and key):
                return None
            return SampleData(token, _get(rec, "sample_token", path, v), _get(rec, "ego_pose_token", path, v), cs,
                              str(_get(rec, "filename", path, v)), int(_get(rec, "timestamp", path, v)), key,
                              str(_get(rec, "prev", path, v)))

        return {rec.token: rec for rec in read_table(path, v, hook) if rec is not None}

    def _index_key_frames(self) -> None:
        """Fill each sample's ``data`` (channel → key-frame sample_data token); check references."""
        path, v, records = self.path("sample_data"), self.version, self._sample_data
        for rec in records.values():
            lidar_chain = self.keep_sweeps and self.calibration[rec.calibrated_sensor_token].modality == "lidar"
            if lidar_chain and rec.prev and rec.prev not in records:  # kept whole: every prev must be there
                raise _missing_ref(path, rec.token, "prev", rec.prev, "sample_data", v)
            if not rec.is_key_frame:
                continue
            sample = self.samples.get(rec.sample_token)
            if sample is None:
                raise _missing_ref(path, rec.token, "sample_token", rec.sample_token, "sample", v)
            channel = self.calibration[rec.calibrated_sensor_token].channel
            if channel in sample.data:
                raise InputFileError(path, f"sample {sample.token} has two key-frame records for {channel} ({sample.data[channel]}, {rec.token}); {_fix(v)}")
            sample.data[channel] = rec.token

    def _read_ego_poses(self) -> tuple[dict[str, int], np.ndarray]:
        v, path = self.version, self.path("ego_pose")
        needed = {rec.ego_pose_token for rec in self._sample_data.values()}

        def hook(pairs: list[tuple[str, Any]]) -> tuple | None:
            rec = dict(pairs)
            token = _get(rec, "token", path, v)
            if token not in needed:
                return None
            t, q = _get(rec, "translation", path, v), _get(rec, "rotation", path, v)
            if len(t) != 3 or len(q) != 4:
                raise InputFileError(path, f"record {token}: translation needs 3 and rotation 4 numbers [w, x, y, z]; {_fix(v)}")
            return (token, *t, *q)

        kept = [rec for rec in read_table(path, v, hook) if rec is not None]
        rows = {rec[0]: i for i, rec in enumerate(kept)}
        poses = np.array([rec[1:] for rec in kept], dtype=np.float64).reshape(len(kept), 7)
        for rec in self._sample_data.values():
            if rec.ego_pose_token not in rows:
                raise _missing_ref(self.path("sample_data"), rec.token, "ego_pose_token", rec.ego_pose_token, "ego_pose", v)
        return rows, poses

    def _read_lidarseg(self) -> dict[str, str]:
        path, v = self.path("lidarseg"), self.version
        if not path.exists():
            return {}
        out = {}
        for rec in read_table(path, v):
            out[_get(rec, "sample_data_token", path, v)] = str(_get(rec, "filename", path, v))
        return out

    def _check_lidarseg(self) -> None:
        records = self._sample_data
        for sd in self.lidarseg:
            if sd not in records or not records[sd].is_key_frame:
                raise _missing_ref(self.path("lidarseg"), sd, "sample_data_token", sd, "sample_data (as a lidar key frame)", self.version)

    def _read_categories(self) -> list[tuple[int | None, str]] | None:
        path, v = self.path("category"), self.version
        if not path.exists():
            if self.lidarseg:
                raise InputFileError(path, f"table file not found; lidarseg labels need it ({_fix(v)})")
            return None
        out = []
        for rec in read_table(path, v):
            index = rec.get("index") if isinstance(rec, dict) else None
            out.append((None if index is None else int(index), str(_get(rec, "name", path, v))))
        return out

    # -- queries -------------------------------------------------------------------------------
    def ego_pose(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """The ego pose ``token``: (translation (3,) metres in the global frame, rotation
        quaternion (4,) [w, x, y, z] ego → global), float64."""
        self._load_frames()
        row = self._poses[self._pose_rows[token]]
        return row[:3].copy(), row[3:].copy()

    def scene_of(self, sample_token: str) -> Scene:
        """The scene holding sample ``sample_token``."""
        return self.scenes[self.samples[sample_token].scene_token]
