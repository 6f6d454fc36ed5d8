"""Evaluation on a known confusion, export formats, predict's store, and import hygiene."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.stores import StoreReader
from pipeline.vocab import IGNORE, benchmark
from pipeline.metrics import confusion, iou, summary
from tests.train_synthetic import CLASSES

BENCH = benchmark("scannet20")


def test_iou_from_a_known_confusion():
    gt = np.array([0, 0, 0, 1, 1, 2, IGNORE, 2])
    pred = np.array([0, 0, 1, 1, IGNORE, 2, 1, 0])
    conf = confusion(gt, pred, 3)
    assert conf.tolist() == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]]
    per_class = iou(conf)
    # class 0: TP 2, FN 1, FP 1 -> 2/4; class 1: TP 1, FN 1 (ignore = miss), FP 1 -> 1/3; class 2: TP 1, FN 1 -> 1/2
    assert per_class.tolist() == pytest.approx([0.5, 1 / 3, 0.5])
    res = summary(conf, ["a", "b", "c"])
    assert res["miou"] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3) and res["accuracy"] == pytest.approx(4 / 7)
    absent = summary(confusion(np.array([0]), np.array([0]), 3), ["a", "b", "c"])
    assert absent["iou"]["b"] is None and absent["miou"] == 1.0  # classes absent from both are not averaged


def test_benchmark_and_ply_exports(tmp_path):
    from plyfile import PlyData

    from pipeline.palette import SCANNET20_COLOURS
    from train.export import ERROR_COLOURS, write_benchmark_labels, write_prediction_ply, write_truth_and_error_plys

    classes = np.array([0, 1, 19, 12], np.uint8)
    path = write_benchmark_labels(tmp_path / "scene0000_00.txt", classes, BENCH)
    assert path.read_text() == "1\n2\n39\n14\n"  # nyu40 ids, one per vertex per line
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    faces = np.array([[0, 1, 2], [1, 2, 3]], np.int32)
    ply = PlyData.read(str(write_prediction_ply(tmp_path / "s.ply", xyz, classes, BENCH, faces)))
    v = ply["vertex"]
    assert np.allclose(np.stack([v["x"], v["y"], v["z"]], 1), xyz)
    assert [v["red"][2], v["green"][2], v["blue"][2]] == list(SCANNET20_COLOURS[19])
    assert v["label"].tolist() == classes.tolist()  # the class index, readable without the palette
    assert f"class 19 {BENCH.class_names[19]}" in ply.comments
    assert np.array(ply["face"]["vertex_indices"].tolist()).tolist() == faces.tolist()
    truth = np.array([0, 2, 19, IGNORE], np.uint8)
    gt_path, err_path = write_truth_and_error_plys(tmp_path / "s", xyz, classes, truth, BENCH, faces)
    assert (gt_path.name, err_path.name) == ("s.gt.ply", "s.error.ply")
    gt = PlyData.read(str(gt_path))["vertex"]
    assert gt["label"].tolist() == truth.tolist()
    assert [gt["red"][1], gt["green"][1], gt["blue"][1]] == list(SCANNET20_COLOURS[2])
    err = PlyData.read(str(err_path))["vertex"]
    rgb = np.stack([err["red"], err["green"], err["blue"]], 1).tolist()
    assert rgb == [list(ERROR_COLOURS[k]) for k in ("correct", "wrong", "correct", "unlabelled")]
    assert err["label"].tolist() == classes.tolist() and err["gt"].tolist() == truth.tolist()
    only_error = write_truth_and_error_plys(tmp_path / "t", xyz, classes, truth, BENCH, variants=("error",))
    assert [p.name for p in only_error] == ["t.error.ply"] and not (tmp_path / "t.gt.ply").exists()


def test_one_palette_per_dataset():
    from pipeline.palette import NUSCENES_FINE_COLOURS, class_palette
    from pipeline.vocab import benchmark

    nus = class_palette(benchmark("nuscenes16"))
    names = benchmark("nuscenes16").class_names
    assert nus[names.index("car")].tolist() == list(NUSCENES_FINE_COLOURS["vehicle.car"])
    assert nus[names.index("pedestrian")].tolist() == list(NUSCENES_FINE_COLOURS["human.pedestrian.adult"])
    assert (class_palette(benchmark("nuimages11")) == nus).all()
    for name in ("scannet20", "nuscenes16"):
        bench = benchmark(name)
        pal = class_palette(bench)
        assert len({tuple(c) for c in pal[: bench.n_classes]}) == bench.n_classes  # distinct colours
        assert pal[IGNORE].tolist() == [0, 0, 0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pipeline.config import validate
    from tests.test_train_engine import TINY
    from train.engine.trainer import run_stage
    from tests.train_synthetic import make_stores

    root = tmp_path_factory.mktemp("eval")
    data = make_stores(root / "stores", samples_per_shard=(2,), n_points=200, n_views=2)
    final = run_stage(validate({"train": {**TINY, "stage1": {"steps": 1}}}), "stage1", data["stores"], root / "run", progress=False)
    return data, final, root


def test_evaluate_perfect_predictions_score_100(trained, monkeypatch, tmp_path):
    import train.evaluate as ev

    data, final, _ = trained
    truth = data["truth"]
    order = iter(sorted(truth))
    current = {}

    def points_truth(net3d, xyz, *args, **kwargs):
        current["sid"] = next(order)
        return truth[current["sid"]]["classes"]

    def views_truth(net2d, images, input_size, output_size=None, device=None, batch=4):
        matches = [v for v in range(len(truth[current["sid"]]["views"]["image"])) if np.array_equal(truth[current["sid"]]["views"]["image"][v], images[0])]
        return truth[current["sid"]]["gt2d"][matches[:1]]

    monkeypatch.setattr(ev, "predict_points", points_truth)
    monkeypatch.setattr(ev, "predict_views", views_truth)
    stores = data["stores"]
    metrics = ev.evaluate(final, {r: stores[r] for r in ("prepared", "refined", "points", "sam")}, tmp_path / "out")
    assert metrics["results"]["3d"]["miou"] == 1.0 and metrics["results"]["2d"]["miou"] == 1.0
    assert metrics["results"]["pseudo3d"]["miou"] < 1.0  # the noisy pseudo-labels are the reference row
    assert metrics["samples"] == 2 and metrics["views_with_gt"] == 4 and metrics["tta"] is False
    conf = json.loads((tmp_path / "out" / "confusion_3d.json").read_text())
    assert np.array(conf["matrix"]).sum() == 400  # one matrix over the whole split: every point of both samples
    lines = (tmp_path / "out" / "benchmark" / "scene0000_00.txt").read_text().splitlines()
    assert len(lines) == 200 and set(lines) <= {str(i) for i in BENCH.raw_ids}
    assert (tmp_path / "out" / "ply" / "scene0001_00.ply").is_file() and "| 3D network | 100.0 |" in (tmp_path / "out" / "metrics.md").read_text()
    # one training step: labelled a plumbing run, pointing to the run that learns
    assert metrics["plumbing_run"] and "stage 1 trained 1 steps" in metrics["note"]
    assert "**Plumbing run**" in (tmp_path / "out" / "metrics.md").read_text() and "demo_learning_fast.yaml" in metrics["note"]


def test_plumbing_note_depends_on_stage1_steps_only():
    from train.evaluate import plumbing_note

    assert "stage 1 trained 60 steps (then stage 2 30), fewer than" in plumbing_note({"stage": "stage2", "step": 30, "config": {"stage1": {"steps": 60}}}, 1000)
    assert plumbing_note({"stage": "stage2", "step": 30, "config": {"stage1": {"steps": 3000}}}, 1000) == ""
    assert plumbing_note({"stage": "stage1", "step": 999, "benchmark": "nuscenes16"}, 1000).count("demo_nuscenes_learning.yaml") == 1
    assert plumbing_note({"stage": "stage1", "step": 1000}, 1000) == "" and plumbing_note({"stage": "stage1", "step": 5}, 0) == ""


def test_every_row_of_a_table_averages_the_classes_present_in_ground_truth(trained, monkeypatch, tmp_path):
    """Networks that also predict a class the split's ground truth lacks: every 3D row (network,
    pseudo-labels, labelled-only rows) and every 2D row averages the same classes, those present in
    that modality's ground truth; the absent class reads "absent" and only the official mean drops."""
    import train.evaluate as ev

    data, final, _ = trained
    truth = data["truth"]
    names = list(BENCH.class_names)
    present = sorted({int(c) for t in truth.values() for c in np.unique(t["classes"])})
    stray = next(c for c in range(BENCH.n_classes) if c not in present and c not in set(CLASSES))
    order = iter(sorted(truth))
    current = {}

    def points_with_stray(net3d, xyz, *args, **kwargs):
        current["sid"] = next(order)
        pred = truth[current["sid"]]["classes"].copy()
        pred[::4] = stray
        return pred

    def views_with_stray(net2d, images, input_size, output_size=None, device=None, batch=4):
        views = truth[current["sid"]]["views"]["image"]
        v = next(v for v in range(len(views)) if np.array_equal(views[v], images[0]))
        pred = truth[current["sid"]]["gt2d"][v:v + 1].copy()
        pred[:, ::3] = stray
        return pred

    monkeypatch.setattr(ev, "predict_points", points_with_stray)
    monkeypatch.setattr(ev, "predict_views", views_with_stray)
    stores = data["stores"]
    metrics = ev.evaluate(final, {r: stores[r] for r in ("prepared", "refined", "points", "sam")}, tmp_path / "out")
    res = metrics["results"]
    assert set(res) == set(ev.ROW_LABELS)
    for _, _, keys in ev.MODALITIES.values():
        expected = [names[c] for c in range(BENCH.n_classes) if res[keys[0]]["gt_count"][names[c]] > 0]
        assert names[stray] not in expected and expected
        for key in keys:
            assert res[key]["class_set"] == expected, key
            chosen = [res[key]["iou"][c] or 0.0 for c in expected]
            assert res[key]["miou"] == pytest.approx(np.mean(chosen)), key
    assert set(res["3d"]["class_set"]) == {names[c] for c in present}
    # the stray class costs the network under the official evaluators' mean only
    assert res["3d"]["miou_gt_or_pred"] < res["3d"]["miou"] and res["3d"]["iou"][names[stray]] == 0.0
    text = (tmp_path / "out" / "metrics.md").read_text()
    assert text.count(f"same {len(res['3d']['class_set'])} classes") >= 1 and "## 3D" in text and "## 2D" in text
    stray_rows = [line for line in text.splitlines() if line.startswith(f"| {names[stray]} |")]
    assert len(stray_rows) == 2 and all(line.endswith("| absent |") and "0.0" not in line for line in stray_rows)
    assert "mIoU, GT ∪ predicted" in text


