"""The nuImages adapter: get_segmentation's draw order, null masks, the fine numbering, the
nuimages11 protocol, and one-line errors naming the file and record for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets.nuimages import NuImagesAdapter, NuImagesOptions
from pipeline.datasets.nuimages_masks import decode_mask, encode_mask, fine_indices, rle_counts, semantic_mask
from pipeline.datasets.nuimages_tables import Annotation, NuImagesTables
from pipeline.errors import InputFileError
from pipeline.metrics import confusion, mean_iou, present_in_truth, scored_mask, summary
from pipeline.vocab import IGNORE, benchmark, prepared_ground_truth_luts
from tests.nuimages_fixture import write_nuimages


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_nuimages(tmp_path_factory.mktemp("nuimages") / "root", seed=1)


def _copy(tree, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(tree.root, root)
    return root


def _adapter(root: Path) -> NuImagesAdapter:
    return NuImagesAdapter(NuImagesOptions(root=root, working_size=(48, 32)))


def test_rle_round_trip_and_run_lengths():
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.random()
        enc = encode_mask(mask)
        import base64

        assert sum(rle_counts(base64.b64decode(enc["counts"]))) == h * w
        np.testing.assert_array_equal(decode_mask(enc, Path("t.json"), "r"), mask)


def test_fine_indices_follow_the_devkit_numbering():
    index = fine_indices(["vehicle.truck", "animal", "vehicle.ego", "flat.driveable_surface", "vehicle.car"])
    assert index == {"animal": 1, "vehicle.car": 2, "vehicle.truck": 3, "flat.driveable_surface": 24, "vehicle.ego": 31}


def test_draw_order_surfaces_in_table_order_then_objects_by_token():
    full = np.ones((2, 3), bool)
    left = np.zeros((2, 3), bool)
    left[:, 0] = True
    surfaces = [Annotation("s1", "vehicle.ego", encode_mask(full)), Annotation("s0", "flat.driveable_surface", encode_mask(full))]
    objects = [Annotation("b", "vehicle.car", encode_mask(full)), Annotation("a", "animal", encode_mask(left)),
               Annotation("c", "vehicle.truck", None)]
    index = fine_indices(["animal", "vehicle.car", "vehicle.truck", "vehicle.ego", "flat.driveable_surface"])
    sem, inst, nulls = semantic_mask(surfaces, objects, index, (3, 2), (Path("s.json"), Path("o.json")))
    # surfaces: driveable (later in table order) wins; objects: 'a' drawn before 'b', so the car covers everything
    np.testing.assert_array_equal(sem, np.full((2, 3), index["vehicle.car"]))
    np.testing.assert_array_equal(inst, np.full((2, 3), 2))  # 'b' is the second object in token order
    assert nulls == 1
    sem, _, _ = semantic_mask(surfaces, objects[1:], index, (3, 2), (Path("s.json"), Path("o.json")))
    assert sem[0, 0] == index["animal"] and sem[0, 1] == 24


def test_fixture_depends_on_the_order(tree):
    """The fixture's overlaps make the order matter (so the devkit parity test can fail)."""
    tables = NuImagesTables(tree.root, "v1.0-train")
    index = fine_indices(tables.categories.values())
    cam = tables.camera_of(tree.samples["train"][1])
    paths = (Path("s"), Path("o"))
    sem, _, _ = semantic_mask(tables.surfaces[cam.token], tables.objects[cam.token], index, (48, 32), paths)
    table_order = np.zeros_like(sem)
    for ann in [*tables.surfaces[cam.token], *tables.objects[cam.token]]:
        table_order[decode_mask(ann.mask, Path("x"), ann.token)] = index[ann.category]
    assert (table_order != sem).any()


def test_load_stores_raw_fine_indices_and_camera_metadata(tree):
    adapter = _adapter(tree.root)
    sample = adapter.load(tree.samples["train"][0], "train")
    a = sample.arrays
    assert a["views/label"].shape == (1, 32, 48) and a["views/label"].dtype == np.uint16
    assert set(np.unique(a["views/label"])) <= {0, 1, 2, 9, 14, 17, 23, 24, 31}
    np.testing.assert_array_equal(a["views/pose"][0], np.eye(4))
    assert a["views/frame"][0] == 0  # CAM_FRONT
    assert sample.attrs["distortion"] == [0.01, -0.02, 0.0, 0.0, 0.0] and sample.attrs["rectified"] is False
    assert sample.attrs["input_checks"] == {"null_masks": 1}
    assert "points/xyz" not in a


