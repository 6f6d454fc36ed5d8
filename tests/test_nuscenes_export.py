"""nuScenes lidarseg export and the devkit's scoring semantics in our evaluation (no devkit needed:
tests/test_nuscenes_devkit.py compares with the devkit itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.metrics import confusion, iou, mean_iou, mean_iou_gt_or_pred
from pipeline.vocab import IGNORE
from tests.nuscenes_fixture import FINE_CLASSES

FINE_NAMES = FINE_CLASSES  # the lidarseg category table's fine classes, index = position

FINE_TO_BENCHMARK = (0, 0, 7, 7, 7, 0, 7, 0, 0, 1, 0, 0, 8, 0, 2, 3, 3, 4, 5, 0, 0, 6, 9, 10, 11, 12, 13, 14, 15, 0, 16, 0)
"""Fine index → benchmark id 0..16 (0 = ignore), as the devkit's ``LidarsegClassMapper`` maps by name."""


def nuscenes16():
    from pipeline.vocab import benchmark

    try:
        return benchmark("nuscenes16")
    except KeyError:
        pytest.skip("vocabulary nuscenes16 not in pipeline.vocab yet")


def random_checkpoint(path: Path, bench_name: str, features=("intensity",), seed=0) -> Path:
    """A checkpoint of untrained tiny networks for ``bench_name`` (what evaluate reads), without training."""
    import dataclasses

    import torch

    from pipeline.config import validate
    from pipeline.vocab import benchmark
    from tests.test_train_engine import TINY
    from train.config import train_config
    from train.engine.checkpoint import save_checkpoint
    from train.networks import build_2d, build_3d

    train = {**TINY, "net3d": {**TINY["net3d"], "input_features": list(features)}}
    cfg = train_config(validate({"vocabulary": {"benchmark": bench_name}, "train": train}))
    bench = benchmark(bench_name)
    torch.manual_seed(seed)
    net2d, net3d = build_2d(cfg.net2d, bench.n_classes, 8), build_3d(cfg.net3d, bench.n_classes, 8)
    meta = {"stage": "stage1", "benchmark": bench.name, "classes": list(bench.class_names), "latent_dim": 8,
            "net2d": dataclasses.asdict(cfg.net2d), "net3d": dataclasses.asdict(cfg.net3d), "transductive": False}
    return save_checkpoint(path, {"stage": "stage1", "step": 0, "model2d": net2d.state_dict(), "model3d": net3d.state_dict(),
                                  "meta": json.dumps(meta)})


def lidar_store(path: Path, split: str, samples: dict[str, int], seed: int, sweeps: dict[str, int] | None = None) -> Path:
    """A nuScenes-like prepared store: {sample token: keyframe points}, one tiny camera each, fine labels
    0..31, ``sweeps`` extra points appended after the keyframe's, labelled 0 (attribute ``sweep_points``,
    as the adapter writes them)."""
    from tests.factory import prepared_arrays, write_store

    rng = np.random.default_rng(seed)
    items = {}
    for sample, n in samples.items():
        extra = (sweeps or {}).get(sample, 0)
        xyz = rng.uniform(-20, 20, (n + extra, 3)).astype(np.float32)
        label = np.concatenate([rng.integers(0, 32, n), np.zeros(extra, np.int64)]).astype(np.uint16)
        arrays, attrs = prepared_arrays(np.zeros((1, 8, 16, 3), np.uint8), points__xyz=xyz, points__label=label,
                                        points__intensity=rng.uniform(0, 100, n + extra).astype(np.float32))
        attrs = {**attrs, "lidar_token": f"lidar{sample}", "scene": "scene-0103", "timestamp": 0}
        if extra:
            attrs.update(sweeps=1, sweep_points=extra)
        items[sample] = (arrays, attrs)
    root = {"kind": "nuscenes", "split": split, "version": "v1.0-mini", "label_spaces": {"points": "nuscenes-lidarseg"},
            "lidarseg_categories": [[i, name] for i, name in enumerate(FINE_NAMES)]}
    return write_store(path, "prepared", items, attrs=root)


def test_devkit_split_names():
    from train.export import devkit_split

    assert [devkit_split(s) for s in ("train", "val", "test", "minival", "minitrain", "mini_val", "mini-train")] == [
        "train", "val", "test", "mini_val", "mini_train", "mini_val", "mini_train"]
    assert devkit_split("holdout") == "holdout"  # a split file's own name is kept


