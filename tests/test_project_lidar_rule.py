"""Views without depth follow the nuScenes devkit's rule (z > min_depth, 1 < u < W - 1 and
1 < v < H - 1 in the native image, label pixel at label resolution), and the float32 kernel
decides exactly as the float64 rule on points placed right at those boundaries."""

import numpy as np
import pytest

from pipeline.camera import scale_intrinsics
from pipeline.project.reference import Cameras, reference_pairs
from pipeline.project.runner import visible_pairs
from pipeline.stores import StoreReader, StoreWriter
from tests.projection_scene import look_at
from tests.test_project_geometry import _all_pairs, _as_set

NATIVE = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])


def _camera_points(pose, k, u, v, z):
    """World points (N, 3) float64 projecting to native (u, v) at depth z for ``pose``, ``k``."""
    cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


def test_the_devkit_rule_literally():
    """Strict z > 1 m, strict 1 < u < W - 1 in the native image, nearest pixel at label size."""
    label = (800, 450)
    cams = Cameras(np.eye(4)[None], scale_intrinsics(NATIVE, (1600, 900), label)[None], label, min_depth=1.0,
                   native_k=NATIVE[None], native_size=np.array([[1600, 900]]))
    u = np.array([1.0, 1.0 + 1e-9, 1598.9999999, 1599.0, 800.0, 800.0, 800.0, 800.0, 0.5])
    v = np.array([450.0, 450.0, 450.0, 450.0, 1.0, 1.0 + 1e-9, 898.0, 899.0, 450.0])
    z = np.full(u.size, 10.0)
    pts = np.concatenate([_camera_points(np.eye(4), NATIVE, u, v, z), [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0 + 1e-9]]])
    visible, pixel = reference_pairs(pts, np.zeros(len(pts), int), np.arange(len(pts)), cams)
    assert visible.tolist() == [False, True, True, False, False, True, True, False, False, False, True]
    # label pixel: native u = 1 + 1e-9 -> label u = (u + 0.5) / 2 - 0.5 = 0.25 -> column 0; v = 450 -> 224.75 -> row 225
    assert pixel[1] == 225 * 800 + 0 and pixel[2] == 225 * 800 + 799
    # native u = 0.5 has label column floor((0.5 + 0.5) / 2 - 0.5 + 0.5) = 0, inside the label map:
    # the label-map test alone (the old rule) kept it; the devkit's border does not
    assert np.floor(cams.label_k[0, 0, 0] * pts[8, 0] / pts[8, 2] + cams.label_k[0, 0, 2] + 0.5) == 0


def _border_scene(seed: int, n_views: int = 4, n: int = 6000):
    """Views with nuScenes-like native images of two sizes, labels at 800x450, and points placed
    within ~1e-7 of every boundary of the rule: native edges, z = min_depth, label pixel edges."""
    rng = np.random.default_rng(seed)
    label = (800, 450)
    natives = np.array([[1600, 900], [1280, 720]])[np.arange(n_views) % 2]
    poses, native_k, label_k, points = [], [], [], []
    for v in range(n_views):
        eye = rng.uniform(-20, 20, 3)
        pose = look_at(eye, eye + rng.normal(size=3))
        w, h = natives[v]
        k = NATIVE.copy()
        k[0, 2], k[1, 2] = w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20)
        kl = scale_intrinsics(k, (int(w), int(h)), label)
        jitter = rng.choice([-1e-7, 0.0, 1e-7], (n, 2))
        u = rng.uniform(-5, w + 5, n)
        vv = rng.uniform(-5, h + 5, n)
        kind = rng.integers(0, 5, n)
        u = np.where(kind == 0, rng.choice([1.0, w - 1.0], n) * (1 + jitter[:, 0]), u)  # native columns 1 and W - 1
        vv = np.where(kind == 1, rng.choice([1.0, h - 1.0], n) * (1 + jitter[:, 1]), vv)
        lu = rng.integers(-1, label[0] + 1, n) - 0.5 + jitter[:, 0]  # label pixel edges (half-integers)
        lv = rng.integers(-1, label[1] + 1, n) - 0.5 + jitter[:, 1]
        u = np.where(kind == 2, k[0, 0] * (lu - kl[0, 2]) / kl[0, 0] + k[0, 2], u)
        vv = np.where(kind == 2, k[1, 1] * (lv - kl[1, 2]) / kl[1, 1] + k[1, 2], vv)
        z = rng.uniform(0.5, 60, n)
        z = np.where(kind == 3, 1.0 * (1 + rng.choice([-1e-7, 0.0, 1e-7], n)), z)  # z = min_depth
        points.append(_camera_points(pose, k, u, vv, z))
        poses.append(pose)
        native_k.append(k)
        label_k.append(kl)
    cams = Cameras(np.stack(poses), np.stack(label_k), label, min_depth=1.0, native_k=np.stack(native_k), native_size=natives)
    return np.concatenate(points).astype(np.float32), cams