@pytest.mark.parametrize("tie_break", ["nearest", "lowest"])
def test_predict_store_is_consistent(trained, tmp_path, tie_break):
    """Refined 2D predictions are constant inside segments; carried labels follow the pipeline's
    voting options (project.tie_break: nearest ranks pairs by depth, as the project stage does)."""
    from pipeline.config import validate
    from pipeline.pairs import pair_depths
    from pipeline.voting import majority
    from train.predict import predict_shard

    data, final, _ = trained
    s = data["stores"]
    config = validate({"project": {"tie_break": tie_break}})
    out = predict_shard(final, {"prepared": s["prepared"][0], "sam": s["sam"][0], "points": s["points"][0]}, tmp_path / "p.zarr", config)
    pred = StoreReader(out, "predictions")
    prep = StoreReader(s["prepared"][0], "prepared")
    assert pred.attrs["options"]["project"] == {"tie_break": tie_break}
    pts = StoreReader(s["points"][0], "points")
    sam = StoreReader(s["sam"][0], "sam")
    assert pred.attrs["vocabulary"]["benchmark"] == "scannet20" and pred.attrs["checkpoint"]["stage"] == "stage1"
    for sid in pred.samples:
        v2d, raw2d = pred.read(sid, "views/label"), pred.read(sid, "views/label_raw")
        seg = sam.read(sid, "views/segments")
        for v in range(seg.shape[0]):  # refined 2D: constant inside each segment, the segment's majority of the raw prediction
            for segment in np.unique(seg[v]):
                inside = seg[v] == segment
                assert len(np.unique(v2d[v][inside])) == 1
                assert v2d[v][inside][0] == np.bincount(raw2d[v][inside], minlength=20).argmax()
        offsets = pts.read(sid, "views/pair_offsets")
        view = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        flat = view * seg.shape[1] * seg.shape[2] + pts.read(sid, "pairs/pixel")
        point = pts.read(sid, "pairs/point").astype(np.int64)
        n = pred.read(sid, "points/label").shape[0]
        rank = pair_depths(prep.read(sid, "points/xyz"), prep.read(sid, "views/pose"), offsets, point) if tie_break == "nearest" else None
        expected = majority(point, v2d.reshape(-1)[flat], n, rank=rank, n_classes=20).label
        assert np.array_equal(pred.read(sid, "points/label_2d"), expected)
        label_3d = pred.read(sid, "views/label_3d").reshape(-1)
        seen = np.zeros(n, bool)
        seen[point] = True
        assert (pred.read(sid, "points/label")[~seen] == pred.read(sid, "points/label_raw")[~seen]).all()
        assert (label_3d[flat] != IGNORE).all()  # every paired pixel carries a 3D label


