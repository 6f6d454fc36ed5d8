"""Projection core: float32 + guard bands decide exactly as the float64 rule, on CPU (and CUDA if present)."""

import numpy as np
import pytest

from pipeline.camera import scale_intrinsics
from pipeline.project.geometry import (
    Cameras,
    Occlusion,
    cull_blocks,
    make_blocks,
    reference_pairs,
    visible_pairs,
)
from pipeline.project.synthetic import look_at, make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(n_points=12000, n_views=8, depth_size=(96, 72), color_size=(194, 145), n_furniture=6, seed=3)


def _cams(scene, label_size=(160, 120), **kwargs):
    n = scene.poses.shape[0]
    label_k = scale_intrinsics(scene.color_k, scene.color_size, label_size)
    kwargs.setdefault("occlusion", Occlusion("relative", 0.05))
    return Cameras(scene.poses, np.repeat(label_k[None], n, 0), label_size, scene.depth, np.repeat(scene.depth_k[None], n, 0), 1000.0, **kwargs)


def _all_pairs(points, cams):
    view, point = np.meshgrid(np.arange(cams.n_views), np.arange(points.shape[0]), indexing="ij")
    view, point = view.ravel(), point.ravel()
    visible, pixel = reference_pairs(points, view, point, cams)
    return set(zip(view[visible].tolist(), point[visible].tolist(), pixel[visible].tolist()))


def _as_set(pairs):
    view = np.repeat(np.arange(pairs.view_offsets.size - 1), np.diff(pairs.view_offsets))
    return set(zip(view.tolist(), pairs.point.tolist(), pairs.pixel.tolist()))


@pytest.mark.parametrize("chunk_pairs,block_size,threads", [(1 << 10, 8, 1), (1 << 14, 128, 2), (1 << 20, 1024, 1)])
def test_identical_to_the_float64_rule(scene, chunk_pairs, block_size, threads):
    cams = _cams(scene)
    expected = _all_pairs(scene.points, cams)
    pairs = visible_pairs(scene.points, cams, chunk_pairs=chunk_pairs, block_size=block_size, threads=threads)
    assert len(expected) > 1000
    assert _as_set(pairs) == expected
    assert pairs.stats["pairs"] == len(expected)
    assert np.all(np.diff(pairs.view_offsets) >= 0) and pairs.view_offsets[-1] == pairs.point.size


def test_absolute_threshold_and_no_depth_mode(scene):
    cams = _cams(scene, occlusion=Occlusion("absolute", 0.03))
    assert _as_set(visible_pairs(scene.points, cams)) == _all_pairs(scene.points, cams)
    n = scene.poses.shape[0]
    label_k = scale_intrinsics(scene.color_k, scene.color_size, (160, 120))
    lidar = Cameras(scene.poses, np.repeat(label_k[None], n, 0), (160, 120), min_depth=1.5)
    got = _as_set(visible_pairs(scene.points, lidar))
    assert got == _all_pairs(scene.points, lidar)
    # without occlusion test every in-frustum point beyond min_depth counts, so more than with depth
    assert len(got) > len(_all_pairs(scene.points, cams))
    view, point, _ = map(np.array, zip(*got))
    q = np.einsum("ni,nij->nj", scene.points[point] - scene.poses[view, :3, 3], scene.poses[view, :3, :3])
    assert q[:, 2].min() >= 1.5


