"""bench/stage2_targets.py on hand-made stores whose every score is computed by hand below.

One sample per shard: one view of 4 x 2 label pixels (ground truth at 8 x 4 working resolution,
constant on 2 x 2 blocks, so the nearest resize is unambiguous) and 6 keyframe points plus one
sweep point (``sweep_points: 1``) that must not be scored. Classes 0, 1, 2 (wall, floor,
cabinet); ``I`` = 255 (ignore / no label).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.stores import StoreError, store_path
from pipeline.vocab import benchmark
from tests.factory import prepared_arrays, write_store



def _load_bench():
    """bench/stage2_targets.py as a module (bench/ is not a package; sys.path left alone)."""
    path = Path(__file__).resolve().parents[1] / "bench" / "stage2_targets.py"
    spec = importlib.util.spec_from_file_location("bench_stage2_targets", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


st = _load_bench()

BENCH = benchmark("scannet20")
I = 255
# pixels, flattened row-major over the 2 x 4 label map
GT2D = [0, 0, 0, 1, 1, 1, 2, I]
PSEUDO2D = [0, 0, 1, 1, 1, I, 2, I]  # pixel 7: no label and no ground truth
SELF2D = [0, 1, 0, 1, 2, 1, 2, 2]
RAW2D = [0, 1, 1, 1, 2, 1, 2, 2]
CROSS2D = [I, I, 0, 1, 1, 1, I, I]
# points: 6 keyframe points, then one sweep point (ground truth 1, every source 2: scored, it would change every row)
GT3D = [0, 0, 1, 1, 2, I, 1]
PSEUDO3D = [0, I, 1, 1, 2, 0, 2]
SELF3D = [0, 0, 1, 2, 2, 1, 2]  # point 5: disagrees with the pseudo-label where there is no ground truth
RAW3D = [0, 0, 2, 2, 2, 0, 2]
CROSS3D = [0, 1, 1, 1, I, I, 2]


def _u8(values) -> np.ndarray:
    return np.asarray(values, np.uint8)


def _view(values) -> np.ndarray:
    """(1, 2, 4) uint8 label map of 8 flat label pixels."""
    return _u8(values).reshape(1, 2, 4)


def _write_shard(results: Path, preds: Path, shard: str, sample: str, self2d=SELF2D, raw=True) -> None:
    """The prepared/refined/points stores of one shard under ``results`` and its predictions store under ``preds``."""
    vocab = {"benchmark": "scannet20", "class_names": list(BENCH.class_names)}
    split = shard.split("-")[0]
    gt_label_map = np.kron(_view(GT2D)[0], np.ones((2, 2), np.uint8))[None]  # (1, 4, 8): 2 x 2 blocks
    arrays, attrs = prepared_arrays(np.zeros((1, 4, 8, 3), np.uint8),
                                    views__label=BENCH.to_raw(gt_label_map).astype(np.uint16),
                                    points__label=BENCH.to_raw(_u8(GT3D)).astype(np.uint16))
    write_store(store_path(str(results), "prepared", shard), "prepared", {sample: (arrays, {**attrs, "split": split, "sweep_points": 1})},
                {"label_spaces": {"points": "nyu40", "views": "nyu40"}, "split": split, "shard": shard})
    write_store(store_path(str(results), "refined", shard), "refined", {sample: {"views/label": _view(PSEUDO2D)}}, {"vocabulary": vocab})
    n = len(GT3D)
    points = {"points/label": _u8(PSEUDO3D), "points/label_clip": _u8(PSEUDO3D), "points/votes": np.ones(n, np.uint16),
              "points/agreement": np.ones(n, np.float16), "points/seen": np.ones(n, bool),
              "views/pair_offsets": np.zeros(2, np.int64), "pairs/point": np.zeros(0, np.int32), "pairs/pixel": np.zeros(0, np.int32)}
    write_store(store_path(str(results), "points", shard), "points", {sample: points}, {"vocabulary": vocab})
    pred = {"views/label": _view(self2d), "views/label_3d": _view(CROSS2D),
            "points/label": _u8(SELF3D), "points/label_2d": _u8(CROSS3D)}
    if raw:
        pred.update({"views/label_raw": _view(RAW2D), "points/label_raw": _u8(RAW3D)})
    write_store(store_path(str(preds), "predictions", shard), "predictions", {sample: pred}, {"vocabulary": vocab})


@pytest.fixture()
def stores(tmp_path: Path) -> tuple[Path, Path]:
    results, preds = tmp_path / "results", tmp_path / "run" / "seed0"
    _write_shard(results, preds, "train-000", "scene0000_00")
    _write_shard(results, preds, "train-001", "scene0001_00")
    # a val shard whose self predictions are all wrong: --splits train must leave it out
    _write_shard(results, preds, "val-000", "scene0002_00", self2d=[3] * 8)
    return results, preds


# (mIoU, mIoU labelled, accuracy, accuracy labelled, coverage, agreement, disagree n per shard,
#  source right, pseudo right, no-pseudo n per shard, no-pseudo right): worked out in the comments
EXPECTED = {
    # pseudo 2D: right on pixels 0, 1, 3, 4, 6 of the 7 with ground truth, pixel 5 unlabelled. IoU wall 2/3
    # (TP 2, GT 3, predicted 2), floor 2/4 (TP 2, GT 3, predicted 3), cabinet 1; labelled only (pixel 5
    # dropped): floor 2/3.
    "2d_pseudo": ((2 / 3 + 1 / 2 + 1) / 3, (2 / 3 + 2 / 3 + 1) / 3, 5 / 7, 5 / 6, 6 / 8, None, None, None, None, None, None),
    # self 2D: wrong on pixels 1 and 4. IoU wall 2/3, floor 2/4, cabinet 1/2 (predicted on 4 and 6).
    # Both label pixels 0-4, 6: agree on 0, 3, 6 → 3/6. Disagree with ground truth: 1, 2, 4 →
    # self right on 2 (1/3), pseudo on 1 and 4 (2/3). Pixel 5: pseudo none, self right (pixel 7: no ground truth, not counted).
    "2d_self": (5 / 9, 5 / 9, 5 / 7, 5 / 7, 1.0, 3 / 6, 3, 1 / 3, 2 / 3, 1, 1.0),
    # raw 2D: self with pixel 2 = floor. IoU wall 1/3, floor 2/5, cabinet 1/2. Agree on 0, 2, 3, 6 → 4/6;
    # disagree 1, 4: raw right on neither, pseudo on both.
    "2d_self_raw": ((1 / 3 + 2 / 5 + 1 / 2) / 3, (1 / 3 + 2 / 5 + 1 / 2) / 3, 4 / 7, 4 / 7, 1.0, 4 / 6, 2, 0.0, 1.0, 1, 1.0),
    # cross 2D: labels 2-5 only, all right. IoU wall 1/3, floor 1, cabinet 0; labelled only: wall 1,
    # floor 1, cabinet absent from the labelled pixels but in the class set → 0. Both label 2, 3, 4:
    # agree on 3, 4; disagree on 2, where cross is right. Pixel 5: no pseudo, cross right.
    "2d_cross": (4 / 9, 2 / 3, 4 / 7, 1.0, 4 / 8, 2 / 3, 1, 1.0, 0.0, 1, 1.0),
    # pseudo 3D: right on points 0, 2, 3, 4 of 5 with ground truth, point 1 unlabelled. IoU wall 1/2, floor 1,
    # cabinet 1; labelled only all 1.
    "3d_pseudo": (5 / 6, 1.0, 4 / 5, 1.0, 5 / 6, None, None, None, None, None, None),
    # self 3D: wrong on point 3. IoU wall 1, floor 1/2, cabinet 1/2. Both label 0, 2, 3, 4, 5: agree on 0, 2, 4 → 3/5.
    # Disagree with ground truth: 3 only (5 has none): pseudo right. Point 1: no pseudo, self right.
    "3d_self": (2 / 3, 2 / 3, 4 / 5, 4 / 5, 1.0, 3 / 5, 1, 0.0, 1.0, 1, 1.0),
    # raw 3D: wrong on 2, 3. IoU wall 1, floor 0, cabinet 1/3. Agree on 0, 4, 5 → 3/5; disagree 2, 3: pseudo right on both.
    "3d_self_raw": (4 / 9, 4 / 9, 3 / 5, 3 / 5, 1.0, 3 / 5, 2, 0.0, 1.0, 1, 1.0),
    # cross 3D: labels 0-3, wrong on 1. IoU wall 1/2, floor 2/3, cabinet 0 (same labelled only). Both label
    # 0, 2, 3: all agree, no disagreement (NaN). Point 1: no pseudo, cross wrong.
    "3d_cross": (7 / 18, 7 / 18, 3 / 5, 3 / 4, 4 / 6, 1.0, 0, None, None, 1, 0.0),
}
COLUMNS = ("miou", "miou_labelled", "accuracy", "accuracy_labelled", "coverage", "agreement", "disagree",
           "disagree_source_right", "disagree_pseudo_right", "pseudo_unlabelled", "pseudo_unlabelled_right")
COUNTS = {"disagree", "pseudo_unlabelled"}


def test_every_target_scored_as_by_hand(stores: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    results, preds = stores
    out = tmp_path / "out.json"
    assert st.main(["--results", str(results), "--predictions", str(preds), "--json", str(out), "--per-class"]) == 0
    data = json.loads(out.read_text())
    rows = {r["key"]: r for r in data["rows"]}
    assert list(rows) == list(EXPECTED)
    assert data["meta"]["samples"] == 2 and data["meta"]["shards"] == 2 and data["meta"]["benchmark"] == "scannet20"
    for key, expected in EXPECTED.items():
        row = rows[key]
        assert row["class_set"] == ["wall", "floor", "cabinet"], key
        assert row["elements"] == (16 if key.startswith("2d") else 12), key  # sweep point left out
        assert row["elements_with_gt"] == (14 if key.startswith("2d") else 10), key
        for column, value in zip(COLUMNS, expected):
            got = row[column]
            if value is None:
                assert got is None, (key, column, got)
            elif column in COUNTS:
                assert got == 2 * value, (key, column, got)  # two identical shards
            else:
                assert got == pytest.approx(value, abs=1e-12), (key, column, got)
    text = capsys.readouterr().out
    assert "| 2D | self | `predictions:views/label` | 55.6 | 55.6 | 71.4 | 71.4 | 100.0 | 50.0 | 6 | 33.3 | 66.7 | 2 | 100.0 |" in text
    assert "| 3D | cross | `predictions:points/label_2d` | 38.9 | 38.9 | 60.0 | 75.0 | 66.7 | 100.0 | 0 | – | – | 2 | 0.0 |" in text
    assert "### 3D per class" in text


def test_val_split_and_missing_optional_rows(tmp_path: Path) -> None:
    results, preds = tmp_path / "results", tmp_path / "preds"
    _write_shard(results, preds, "val-000", "scene0002_00", self2d=[3] * 8, raw=False)
    out = st.run(results, preds, ["val"])
    rows = {r["key"]: r for r in out["rows"]}
    assert "2d_self_raw" not in rows and "3d_self_raw" not in rows
    assert any("absent" in note for note in out["meta"]["notes"])
    assert rows["2d_self"]["accuracy"] == 0.0 and rows["2d_self"]["agreement"] == 0.0
    assert rows["2d_self"]["disagree_pseudo_right"] == pytest.approx(5 / 6)  # pseudo right on 0, 1, 3, 4, 6 of 0-4, 6


def test_missing_predictions_shard_is_named(stores: tuple[Path, Path]) -> None:
    results, preds = stores
    shutil.rmtree(preds / "predictions" / "train-001.zarr")
    with pytest.raises(StoreError, match="train-001"):
        st.run(results, preds, ["train"])