def test_train_never_imports_foundation_models():
    code = (
        "import sys, pkgutil, importlib, train\n"
        "for m in pkgutil.walk_packages(train.__path__, 'train.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('open_clip', 'segment_anything')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_is_fast_and_explains_every_command():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "torch" not in {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    for command in ("stage1", "predict", "stage2", "evaluate", "ablation-table"):
        assert command in result.stdout
        sub = subprocess.run([sys.executable, "-m", "train", command, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0 and "--" in sub.stdout


@pytest.mark.parametrize("mode", ["frozen", "online"])
def test_stage2_from_stage1_with_frozen_or_online_predictions(trained, tmp_path, mode):
    from pipeline.config import validate
    from tests.test_train_engine import TINY
    from train.engine import checkpoint as ckpt
    from train.engine.trainer import run_stage
    from train.predict import predict_shard

    data, final, _ = trained
    s = dict(data["stores"])
    if mode == "frozen":
        s["predictions"] = [str(predict_shard(final, {"prepared": s["prepared"][0], "sam": s["sam"][0], "points": s["points"][0]},
                                              tmp_path / "predictions" / "train-000.zarr", validate({})))]
    records = []
    config = validate({"train": {**TINY, "stage2": {"steps": 2, "predictions": mode}}})
    out = run_stage(config, "stage2", s, tmp_path / "stage2", init=final, progress=False, on_step=lambda st, r: records.append(r))
    state = ckpt.load_checkpoint(out)
    meta = ckpt.checkpoint_meta(state)
    assert meta["stage"] == "stage2" and meta["init"] == str(final) and state["step"] == 2
    assert all(np.isfinite(r["ce2d"]) and np.isfinite(r["ce3d"]) for r in records)
