"""The devkit's ``ConfusionMatrix`` on given arrays (lidarseg scoring without a dataset).

IN: ``{"gt": "<.npy>", "pred": "<.npy>", "num_classes": 17, "ignore_idx": 0}``; ``gt`` the coarse
benchmark ids 0..16 (0 = ignore) and ``pred`` 1..16, both (N,) integer arrays; each is one point
cloud when a list of paths is given (the matrix is summed as ``LidarSegEval`` does).
OUT: ``{"iou": [17 floats or null], "miou": float, "matrix": [[...]]}``.
"""

from __future__ import annotations

import numpy as np
from common import finite_or_none, main
from nuscenes.eval.lidarseg.utils import ConfusionMatrix


def run(request: dict) -> dict:
    gts = request["gt"] if isinstance(request["gt"], list) else [request["gt"]]
    preds = request["pred"] if isinstance(request["pred"], list) else [request["pred"]]
    cm = ConfusionMatrix(int(request.get("num_classes", 17)), int(request.get("ignore_idx", 0)))
    for gt, pred in zip(gts, preds):
        cm.update(np.load(gt).astype(np.int64), np.load(pred).astype(np.int64))
    return {
        "iou": [finite_or_none(v) for v in cm.get_per_class_iou()],
        "miou": finite_or_none(cm.get_mean_iou()),
        "matrix": cm.global_cm.tolist(),
    }


if __name__ == "__main__":
    main(run)
