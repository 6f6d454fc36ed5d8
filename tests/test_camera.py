"""Camera maths: rigid inverse, projection conventions, intrinsics scaling and SAM's grid."""

import numpy as np
import pytest

from pipeline import camera


def _random_pose(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = rng.normal(size=3)
    return pose


def test_invert_rigid_and_validity():
    rng = np.random.default_rng(0)
    pose = _random_pose(rng)
    np.testing.assert_allclose(camera.invert_rigid(pose) @ pose, np.eye(4), atol=1e-12)
    assert camera.pose_is_valid(pose)
    bad = pose.copy()
    bad[0, 0] = -np.inf
    assert not camera.pose_is_valid(bad)
    assert not camera.pose_is_valid(np.full((4, 4), -np.inf))
    assert not camera.pose_is_valid(np.diag([2.0, 1, 1, 1]))


def test_projection_round_trip_with_depth():
    k = np.array([[500.0, 0, 319.5], [0, 510.0, 239.5], [0, 0, 1]])
    depth = np.full((480, 640), 2.0)
    pts = camera.backproject_depth(depth, k).reshape(-1, 3)
    uv, z = camera.project(pts.astype(np.float64), k)
    idx = camera.pixel_index(uv)
    grid = np.stack(np.meshgrid(np.arange(640), np.arange(480)), -1).reshape(-1, 2)
    np.testing.assert_array_equal(idx, grid)
    np.testing.assert_allclose(z, 2.0)


def test_scale_intrinsics_matches_pixel_edges():
    k = np.array([[1170.0, 0, 647.5], [0, 1167.0, 483.5], [0, 0, 1]])
    scaled = camera.scale_intrinsics(k, (1296, 968), (648, 484))
    # the image centre (continuous) stays the centre; focal lengths halve
    assert scaled[0, 0] == pytest.approx(585.0) and scaled[1, 1] == pytest.approx(583.5)
    assert scaled[0, 2] == pytest.approx((647.5 + 0.5) / 2 - 0.5)
    # a point projecting to the left edge of pixel 0 stays on the left edge of pixel 0
    x_edge = -0.5
    ray = (x_edge - k[0, 2]) / k[0, 0]
    assert ray * scaled[0, 0] + scaled[0, 2] == pytest.approx(-0.5)


@pytest.mark.parametrize("size, grid", [((640, 480), (48, 64)), ((1296, 968), (48, 64)), ((1600, 900), (36, 64)), ((480, 640), (64, 48))])
def test_sam_valid_grid(size, grid):
    assert camera.sam_valid_grid(size) == grid


def test_sam_cell_index_corners_and_monotone():
    for size in ((640, 480), (1600, 900)):
        rows, cols = camera.sam_valid_grid(size)
        xy = np.array([[0, 0], [size[0] - 1, size[1] - 1]])
        cells = camera.sam_cell_index(xy, size)
        assert cells.tolist() == [[0, 0], [cols - 1, rows - 1]]
        xs = np.arange(size[0])
        col = camera.sam_cell_index(np.stack([xs, np.zeros_like(xs)], -1), size)[:, 0]
        assert np.all(np.diff(col) >= 0) and set(col) == set(range(cols))
    # 640 px wide -> 1024: 10 input pixels per cell column, so x = 9 and x = 10 differ
    cells = camera.sam_cell_index(np.array([[9, 0], [10, 0]]), (640, 480))
    assert cells[:, 0].tolist() == [0, 1]