def test_nuimages11_scores_11_classes_of_16(tree):
    adapter = _adapter(tree.root)
    adapter.select("val", tree.samples["val"])
    bench = benchmark("nuimages11")
    lut = prepared_ground_truth_luts(adapter.root_attrs(), bench)["views"]
    assert bench.n_classes == 16 and len(bench.scored_classes) == 11
    assert lut[17] == bench.class_names.index("car") and lut[24] == bench.class_names.index("driveable_surface")
    assert lut[0] == IGNORE and lut[31] == IGNORE and lut[1] == IGNORE  # unlabelled, ego, animal
    gt = np.array([3, 3, 10, IGNORE], np.uint8)
    pred = np.array([3, 12, 12, 12], np.uint8)  # sidewalk (unscored) predicted on car and road: errors
    m = confusion(gt, pred, 16)
    chosen = present_in_truth(m) & scored_mask(16, bench.scored_classes)
    assert mean_iou(m, chosen) == pytest.approx((0.5 + 0.0) / 2)
    res = summary(m, bench.class_names, scored=bench.scored_classes)
    assert res["classes_scored"][-1] == "driveable_surface" and len(res["classes_scored"]) == 11
    assert res["class_set"] == ["car", "driveable_surface"] and res["miou"] == pytest.approx(0.25)


def _edit(path: Path, fn) -> None:
    rows = json.loads(path.read_text())
    fn(rows)
    path.write_text(json.dumps(rows))


@pytest.mark.parametrize("case, expect", [
    ("missing_table", r"v1.0-train/surface_ann.json: table file not found"),
    ("missing_image", r"CAM_FRONT/log-train__CAM_FRONT__1000.jpg: image of sample train00s+ \(sample_data train00d+\) not found"),
    ("corrupt_rle", r"v1.0-train/object_ann.json: record .*: corrupt mask"),
    ("truncated_rle", r"v1.0-train/surface_ann.json: record .*: corrupt mask"),
    ("unknown_category", r"v1.0-train/category.json: record .*: unknown category 'vehicle.spaceship'"),
    ("dangling_category", r"v1.0-train/object_ann.json: record .* has category_token 'nope'"),
    ("wrong_mask_size", r"v1.0-train/surface_ann.json: record .*: mask size 3x2 differs from its image's 48x32"),
])
def test_bad_input_is_one_line_naming_file_and_record(tree, tmp_path, case, expect):
    root = _copy(tree, tmp_path)
    t = root / "v1.0-train"
    if case == "missing_table":
        (t / "surface_ann.json").unlink()
    elif case == "missing_image":
        next((root / "samples" / "CAM_FRONT").glob("log-train__CAM_FRONT__1000.jpg")).unlink()
    elif case == "corrupt_rle":
        _edit(t / "object_ann.json", lambda r: r[0].update(mask={"size": [32, 48], "counts": "!!!not base64"}))
    elif case == "truncated_rle":
        _edit(t / "surface_ann.json", lambda r: r[0]["mask"].update(counts=r[0]["mask"]["counts"][:8]))
    elif case == "unknown_category":
        _edit(t / "category.json", lambda r: r[0].update(name="vehicle.spaceship"))
    elif case == "dangling_category":
        _edit(t / "object_ann.json", lambda r: r[0].update(category_token="nope"))
    elif case == "wrong_mask_size":
        _edit(t / "surface_ann.json", lambda r: r[0].update(mask=encode_mask(np.ones((2, 3), bool))))
    with pytest.raises(InputFileError) as err:
        _adapter(root).load(tree.samples["train"][0], "train")
    message = str(err.value)
    assert "\n" not in message
    import re

    assert re.search(expect, message), message


def test_export_lut_numbers_classes_as_get_segmentation(tree):
    from train.export import nuimages_export_lut

    adapter = _adapter(tree.root)
    adapter.select("train", tree.samples["train"])
    bench = benchmark("nuimages11")
    lut = nuimages_export_lut(adapter.root_attrs()["nuimages_categories"], bench)
    names = bench.class_names
    assert lut[names.index("car")] == 17 and lut[names.index("pedestrian")] == 2 and lut[names.index("driveable_surface")] == 24
    assert lut[names.index("sidewalk")] == 0 and lut[IGNORE] == 0
    # round trip: the exported fine index maps back to the class through the ground-truth LUT
    gt = prepared_ground_truth_luts(adapter.root_attrs(), bench)["views"]
    for c in bench.scored_classes:
        assert gt[lut[c]] == c


def test_listing_a_missing_version_names_the_table(tmp_path):
    with pytest.raises(InputFileError, match=r"v1.0-val/sample.json: table file not found; .*ten nuImages tables \(split 'val'"):
        _adapter(tmp_path).list_samples("val")


def test_dataset_scenes_filters_by_logfile(tree):
    from pipeline.config import validate
    from pipeline.membership import split_samples

    dataset = validate({"dataset": {"kind": "nuimages", "root": str(tree.root), "splits": ["train", "val"],
                                    "scenes": ["log-val"], "demo": {"enabled": False}}})["dataset"]
    assert split_samples(dataset) == {"train": [], "val": tree.samples["val"]}
