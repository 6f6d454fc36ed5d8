"""The simulated SAM backend: zero noise = ground-truth instances; noise model; determinism."""

import numpy as np
import pytest
from tests.sam_fixtures import write_prepared

from pipeline.errors import UserError
from pipeline.stores import StoreReader, StoreWriter
from pipeline.sam.features import mean_cosine
from pipeline.stores.sam_codecs import SamFeatureReader, decode_masks
from pipeline.sam.simulated import dilate, erode, simulate_masks, view_rng
from pipeline.sam.stage import run_sam_stage

SAMPLES_SIM = {"scene0000_00": [10, 11], "scene0001_00": [12]}
ISOLATE = {"merge_prob": 0.0, "split_prob": 0.0, "jitter_px": 0, "spurious_per_view": 0.0, "min_area": 0, "feature_noise": 0.0}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("prep") / "train-000.zarr", SAMPLES_SIM, h=240, w=320)


def _run(prepared, out, **simulated):
    options = {"backend": "simulated", "simulated": simulated}
    nesting = simulated.pop("nesting_order", None)
    if nesting:
        options["nesting_order"] = nesting
    run_sam_stage(prepared, out, options)
    return StoreReader(out, "sam")


def _view_masks(reader, sid, v, shape):
    off = reader.read(sid, "views/mask_offsets")
    return decode_masks(reader.read(sid, "masks/rle"), reader.read(sid, "masks/rle_offsets"), range(off[v], off[v + 1]), shape)


def test_zero_noise_masks_are_the_ground_truth_instances(prepared, tmp_path):
    reader = _run(prepared, tmp_path / "sam.zarr", zero_noise=True)
    prep = StoreReader(prepared, "prepared")
    assert reader.attrs["backend"] == "simulated"
    for sid in prep.samples:
        instance = prep.read(sid, "views/instance")
        segments = reader.read(sid, "views/segments")
        for v in range(instance.shape[0]):
            masks = _view_masks(reader, sid, v, instance.shape[1:])
            ids = [i for i in np.unique(instance[v]) if i > 0]
            want = {np.packbits(instance[v] == i).tobytes() for i in ids}
            got = {np.packbits(m).tobytes() for m in masks}
            assert len(masks) == len(ids) and got == want
            # the segment map is the instance map, renumbered; no instance = no segment
            assert np.array_equal(segments[v] >= 0, instance[v] > 0)
            pairs = {(int(a), int(b)) for a, b in zip(instance[v].ravel(), segments[v].ravel())}
            assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
        off = reader.read(sid, "views/mask_offsets")
        assert np.all(reader.read(sid, "masks/predicted_iou")[: off[-1]] == 1.0)


def test_zero_noise_features_separate_instances(prepared, tmp_path):
    _run(prepared, tmp_path / "sam.zarr", zero_noise=True)
    feats = SamFeatureReader(tmp_path / "sam.zarr").view("scene0000_00", 0)  # (48, 64, 256) for a 4:3 view
    assert feats.shape == (48, 64, 256)
    prep = StoreReader(prepared, "prepared")
    instance = prep.read("scene0000_00", "views/instance", 0)
    # cells fully inside one instance (5x5 pixel cells at 320x240)
    cells = instance.reshape(48, 5, 64, 5).transpose(0, 2, 1, 3).reshape(48, 64, 25)
    pure = (cells == cells[..., :1]).all(-1)
    owner = cells[..., 0]
    ids = [i for i in np.unique(owner[pure]) if i > 0][:2]
    a = feats[pure & (owner == ids[0])]
    b = feats[pure & (owner == ids[1])]
    assert mean_cosine(a, np.repeat(a[:1], len(a), 0)) > 0.99
    assert mean_cosine(a[: min(len(a), len(b))], b[: min(len(a), len(b))]) < 0.8


def test_deterministic_by_seed(prepared, tmp_path):
    r1 = _run(prepared, tmp_path / "a.zarr")
    r2 = _run(prepared, tmp_path / "b.zarr")
    for name in ("masks/rle", "views/segments", "views/features"):
        np.testing.assert_array_equal(r1.read("scene0000_00", name), r2.read("scene0000_00", name))
    run_sam_stage(prepared, tmp_path / "c.zarr", {"backend": "simulated", "seed": 1})
    r3 = StoreReader(tmp_path / "c.zarr", "sam")
    assert not np.array_equal(r1.read("scene0000_00", "views/features"), r3.read("scene0000_00", "views/features"))


