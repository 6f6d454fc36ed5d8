"""Which points the top-down render draws (pipeline.figures.drawn_points), and that it renders."""

from __future__ import annotations

import numpy as np

from pipeline.figures import drawn_points, points_figure
from pipeline.vocab import IGNORE, benchmark


def test_unlabelled_points_above_are_left_out_when_there_is_ground_truth():
    # floor at z = 0 (labelled), a ceiling at z = 3 (no benchmark class) right above it
    xyz = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 3], [1, 0, 3], [2, 0, 1]], np.float32)
    truth = np.array([1, 1, IGNORE, IGNORE, 5], np.uint8)
    assert drawn_points(xyz, truth, 100).tolist() == [0, 1, 4]  # lowest first, ceiling gone
    assert drawn_points(xyz, None, 100).tolist() == [0, 1, 4, 2, 3]  # no ground truth: everything
    assert drawn_points(xyz, np.full(5, IGNORE, np.uint8), 100).tolist() == [0, 1, 4, 2, 3]  # nothing scored: everything


def test_subsampling_keeps_about_max_points():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(1000, 3)).astype(np.float32)
    truth = np.where(rng.random(1000) < 0.5, 2, IGNORE).astype(np.uint8)
    pick = drawn_points(xyz, truth, 100)
    assert 50 < pick.size <= 100 and np.all(truth[pick] != IGNORE)  # every k-th of the labelled ones
    assert np.all(np.diff(xyz[pick, 2]) >= 0)


def test_points_figure_writes_a_png(tmp_path):
    xyz = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 3]], np.float32)
    scene = {"title": "s", "xyz": xyz, "pred": np.array([1, 2, 0], np.uint8), "truth": np.array([1, 1, IGNORE], np.uint8)}
    points_figure([scene], benchmark("scannet20"), tmp_path / "points.png")
    assert (tmp_path / "points.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