@pytest.mark.parametrize("seed,chunk_pairs,block_size,threads", [(0, 1 << 10, 16, 1), (1, 1 << 14, 128, 2), (2, 1 << 20, 512, 1)])
def test_kernel_decides_as_the_float64_rule_at_every_boundary(seed, chunk_pairs, block_size, threads):
    points, cams = _border_scene(seed)
    expected = _all_pairs(points, cams)
    pairs = visible_pairs(points, cams, chunk_pairs=chunk_pairs, block_size=block_size, threads=threads)
    assert len(expected) > 2000
    assert _as_set(pairs) == expected
    assert pairs.stats["uncertain_pairs"] > 500  # the guard bands caught the boundary cases


def test_float32_alone_gets_boundary_points_wrong_and_bands_are_tight():
    points, cams = _border_scene(3, n=20000)
    expected = _all_pairs(points, cams)
    assert _as_set(visible_pairs(points, cams, exact=False)) != expected
    from pipeline.project.blocks import make_blocks
    from pipeline.project.guards import guard_bands

    bands = guard_bands(make_blocks(points), cams)
    assert np.all(bands["native"] > 0) and np.all(bands["native"] < 0.05)  # pixels: few pairs re-decided
    assert "depth" not in bands and "occ" not in bands


def test_torch_kernel_matches_numpy_kernel_without_depth():
    points, cams = _border_scene(4, n=3000)
    expected = _as_set(visible_pairs(points, cams, device="cpu"))
    assert _as_set(visible_pairs(points, cams, device="torch-cpu", chunk_pairs=1 << 12)) == expected


def test_native_defaults_and_validation():
    k = scale_intrinsics(NATIVE, (1600, 900), (800, 450))[None]
    cams = Cameras(np.eye(4)[None], k, (800, 450))
    np.testing.assert_array_equal(cams.native_k, k)
    np.testing.assert_array_equal(cams.native_size, [[800, 450]])
    with pytest.raises(ValueError, match="native_k"):
        Cameras(np.eye(4)[None], k, (800, 450), native_k=np.stack([NATIVE, NATIVE]), native_size=[[1600, 900]])
    with pytest.raises(ValueError, match="native sizes"):
        Cameras(np.eye(4)[None], k, (800, 450), native_k=NATIVE[None], native_size=[[2, 900]])


def test_stage_uses_the_native_image(tmp_path):
    """Working images at half the native size: a point at native column 0.6 has a valid label
    pixel (column 0) but lies outside the devkit's border; one at column 1.6 is inside (column 1)."""
    from pipeline.project.stage import project_shard

    native_k = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    work_k = scale_intrinsics(native_k, (64, 48), (32, 24))
    z, y = 5.0, (20.0 - 23.5) / 50.0 * 5.0  # native row 20 -> label row floor((20 + 0.5) / 2 - 0.5 + 0.5) = 10
    points = np.array([[(u - 31.5) / 50.0 * z, y, z] for u in (0.6, 1.6, 30.0)] + [[0.0, 0.0, 1.0]], dtype=np.float32)
    arrays = {
        "points/xyz": points,
        "views/frame": np.arange(1), "views/pose": np.eye(4)[None],
        "views/image_size": np.array([[32, 24]], np.int32), "views/intrinsics": work_k[None],
        "views/native_size": np.array([[64, 48]], np.int32), "views/native_intrinsics": native_k[None],
    }
    with StoreWriter(tmp_path / "prepared.zarr", "prepared", attrs={"shard": "train-000", "split": "train"}) as w:
        w.add_sample("lidar0", arrays)
    labels = np.zeros((1, 24, 32), dtype=np.uint8)
    with StoreWriter(tmp_path / "clip.zarr", "clip") as w:
        w.add_sample("lidar0", {"views/label": labels, "views/confidence": np.ones(labels.shape, np.float16)})
    with StoreWriter(tmp_path / "refined.zarr", "refined") as w:
        w.add_sample("lidar0", {"views/label": labels})
    out = project_shard(tmp_path / "prepared.zarr", tmp_path / "clip.zarr", tmp_path / "refined.zarr", tmp_path / "points.zarr", {})
    store = StoreReader(out, "points")
    # point 3 lies at z = 1.0 exactly: not more than min_depth in front
    np.testing.assert_array_equal(store.read("lidar0", "points/seen"), [False, True, True, False])
    assert sorted(store.read("lidar0", "pairs/pixel").tolist()) == [10 * 32 + 1, 10 * 32 + 15]
