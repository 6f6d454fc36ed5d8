"""Lidar points of a nuScenes sample: the LIDAR_TOP key frame, its lidarseg labels and optional
motion-compensated sweeps, as ``prepared`` store arrays.

File formats: ``.pcd.bin`` = float32, 5 values per point (x, y, z in metres in the lidar frame,
intensity, ring index); lidarseg ``.bin`` = one uint8 fine-class index per point of the key
frame, same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import camera
from pipeline.datasets.nuscenes_tables import NuScenesTables, SampleData
from pipeline.errors import InputFileError

_RELEASE = "the nuScenes release under dataset.root is incomplete: extract it again"


def read_lidar(path: Path) -> np.ndarray:
    """Read a ``.pcd.bin`` lidar file → (P, 5) float32: x, y, z (m, lidar frame), intensity, ring."""
    try:
        raw = np.fromfile(path, dtype="<f4")
    except FileNotFoundError:
        raise InputFileError(path, f"lidar file not found; {_RELEASE}") from None
    except OSError as err:
        raise InputFileError(path, f"cannot read lidar file ({err.strerror}); {_RELEASE}") from None
    if raw.size % 5:
        raise InputFileError(path, f"lidar file holds {raw.size} float32 values, not a multiple of 5 (x, y, z, intensity, ring); {_RELEASE}")
    points = raw.reshape(-1, 5)
    if not np.all(np.isfinite(points)):
        raise InputFileError(path, f"lidar file holds non-finite values; {_RELEASE}")
    ring = points[:, 4]
    if ring.size and (ring.min() < 0 or ring.max() > 255 or np.any(ring != np.round(ring))):
        raise InputFileError(path, f"ring values must be integers in 0..255, found {ring.min():g}..{ring.max():g}; is this a nuScenes .pcd.bin?")
    return points


def read_lidarseg(path: Path, n_points: int, lidar_path: Path, indices: Sequence[int]) -> np.ndarray:
    """Read a lidarseg ``.bin`` → (P,) uint16 fine-class indices; its length must be ``n_points``
    (the key frame's) and its values among the category table's ``indices``."""
    try:
        labels = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputFileError(path, "lidarseg file not found (listed in lidarseg.json); extract the lidarseg release into dataset.root") from None
    except OSError as err:
        raise InputFileError(path, f"cannot read lidarseg file ({err.strerror})") from None
    if labels.size != n_points:
        raise InputFileError(path, f"holds {labels.size} labels but the lidar file {lidar_path.name} has {n_points} points; "
                                   "the lidarseg release does not match these lidar files (re-extract both of one version)")
    unknown = np.setdiff1d(np.unique(labels), np.asarray(indices, dtype=np.int64))
    if unknown.size:
        raise InputFileError(path, f"fine-class indices {unknown.tolist()[:5]} are not in category.json's indices; "
                                   "use the category.json of the lidarseg release")
    return labels.astype(np.uint16)


def _split(points: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "points/xyz": np.ascontiguousarray(points[:, :3], dtype=np.float32),
        "points/intensity": np.ascontiguousarray(points[:, 3], dtype=np.float32),
        "points/ring": points[:, 4].astype(np.uint8),
    }


def sweep_points(tables: NuScenesTables, key: SampleData, count: int) -> list[np.ndarray]:
    """The ``count`` LIDAR_TOP sweeps before ``key`` (its ``prev`` chain, nearest first; fewer at a
    log's start), each (Pi, 5) float32 with x, y, z moved into ``key``'s lidar frame through both
    ego poses (motion compensation; float64 maths)."""
    to_key = camera.invert_rigid(sensor_to_global(tables, key))
    out: list[np.ndarray] = []
    token = key.prev
    while token and len(out) < count:
        rec = tables.sample_data[token]
        points = read_lidar(tables.root / rec.filename)
        transform = to_key @ sensor_to_global(tables, rec)
        moved = points.copy()
        moved[:, :3] = camera.transform_points(transform, points[:, :3].astype(np.float64)).astype(np.float32)
        out.append(moved)
        token = rec.prev
    return out


def sensor_to_global(tables: NuScenesTables, rec: SampleData) -> np.ndarray:
    """T(ego@t) · T(cs): the (4, 4) float64 transform from ``rec``'s sensor frame to the global frame
    at its timestamp (quaternions normalised)."""
    calib = tables.calibration[rec.calibrated_sensor_token]
    translation, rotation = tables.ego_pose(rec.ego_pose_token)
    return camera.rigid_transform(translation, rotation) @ camera.rigid_transform(calib.translation, calib.rotation)


def point_arrays(tables: NuScenesTables, lidar: SampleData, label_indices: Sequence[int] | None, sweeps: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The key frame's ``points/xyz`` (P, 3) float32 (m, lidar frame), ``points/intensity`` (P,)
    float32, ``points/ring`` (P,) uint8 and, when ``label_indices`` is given (a lidarseg version),
    ``points/label`` (P,) uint16 raw fine index. With ``sweeps > 0`` the previous sweeps' points
    follow the key frame's, labelled 0; the attributes ``sweeps`` and ``sweep_points`` count them."""
    lidar_path = tables.root / lidar.filename
    key = read_lidar(lidar_path)
    arrays = _split(key)
    if label_indices is not None:
        if lidar.token not in tables.lidarseg:
            raise InputFileError(tables.path("lidarseg"), f"no record for the lidar key frame {lidar.token} ({lidar.filename}); "
                                                         "use the lidarseg.json of the lidarseg release")
        label_path = tables.root / tables.lidarseg[lidar.token]
        arrays["points/label"] = read_lidarseg(label_path, len(key), lidar_path, label_indices)
    attrs: dict[str, Any] = {}
    if sweeps > 0:
        extra = sweep_points(tables, lidar, sweeps)
        n_extra = int(sum(len(p) for p in extra))
        if extra:
            more = _split(np.concatenate(extra))
            for name, values in more.items():
                arrays[name] = np.concatenate([arrays[name], values])
            if "points/label" in arrays:
                arrays["points/label"] = np.concatenate([arrays["points/label"], np.zeros(n_extra, np.uint16)])
        attrs = {"sweeps": len(extra), "sweep_points": n_extra}
    return arrays, attrs