def test_parts_are_nested_and_nesting_order_applies(prepared, tmp_path):
    prep = StoreReader(prepared, "prepared")
    instance = prep.read("scene0000_00", "views/instance", 0)
    part = _run(prepared, tmp_path / "p.zarr", **{**ISOLATE, "split_prob": 1.0, "drop_object_prob": 0.0})
    masks = _view_masks(part, "scene0000_00", 0, instance.shape)
    ids = [i for i in np.unique(instance) if i > 0]
    assert len(masks) > len(ids)
    objects = {i: instance == i for i in ids}
    n_parts = 0
    for m in masks:
        owners = [i for i, obj in objects.items() if not (m & ~obj).any()]
        assert owners, "every mask lies inside one instance"
        n_parts += not any(np.array_equal(m, objects[i]) for i in owners)
    assert n_parts >= 2 * len(ids) - 1
    seg_part = part.read("scene0000_00", "views/segments", 0)
    obj = _run(prepared, tmp_path / "o.zarr", **{**ISOLATE, "split_prob": 1.0, "drop_object_prob": 0.0, "nesting_order": "object"})
    seg_obj = obj.read("scene0000_00", "views/segments", 0)
    assert np.array_equal(seg_part >= 0, seg_obj >= 0)
    area = masks.sum(axis=(1, 2))
    covered = seg_part >= 0
    assert np.all(area[seg_part[covered]] <= area[seg_obj[covered]]) and np.any(area[seg_part[covered]] < area[seg_obj[covered]])


def test_merges_spurious_and_jitter(prepared, tmp_path):
    prep = StoreReader(prepared, "prepared")
    instance = prep.read("scene0000_00", "views/instance", 0)
    ids = [i for i in np.unique(instance) if i > 0]
    merged = _view_masks(_run(prepared, tmp_path / "m.zarr", **{**ISOLATE, "merge_prob": 1.0}), "scene0000_00", 0, instance.shape)
    assert len(merged) < len(ids)
    assert any(len(np.unique(instance[m])) > 1 for m in merged), "a merged mask spans several instances"
    spur = _view_masks(_run(prepared, tmp_path / "s.zarr", **{**ISOLATE, "spurious_per_view": 6.0}), "scene0000_00", 0, instance.shape)
    assert len(spur) > len(ids)
    jit = _view_masks(_run(prepared, tmp_path / "j.zarr", **{**ISOLATE, "jitter_px": 3}), "scene0000_00", 0, instance.shape)
    assert len(jit) == len(ids)
    for m in jit:
        i = np.bincount(instance[m]).argmax()
        iou = (m & (instance == i)).sum() / (m | (instance == i)).sum()
        assert 0.5 < iou < 1.0 or (instance == i).sum() < 50


def test_noise_free_defaults_differ_from_zero_noise(prepared, tmp_path):
    noisy = _run(prepared, tmp_path / "n.zarr")
    clean = _run(prepared, tmp_path / "c.zarr", zero_noise=True)
    assert noisy.attrs["simulated"]["jitter_px"] == 2 and clean.attrs["simulated"]["jitter_px"] == 0
    fn, fc = SamFeatureReader(tmp_path / "n.zarr").view("scene0000_00", 0), SamFeatureReader(tmp_path / "c.zarr").view("scene0000_00", 0)
    assert 0.8 < mean_cosine(fn, fc) < 0.995


def test_needs_ground_truth_instances(tmp_path):
    arrays = {
        "views/frame": np.zeros(1, np.int64),
        "views/pose": np.eye(4)[None],
        "views/image_size": np.array([[32, 24]], np.int32),
        "views/intrinsics": np.eye(3)[None],
        "views/native_size": np.array([[32, 24]], np.int32),
        "views/native_intrinsics": np.eye(3)[None],
        "views/image": np.zeros((1, 24, 32, 3), np.uint8),
    }
    with StoreWriter(tmp_path / "p.zarr", "prepared") as writer:
        writer.add_sample("s", arrays, attrs={"image_codec": "raw"})
    with pytest.raises(UserError, match="views/instance"):
        run_sam_stage(tmp_path / "p.zarr", tmp_path / "sam.zarr", {"backend": "simulated"})
    assert not (tmp_path / "sam.zarr").exists()


def test_morphology_helpers():
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    assert dilate(m, 2).sum() == 25 and erode(dilate(m, 2), 2).sum() == 1
    full = np.ones((5, 5), bool)
    assert erode(full, 1).sum() == 9, "outside the image is background"
    rng = view_rng(0, "s", 0)
    inst = np.zeros((20, 20), np.uint16)
    inst[2:8, 2:8] = 1
    vm = simulate_masks(inst, {**ISOLATE, "zero_noise": True, "drop_object_prob": 0, "max_parts": 3, "class_weight": 0.5}, rng, "part")
    assert len(vm) == 1 and vm.area[0] == 36