def test_points_on_pixel_boundaries_are_decided_by_the_float64_rule():
    """Points placed within 1e-7 px of pixel edges, image edges and the occlusion threshold."""
    rng = np.random.default_rng(0)
    size = (64, 48)
    k = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    pose = look_at(np.array([0.3, -0.2, 1.4]), np.array([0.5, 3.0, 1.0]))
    depth_m = 2.0
    z = np.full(4000, depth_m)
    u = rng.integers(-1, size[0] + 1, 4000) - 0.5 + rng.choice([-1e-7, 0.0, 1e-7], 4000)
    v = rng.integers(-1, size[1] + 1, 4000) - 0.5 + rng.choice([-1e-7, 0.0, 1e-7], 4000)
    z[:1000] *= 1 + 0.05 + rng.choice([-1e-7, 0.0, 1e-7], 1000)  # on the relative threshold
    cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=1)
    points = (cam @ pose[:3, :3].T + pose[:3, 3]).astype(np.float32)
    depth = np.full((1, size[1], size[0]), int(depth_m * 1000), dtype=np.uint16)
    cams = Cameras(pose[None], k[None], size, depth, k[None], 1000.0, Occlusion("relative", 0.05))
    pairs = visible_pairs(points, cams, chunk_pairs=1024, block_size=16)
    assert _as_set(pairs) == _all_pairs(points, cams)
    assert pairs.stats["uncertain_pairs"] > 1000  # the guard bands caught the boundary cases
    fast = visible_pairs(points, cams, chunk_pairs=1024, block_size=16, exact=False)
    assert _as_set(fast) != _all_pairs(points, cams)  # float32 alone gets some of them wrong


def test_rounding_rule_depth_holes_and_occluders():
    size = (10, 8)
    k = np.array([[10.0, 0, 4.5], [0, 10.0, 3.5], [0, 0, 1]])
    pose = np.eye(4)
    # u = 10 * x / z + 4.5: x = 0.0 -> u = 4.5 -> pixel floor(5.0) = 5; x = -0.02 -> u = 4.4 -> 4
    points = np.array([[0.0, 0.0, 2.0], [-0.02, 0.0, 2.0], [0.2, 0.1, 2.0], [0.1, 0.1, 4.0]], dtype=np.float32)
    depth = np.full((1, 8, 10), 2000, dtype=np.uint16)
    depth[0, 4, 6] = 0  # a hole under point 2: u = 10 * 0.2 / 2 + 4.5 = 5.5 -> col 6, v = 4.0 -> row 4
    cams = Cameras(pose[None], k[None], size, depth, k[None], 1000.0, Occlusion("absolute", 0.01))
    pairs = visible_pairs(points, cams)
    point, pixel = pairs.view(0)
    got = dict(zip(point.tolist(), pixel.tolist()))
    # point 0: v = 3.5 -> row 4; point 1: col 4; point 2 falls in a depth hole; point 3 is behind the 2 m surface
    assert got == {0: 4 * 10 + 5, 1: 4 * 10 + 4}


def test_culling_is_conservative_and_effective(scene):
    cams = _cams(scene)
    blocks = make_blocks(scene.points, 64)
    rows_view, rows_block = cull_blocks(blocks, cams)
    kept = set(zip(rows_view.tolist(), rows_block.tolist()))
    block_of = np.empty(scene.points.shape[0], np.int64)
    valid = blocks.index >= 0
    block_of[blocks.index[valid]] = np.nonzero(valid)[0]
    for view, point, _ in _all_pairs(scene.points, cams):
        assert (view, int(block_of[point])) in kept
    assert len(kept) < 0.8 * cams.n_views * blocks.n_blocks


def test_camera_validation():
    k = np.eye(3)[None]
    with pytest.raises(ValueError, match="skew"):
        bad = np.array([[[10.0, 1.0, 4.0], [0, 10.0, 3.0], [0, 0, 1]]])
        Cameras(np.eye(4)[None], bad, (8, 6))
    with pytest.raises(ValueError, match="uint16"):
        Cameras(np.eye(4)[None], k, (8, 6), np.zeros((1, 6, 8), np.float32), k)
    with pytest.raises(ValueError, match="occlusion mode"):
        Occlusion("percent", 0.1)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(scene):
    cams = _cams(scene)
    assert _as_set(visible_pairs(scene.points, cams, device="cuda")) == _as_set(visible_pairs(scene.points, cams, device="cpu"))
