"""ScanNet adapter: what the generator writes is what the adapter reads back; bad files are named."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline import camera
from pipeline.config import validate
from pipeline.datasets import make_adapter
from pipeline.demo.generate import DemoOptions, build_scene, generate_scene, write_meta
from pipeline.errors import InputFileError
from pipeline.images import read_view_images
from pipeline.stores import StoreReader
from pipeline.prepare import prepare_shard

OPTIONS = DemoOptions(views=6, color_size=(162, 122), depth_size=(80, 60), vertex_spacing=0.25, defects=True)
SCENE = "scene0007_00"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("scannet")
    generate_scene(root, SCENE, OPTIONS)
    write_meta(root, [SCENE], [])
    return root


def _config(root, **dataset):
    return validate({"dataset": {"root": str(root), "frame_skip": 1, "working_size": [120, 90], **dataset}})["dataset"]


def _copy(dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    return root


def test_round_trip(dataset):
    demo = build_scene(SCENE, OPTIONS)
    sample = make_adapter(_config(dataset)).load(SCENE, "train")
    arrays = sample.arrays
    frames = arrays["views/frame"].tolist()
    expected = [f for f in range(OPTIONS.views) if f not in demo.defects.missing_frames and f not in demo.defects.inf_pose_frames]
    assert frames == expected
    assert sample.attrs["skipped_views"]["invalid_pose"] == sorted(demo.defects.inf_pose_frames)
    np.testing.assert_allclose(arrays["views/pose"], demo.poses[frames], atol=1e-6)
    np.testing.assert_allclose(arrays["views/native_intrinsics"][0], demo.color_k, atol=1e-6)
    np.testing.assert_allclose(arrays["views/depth_intrinsics"][0], demo.depth_k, atol=1e-6)
    np.testing.assert_allclose(
        arrays["views/intrinsics"][0], camera.scale_intrinsics(demo.color_k, OPTIONS.color_size, (120, 90)), atol=1e-9
    )
    assert arrays["views/native_size"][0].tolist() == list(OPTIONS.color_size)
    assert arrays["views/image_size"][0].tolist() == [120, 90]
    assert arrays["views/depth"].shape[1:] == (OPTIONS.depth_size[1], OPTIONS.depth_size[0])
    np.testing.assert_allclose(arrays["points/xyz"], demo.mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(arrays["points/label"], demo.mesh.nyu40)
    np.testing.assert_array_equal(arrays["mesh/faces"], demo.mesh.faces)
    assert arrays["views/label"].shape == (len(frames), 90, 120)


def test_2d_labels_are_raw_ids_mapped_downstream(dataset):
    from pipeline.vocab import benchmark, prepared_ground_truth_luts

    adapter = make_adapter(_config(dataset))
    raw = adapter.load(SCENE, "train").arrays["views/label"]
    luts = prepared_ground_truth_luts(adapter.root_attrs(), benchmark("scannet20"))
    classes = luts["views"][raw]
    # raw ids differ from nyu40 ids in the demo's label map, yet map to real classes
    assert set(np.unique(raw)) != set(np.unique(classes))
    assert (classes != 255).mean() > 0.5


def test_frame_skip_and_store(dataset, tmp_path):
    out = tmp_path / "train-000.zarr"
    prepare_shard(_config(dataset, frame_skip=2), "train-000", "train", [SCENE], out)
    reader = StoreReader(out, "prepared")
    frames = reader.read(SCENE, "views/frame")
    assert all(f % 2 == 0 for f in frames)
    images = read_view_images(reader, SCENE)
    assert images.shape == (len(frames), 90, 120, 3) and images.dtype == np.uint8
    assert reader.attrs["config_hash"] and reader.attrs["label_map"]


@pytest.mark.parametrize("codec", ["png", "raw"])
def test_lossless_codecs_round_trip(dataset, tmp_path, codec):
    cfg = _config(dataset, image_codec=codec)
    out = tmp_path / f"{codec}.zarr"
    prepare_shard(cfg, "train-000", "train", [SCENE], out)
    jpeg_out = tmp_path / "jpeg.zarr"
    prepare_shard(_config(dataset, image_codec="jpeg", jpeg_quality=100), "train-000", "train", [SCENE], jpeg_out)
    lossless = read_view_images(StoreReader(out), SCENE)
    assert lossless.shape[1:] == (90, 120, 3)
    jpeg = read_view_images(StoreReader(jpeg_out), SCENE)
    assert np.abs(lossless.astype(int) - jpeg.astype(int)).mean() < 3.0


def _first_frame(root, kept=True):
    frames = make_adapter(_config(root)).load(SCENE, "train").arrays["views/frame"]
    return int(frames[1])


@pytest.mark.parametrize(
    "damage, relpath, message",
    [
        ("truncate_jpeg", "color/{f}.jpg", "cannot decode image"),
        ("small_depth", "depth/{f}.png", "depth image is 40x30"),
        ("missing_pose", "pose/{f}.txt", "file not found"),
        ("garbled_pose", "pose/{f}.txt", "expected 4x4"),
        ("empty_ply", f"{SCENE}_vh_clean_2.ply", "cannot parse ply"),
        ("no_vertex_ply", f"{SCENE}_vh_clean_2.ply", "no vertices"),
        ("label_count", f"{SCENE}_vh_clean_2.labels.ply", "vertices, the mesh"),
        ("rgb_depth", "depth/{f}.png", "single-channel"),
    ],
)
def test_bad_files_are_named(dataset, tmp_path, damage, relpath, message):
    from PIL import Image
    from plyfile import PlyData, PlyElement

    root = _copy(dataset, tmp_path)
    frame = _first_frame(root)
    path = root / "scans" / SCENE / relpath.format(f=frame)
    if damage == "truncate_jpeg":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif damage == "small_depth":
        Image.fromarray(np.zeros((30, 40), np.uint16)).save(path)
    elif damage == "missing_pose":
        path.unlink()
    elif damage == "garbled_pose":
        path.write_text("1 0 0\n0 1 0\n")
    elif damage == "empty_ply":
        path.write_bytes(b"")
    elif damage == "no_vertex_ply":
        empty = np.zeros(0, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
        PlyData([PlyElement.describe(empty, "vertex")]).write(str(path))
    elif damage == "label_count":
        ply = PlyData.read(str(path))
        vertex = np.array(ply["vertex"].data[:-5])
        PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))
    elif damage == "rgb_depth":
        Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(path)
    out = tmp_path / "out.zarr"
    with pytest.raises(InputFileError) as err:
        prepare_shard(_config(root), "train-000", "train", [SCENE], out)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out.zarr.partial*"))


def test_wrong_intrinsics_for_image_size_are_caught(dataset, tmp_path):
    root = _copy(dataset, tmp_path)
    path = root / "scans" / SCENE / "intrinsic" / "intrinsic_depth.txt"
    k = np.loadtxt(path)
    k[0, 2] *= 4  # principal point far outside the centre: intrinsics of another sensor size
    np.savetxt(path, k)
    with pytest.raises(InputFileError, match="principal point"):
        make_adapter(_config(root)).load(SCENE, "train")


def test_missing_label_frame_is_counted_not_fatal(dataset, tmp_path):
    root = _copy(dataset, tmp_path)
    frame = _first_frame(root)
    (root / "scans" / SCENE / "label-filt" / f"{frame}.png").unlink()
    sample = make_adapter(_config(root)).load(SCENE, "train")
    assert sample.attrs["skipped_views"]["missing_label"] == [frame]
    index = sample.arrays["views/frame"].tolist().index(frame)
    assert not sample.arrays["views/label"][index].any()


def test_missing_split_file_and_scene(tmp_path):
    adapter = make_adapter(_config(tmp_path))
    with pytest.raises(InputFileError, match="scannetv2_train.txt: split file not found"):
        adapter.list_samples("train")
    with pytest.raises(InputFileError, match="scene folder not found"):
        adapter.load("scene0999_00", "train")
