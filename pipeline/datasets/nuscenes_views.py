"""Camera views of a nuScenes sample: key-frame images, camera → lidar poses, intrinsics, as
``prepared`` store arrays.

A view's pose maps its camera frame (OpenCV axes, as nuScenes' cameras) into the sample frame
(the key frame's LIDAR_TOP at the lidar timestamp) through both ego poses:
``T_lidar←cam = T(cs_lidar)^-1 · T(ego@t_lidar)^-1 · T(ego@t_cam) · T(cs_cam)``. Images are read at
their own size (``views/native_size``; ``camera_intrinsic`` applies to it) and stored resized
to the working size with the intrinsics scaled alike. A camera whose image file is missing is
left out and named in ``cameras_missing``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import camera, images
from pipeline.datasets.nuscenes_points import sensor_to_global
from pipeline.datasets.nuscenes_tables import NuScenesTables, Sample, SampleData
from pipeline.datasets.scannet import read_color
from pipeline.errors import InputFileError

if TYPE_CHECKING:
    from pipeline.datasets.nuscenes import NuScenesOptions

log = logging.getLogger(__name__)


@dataclass
class _View:
    index: int  # camera index in dataset.nuscenes.cameras
    record: SampleData
    path: Path
    intrinsic: np.ndarray  # (3, 3) native
    native_size: tuple[int, int] = (0, 0)
    image: np.ndarray | bytes | None = None  # working-size RGB (raw codec) or encoded bytes


def select_cameras(tables: NuScenesTables, sample: Sample, cameras: tuple[str, ...]) -> tuple[list[_View], list[str]]:
    """The views of ``cameras`` (channel names, in view order) whose key-frame image exists, and
    the channels left out (no key-frame record, or the image file is missing), each logged."""
    views, missing = [], []
    for index, channel in enumerate(cameras):
        token = tables.key_frames(sample.token).get(channel)
        if token is None:
            log.warning("sample %s: no key-frame %s record in sample_data.json; the view is left out", sample.token, channel)
            missing.append(channel)
            continue
        record = tables.sample_data[token]
        path = tables.root / record.filename
        if not path.is_file():
            log.warning("sample %s: camera image %s not found; the %s view is left out", sample.token, path, channel)
            missing.append(channel)
            continue
        calib = tables.calibration[record.calibrated_sensor_token]
        if calib.intrinsic is None:
            raise InputFileError(tables.path("calibrated_sensor"), f"record {record.calibrated_sensor_token} of {channel} has no camera_intrinsic; "
                                                                  "re-extract the metadata")
        views.append(_View(index, record, path, calib.intrinsic))
    return views, missing


def _read_view(view: _View, opts: NuScenesOptions) -> None:
    """Decode, check, resize and encode one view's image (runs in a worker thread)."""
    rgb = read_color(view.path)
    view.native_size = (rgb.shape[1], rgb.shape[0])
    k, (width, height) = view.intrinsic, view.native_size
    if not (0 < k[0, 2] < width and 0 < k[1, 2] < height):
        raise InputFileError(view.path, f"the principal point ({k[0, 2]:.1f}, {k[1, 2]:.1f}) of its camera_intrinsic lies outside "
                                        f"this {width}x{height} image; the image does not belong to the calibration (re-extract both)")
    work = images.resize_image(rgb, tuple(opts.working_size))
    view.image = work if opts.image_codec == "raw" else images.encode_image(work, opts.image_codec, opts.jpeg_quality)


def view_arrays(tables: NuScenesTables, sample: Sample, lidar: SampleData, opts: NuScenesOptions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of the cameras of ``opts.cameras`` present for ``sample`` (V of them).

    Returns ``views/frame`` (V,) int64 camera index, ``views/pose`` (V, 4, 4) float64 camera →
    lidar (m), ``views/image_size`` / ``views/native_size`` (V, 2) int32 (W, H),
    ``views/intrinsics`` / ``views/native_intrinsics`` (V, 3, 3) float64 (pixels), and the images
    at the working size (``views/image`` (V, H, W, 3) uint8 for codec ``raw``, else
    ``views/image_bytes`` / ``views/image_offsets``); attributes ``camera_tokens`` (per view) and
    ``cameras_missing`` (channel names).
    """
    views, missing = select_cameras(tables, sample, opts.cameras)
    with ThreadPoolExecutor(max_workers=max(1, opts.threads)) as pool:
        list(pool.map(lambda v: _read_view(v, opts), views))
    to_lidar = camera.invert_rigid(sensor_to_global(tables, lidar))
    work = tuple(int(x) for x in opts.working_size)
    n = len(views)
    arrays: dict[str, np.ndarray] = {
        "views/frame": np.asarray([v.index for v in views], dtype=np.int64),
        "views/pose": np.asarray([to_lidar @ sensor_to_global(tables, v.record) for v in views], dtype=np.float64).reshape(n, 4, 4),
        "views/image_size": np.tile(np.asarray(work, dtype=np.int32), (n, 1)),
        "views/intrinsics": np.asarray([camera.scale_intrinsics(v.intrinsic, v.native_size, work) for v in views]).reshape(n, 3, 3),
        "views/native_size": np.asarray([v.native_size for v in views], dtype=np.int32).reshape(n, 2),
        "views/native_intrinsics": np.asarray([v.intrinsic for v in views], dtype=np.float64).reshape(n, 3, 3),
    }
    if opts.image_codec == "raw":
        arrays["views/image"] = np.asarray([v.image for v in views], dtype=np.uint8).reshape(n, work[1], work[0], 3)
    else:
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(v.image) for v in views], out=offsets[1:])
        arrays["views/image_bytes"] = np.frombuffer(b"".join(v.image for v in views), dtype=np.uint8).copy()
        arrays["views/image_offsets"] = offsets
    attrs = {"camera_tokens": [v.record.token for v in views], "cameras_missing": missing}
    return arrays, attrs
