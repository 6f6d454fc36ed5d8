"""Projection core: float32 + guard bands decide exactly as the float64 rule, on CPU (and CUDA if present)."""

import numpy as np
import pytest

from pipeline.camera import scale_intrinsics
from pipeline.project.blocks import cull_blocks, make_blocks
from pipeline.project.reference import Cameras, Occlusion, reference_pairs
from pipeline.project.runner import visible_pairs
from tests.projection_scene import look_at, make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(n_points=12000, n_views=8, depth_size=(96, 72), color_size=(194, 145), n_furniture=6, seed=3)


def _cams(scene, label_size=(160, 120), **kwargs):
    n = scene.poses.shape[0]
    label_k = scale_intrinsics(scene.color_k, scene.color_size, label_size)
    kwargs.setdefault("occlusion", Occlusion())
    return Cameras(scene.poses, np.repeat(label_k[None], n, 0), label_size, scene.depth, np.repeat(scene.depth_k[None], n, 0), 1000.0, **kwargs)


def _all_pairs(points, cams):
    view, point = np.meshgrid(np.arange(cams.n_views), np.arange(points.shape[0]), indexing="ij")
    view, point = view.ravel(), point.ravel()
    visible, pixel = reference_pairs(points, view, point, cams)
    return set(zip(view[visible].tolist(), point[visible].tolist(), pixel[visible].tolist()))


def _as_set(pairs):
    view = np.repeat(np.arange(pairs.view_offsets.size - 1), np.diff(pairs.view_offsets))
    return set(zip(view.tolist(), pairs.point.tolist(), pairs.pixel.tolist()))


@pytest.mark.parametrize(
    "chunk_pairs,block_size,threads,occlusion",
    [
        (1 << 10, 8, 1, Occlusion("absolute", 0.01)),
        (1 << 14, 128, 2, Occlusion("relative", 0.02, footprint="nearest", border=0)),
        (1 << 20, 1024, 1, Occlusion("relative", 0.01, border=8)),
    ],
)
def test_identical_to_the_float64_rule(scene, chunk_pairs, block_size, threads, occlusion):
    cams = _cams(scene, occlusion=occlusion)
    expected = _all_pairs(scene.points, cams)
    pairs = visible_pairs(scene.points, cams, chunk_pairs=chunk_pairs, block_size=block_size, threads=threads)
    assert len(expected) > 1000
    assert _as_set(pairs) == expected
    assert pairs.stats["pairs"] == len(expected)
    assert np.all(np.diff(pairs.view_offsets) >= 0) and pairs.view_offsets[-1] == pairs.point.size


def test_absolute_threshold_and_no_depth_mode(scene):
    cams = _cams(scene, occlusion=Occlusion("absolute", 0.03, footprint="nearest"))
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


