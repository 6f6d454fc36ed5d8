"""Our nuScenes path against the official devkit (nuscenes-devkit 1.2.0 in ``.venv-devkit/``, built by
``.ci/install_devkit.sh``; numpy<2, so it runs in a subprocess on the scripts of ``tests/devkit/``,
JSON in and out through files). Skipped only when that venv is absent.

On a nuScenes tree (the hand-built fixture of :mod:`tests.nuscenes_fixture` and the procedural
demo), prepared by our adapter:

* the lidarseg export of an evaluation passes ``validate_submission``, and ``LidarSegEval``'s
  mIoU and per-class IoUs equal ours (``pipeline.metrics`` and ``miou_official``) to 1e-6;
* our projection of every key-frame point into every camera (``views/pose``,
  ``views/native_intrinsics``, ``views/native_size``, z > 1 m, 1 < u < W - 1, 1 < v < H - 1)
  keeps the points ``NuScenesExplorer.map_pointcloud_to_image`` keeps, at |Δuv| <= 0.05 px
  (the devkit goes through float32 global coordinates ~1 km out), and so does the project
  stage's pair finder.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.metrics import confusion, iou, mean_iou_gt_or_pred
from pipeline.vocab import IGNORE

REPO = Path(__file__).resolve().parents[1]
DEVKIT_PYTHON = REPO / ".venv-devkit" / "bin" / "python"
SCRIPTS = REPO / "tests" / "devkit"
UV_TOLERANCE = 0.05
"""Largest |Δuv| in pixels between our projection and the devkit's (its float32 global frame)."""
BORDER_SLACK = 1e-3
"""A point may be kept by one side only if it lies this close (px, or m for depth) to the rule's
bounds: the devkit's float32 rounding can move it across."""

pytestmark = pytest.mark.skipif(not DEVKIT_PYTHON.exists(), reason="no .venv-devkit (run .ci/install_devkit.sh)")


def devkit(script: str, request: dict, work: Path) -> dict:
    """Run ``tests/devkit/<script>`` with the devkit's Python on ``request``; its JSON answer."""
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / f"{script}.in.json", work / f"{script}.out.json"
    src.write_text(json.dumps(request))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MPLBACKEND="Agg", MPLCONFIGDIR=str(work / "mpl"))
    done = subprocess.run([str(DEVKIT_PYTHON), str(SCRIPTS / script), str(src), str(dst)], capture_output=True, text=True,
                          env=env, cwd=SCRIPTS, timeout=900, check=False)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(dst.read_text())


def test_confusion_matrix_rows_equal_the_devkits(tmp_path):
    """Same (ground truth, prediction) of two clouds: our per-class IoUs, mIoU and official mIoU equal
    the devkit's ``ConfusionMatrix`` (its ids = our class + 1, 0 = ignore; absent classes skipped)."""
    from train.export import lidarseg_official_iou, lidarseg_official_miou

    rng = np.random.default_rng(0)
    clouds, ours = [], np.zeros((16, 17), np.int64)
    for n in (4000, 2500):
        gt = rng.choice([0, 1, 4, 5, 11, 12, 15, 16], n)  # devkit ids: some classes never true
        pred = np.where(rng.random(n) < 0.6, np.maximum(gt, 1), rng.choice([1, 2, 4, 11, 16], n))
        clouds.append((gt, pred))
        ours += confusion(np.where(gt == 0, IGNORE, gt - 1).astype(np.uint8), (pred - 1).astype(np.uint8), 16)
    request = {"gt": [], "pred": []}
    for i, (gt, pred) in enumerate(clouds):
        for key, array in (("gt", gt), ("pred", pred)):
            np.save(tmp_path / f"{key}{i}.npy", array.astype(np.uint8))
            request[key].append(str(tmp_path / f"{key}{i}.npy"))
    theirs = devkit("confusion.py", request, tmp_path)
    assert np.array_equal(np.asarray(theirs["matrix"])[1:, 1:], ours[:, :16])
    their_iou = np.array([np.nan if v is None else v for v in theirs["iou"]])
    assert np.isnan(their_iou[0])  # the ignore class: row and column zeroed
    for mine in (iou(ours), lidarseg_official_iou(ours)):
        assert np.array_equal(np.isnan(mine), np.isnan(their_iou[1:]))
        assert np.allclose(mine[~np.isnan(mine)], their_iou[1:][~np.isnan(mine)], rtol=0, atol=1e-9)
    assert abs(mean_iou_gt_or_pred(ours) - theirs["miou"]) < 1e-9 and lidarseg_official_miou(ours) == theirs["miou"]


