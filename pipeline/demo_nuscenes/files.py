"""Writers of the nuScenes file formats (inside a directory that :mod:`pipeline.atomic` renames when complete).

* ``samples/LIDAR_TOP/<stem>.pcd.bin``: float32, 5 values per point (x, y, z, intensity, ring).
* ``lidarseg/<version>/<lidar sample_data token>_lidarseg.bin``: uint8, one fine index per point.
* ``samples/<CAM>/<stem>.jpg``: RGB JPEG.
* ``<version>/<table>.json``: a JSON list of records.
* ``maps/<token>.png``: an 8-bit grey PNG (the semantic prior; the demo's is a small placeholder).
* ``demo_truth/<sample token>.npz``: the sidecar ground truth (not part of the format).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.demo_nuscenes import spec


def lidar_filename(stem: str) -> str:
    """Path of a lidar keyframe below the root."""
    return f"samples/{spec.LIDAR}/{stem}.pcd.bin"


def camera_filename(channel: str, stem: str) -> str:
    """Path of a camera keyframe below the root."""
    return f"samples/{channel}/{stem}.jpg"


def lidarseg_filename(lidar_token: str) -> str:
    """Path of a lidarseg label file below the root."""
    return f"lidarseg/{spec.VERSION}/{lidar_token}_lidarseg.bin"


def write_points(path: Path, points: np.ndarray) -> None:
    """A ``.pcd.bin``: ``points`` (N, 5) as little-endian float32."""
    if points.ndim != 2 or points.shape[1] != 5:
        raise ValueError(f"{path}: need (N, 5) points, got {points.shape}")
    np.ascontiguousarray(points, dtype="<f4").tofile(path)


def write_labels(path: Path, labels: np.ndarray) -> None:
    """A lidarseg ``.bin``: ``labels`` (N,) as uint8."""
    np.ascontiguousarray(labels, dtype=np.uint8).tofile(path)


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """An RGB JPEG of ``rgb`` (H, W, 3) uint8."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="JPEG", quality=int(quality))


def write_table(path: Path, records: list[dict]) -> None:
    """A table file: the records as a JSON list (floats written exactly, keys in record order)."""
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


def write_map(path: Path, size: int = 64) -> None:
    """A small placeholder semantic-prior PNG (``size`` x ``size`` uint8, a cross of 255 on 0)."""
    from PIL import Image

    mask = np.zeros((size, size), dtype=np.uint8)
    band = slice(size // 2 - size // 8, size // 2 + size // 8)
    mask[band, :] = 255
    mask[:, band] = 255
    Image.fromarray(mask).save(path, format="PNG")


def write_truth(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The sidecar ``.npz`` (what ``np.load`` reads), byte-identical for identical arrays: members
    sorted by name, fixed zip timestamps, deflated."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2018, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
