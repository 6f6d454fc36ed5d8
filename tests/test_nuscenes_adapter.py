"""nuScenes adapter: tables, splits, the camera → lidar pose chain, points, sweeps and bad files,
on the hand-made tree of tests/nuscenes_fixture.py (true geometry known from angles)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from pipeline import camera
from pipeline.config import validate
from pipeline.datasets import make_adapter
from pipeline.datasets.nuscenes_splits import official_splits
from pipeline.errors import InputFileError, UserError
from pipeline.images import read_view_images
from pipeline.prepare import prepare_shard
from pipeline.stores import StoreReader
from pipeline.vocab import IGNORE, benchmark, prepared_ground_truth_luts
from tests.nuscenes_fixture import (
    CAMERAS,
    NON_UNIT_CAMERA,
    Q_FRONT,
    R_FRONT,
    STATIC_MARKERS,
    FixtureSpec,
    lidarseg_labels,
    q_z,
    rot_z,
    write_nuscenes,
)

WORK = (80, 45)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return write_nuscenes(tmp_path_factory.mktemp("nuscenes"), FixtureSpec())


def _config(root, **nuscenes):
    return validate({"dataset": {"kind": "nuscenes", "root": str(root), "working_size": list(WORK),
                                 "nuscenes": {"version": "v1.0-mini", **nuscenes}}})["dataset"]


def _copy(fx, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(fx.root, root)
    return root


def _samples(fx):
    return [s for name in fx.spec.scenes for s in fx.scene_samples[name]]


def _project(pose, k, point):
    p_cam = np.linalg.inv(pose) @ np.append(point.astype(np.float64), 1.0)
    return (k @ p_cam[:3])[:2] / p_cam[2]


def test_quaternion_maths():
    np.testing.assert_allclose(camera.quaternion_to_rotation(Q_FRONT), R_FRONT, atol=1e-12)
    np.testing.assert_allclose(camera.quaternion_to_rotation(3.0 * q_z(0.7)), rot_z(0.7), atol=1e-12)  # normalised
    t = camera.rigid_transform([1.0, 2.0, 3.0], q_z(-0.4))
    np.testing.assert_allclose(t[:3, :3], rot_z(-0.4), atol=1e-12)
    assert t[:3, 3].tolist() == [1.0, 2.0, 3.0] and t[3].tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="non-zero"):
        camera.quaternion_to_rotation([0.0, 0.0, 0.0, 0.0])


def test_sample_ids_are_tokens_in_scene_then_time_order(fx, tmp_path):
    adapter = make_adapter(_config(fx.root))
    assert adapter.kind == "nuscenes"
    assert adapter.list_samples("mini_train") == fx.scene_samples["scene-0061"]
    assert adapter.list_samples("mini_val") == fx.scene_samples["scene-0103"]
    assert adapter.list_samples("train") == fx.scene_samples["scene-0061"]  # scene-0103 is a val scene
    assert adapter.list_samples("val") == fx.scene_samples["scene-0103"]
    assert adapter.list_samples("test") == []
    with pytest.raises(UserError, match="split 'minitrain' is not among the official"):
        adapter.list_samples("minitrain")
    (fx.root / "my_splits.yaml").write_text("mine: [scene-0103, scene-0061]\nother: [scene-9999]\n")
    custom = make_adapter(_config(fx.root, split_file="my_splits.yaml"))
    assert custom.list_samples("mine") == fx.scene_samples["scene-0103"] + fx.scene_samples["scene-0061"]
    assert custom.list_samples("other") == []
    with pytest.raises(UserError, match="my_splits.yaml"):
        custom.list_samples("mini_train")  # a split file replaces the official splits
    with pytest.raises(InputFileError, match="nope.yaml: split file not found"):
        make_adapter(_config(fx.root, split_file="nope.yaml")).list_samples("mine")


def test_official_splits():
    splits = official_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 700, "val": 150, "test": 150, "mini_train": 8, "mini_val": 2}
    assert splits["mini_val"] == ("scene-0103", "scene-0916")
    assert set(splits["mini_train"]) - set(splits["train"]) == {"scene-0553", "scene-0796"}
    assert {"scene-0553", "scene-0796"} <= set(splits["val"])
    assert not set(splits["train"]) & set(splits["val"]) and not set(splits["test"]) & set(splits["train"] + splits["val"])


def test_points_and_labels_as_written(fx):
    adapter = make_adapter(_config(fx.root))
    for sample in _samples(fx):
        arrays = adapter.load(sample, "mini_train").arrays
        raw = np.fromfile(fx.root / fx.filename[fx.lidar_token[sample]], dtype="<f4").reshape(-1, 5)
        assert arrays["points/xyz"].dtype == np.float32 and arrays["points/ring"].dtype == np.uint8
        np.testing.assert_array_equal(arrays["points/xyz"], raw[:, :3])
        np.testing.assert_array_equal(arrays["points/intensity"], raw[:, 3])
        np.testing.assert_array_equal(arrays["points/ring"], raw[:, 4].astype(np.uint8))
        assert arrays["points/label"].dtype == np.uint16
        np.testing.assert_array_equal(arrays["points/label"], lidarseg_labels(fx, sample))


def test_pose_chain_through_both_ego_poses(fx):
    """A marker placed at a known pixel of each camera (at the camera's time) projects there
    through views/pose; the pose without the ego step misses it by more than a pixel."""
    adapter = make_adapter(_config(fx.root))
    for sample in _samples(fx):
        loaded = adapter.load(sample, "mini_train")
        arrays, lidar = loaded.arrays, fx.lidar_token[sample]
        assert arrays["views/frame"].tolist() == list(range(6))
        assert loaded.attrs["camera_tokens"] == [fx.camera_token[sample][c] for c in CAMERAS]
        assert loaded.attrs["lidar_token"] == lidar and loaded.attrs["cameras_missing"] == []
        for view, channel in enumerate(CAMERAS):
            pose = arrays["views/pose"][view]
            cam = fx.camera_token[sample][channel]
            np.testing.assert_allclose(pose, np.linalg.inv(fx.to_global[lidar]) @ fx.to_global[cam], atol=1e-9)
            assert camera.pose_is_valid(pose, atol=1e-9)  # the non-unit quaternion of NON_UNIT_CAMERA was normalised
            np.testing.assert_allclose(arrays["views/native_intrinsics"][view], fx.intrinsic)
            marker = arrays["points/xyz"][fx.marker_index(channel)]
            uv = _project(pose, fx.intrinsic, marker)
            np.testing.assert_allclose(uv, fx.marker_pixel[channel], atol=2e-3)  # float32 xyz ~10 m away
            no_ego = np.linalg.inv(fx.sensor_to_ego["LIDAR_TOP"]) @ fx.sensor_to_ego[channel]
            assert np.linalg.norm(_project(no_ego, fx.intrinsic, marker) - uv) > 1.0, channel
    assert NON_UNIT_CAMERA in CAMERAS


def test_images_and_intrinsics_at_working_size(fx):
    arrays = make_adapter(_config(fx.root)).load(_samples(fx)[0], "mini_train").arrays
    assert arrays["views/native_size"].tolist() == [list(fx.spec.image_size)] * 6
    assert arrays["views/image_size"].tolist() == [list(WORK)] * 6
    np.testing.assert_allclose(arrays["views/intrinsics"][0], camera.scale_intrinsics(fx.intrinsic, fx.spec.image_size, WORK))
    assert len(arrays["views/image_offsets"]) == 7 and arrays["views/image_offsets"][-1] == len(arrays["views/image_bytes"])


def test_camera_order_and_missing_camera(fx, tmp_path, caplog):
    root = _copy(fx, tmp_path)
    sample = _samples(fx)[1]
    (root / fx.filename[fx.camera_token[sample]["CAM_BACK_LEFT"]]).unlink()
    cameras = ["CAM_BACK_LEFT", "CAM_FRONT", "CAM_BACK"]
    with caplog.at_level(logging.WARNING):
        loaded = make_adapter(_config(root, cameras=cameras)).load(sample, "mini_train")
    assert loaded.arrays["views/frame"].tolist() == [1, 2]
    assert loaded.attrs["cameras_missing"] == ["CAM_BACK_LEFT"]
    assert loaded.attrs["camera_tokens"] == [fx.camera_token[sample][c] for c in ("CAM_FRONT", "CAM_BACK")]
    assert "CAM_BACK_LEFT" in caplog.text and "not found" in caplog.text
    lidar, cam = fx.lidar_token[sample], fx.camera_token[sample]["CAM_BACK"]
    np.testing.assert_allclose(loaded.arrays["views/pose"][1], np.linalg.inv(fx.to_global[lidar]) @ fx.to_global[cam], atol=1e-9)
    out = tmp_path / "mini_train-000.zarr"
    prepare_shard(_config(root, cameras=cameras), "mini_train-000", "mini_train", [sample], out)
    assert read_view_images(StoreReader(out, "prepared"), sample).shape == (2, WORK[1], WORK[0], 3)


def test_sweeps_are_motion_compensated_and_unlabelled(fx):
    keyonly = make_adapter(_config(fx.root))
    adapter = make_adapter(_config(fx.root, sweeps=3))
    first, second = fx.scene_samples["scene-0061"][:2]
    n_key = fx.n_points[fx.lidar_token[first]]
    assert len(keyonly.load(first, "mini_train").arrays["points/xyz"]) == n_key
    a = adapter.load(first, "mini_train")
    assert a.attrs["sweeps"] == 2 and a.attrs["sweep_points"] == 2 * fx.spec.n_points  # the log starts 2 sweeps earlier
    b = adapter.load(second, "mini_train")
    assert b.attrs["sweeps"] == 3 and b.attrs["sweep_points"] == 3 * fx.spec.n_points  # crosses the previous key frame
    for loaded in (a, b):
        xyz, label = loaded.arrays["points/xyz"], loaded.arrays["points/label"]
        n_key = len(xyz) - loaded.attrs["sweep_points"]
        assert not label[n_key:].any() and len(label) == len(xyz) == len(loaded.arrays["points/ring"])
        static = xyz[:STATIC_MARKERS]  # fixed world points, written in each sweep's own lidar frame
        for block in range(loaded.attrs["sweeps"]):
            start = n_key + block * fx.spec.n_points
            np.testing.assert_allclose(xyz[start:start + STATIC_MARKERS], static, atol=2e-4)


def _edit_table(root, table, edit):
    path = root / "v1.0-mini" / f"{table}.json"
    records = json.loads(path.read_text())
    edit(records)
    path.write_text(json.dumps(records))
    return path


def _break_ref(records):
    records[3]["ego_pose_token"] = "f" * 32


def _unknown_category(records):
    records[29]["name"] = "static.others"


@pytest.mark.parametrize(
    "damage, file, message",
    [
        ("missing_table", "v1.0-mini/sample_data.json", "table file not found"),
        ("malformed_table", "v1.0-mini/ego_pose.json", "malformed JSON"),
        ("missing_reference", "v1.0-mini/sample_data.json", "which ego_pose.json does not hold"),
        ("unknown_category", "v1.0-mini/category.json", "unknown category 'static.others'"),
        ("short_lidarseg", "lidarseg", "labels but the lidar file"),
        ("missing_lidar", "lidar", "lidar file not found"),
    ],
)
def test_bad_files_are_named_in_one_line(fx, tmp_path, damage, file, message):
    root = _copy(fx, tmp_path)
    sample = _samples(fx)[0]
    lidar = fx.lidar_token[sample]
    path = root / file
    if damage == "missing_table":
        path.unlink()
    elif damage == "malformed_table":
        path.write_text(path.read_text()[:-20])
    elif damage == "missing_reference":
        _edit_table(root, "sample_data", _break_ref)
    elif damage == "unknown_category":
        _edit_table(root, "category", _unknown_category)
    elif damage == "short_lidarseg":
        path = root / f"lidarseg/v1.0-mini/{lidar}_lidarseg.bin"
        path.write_bytes(path.read_bytes()[:-3])
    elif damage == "missing_lidar":
        path = root / fx.filename[lidar]
        path.unlink()
    out = tmp_path / "mini_train-000.zarr"
    with pytest.raises(InputFileError) as err:
        prepare_shard(_config(root), "mini_train-000", "mini_train", [sample], out)
    assert str(err.value).startswith(str(path)) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_listing_reads_only_the_small_tables(fx, tmp_path):
    root = _copy(fx, tmp_path)
    (root / "v1.0-mini" / "ego_pose.json").unlink()
    adapter = make_adapter(_config(root))
    assert adapter.list_samples("mini_val") == fx.scene_samples["scene-0103"]
    assert adapter.root_attrs()["label_spaces"] == {"points": "nuscenes-lidarseg"}
    with pytest.raises(InputFileError, match="ego_pose.json: table file not found"):
        adapter.load(fx.scene_samples["scene-0103"][0], "mini_val")


def test_prepare_shard_writes_a_valid_store(fx, tmp_path):
    out = tmp_path / "mini_train-000.zarr"
    samples = fx.scene_samples["scene-0061"]
    prepare_shard(_config(fx.root), "mini_train-000", "mini_train", samples, out)
    reader = StoreReader(out, "prepared")
    assert list(reader.samples) == samples
    attrs = reader.attrs
    assert attrs["kind"] == "nuscenes" and attrs["version"] == "v1.0-mini"
    assert attrs["label_spaces"] == {"points": "nuscenes-lidarseg"}
    assert attrs["lidarseg_categories"][17] == [17, "vehicle.car"] and len(attrs["lidarseg_categories"]) == 32
    sample_attrs = reader.sample_attrs(samples[0])
    assert sample_attrs["scene"] == "scene-0061" and sample_attrs["lidar_token"] == fx.lidar_token[samples[0]]
    assert sample_attrs["cameras_missing"] == [] and sample_attrs["image_codec"] == "jpeg"
    images = read_view_images(reader, samples[0])
    assert images.shape == (6, WORK[1], WORK[0], 3) and images.dtype == np.uint8
    luts = prepared_ground_truth_luts(attrs, benchmark("nuscenes16"))
    labels = reader.read(samples[0], "points/label")
    classes = luts["points"][labels]
    assert classes[labels == 17].tolist() == [3] * int((labels == 17).sum())  # vehicle.car → car (index 3, id 4)
    assert (classes[labels == 0] == IGNORE).all()