# -- a nuScenes tree, prepared -------------------------------------------------------------------

MINI_VAL = ("scene-0103", "scene-0916")
"""The official mini_val scenes: the devkit's split tools need every scene of a split present."""


def _prepare(root: Path, version: str, out: Path, working_size=(192, 108)) -> tuple[Path, list[str]]:
    """Prepare the mini_val samples of the tree at ``root`` into one store; (store, samples)."""
    from pipeline.config import validate
    from pipeline.datasets import make_adapter
    from pipeline.prepare import prepare_shard

    dataset = validate({"dataset": {"kind": "nuscenes", "root": str(root), "working_size": list(working_size),
                                    "nuscenes": {"version": version}}})["dataset"]
    samples = make_adapter(dataset).list_samples("mini_val")
    assert samples
    return prepare_shard(dataset, "minival-000", "mini_val", samples, out / "prepared" / "minival-000.zarr", threads=1), samples


def _fixture_tree(tmp: Path) -> tuple[Path, str]:
    from tests.nuscenes_fixture import FixtureSpec, write_nuscenes

    fx = write_nuscenes(tmp / "nuscenes", FixtureSpec(scenes=MINI_VAL, samples_per_scene=3, n_points=400, image_size=(320, 180)))
    return fx.root, fx.spec.version


def _demo_tree(tmp: Path) -> tuple[Path, str]:
    """A tiny procedural demo: the two mini_val scenes, small images and lidar, with its defects
    (a missing camera image, a non-unit quaternion)."""
    from pipeline.demo_nuscenes import spec
    from pipeline.demo_nuscenes.generate import NuScenesDemoOptions, generate_dataset

    options = NuScenesDemoOptions(scenes=2, val=2, samples_per_scene=2, camera_size=(320, 180), lidar_beams=16,
                                  lidar_azimuths=512, defects=True, workers=1)
    return generate_dataset(tmp / "demo", options), spec.VERSION


@pytest.fixture(scope="module", params=["fixture", "demo"])
def tree(request, tmp_path_factory):
    """(dataset root, version, prepared store, sample tokens, work dir) of a mini_val tree."""
    tmp = tmp_path_factory.mktemp(f"nus_{request.param}")
    root, version = (_fixture_tree if request.param == "fixture" else _demo_tree)(tmp)
    store, samples = _prepare(root, version, tmp)
    return {"root": root, "version": version, "store": store, "samples": samples, "work": tmp, "name": request.param}


# -- lidarseg export ------------------------------------------------------------------------------


def _noisy_truth(store: Path, seed: int):
    """A ``predict_points`` stand-in: each keyframe point's true class (random where ignored), 30 %
    replaced by random classes; every class in 0..15, in evaluation order."""
    from pipeline.stores import StoreReader
    from pipeline.vocab import benchmark, prepared_ground_truth_luts

    reader = StoreReader(store, "prepared")
    lut = prepared_ground_truth_luts(reader.attrs, benchmark("nuscenes16"))["points"]
    rng = np.random.default_rng(seed)

    def predict(net3d, xyz, rgb, features, voxel, device, intensity=None):
        labels = lut[next(order)]
        out = np.where(labels == IGNORE, rng.integers(0, 16, labels.size), labels)
        return np.where(rng.random(labels.size) < 0.3, rng.integers(0, 16, labels.size), out).astype(np.uint8)

    order = iter([reader.read(s, "points/label").astype(np.int64) for s in reader.samples])
    return predict


