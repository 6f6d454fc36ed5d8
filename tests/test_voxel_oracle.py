"""bench/voxel_oracle.py: the voxelisation upper bound quoted in docs/benchmarks.md."""

import numpy as np

from bench.voxel_oracle import oracle_labels


def test_each_voxel_predicts_the_majority_ground_truth_of_its_points():
    xyz = np.array([[0.01, 0, 0], [0.02, 0, 0], [0.03, 0, 0], [0.25, 0, 0], [0.26, 0, 0]], np.float32)
    gt = np.array([3, 3, 5, 255, 7])  # voxel 0: two 3s, one 5; voxel 2: one unlabelled, one 7
    np.testing.assert_array_equal(oracle_labels(xyz, gt, 0.1, 20), [3, 3, 3, 7, 7])
    # finer voxels separate the points: each labelled point predicts its own class
    fine = oracle_labels(xyz, gt, 0.005, 20)
    np.testing.assert_array_equal(fine[gt != 255], gt[gt != 255])


def test_the_oracle_uses_the_networks_voxels_and_their_range_check():
    import pytest

    xyz = np.array([[0.0, 0, 0], [0.0, 0, 9000.0]], np.float32)
    with pytest.raises(ValueError, match="along z"):
        oracle_labels(xyz, np.array([1, 2]), 0.05, 20)
