"""Load the generated nuScenes demo with the official devkit and report what it sees.

Run by ``tests/test_demo_nuscenes.py`` with ``.venv-devkit/bin/python`` (numpy<2), never by pytest.

IN: ``{"dataroot", "version", "arrays": "<out .npz>"}``.
OUT: ``{"tables": {name: count}, "scenes": [names], "mini_splits": {split: [names]},
"samples": [{"token", "channels": [...], "points", "labels", "label_max"}],
"projections": [{"sample", "channel", "kept"}], "missing_images": [camera sample_data tokens],
"lidarseg_runs": int, "rotation_norms": [float], "chains": {scene: walked keyframes}}``; the .npz
holds ``<sample>/<channel>/uv`` (kept, 2) float64: the devkit's ``map_pointcloud_to_image``
pixel coordinates (depth colouring), in the cloud's order.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
from common import main
from nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.splits import create_splits_scenes


def _samples(nusc: NuScenes, request: dict, arrays: dict) -> tuple[list, list, list, int]:
    samples, projections, missing, lidarseg_runs = [], [], [], 0
    for sample in nusc.sample:
        lidar = sample["data"]["LIDAR_TOP"]
        cloud = LidarPointCloud.from_file(nusc.get_sample_data_path(lidar))
        labels = np.fromfile(os.path.join(request["dataroot"], nusc.get("lidarseg", lidar)["filename"]), dtype=np.uint8)
        samples.append({"token": sample["token"], "channels": sorted(sample["data"]), "points": int(cloud.points.shape[1]),
                        "labels": int(labels.size), "label_max": int(labels.max())})
        for channel, token in sorted(sample["data"].items()):
            if channel == "LIDAR_TOP":
                continue
            if not os.path.exists(nusc.get_sample_data_path(token)):
                missing.append(token)
                continue
            points, _, _ = nusc.explorer.map_pointcloud_to_image(lidar, token)
            arrays[f"{sample['token']}/{channel}/uv"] = points[:2].T.astype(np.float64)
            projections.append({"sample": sample["token"], "channel": channel, "kept": int(points.shape[1])})
            if lidarseg_runs < 3:
                _, colours, _ = nusc.explorer.map_pointcloud_to_image(lidar, token, show_lidarseg=True)
                assert colours.shape[0] == points.shape[1]
                lidarseg_runs += 1
    return samples, projections, missing, lidarseg_runs


def _chains(nusc: NuScenes) -> dict[str, int]:
    out = {}
    for scene in nusc.scene:
        token, walked = scene["first_sample_token"], 0
        while token:
            walked += 1
            token = nusc.get("sample", token)["next"]
        out[scene["name"]] = walked
    return out


def run(request: dict) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        nusc = NuScenes(version=request["version"], dataroot=request["dataroot"], verbose=True)
    arrays: dict[str, np.ndarray] = {}
    samples, projections, missing, lidarseg_runs = _samples(nusc, request, arrays)
    np.savez(request["arrays"], **arrays)
    splits = create_splits_scenes()
    return {
        "tables": {name: len(getattr(nusc, name)) for name in nusc.table_names},
        "scenes": [s["name"] for s in nusc.scene],
        "mini_splits": {k: splits[k] for k in ("mini_train", "mini_val")},
        "samples": samples,
        "projections": projections,
        "missing_images": missing,
        "lidarseg_runs": lidarseg_runs,
        "rotation_norms": [float(np.linalg.norm(c["rotation"])) for c in nusc.calibrated_sensor],
        "chains": _chains(nusc),
        "categories": [[c["index"], c["name"]] for c in sorted(nusc.category, key=lambda c: c["index"])],
    }


if __name__ == "__main__":
    main(run)