@pytest.mark.parametrize("footprint", ["nearest", "bilinear"])
def test_points_on_pixel_boundaries_are_decided_by_the_float64_rule(footprint):
    """Points placed within 1e-7 px of pixel edges, image edges and the occlusion margins."""
    rng = np.random.default_rng(0)
    size = (64, 48)
    k = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    pose = look_at(np.array([0.3, -0.2, 1.4]), np.array([0.5, 3.0, 1.0]))
    depth_m = 2.0
    n = 4000
    z = np.full(n, depth_m)
    # label pixels change at half-integers of u, bilinear depth footprints at integers
    u = rng.integers(-1, size[0] + 1, n) - rng.choice([0.0, 0.5], n) + rng.choice([-1e-7, 0.0, 1e-7], n)
    v = rng.integers(-1, size[1] + 1, n) - rng.choice([0.0, 0.5], n) + rng.choice([-1e-7, 0.0, 1e-7], n)
    thr = 0.05
    z[: n // 4] = depth_m / (1 - thr) * (1 + rng.choice([-1e-7, 0.0, 1e-7], n // 4))  # on z (1 - thr) = d
    z[n // 4 : n // 2] = depth_m / (1 + thr) * (1 + rng.choice([-1e-7, 0.0, 1e-7], n // 4))  # on d = z (1 + thr)
    cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=1)
    points = (cam @ pose[:3, :3].T + pose[:3, 3]).astype(np.float32)
    depth = np.full((1, size[1], size[0]), int(depth_m * 1000), dtype=np.uint16)
    occ = Occlusion("relative", thr, footprint=footprint, border=0)
    cams = Cameras(pose[None], k[None], size, depth, k[None], 1000.0, occ)
    pairs = visible_pairs(points, cams, chunk_pairs=1024, block_size=16)
    assert _as_set(pairs) == _all_pairs(points, cams)
    assert pairs.stats["uncertain_pairs"] > 1000  # the guard bands caught the boundary cases
    fast = visible_pairs(points, cams, chunk_pairs=1024, block_size=16, exact=False)
    assert _as_set(fast) != _all_pairs(points, cams)  # float32 alone gets some of them wrong


def test_rounding_rule_depth_holes_and_occluders():
    size = (10, 8)
    k = np.array([[10.0, 0, 4.5], [0, 10.0, 3.5], [0, 0, 1]])
    pose = np.eye(4)
    # u = 10 x / z + 4.5, v = 10 y / z + 3.5; x = 0 -> u = 4.5 -> label pixel floor(5.0) = 5
    points = np.array([[0.0, 0.0, 2.0], [-0.02, 0.0, 2.0], [0.2, 0.1, 2.0], [0.1, 0.1, 4.0]], dtype=np.float32)
    depth = np.full((1, 8, 10), 2000, dtype=np.uint16)
    depth[0, 4:6, 6:8] = 0  # holes: point 2 projects to (5.5, 4.0): nearest (6, 4), 2x2 footprint cols 5-6, rows 4-5
    nearest = Occlusion("absolute", 0.01, footprint="nearest", border=0)
    got = dict(zip(*(a.tolist() for a in visible_pairs(points, Cameras(pose[None], k[None], size, depth, k[None], 1000.0, nearest)).view(0))))
    # point 0: row floor(3.5 + 0.5) = 4; point 1: u = 4.4 -> col 4; 2 falls in a hole; 3 lies behind the 2 m surface
    assert got == {0: 4 * 10 + 5, 1: 4 * 10 + 4}
    bilinear = Occlusion("absolute", 0.01, footprint="bilinear", border=0)
    got = dict(zip(*(a.tolist() for a in visible_pairs(points, Cameras(pose[None], k[None], size, depth, k[None], 1000.0, bilinear)).view(0))))
    assert got == {0: 45, 1: 44, 2: 4 * 10 + 6}  # point 2: footprint pixels (5, 4) and (5, 5) still measure 2 m


def test_footprint_brackets_slanted_surfaces_and_border():
    size = (8, 6)
    k = np.array([[8.0, 0, 3.5], [0, 8.0, 2.5], [0, 0, 1]])
    # depth rises 10 cm per column: a point between two columns lies between their depths
    cols = 2.0 + 0.1 * np.arange(size[0])
    depth = np.tile(np.round(cols * 1000).astype(np.uint16), (size[1], 1))[None]
    u = 3.5  # between columns 3 (2.3 m) and 4 (2.4 m)
    z = 2.35
    point = np.array([[(u - 3.5) / 8.0 * z, 0.0, z]], dtype=np.float32)
    tight = Occlusion("absolute", 0.005, footprint="bilinear", border=0)
    near = Occlusion("absolute", 0.005, footprint="nearest", border=0)
    assert visible_pairs(point, Cameras(np.eye(4)[None], k[None], size, depth, k[None], 1000.0, tight)).point.size == 1
    assert visible_pairs(point, Cameras(np.eye(4)[None], k[None], size, depth, k[None], 1000.0, near)).point.size == 0
    # behind the surface by more than the tolerance: occluded with either footprint
    behind = point * np.float32(2.5 / 2.35)
    assert visible_pairs(behind, Cameras(np.eye(4)[None], k[None], size, depth, k[None], 1000.0, tight)).point.size == 0
    # a depth image narrower than the label map: the border reads its edge column
    narrow_k = np.array([[8.0, 0, 2.5], [0, 8.0, 2.5], [0, 0, 1]])
    edge = np.full((1, 6, 6), 3000, dtype=np.uint16)
    p = np.array([[(7.0 - 3.5) / 8.0 * 3.0, 0.0, 3.0]], dtype=np.float32)  # label col 7, depth col 6 (outside)
    for border, expected in ((0, 0), (2, 1)):
        occ = Occlusion("absolute", 0.01, footprint="bilinear", border=border)
        assert visible_pairs(p, Cameras(np.eye(4)[None], k[None], size, edge, narrow_k[None], 1000.0, occ)).point.size == expected


def test_footprint_beyond_the_edge_extends_the_edge_slope():
    """The colour camera sees a little more than the depth camera: a point on a slanted wall that
    projects beyond the depth image is tested against the edge's depth carried on by the edge's
    slope; an edge on a discontinuity is read flat (no wild extrapolation)."""
    size = (12, 6)  # label map wider than the depth image
    k = np.array([[8.0, 0, 5.5], [0, 8.0, 2.5], [0, 0, 1]])
    narrow_k = np.array([[8.0, 0, 2.5], [0, 8.0, 2.5], [0, 0, 1]])  # depth image 6 wide: columns 0..5
    cols = 2.0 + 0.02 * np.arange(6)  # 2 cm per column (1 % of the depth: extended)
    depth = np.tile(np.round(cols * 1000).astype(np.uint16), (6, 1))[None]
    # a point at depth column 7.5 (2.5 columns beyond the last, 5; label column 11): wall depth 2.15 m
    u, z = 7.5, 2.0 + 0.02 * 7.5
    point = np.array([[(u - 2.5) / 8.0 * z, 0.0, z]], dtype=np.float32)
    occ = Occlusion("absolute", 0.005, footprint="bilinear", border=8)
    cams = Cameras(np.eye(4)[None], k[None], size, depth, narrow_k[None], 1000.0, occ)
    assert visible_pairs(point, cams).point.size == 1
    assert reference_pairs(point, np.zeros(1, int), np.zeros(1, int), cams)[0].all()
    flat = Cameras(np.eye(4)[None], k[None], size, depth, narrow_k[None], 1000.0, Occlusion("absolute", 0.005, border=8))
    behind = point * np.float32((z + 0.05) / z)  # 5 cm behind the extended wall: occluded
    assert visible_pairs(behind, flat).point.size == 0
    # the last column 30 cm in front of its neighbour (an occluder's edge): not extended, read flat
    jump = depth.copy()
    jump[0, :, 5] = 1800
    cams = Cameras(np.eye(4)[None], k[None], size, jump, narrow_k[None], 1000.0, occ)
    on_edge = np.array([[(u - 2.5) / 8.0 * 1.8, 0.0, 1.8]], dtype=np.float32)
    assert visible_pairs(point, cams).point.size == 0
    assert visible_pairs(on_edge, cams).point.size == 1
    # exact=False (float32 only) reads the edge flat: the slanted-wall point is lost there
    assert visible_pairs(point, Cameras(np.eye(4)[None], k[None], size, depth, narrow_k[None], 1000.0, occ), exact=False).point.size == 0


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
    with pytest.raises(ValueError, match="footprint"):
        Occlusion(footprint="3x3")


@pytest.mark.parametrize("occlusion", [Occlusion(), Occlusion("relative", 0.02, footprint="nearest", border=0)])
def test_torch_kernel_matches_numpy_kernel(scene, occlusion):
    """The torch backend (what runs on CUDA), here on the CPU, gives the same pairs and pixels."""
    cams = _cams(scene, occlusion=occlusion)
    expected = _as_set(visible_pairs(scene.points, cams, device="cpu"))
    assert _as_set(visible_pairs(scene.points, cams, device="torch-cpu", chunk_pairs=1 << 13)) == expected


def test_depths_beyond_32767_raw_units():
    """Raw depth above int16's range (read as int16 bits by the kernel) is still read right."""
    size = (8, 6)
    k = np.array([[8.0, 0, 3.5], [0, 8.0, 2.5], [0, 0, 1]])
    depth = np.full((1, 6, 8), 40000, dtype=np.uint16)  # 40 m in mm
    points = np.array([[0.0, 0.0, 40.0], [0.0, 0.0, 30.0]], dtype=np.float32)
    cams = Cameras(np.eye(4)[None], k[None], size, depth, k[None], 1000.0, Occlusion("absolute", 0.05))
    for device in ("cpu", "torch-cpu"):
        assert visible_pairs(points, cams, device=device).point.tolist() == [0]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(scene):
    cams = _cams(scene)
    assert _as_set(visible_pairs(scene.points, cams, device="cuda")) == _as_set(visible_pairs(scene.points, cams, device="cpu"))
