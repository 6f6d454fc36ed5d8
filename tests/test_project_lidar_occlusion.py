"""project.lidar_occlusion: depth buffers splatted from the sample's own points hide the points a
camera cannot see (lidar-camera parallax), and keep the background next to occluders' edges."""

import numpy as np
import pytest

from pipeline.camera import scale_intrinsics
from pipeline.errors import UserError
from pipeline.project.lidar_occlusion import LidarOcclusion, _rings, drop_lidar_occluded, hidden_pairs, splat
from pipeline.project.reference import Cameras
from pipeline.project.runner import visible_pairs
from pipeline.stores import StoreReader, StoreWriter
from tests.test_project_lidar_scene import camera_sees, label_maps, make_lidar_scene

K = np.array([[200.0, 0, 99.5], [0, 200.0, 59.5], [0, 0, 1]])  # 200x120 label maps, camera at the origin looking +z


def test_splat_matches_brute_force():
    """Every buffer pixel holds the smallest z of the discs covering it, per cone (the pixel's
    position relative to the point decides the cone; diagonals count for both)."""
    rng = np.random.default_rng(0)
    size, max_pixels, pad = (30, 20), 5.5, 10
    n = 300
    x, y = rng.integers(-6, 36, n), rng.integers(-6, 26, n)
    z, r = rng.uniform(1, 50, n), rng.uniform(0, max_pixels, n)
    r[:20] = np.floor(r[:20])  # radii on ring boundaries
    wp, hp = size[0] + 2 * pad, size[1] + 2 * pad
    buffers = np.full((5, wp * hp), np.inf)
    touch = (x + r >= 0) & (x - r <= size[0] - 1) & (y + r >= 0) & (y - r <= size[1] - 1)
    splat(buffers, size, pad, x[touch], y[touch], z[touch], r[touch], _rings(max_pixels), chunk=97)
    got = buffers.reshape(5, hp, wp)[:, pad : pad + size[1], pad : pad + size[0]]
    px, py = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
    dx, dy = px[None] - x[:, None, None], py[None] - y[:, None, None]  # pixel relative to point: (n, H, W)
    inside = dx**2 + dy**2 <= r[:, None, None] ** 2
    cones = [(dx == 0) & (dy == 0), (dy > 0) & (dy >= abs(dx)), (dy < 0) & (-dy >= abs(dx)),
             (dx > 0) & (dx >= abs(dy)), (dx < 0) & (-dx >= abs(dy))]
    for b, cone in enumerate(cones):
        want = np.where(inside & cone, z[:, None, None], np.inf).min(axis=0)
        np.testing.assert_array_equal(got[b], want)
    assert np.isfinite(got[1:]).mean() > 0.5 and np.isfinite(got[0]).sum() > 50  # the test is not vacuous


def _wall_scene(rows: float = 0.02, cols: float = 0.01):
    """A 2 m x 1 m wall at 5 m and a wide background plane at 10 m, sampled in lidar-like rows
    (``rows`` and ``cols`` radians apart, as seen from the camera at the origin)."""
    a = np.arange(-0.45, 0.45, cols)
    e = np.arange(-0.28, 0.28, rows)
    ang = np.stack(np.meshgrid(a, e), axis=-1).reshape(-1, 2)
    bg = np.column_stack([10 * np.tan(ang[:, 0]), 10 * np.tan(ang[:, 1]), np.full(len(ang), 10.0)])
    aw = np.arange(-0.19, 0.19 + 1e-9, cols)
    ew = np.arange(-0.09, 0.09 + 1e-9, rows)
    angw = np.stack(np.meshgrid(aw, ew), axis=-1).reshape(-1, 2)
    wall = np.column_stack([5 * np.tan(angw[:, 0]), 5 * np.tan(angw[:, 1]), np.full(len(angw), 5.0)])
    return np.concatenate([wall, bg]).astype(np.float32), len(wall)


def _cams():
    return Cameras(np.eye(4)[None], K[None], (200, 120), min_depth=1.0, native_k=K[None], native_size=np.array([[200, 120]]))


def test_a_wall_hides_the_background_behind_it_and_not_beside_it():
    points, n_wall = _wall_scene()
    cams = _cams()
    pairs = visible_pairs(points, cams, device="cpu")
    occ = LidarOcclusion(True, scale=1.0, radius=0.25, max_pixels=16)
    hidden = hidden_pairs(points, cams, pairs.view_offsets, pairs.point, pairs.pixel, occ)
    p = points[pairs.point].astype(np.float64)
    ax, ay = np.abs(p[:, 0] / p[:, 2]), np.abs(p[:, 1] / p[:, 2])  # the wall spans |x/z| <= 0.2, |y/z| <= 0.1 (+ a row)
    wall = pairs.point < n_wall
    behind = ~wall & (ax < 0.19) & (ay < 0.09)
    beside = ~wall & ((ax > 0.22) | (ay > 0.12))  # more than ~4 label pixels outside the wall's outline
    assert not hidden[wall].any()
    assert hidden[behind].mean() == 1.0
    assert not hidden[beside].any()
    # the plain buffer (any one cone) also hides the background within a splat radius of the outline
    plain = hidden_pairs(points, cams, pairs.view_offsets, pairs.point, pairs.pixel, LidarOcclusion(True, scale=1.0, sides=1, max_pixels=16))
    assert plain[beside].sum() > 20 and not plain[wall].any()
    # a margin larger than the 5 m gap: nothing is hidden
    far = hidden_pairs(points, cams, pairs.view_offsets, pairs.point, pairs.pixel, LidarOcclusion(True, absolute=4.0, relative=0.1))
    assert not far.any()
    # the chunk size does not change the result; the default half-resolution buffer agrees here
    again = hidden_pairs(points, cams, pairs.view_offsets, pairs.point, pairs.pixel, occ, chunk=1000)
    np.testing.assert_array_equal(again, hidden)
    half = hidden_pairs(points, cams, pairs.view_offsets, pairs.point, pairs.pixel, LidarOcclusion(True))
    assert half[behind].mean() > 0.98 and not half[wall].any() and not half[beside].any()
    offsets, point, pixel, removed = drop_lidar_occluded(points, cams, pairs.view_offsets, pairs.point, pairs.pixel, occ)
    assert removed == hidden.sum() and offsets[-1] == point.size == pairs.point.size - removed
    np.testing.assert_array_equal(point, pairs.point[~hidden])


