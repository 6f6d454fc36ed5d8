"""Every keyframe lidar point of every sample into every camera, by the devkit's
``NuScenesExplorer.map_pointcloud_to_image`` itself.

The explorer returns only the kept points (uv, depth), not which ones; the full projection it
computed is captured by wrapping the ``view_points`` it calls, and the kept indices are the
in-order subsequence of those columns that it returned (exact float equality of u, v and depth).

IN: ``{"dataroot", "version", "min_dist": 1.0, "arrays": "<out .npz>"}``.
OUT: ``{"pairs": [{"sample", "lidar_token", "channel", "camera_token", "kept", "points"}...],
"missing": [camera sample_data tokens whose image file is absent (the explorer cannot open them)]}``;
the .npz holds, per pair ``<sample>/<channel>``: ``.../index`` (n,) int64 kept point indices,
``.../uv`` (n, 2) float64 pixel coordinates, ``.../depth`` (n,) float32 camera-frame z in metres.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import nuscenes.nuscenes as nusc_module
from common import main
from nuscenes import NuScenes
from nuscenes.nuscenes import NuScenesExplorer

_captured: list[tuple[np.ndarray, np.ndarray]] = []
_view_points = nusc_module.view_points


def _capturing_view_points(points, view, normalize):
    """The devkit's ``view_points``, recording (camera-frame points (3, N), its result (3, N))."""
    out = _view_points(points, view, normalize)
    _captured.append((np.array(points, copy=True), out))
    return out


def kept_indices(full: np.ndarray, depths: np.ndarray, kept: np.ndarray, coloring: np.ndarray) -> np.ndarray:
    """Indices i (in order) with (full[0, i], full[1, i], depths[i]) == the kept columns, in order."""
    index = np.empty(kept.shape[1], np.int64)
    j = 0
    for i in np.flatnonzero(np.isin(full[0], kept[0])):  # candidates: exact u among the kept ones
        if j < kept.shape[1] and full[0, i] == kept[0, j] and full[1, i] == kept[1, j] and depths[i] == coloring[j]:
            index[j] = i
            j += 1
    if j != kept.shape[1]:
        raise AssertionError(f"matched only {j} of {kept.shape[1]} kept columns")
    return index


def run(request: dict) -> dict:
    nusc_module.view_points = _capturing_view_points
    with contextlib.redirect_stdout(io.StringIO()):
        nusc = NuScenes(version=request["version"], dataroot=request["dataroot"], verbose=False)
    explorer = NuScenesExplorer(nusc)
    arrays, pairs, missing = {}, [], []
    for sample in nusc.sample:
        lidar_token = sample["data"]["LIDAR_TOP"]
        for channel, camera_token in sorted(sample["data"].items()):
            record = nusc.get("sample_data", camera_token)
            if record["sensor_modality"] != "camera":
                continue
            if not os.path.exists(os.path.join(nusc.dataroot, record["filename"])):
                missing.append(camera_token)
                continue
            _captured.clear()
            kept, depth, _ = explorer.map_pointcloud_to_image(lidar_token, camera_token, min_dist=float(request.get("min_dist", 1.0)))
            cam_points, full = _captured[-1]
            index = kept_indices(full, cam_points[2], kept, np.asarray(depth))
            key = f"{sample['token']}/{channel}"
            arrays[f"{key}/index"] = index
            arrays[f"{key}/uv"] = kept[:2].T.astype(np.float64)
            arrays[f"{key}/depth"] = np.asarray(depth)
            pairs.append({"sample": sample["token"], "lidar_token": lidar_token, "channel": channel,
                          "camera_token": camera_token, "kept": int(index.size), "points": int(full.shape[1])})
    np.savez(request["arrays"], **arrays)
    return {"pairs": pairs, "missing": missing}


if __name__ == "__main__":
    main(run)