def _check_exports(tree: dict, runs: dict[str, tuple[Path, dict]]) -> dict[str, dict]:
    """Validate and score each export {name: (out, metrics)} with the devkit (one call); check each
    agrees with its ``metrics`` to 1e-6; the devkit's answers by name."""
    request = {"dataroot": str(tree["root"]), "version": tree["version"], "eval_set": "mini_val",
               "results": [str(out) for out, _ in runs.values()]}
    answers = devkit("lidarseg.py", request, tree["work"] / "devkit_lidarseg")["answers"]
    for (name, (out, metrics)), theirs in zip(runs.items(), answers):
        assert theirs["valid"], f"{name}: {theirs['error']}"
        assert theirs["samples"] == len(tree["samples"])
        ours = metrics["results"]["3d"]
        assert abs(theirs["miou"] - ours["miou_official"]) <= 1e-6 and abs(theirs["miou"] - ours["miou_gt_or_pred"]) <= 1e-6
        assert abs(theirs["miou"] - ours["miou_official_by_split"]["mini_val"]) <= 1e-6
        for cls, value in ours["iou"].items():
            other = theirs["iou_per_class"][cls]
            assert (value is None) == (other is None), cls
            assert value is None or abs(value - other) <= 1e-6, cls
        print(f"\n[{tree['name']}/{name}] lidarseg export: valid, {theirs['samples']} samples, {theirs['points']} points, "
              f"{sum(v is not None for v in ours['iou'].values())} classes; mIoU ours {ours['miou_gt_or_pred']:.9f} "
              f"(over classes in truth: {ours['miou']:.9f}) official {ours['miou_official']:.9f} devkit {theirs['miou']:.9f} (|diff| {abs(ours['miou_gt_or_pred'] - theirs['miou']):.1e})")
    return dict(zip(runs, answers))


def test_lidarseg_export_is_valid_and_scores_as_the_devkit(tree, monkeypatch):
    """An untrained network (few classes predicted) and noisy truth (every present class)."""
    import train.evaluate as ev
    from tests.test_nuscenes_export import random_checkpoint

    checkpoint = random_checkpoint(tree["work"] / "final.pt", "nuscenes16", features=("intensity", "xyz"))
    runs = {}
    for name in ("random", "noisy"):
        if name == "noisy":
            monkeypatch.setattr(ev, "predict_points", _noisy_truth(tree["store"], seed=1))
        out = tree["work"] / f"eval_{name}"
        runs[name] = (out, ev.evaluate(checkpoint, {"prepared": [str(tree["store"])]}, out, device="cpu", threads=1, export_ply=False))
    answers = _check_exports(tree, runs)
    assert sum(v is not None for v in answers["noisy"]["iou_per_class"].values()) >= 10


def test_devkit_rejects_a_broken_export(tree):
    """The harness is not vacuous: a missing file, a point too few and a 0 are each refused."""
    import shutil

    import train.evaluate as ev
    from tests.test_nuscenes_export import random_checkpoint

    checkpoint = random_checkpoint(tree["work"] / "final_b.pt", "nuscenes16", features=("intensity",))
    good = tree["work"] / "eval_good"
    ev.evaluate(checkpoint, {"prepared": [str(tree["store"])]}, good, device="cpu", threads=1, export_ply=False)
    files = sorted((good / "lidarseg" / "mini_val").glob("*_lidarseg.bin"))
    assert len(files) == len(tree["samples"])
    breakages = ("missing", "short", "zero")
    for breakage in breakages:
        bad = tree["work"] / f"eval_{breakage}"
        shutil.copytree(good, bad)
        target = bad / "lidarseg" / "mini_val" / files[0].name
        values = np.fromfile(target, np.uint8)
        if breakage == "missing":
            target.unlink()
        elif breakage == "short":
            values[:-1].tofile(target)
        else:
            values[0] = 0
            values.tofile(target)
    request = {"dataroot": str(tree["root"]), "version": tree["version"], "eval_set": "mini_val",
               "results": [str(good)] + [str(tree["work"] / f"eval_{b}") for b in breakages]}
    answers = devkit("lidarseg.py", request, tree["work"] / "devkit_broken")["answers"]
    assert answers[0]["valid"], answers[0]["error"]
    for breakage, answer in zip(breakages, answers[1:]):
        assert not answer["valid"] and answer["error"], breakage


# -- projection -----------------------------------------------------------------------------------