def test_lidarseg_file_and_submission(tmp_path):
    from train.export import (
        LIDARSEG_META,
        write_lidarseg_labels,
        write_lidarseg_submission,
    )

    bench = nuscenes16()
    assert bench.raw_ids == tuple(range(1, 17))
    classes = np.array([0, 15, 3, 7, 7], np.uint8)
    path = write_lidarseg_labels(tmp_path, "mini_val", "tok", classes, bench)
    assert path == tmp_path / "lidarseg" / "mini_val" / "tok_lidarseg.bin"
    assert np.fromfile(path, np.uint8).tolist() == [1, 16, 4, 8, 8]  # class index + 1, one byte per point
    assert sorted(p.name for p in path.parent.iterdir()) == ["tok_lidarseg.bin"]  # no temporaries left
    with pytest.raises(ValueError, match="outside 0..15"):
        write_lidarseg_labels(tmp_path, "mini_val", "bad", np.array([1, IGNORE], np.uint8), bench)
    assert not (path.parent / "bad_lidarseg.bin").exists()
    sub = json.loads(write_lidarseg_submission(tmp_path, "mini_val").read_text())
    assert sub == {"meta": LIDARSEG_META} and set(sub["meta"]) == {"use_camera", "use_lidar", "use_radar", "use_map", "use_external"}
    assert all(type(v) is bool for v in sub["meta"].values()) and sub["meta"]["use_external"] and sub["meta"]["use_camera"]


def test_official_iou_equals_ours():
    """The devkit's semantics (ignore class 0 zeroed, float32 union, nanmean over 17 with class 0 NaN)
    give our IoUs: same matrix, same absent classes skipped."""
    from train.export import lidarseg_official_iou, lidarseg_official_miou

    rng = np.random.default_rng(3)
    gt = rng.choice([0, 3, 5, 10, IGNORE], 5000).astype(np.uint8)
    pred = rng.choice([0, 3, 5, 12], 5000).astype(np.uint8)
    matrix = confusion(gt, pred, 16)
    ours, official = iou(matrix), lidarseg_official_iou(matrix)
    assert np.array_equal(np.isnan(ours), np.isnan(official)) and np.isnan(ours).sum() == 11  # all but 0 3 5 10 12 absent
    assert np.allclose(ours[~np.isnan(ours)], official[~np.isnan(official)], rtol=0, atol=1e-7)
    assert lidarseg_official_miou(matrix) == pytest.approx(mean_iou_gt_or_pred(matrix), abs=1e-7)
    assert official[12] == 0.0  # predicted, never true: IoU 0, averaged (as the devkit)
    assert mean_iou(matrix) == pytest.approx(np.mean(ours[[0, 3, 5, 10]]))  # ours: the classes in ground truth only
    assert np.isnan(lidarseg_official_miou(np.zeros((16, 17), np.int64)))
    big = np.zeros((16, 17), np.int64)  # counts past 2**24: the devkit's float32 union rounds
    big[0, 0], big[0, 1] = 2**25 + 1, 2
    assert lidarseg_official_iou(big)[0] == (2**25 + 1) / float(np.float32(2**25 + 3)) != (2**25 + 1) / (2**25 + 3)


@pytest.fixture(scope="module")
def lidar_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("nus_eval")
    nuscenes16()
    checkpoint = random_checkpoint(root / "final.pt", "nuscenes16")
    stores = [lidar_store(root / "prepared" / "minival-000.zarr", "minival", {"s0": 300, "s1": 250}, seed=1),
              lidar_store(root / "prepared" / "val-000.zarr", "val", {"s2": 200}, seed=2, sweeps={"s2": 120})]
    return root, checkpoint, stores


