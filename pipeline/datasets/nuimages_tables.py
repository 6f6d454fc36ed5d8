"""nuImages v1.0 tables: ``<root>/<version>/*.json`` read once per run and indexed, without the devkit.

A nuImages version folder (``v1.0-train``, ``v1.0-val``, ``v1.0-test``, ``v1.0-mini``) holds ten
tables (:data:`TABLES`). Only what the adapter needs is kept: every sample (its key camera
sample_data token and log), the key camera sample_data records, the calibrations they use (with
``camera_distortion``), the categories, and the annotations of key cameras grouped by
sample_data token (surface_ann in table order, object_ann in table order; the adapter sorts
objects by token as the devkit's ``get_segmentation`` does). Annotation tables are parsed once
per :class:`NuImagesTables` (``object_pairs_hook`` drops the records of other images while
parsing), never scanned per image; ``keep_samples`` limits them to one shard's images.

Errors are :class:`~pipeline.errors.InputFileError` naming the table file and the record: a
missing file, malformed JSON, a record lacking a field, a reference to a token its target table
does not hold, a category outside nuImages' 25.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, NamedTuple

import numpy as np

from pipeline.datasets.nuscenes_tables import _get, _missing_ref, read_table
from pipeline.errors import InputFileError
from pipeline.vocab import NUIMAGES_CATEGORIES

TABLES: tuple[str, ...] = ("attribute", "calibrated_sensor", "category", "ego_pose", "log", "object_ann", "sample",
                           "sample_data", "sensor", "surface_ann")
"""The ten tables of a nuImages version folder (all must exist, as for the devkit)."""


class Camera(NamedTuple):
    """A key camera image: its sample_data record joined with its calibration."""

    token: str  # sample_data token
    sample_token: str
    filename: str  # below the dataset root
    width: int
    height: int
    timestamp: int  # µs
    channel: str
    intrinsic: np.ndarray  # (3, 3) float64, pixels of the (distorted) image
    distortion: tuple[float, ...]  # camera_distortion as stored (OpenCV k1, k2, p1, p2, k3[, k4..])


class Annotation(NamedTuple):
    """One object_ann or surface_ann record: its token, category name and mask (None = null mask)."""

    token: str
    category: str
    mask: dict | None


def _fix(version: str) -> str:
    return f"re-extract the nuImages {version} metadata (tables of one release must come together)"


class NuImagesTables:
    """The indexed tables of one nuImages version (``<root>/<version>/``).

    ``samples``: sample token → (key camera sample_data token, log token), in table order;
    ``cameras``: key camera sample_data token → :class:`Camera`; ``categories``: category token
    → name (checked against nuImages' 25 names); ``logs``: log token → logfile;
    ``surfaces`` / ``objects``: sample_data token → [:class:`Annotation`] in table order.
    ``keep_samples``: when given, only these samples' cameras and annotations are kept (the
    sample table is still read whole, so an unknown token is an error naming sample.json).
    """

    def __init__(self, root: str | Path, version: str, keep_samples: Collection[str] | None = None) -> None:
        self.root = Path(root)
        self.version = version
        self.folder = self.root / version
        if not self.folder.is_dir():
            raise InputFileError(self.folder, f"nuImages table folder not found; check dataset.root and dataset.nuimages.versions ({version})")
        for table in TABLES:
            if not self.path(table).is_file():
                raise InputFileError(self.path(table), f"table file not found; a nuImages version folder holds {', '.join(TABLES)} ({_fix(version)})")
        self.logs = self._read_logs()
        self.samples = self._read_samples()
        keep = set(self.samples) if keep_samples is None else set(keep_samples)
        unknown = sorted(keep - set(self.samples))
        if unknown:
            raise InputFileError(self.path("sample"), f"no sample with token {unknown[0]!r} ({len(unknown)} unknown); list samples with this version's tables")
        self._wanted = {self.samples[s][0]: s for s in keep}
        self.categories = self._read_categories()
        self.cameras = self._read_cameras()
        self.surfaces = self._read_annotations("surface_ann")
        self.objects = self._read_annotations("object_ann")

    def path(self, table: str) -> Path:
        """The file of ``table``."""
        return self.folder / f"{table}.json"

    def _read_logs(self) -> dict[str, str]:
        path, v = self.path("log"), self.version
        return {_get(r, "token", path, v): str(_get(r, "logfile", path, v)) for r in read_table(path, v)}

    def _read_samples(self) -> dict[str, tuple[str, str]]:
        path, v = self.path("sample"), self.version
        out: dict[str, tuple[str, str]] = {}
        for rec in read_table(path, v):
            token, log = _get(rec, "token", path, v), _get(rec, "log_token", path, v)
            if log not in self.logs:
                raise _missing_ref(path, token, "log_token", log, "log", v)
            out[token] = (str(_get(rec, "key_camera_token", path, v)), log)
        return out

    def _read_categories(self) -> dict[str, str]:
        path, v = self.path("category"), self.version
        out: dict[str, str] = {}
        for rec in read_table(path, v):
            token, name = _get(rec, "token", path, v), str(_get(rec, "name", path, v))
            if name not in NUIMAGES_CATEGORIES:
                raise InputFileError(path, f"record {token}: unknown category {name!r}, not one of nuImages' 25 categories; {_fix(v)}")
            if name in out.values():
                raise InputFileError(path, f"record {token}: category {name!r} appears twice; {_fix(v)}")
            out[token] = name
        return out

    def _read_calibrations(self) -> dict[str, tuple[str, np.ndarray, tuple[float, ...]]]:
        v = self.version
        path = self.path("sensor")
        channels = {_get(r, "token", path, v): (str(_get(r, "channel", path, v)), str(_get(r, "modality", path, v)))
                    for r in read_table(path, v)}
        path = self.path("calibrated_sensor")
        out = {}
        for rec in read_table(path, v):
            token, sensor = _get(rec, "token", path, v), _get(rec, "sensor_token", path, v)
            if sensor not in channels:
                raise _missing_ref(path, token, "sensor_token", sensor, "sensor", v)
            channel, modality = channels[sensor]
            if modality != "camera":
                continue
            k = np.asarray(_get(rec, "camera_intrinsic", path, v), dtype=np.float64)
            if k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
                raise InputFileError(path, f"record {token} ({channel}): camera_intrinsic must be a 3x3 matrix with positive focal lengths; {_fix(v)}")
            distortion = tuple(float(d) for d in (rec.get("camera_distortion") or ()))
            out[token] = (channel, k, distortion)
        return out

    def _read_cameras(self) -> dict[str, Camera]:
        v, path, wanted = self.version, self.path("sample_data"), self._wanted
        calibrations = self._read_calibrations()

        def hook(pairs: list[tuple[str, Any]]) -> Camera | None:
            rec = dict(pairs)
            token = rec.get("token")
            if token not in wanted:
                return None
            cs = _get(rec, "calibrated_sensor_token", path, v)
            if cs not in calibrations:
                raise _missing_ref(path, token, "calibrated_sensor_token", cs, "calibrated_sensor (as a camera)", v)
            if _get(rec, "sample_token", path, v) != wanted[token]:
                raise InputFileError(path, f"record {token}: sample_token {rec['sample_token']!r} is not the sample whose key camera it is ({wanted[token]}); {_fix(v)}")
            if not _get(rec, "is_key_frame", path, v):
                raise InputFileError(path, f"record {token}: a sample's key camera must have is_key_frame true; {_fix(v)}")
            channel, k, distortion = calibrations[cs]
            return Camera(token, wanted[token], str(_get(rec, "filename", path, v)), int(_get(rec, "width", path, v)),
                          int(_get(rec, "height", path, v)), int(_get(rec, "timestamp", path, v)), channel, k, distortion)

        cameras = {c.token: c for c in read_table(path, v, hook) if isinstance(c, Camera)}
        missing = sorted(set(wanted) - set(cameras))
        if missing:
            raise _missing_ref(self.path("sample"), wanted[missing[0]], "key_camera_token", missing[0], "sample_data", v)
        return cameras

    def _read_annotations(self, table: str) -> dict[str, list[Annotation]]:
        v, path, wanted, categories = self.version, self.path(table), self._wanted, self.categories

        def hook(pairs: list[tuple[str, Any]]) -> tuple | None:
            rec = dict(pairs)
            if "sample_data_token" not in rec:  # a mask dict, or a record lacking the field
                return rec if "token" not in rec else _get(rec, "sample_data_token", path, v)
            if rec["sample_data_token"] not in wanted:
                return None
            token, category = _get(rec, "token", path, v), _get(rec, "category_token", path, v)
            if category not in categories:
                raise _missing_ref(path, token, "category_token", category, "category", v)
            mask = _get(rec, "mask", path, v)
            if mask is not None and not (isinstance(mask, dict) and "size" in mask and "counts" in mask):
                raise InputFileError(path, f"record {token}: mask must be null or {{'size': [H, W], 'counts': <base64 RLE>}}; {_fix(v)}")
            return (rec["sample_data_token"], Annotation(str(token), categories[category], mask))

        out: dict[str, list[Annotation]] = {token: [] for token in wanted}
        for item in read_table(path, v, hook):
            if isinstance(item, tuple):
                out[item[0]].append(item[1])
        return out

    # -- queries -------------------------------------------------------------------------------
    def camera_of(self, sample_token: str) -> Camera:
        """The key camera of sample ``sample_token``."""
        return self.cameras[self.samples[sample_token][0]]

    def logfile_of(self, sample_token: str) -> str:
        """The logfile name of sample ``sample_token`` (nuImages has no scenes: the log groups samples)."""
        return self.logs[self.samples[sample_token][1]]