def _our_projection(reader, sample: str, view: int, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept (P,) bool, uv (P, 2) float64 px, depth (P,) m) of every point in native view ``view``."""
    from pipeline import camera

    pose = reader.read(sample, "views/pose")[view]
    k = reader.read(sample, "views/native_intrinsics")[view]
    w, h = (int(x) for x in reader.read(sample, "views/native_size")[view])
    uv, z = camera.project(camera.transform_points(camera.invert_rigid(pose), xyz.astype(np.float64)), k)
    with np.errstate(invalid="ignore"):
        kept = (z > 1.0) & (uv[:, 0] > 1) & (uv[:, 0] < w - 1) & (uv[:, 1] > 1) & (uv[:, 1] < h - 1)
    return kept, uv, z


def _borderline(uv: np.ndarray, z: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Points within the rounding slack of the rule's bounds (may legitimately differ)."""
    w, h = float(size[0]), float(size[1])
    near = [np.abs(z - 1.0)] + [np.abs(uv[:, 0] - b) for b in (1, w - 1)] + [np.abs(uv[:, 1] - b) for b in (1, h - 1)]
    return np.min(np.stack(near), axis=0) <= BORDER_SLACK


def _stage_points(reader, sample: str, xyz: np.ndarray) -> list[np.ndarray]:
    """Per view, the points the project stage's pair finder keeps (default options, label size = working)."""
    from pipeline.project.runner import visible_pairs
    from pipeline.project.stage import project_options, sample_cameras

    size = reader.read(sample, "views/image_size")[0]
    cams = sample_cameras(reader, sample, (int(size[0]), int(size[1])), project_options(None))
    pairs = visible_pairs(xyz, cams, device="cpu", threads=1)
    return [np.unique(pairs.point[pairs.view_offsets[v]:pairs.view_offsets[v + 1]]) for v in range(cams.n_views)]


def test_projection_keeps_the_devkits_points(tree):
    from pipeline.stores import StoreReader

    theirs = devkit("project.py", {"dataroot": str(tree["root"]), "version": tree["version"], "min_dist": 1.0,
                                   "arrays": str(tree["work"] / "devkit_projection.npz")}, tree["work"] / "devkit_proj")
    arrays = np.load(tree["work"] / "devkit_projection.npz")
    reader = StoreReader(tree["store"], "prepared")
    stats = {"pairs": 0, "kept": 0, "max_duv": 0.0, "borderline": 0, "stage_differs": 0}
    by_camera = {p["camera_token"]: p for p in theirs["pairs"]}
    for sample in reader.samples:
        xyz = reader.read(sample, "points/xyz")
        tokens = reader.sample_attrs(sample)["camera_tokens"]
        stage = _stage_points(reader, sample, xyz)
        for view, token in enumerate(tokens):
            pair = by_camera[token]
            assert pair["sample"] == sample and pair["points"] == xyz.shape[0]
            index = arrays[f"{sample}/{pair['channel']}/index"]
            kept, uv, z = _our_projection(reader, sample, view, xyz)
            dev = np.zeros_like(kept)
            dev[index] = True
            differ = np.flatnonzero(dev != kept)
            size = reader.read(sample, "views/native_size")[view]
            assert _borderline(uv[differ], z[differ], size).all(), f"{sample} {pair['channel']}: {differ.size} points differ"
            duv = np.abs(uv[index] - arrays[f"{sample}/{pair['channel']}/uv"]).max(initial=0.0)
            assert duv <= UV_TOLERANCE, f"{sample} {pair['channel']}: |duv| {duv}"
            assert np.allclose(z[index], arrays[f"{sample}/{pair['channel']}/depth"], rtol=0, atol=1e-3)
            stage_differs = np.setxor1d(stage[view], np.flatnonzero(kept))
            assert _borderline(uv[stage_differs], z[stage_differs], size).all()
            stats["pairs"] += 1
            stats["kept"] += int(index.size)
            stats["max_duv"] = max(stats["max_duv"], float(duv))
            stats["borderline"] += int(differ.size)
            stats["stage_differs"] += int(stage_differs.size)
    assert stats["pairs"] == len(theirs["pairs"]) and stats["kept"] > 0
    stats["cameras_missing"] = len(theirs["missing"])
    print(f"\n[{tree['name']}] projection vs devkit: {stats}")
