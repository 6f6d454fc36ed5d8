"""Validate a lidarseg submission with the devkit and score it with ``LidarSegEval``.

IN: ``{"dataroot", "version", "results": [folders], "eval_set"}`` (the dataset is loaded once).
OUT: ``{"answers": [{"valid": bool, "error": str | null, "samples": int, "points": int,
"miou": float | null, "iou_per_class": {name: float | null}}, ...]}``, one per folder (scored
only when valid; ``points`` = the keyframe points of the eval set's samples, as the devkit reads them).
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
from common import finite_or_none, main
from nuscenes import NuScenes
from nuscenes.eval.lidarseg.evaluate import LidarSegEval
from nuscenes.eval.lidarseg.utils import get_samples_in_eval_set
from nuscenes.eval.lidarseg.validate_submission import validate_submission


def _points(nusc: NuScenes, eval_set: str) -> tuple[int, int]:
    tokens = get_samples_in_eval_set(nusc, eval_set)
    total = 0
    for token in tokens:
        lidar = nusc.get("sample_data", nusc.get("sample", token)["data"]["LIDAR_TOP"])
        total += os.path.getsize(os.path.join(nusc.dataroot, lidar["filename"])) // (5 * 4)
    return len(tokens), total


def check(nusc: NuScenes, results: str, eval_set: str) -> dict:
    """One results folder: validated, then scored."""
    samples, points = _points(nusc, eval_set)
    out = {"valid": False, "error": None, "samples": samples, "points": points, "miou": None, "iou_per_class": {}}
    try:
        validate_submission(nusc, results, eval_set, verbose=False)
    except AssertionError as err:
        out["error"] = str(err) or "AssertionError"
        return out
    out["valid"] = True
    result = LidarSegEval(nusc, results, eval_set, verbose=False).evaluate()
    out["miou"] = finite_or_none(result["miou"])
    out["iou_per_class"] = {name: finite_or_none(np.float64(v)) for name, v in result["iou_per_class"].items()}
    return out


def run(request: dict) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        nusc = NuScenes(version=request["version"], dataroot=request["dataroot"], verbose=False)
    return {"answers": [check(nusc, folder, request["eval_set"]) for folder in request["results"]]}


if __name__ == "__main__":
    main(run)