def test_the_street_parallax_is_mostly_removed():
    """On the synthetic street (nuScenes' rig, 1600x900 native, labels 400x225 here), the test
    removes most pairs the camera cannot see and almost none it sees."""
    scene = make_lidar_scene(seed=2)
    label = (400, 225)
    maps, label_k = label_maps(scene, label)
    cams = Cameras(scene.poses, label_k, label, min_depth=1.0, native_k=scene.native_k, native_size=scene.native_size)
    pairs = visible_pairs(scene.points, cams, device="cpu")
    view = np.repeat(np.arange(6), np.diff(pairs.view_offsets))
    truly = np.concatenate([camera_sees(scene, v, pairs.view(v)[0]) for v in range(6)])
    right = maps[view, pairs.pixel // label[0], pairs.pixel % label[0]] == scene.label[pairs.point]
    assert right[truly].mean() > 0.99 and (~truly).mean() > 0.02 and right[~truly].mean() < 0.5
    hidden = hidden_pairs(scene.points, cams, pairs.view_offsets, pairs.point, pairs.pixel, LidarOcclusion(True))
    assert hidden[truly].mean() < 0.005
    assert hidden[~truly].mean() > 0.6
    assert 1 - right[~hidden].mean() < 0.5 * (1 - right.mean())  # wrong labels at least halved


def test_options_and_validation():
    with pytest.raises(ValueError, match="min_pixels"):
        LidarOcclusion(True, min_pixels=5, max_pixels=4)
    with pytest.raises(ValueError, match="sides"):
        LidarOcclusion(True, sides=5)
    with pytest.raises(ValueError, match="scale"):
        LidarOcclusion(True, scale=0.0)
    from pipeline.project.stage import project_options

    section = project_options({"lidar_occlusion": {"enabled": True, "splat": {"radius": 0.3}}})["lidar_occlusion"]
    assert LidarOcclusion.from_options(section) == LidarOcclusion(True, radius=0.3)
    assert LidarOcclusion.from_options(project_options({})["lidar_occlusion"]) == LidarOcclusion(True)  # on by default


def _write_stores(tmp_path, points, k, size):
    arrays = {
        "points/xyz": points,
        "views/frame": np.arange(1), "views/pose": np.eye(4)[None],
        "views/image_size": np.array([size], np.int32), "views/intrinsics": k[None],
        "views/native_size": np.array([size], np.int32), "views/native_intrinsics": k[None],
    }
    with StoreWriter(tmp_path / "prepared.zarr", "prepared", attrs={"shard": "train-000", "split": "train"}) as w:
        w.add_sample("lidar0", arrays)
    labels = np.zeros((1, size[1], size[0]), dtype=np.uint8)
    with StoreWriter(tmp_path / "clip.zarr", "clip") as w:
        w.add_sample("lidar0", {"views/label": labels, "views/confidence": np.ones(labels.shape, np.float16)})
    with StoreWriter(tmp_path / "refined.zarr", "refined") as w:
        w.add_sample("lidar0", {"views/label": labels})


def test_stage_option(tmp_path):
    from pipeline.project.stage import project_shard

    points, n_wall = _wall_scene()
    _write_stores(tmp_path, points, K, (200, 120))
    stores = [tmp_path / f"{name}.zarr" for name in ("prepared", "clip", "refined")]
    off = StoreReader(project_shard(*stores, tmp_path / "off.zarr", {"lidar_occlusion": {"enabled": False}}), "points")
    on = StoreReader(project_shard(*stores, tmp_path / "on.zarr", {"lidar_occlusion": {"enabled": True}}), "points")
    removed = on.sample_attrs("lidar0")["projection_lidar_occlusion_removed"]
    assert removed > 100 and "projection_lidar_occlusion_removed" not in off.sample_attrs("lidar0")
    assert off.read("lidar0", "pairs/point").size - on.read("lidar0", "pairs/point").size == removed
    assert on.read("lidar0", "points/seen")[:n_wall].all()
    with pytest.raises(UserError, match="lidar_occlusion"):
        project_shard(*stores, tmp_path / "bad.zarr", {"lidar_occlusion": {"enabled": True, "splat": {"min_pixels": 9, "max_pixels": 8}}})
