"""Confusion matrices, IoU, and the per-split merge (pooled matrices, never averaged IoUs)."""

import json

import numpy as np
import pytest

from pipeline.report.merge import markdown, merge_reports
from pipeline.metrics import accuracy, confusion, iou, labelled_only, mean_iou
from pipeline.vocab import IGNORE


def test_confusion_counts_unlabelled_as_misses_and_skips_ignored_truth():
    gt = np.array([0, 0, 1, 1, IGNORE, 2], dtype=np.uint8)
    pred = np.array([0, 1, 1, IGNORE, 0, 2], dtype=np.uint8)
    m = confusion(gt, pred, 3)
    assert m.shape == (3, 4) and m.sum() == 5
    assert m[1, 3] == 1  # unlabelled prediction of a class-1 element
    np.testing.assert_allclose(iou(m), [1 / 2, 1 / 3, 1.0])
    np.testing.assert_allclose(iou(labelled_only(m)), [1 / 2, 1 / 2, 1.0])
    assert mean_iou(m) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert accuracy(m) == pytest.approx(3 / 5)


def test_absent_classes_are_left_out_of_the_mean():
    m = confusion(np.array([0, 0], np.uint8), np.array([0, 0], np.uint8), 3)
    assert np.isnan(iou(m)[1]) and mean_iou(m) == 1.0


def _shard(tmp_path, name, gt, pred):
    k = 2
    mat = confusion(np.array(gt, np.uint8), np.array(pred, np.uint8), k).tolist()
    zero = np.zeros((k, k + 1), int).tolist()
    data = {
        "shard": name, "split": "val", "benchmark": "scannet20", "class_names": ["a", "b"],
        "nesting_order": "part", "alt_nesting_order": "object", "ground_truth": {"pixels": True, "points": False},
        "backends": {}, "samples": [name],
        "coverage": {"pixels": 10, "pixels_in_mask": 5, "points": 4, "points_seen": 2, "points_labelled": 1, "pairs": 3},
        "confusion": {"pixels.clip": mat, "pixels.refined": mat, "pixels.refined_alt": mat, "points.clip": zero, "points.refined": zero},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_merge_pools_matrices(tmp_path):
    # shard 1: class a perfect on 1 pixel; shard 2: 9 pixels of class a all called b
    a = _shard(tmp_path, "val-000", [0], [0])
    b = _shard(tmp_path, "val-001", [0] * 9, [1] * 9)
    report = merge_reports([a, b], "val")
    clip = report["stages"]["pixels: CLIP"]
    assert clip["iou"][0] == pytest.approx(1 / 10)  # pooled: 1 TP of 10 a-pixels; averaging would give 0.5
    assert clip["iou"][1] == pytest.approx(0.0)
    assert report["coverage"]["pixels"] == 20 and report["coverage"]["pixels_in_mask_fraction"] == 0.5
    assert "miou" not in report["stages"]["points: CLIP"]  # no point ground truth
    text = markdown(report)
    assert "pixels: refined (part)" in text and "| a |" in text
