"""Real-world defects of ScanNet exports, injected on request.

* ``-inf`` poses: frames where tracking failed; all 16 values of ``pose/N.txt`` are ``-inf``
  (the images exist and are real).
* a missing frame: every file of that frame number is absent.
* depth holes: blobs of 0 (no return) in some depth images.

Drawn from their own random stream, so a scene with defects is otherwise byte-identical to the
same scene without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Defects:
    """Which frames carry which defect (frame numbers, sorted)."""

    inf_pose_frames: tuple[int, ...] = ()
    missing_frames: tuple[int, ...] = ()
    holed_depth_frames: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in self.__dict__.items()}


MIN_VIEWS_FOR_DEFECTS = 4


def draw_defects(rng: np.random.Generator, views: int) -> Defects:
    """1-2 ``-inf`` poses, one missing frame and depth holes in about a third of the rest.

    Frame 0 is never defective. Needs ``views >= MIN_VIEWS_FOR_DEFECTS``.
    """
    if views < MIN_VIEWS_FOR_DEFECTS:
        raise ValueError(f"defects need at least {MIN_VIEWS_FOR_DEFECTS} views, got {views}")
    n_inf = 2 if views >= 8 else 1
    picked = rng.choice(np.arange(1, views), size=n_inf + 1, replace=False)
    inf = tuple(sorted(int(f) for f in picked[:n_inf]))
    missing = (int(picked[n_inf]),)
    rest = [f for f in range(views) if f not in inf and f not in missing]
    n_holes = max(1, len(rest) // 3)
    holes = tuple(sorted(int(f) for f in rng.choice(rest, size=n_holes, replace=False)))
    return Defects(inf, missing, holes)


def punch_holes(rng: np.random.Generator, depth_mm: np.ndarray) -> np.ndarray:
    """Copy of ``depth_mm`` (H, W) with 1-3 elliptic blobs set to 0 (radii 4-15 % of the short side)."""
    out = depth_mm.copy()
    height, width = out.shape
    ys, xs = np.mgrid[0:height, 0:width]
    short = min(width, height)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.04, 0.15, 2) * short
        out[((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0] = 0
    return out
