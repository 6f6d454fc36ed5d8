"""Confusion matrices, IoU, and the per-split merge (pooled matrices, never averaged IoUs)."""

import json

import numpy as np
import pytest

from pipeline.report.merge import markdown, merge_reports
from pipeline.metrics import accuracy, comparable, confusion, iou, labelled_only, markdown_table, mean_iou, present_in_truth, summary
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


def test_rows_of_one_table_average_the_same_classes_whatever_they_predict():
    # ground truth holds classes a, b; row "wild" also predicts c and d, which the truth lacks
    gt = np.array([0, 0, 1, 1], np.uint8)
    wild = confusion(gt, np.array([0, 2, 1, 3], np.uint8), 4)
    tame = confusion(gt, np.array([0, 0, 1, 0], np.uint8), 4)
    abstains = confusion(np.where(np.array([1, 0, 1, 1], bool), gt, IGNORE).astype(np.uint8), np.array([0, 0, 1, 1], np.uint8), 4)
    rows = comparable({"wild": wild, "tame": tame, "abstains": abstains}, list("abcd"))
    assert {tuple(r["class_set"]) for r in rows.values()} == {("a", "b")}
    assert rows["wild"]["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)  # c and d do not enter the mean
    assert rows["wild"]["miou_gt_or_pred"] == pytest.approx((1 / 2 + 1 / 2 + 0 + 0) / 4)  # the official evaluators' mean
    assert rows["tame"]["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2) == rows["tame"]["miou_gt_or_pred"]
    text = markdown_table(rows, list("abcd"), "points")
    assert "same 2 classes" in text and "absent: c, d" in text and "GT ∪ predicted" in text
    lines = {line.split(" | ")[0]: line for line in text.splitlines()}
    assert lines["| c"] == "| c | 0 | absent | absent | absent |"  # not 0.0
    assert lines["| a"].startswith("| a | 2 | 50.0 |")  # ground-truth count column
    assert "| wild | 50.0 | 25.0 |" in text
    mixed = {"wild": summary(wild, list("abcd")), "odd": summary(confusion(np.array([2], np.uint8), np.array([2], np.uint8), 4), list("abcd"))}
    with pytest.raises(ValueError, match="different class sets"):
        markdown_table(mixed, list("abcd"))


def test_a_class_of_the_set_missing_from_one_rows_truth_counts_zero():
    # the labelled-only row lost class b entirely (all its elements unlabelled): b scores 0, not skipped
    full = confusion(np.array([0, 1], np.uint8), np.array([0, IGNORE], np.uint8), 2)
    labelled = labelled_only(confusion(np.array([0, IGNORE], np.uint8), np.array([0, IGNORE], np.uint8), 2))
    assert mean_iou(labelled) == 1.0  # alone, over its own truth
    assert mean_iou(labelled, present_in_truth(full)) == 0.5


def test_report_stages_of_a_domain_share_the_class_set(tmp_path):
    # CLIP predicts class b, which the split's truth lacks; refined does not
    a = _shard(tmp_path, "val-000", [0, 0, 0, 0], [0, 1, 0, 1])
    data = json.loads(a.read_text())
    data["confusion"]["pixels.refined"] = confusion(np.zeros(4, np.uint8), np.zeros(4, np.uint8), 2).tolist()
    a.write_text(json.dumps(data))
    report = merge_reports([a], "val")
    clip, refined = report["stages"]["pixels: CLIP"], report["stages"]["pixels: refined (part)"]
    assert report["class_sets"] == {"pixels": ["a"]}
    assert clip["miou"] == pytest.approx(0.5) and clip["miou_gt_or_pred"] == pytest.approx(0.25) and refined["miou"] == 1.0
    text = markdown(report)
    assert "| b | 0 | absent | absent | absent |" in text and "same 1 class," in text


def test_report_says_when_its_backends_are_simulated(tmp_path):
    a = _shard(tmp_path, "val-000", [0], [0])
    data = json.loads(a.read_text())
    data["backends"] = {"clip": "simulated", "sam": "segment_anything"}
    a.write_text(json.dumps(data))
    assert "**Simulated backends**" in markdown(merge_reports([a], "val"))
    data["backends"] = {"clip": "open_clip", "sam": "segment_anything"}
    a.write_text(json.dumps(data))
    assert "Simulated" not in markdown(merge_reports([a], "val"))


def test_closing_message_reports_this_runs_evaluations_with_the_plumbing_note(tmp_path):
    import os

    from pipeline.report.closing import closing_message

    folder = tmp_path / "evaluate" / "stage1"
    folder.mkdir(parents=True)
    res = {"3d": {"miou": 0.106, "classes_evaluated": 11}, "pseudo3d_all": {"miou": 0.255}, "2d": {"miou": 0.095, "classes_evaluated": 11}}
    (folder / "metrics.json").write_text(json.dumps({"splits": ["val"], "results": res, "note": "**Plumbing run**: stage 1 trained 60 steps"}))
    text = closing_message(tmp_path, since=0.0)
    assert "3D network 10.6 mIoU vs pseudo-labels 25.5 (all points; 11 classes present in ground truth)" in text
    assert "2D network 9.5 mIoU (all pixels" in text and "Plumbing run: stage 1 trained 60 steps" in text
    assert f"{folder}/metrics.md" in text and "stage1 (plumbing run, see below)" in text
    os.utime(folder / "metrics.json", (1000.0, 1000.0))  # written before this run started: not this run's
    assert closing_message(tmp_path, since=2000.0) == ""