def test_evaluate_exports_lidarseg_of_a_random_network(lidar_run, tmp_path):
    from train.evaluate import evaluate
    from train.export import LIDARSEG_META

    _, checkpoint, stores = lidar_run
    metrics = evaluate(checkpoint, {"prepared": [str(p) for p in stores]}, tmp_path, device="cpu", threads=1)
    sizes = {"mini_val": {"lidars0": 300, "lidars1": 250}, "val": {"lidars2": 200}}  # s2: keyframe points only, not its sweeps
    for split, files in sizes.items():
        found = {p.name.removesuffix("_lidarseg.bin"): np.fromfile(p, np.uint8) for p in (tmp_path / "lidarseg" / split).iterdir()}
        assert {k: v.size for k, v in found.items()} == files
        assert all(((v >= 1) & (v <= 16)).all() for v in found.values())
        assert json.loads((tmp_path / split / "submission.json").read_text()) == {"meta": LIDARSEG_META}
    assert not (tmp_path / "benchmark").exists() and (tmp_path / "ply" / "s2.ply").is_file()
    res = metrics["results"]["3d"]
    assert metrics["benchmark"] == "nuscenes16" and res["elements"] == 750 - _ignored(stores)
    assert res["miou_official"] == pytest.approx(res["miou"], abs=1e-6)
    assert set(res["miou_official_by_split"]) == {"mini_val", "val"}


def _ignored(stores) -> int:
    """Keyframe points whose fine class maps to ignore (0) in the synthetic stores."""
    from pipeline.stores import StoreReader

    count = 0
    for path in stores:
        reader = StoreReader(path, "prepared")
        for sample in reader.samples:
            label = reader.read(sample, "points/label")
            label = label[: label.size - reader.sample_attrs(sample).get("sweep_points", 0)]
            count += int((np.asarray(FINE_TO_BENCHMARK)[label] == 0).sum())
    return count


def test_evaluate_scores_keyframe_points_with_official_semantics(lidar_run, tmp_path, monkeypatch):
    """Known predictions: the export holds them + 1 for keyframe points, the 3D row and the official
    mIoU are those of (truth, prediction) over keyframe points, and export_lidarseg=False writes none."""
    import train.evaluate as ev
    from pipeline.stores import StoreReader
    from train.export import lidarseg_official_miou

    _, checkpoint, stores = lidar_run
    rng = np.random.default_rng(5)
    given = {}

    def fake(net3d, xyz, rgb, features, voxel, device, intensity=None):
        assert intensity is not None and intensity.shape == (xyz.shape[0],)  # the checkpoint's input feature
        given[len(given)] = pred = rng.integers(0, 16, xyz.shape[0]).astype(np.uint8)
        return pred

    monkeypatch.setattr(ev, "predict_points", fake)
    metrics = ev.evaluate(checkpoint, {"prepared": [str(stores[1])]}, tmp_path / "a", device="cpu", threads=1)
    reader = StoreReader(stores[1], "prepared")
    gt = np.asarray(FINE_TO_BENCHMARK)[reader.read("s2", "points/label")[:200]]
    pred = given[0][:200]
    written = np.fromfile(tmp_path / "a" / "lidarseg" / "val" / "lidars2_lidarseg.bin", np.uint8)
    assert np.array_equal(written, pred + 1)
    matrix = confusion(np.where(gt == 0, IGNORE, gt - 1).astype(np.uint8), pred, 16)
    res = metrics["results"]["3d"]
    assert res["miou"] == pytest.approx(mean_iou(matrix), abs=1e-12)
    assert res["miou_official"] == lidarseg_official_miou(matrix) == res["miou_official_by_split"]["val"]
    off = ev.evaluate(checkpoint, {"prepared": [str(stores[1])]}, tmp_path / "b", device="cpu", threads=1, export_lidarseg=False)
    assert not (tmp_path / "b" / "lidarseg").exists() and not (tmp_path / "b" / "val").exists()
    assert off["results"]["3d"]["miou_official"] is not None


def test_scannet_evaluation_writes_no_lidarseg(tmp_path):
    """scannet20 keeps its ScanNet benchmark files and gets neither a submission nor an official mIoU."""
    from tests.train_synthetic import make_stores
    from train.evaluate import evaluate

    data = make_stores(tmp_path / "stores", samples_per_shard=(1,), n_points=100, n_views=1)
    checkpoint = random_checkpoint(tmp_path / "final.pt", "scannet20", features=("rgb",))
    metrics = evaluate(checkpoint, {"prepared": data["stores"]["prepared"]}, tmp_path / "out", device="cpu", threads=1)
    assert (tmp_path / "out" / "benchmark" / "scene0000_00.txt").is_file() and not (tmp_path / "out" / "lidarseg").exists()
    assert "miou_official" not in metrics["results"]["3d"]
