"""Furniture as several boxes (parts) in an object frame.

Object frame: metres, origin at floor level under the centre of the footprint, x across the
object, y from its back (-y, the side that goes against a wall) to its front (+y), z up.
Sizes are drawn from plausible ranges. Faces entirely covered by another part or the floor are
marked hidden (never tessellated: no real mesh has vertices there); partly covered faces are
kept, less their covered part (:mod:`pipeline.demo.mesh`). Face numbers as in
:mod:`pipeline.demo.boxes` (0 -x, 1 +x, 2 -y, 3 +y, 4 bottom, 5 top).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

BOTTOM, TOP = 4, 5


@dataclass(frozen=True)
class Part:
    """One box of an object: centre and half extents in the object frame, hidden faces."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    hidden: tuple[int, ...] = ()


@dataclass(frozen=True)
class ObjectModel:
    """An object's parts, its nyu40 class and whether it stands against a wall."""

    kind: str
    nyu40: int
    parts: tuple[Part, ...]
    against_wall: bool

    def footprint(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of all parts in the object frame."""
        c = np.array([p.centre for p in self.parts])
        h = np.array([p.half for p in self.parts])
        lo, hi = (c - h).min(0), (c + h).max(0)
        return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])

    def height(self) -> float:
        return float(max(p.centre[2] + p.half[2] for p in self.parts))


def _box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, hidden: tuple[int, ...] = ()) -> Part:
    """Part from its extent in the object frame."""
    return Part(((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2), ((x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2), hidden)


def _legs(hw: float, hd: float, inset: float, size: float, height: float) -> list[Part]:
    """Four legs of cross-section ``size`` under a top of half extents (hw, hd)."""
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (hw - inset), sy * (hd - inset)
            out.append(_box(x - size / 2, x + size / 2, y - size / 2, y + size / 2, 0.0, height, (BOTTOM, TOP)))
    return out


def bed(rng: np.random.Generator) -> ObjectModel:
    w, length, hb = rng.uniform(1.3, 1.8), rng.uniform(1.9, 2.1), rng.uniform(0.45, 0.55)
    hh, th = rng.uniform(0.9, 1.15), 0.08
    y0 = -length / 2
    parts = [
        _box(-w / 2, w / 2, y0 + th, length / 2, 0.0, hb, (BOTTOM, 2)),  # mattress base
        _box(-w / 2, w / 2, y0, y0 + th, 0.0, hh, (BOTTOM,)),  # headboard
        _box(-0.4 * w, 0.4 * w, y0 + th + 0.05, y0 + th + 0.45, hb, hb + 0.12, (BOTTOM,)),  # pillow block
    ]
    return ObjectModel("bed", 4, tuple(parts), True)


def chair(rng: np.random.Generator) -> ObjectModel:
    w, d, hs = rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.5), rng.uniform(0.42, 0.48)
    hback, t = rng.uniform(0.35, 0.5), 0.05
    parts = [_box(-w / 2, w / 2, -d / 2, d / 2, hs - t, hs)]  # seat
    parts += _legs(w / 2, d / 2, 0.03, 0.04, hs - t)
    parts.append(_box(-w / 2, w / 2, -d / 2, -d / 2 + t, hs, hs + hback, (BOTTOM,)))  # back
    return ObjectModel("chair", 5, tuple(parts), False)


def sofa(rng: np.random.Generator) -> ObjectModel:
    w, d = rng.uniform(1.6, 2.2), rng.uniform(0.8, 0.95)
    arm, back_t = 0.18, 0.2
    hseat, harm, hback = rng.uniform(0.4, 0.45), rng.uniform(0.58, 0.65), rng.uniform(0.78, 0.9)
    x0, x1 = -w / 2 + arm, w / 2 - arm
    parts = [
        _box(x0, x1, -d / 2 + back_t, d / 2, 0.0, hseat, (BOTTOM, 0, 1, 2)),  # seat
        _box(x0, x1, -d / 2, -d / 2 + back_t, 0.0, hback, (BOTTOM,)),  # back (taller than the arms)
        _box(-w / 2, x0, -d / 2, d / 2, 0.0, harm, (BOTTOM,)),  # left arm
        _box(x1, w / 2, -d / 2, d / 2, 0.0, harm, (BOTTOM,)),  # right arm
    ]
    return ObjectModel("sofa", 6, tuple(parts), True)


def table(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(0.9, 1.6), rng.uniform(0.7, 1.0), rng.uniform(0.72, 0.76)
    t = 0.04
    parts = [_box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)] + _legs(w / 2, d / 2, 0.07, 0.06, h - t)
    return ObjectModel("table", 7, tuple(parts), False)


def desk(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(1.0, 1.5), rng.uniform(0.6, 0.75), rng.uniform(0.72, 0.76)
    t, ped = 0.04, 0.4
    side = 1 if rng.random() < 0.5 else -1
    parts = [_box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)]  # top
    xl = -side * (w / 2 - 0.05)
    for y in (-d / 2 + 0.05, d / 2 - 0.05):
        parts.append(_box(xl - 0.025, xl + 0.025, y - 0.025, y + 0.025, 0.0, h - t, (BOTTOM, TOP)))
    xp0, xp1 = sorted((side * (w / 2 - 0.02), side * (w / 2 - 0.02 - ped)))
    parts.append(_box(xp0, xp1, -d / 2 + 0.03, d / 2 - 0.03, 0.0, h - t, (BOTTOM, TOP)))  # drawer pedestal
    return ObjectModel("desk", 14, tuple(parts), True)


def bookshelf(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(0.7, 1.2), rng.uniform(0.28, 0.38), rng.uniform(1.5, 2.0)
    b = 0.025
    xi = w / 2 - b
    parts = [
        _box(-w / 2, -xi, -d / 2, d / 2, 0.0, h, (BOTTOM,)),  # left side
        _box(xi, w / 2, -d / 2, d / 2, 0.0, h, (BOTTOM,)),  # right side
        _box(-xi, xi, -d / 2, d / 2, h - b, h, (0, 1)),  # top
        _box(-xi, xi, -d / 2, d / 2, 0.0, 0.08, (0, 1, BOTTOM)),  # plinth
        _box(-xi, xi, -d / 2, -d / 2 + 0.01, 0.08, h - b, (0, 1, BOTTOM, TOP)),  # back panel
    ]
    n = int(rng.integers(3, 5))
    for i in range(1, n + 1):
        z = 0.08 + i * (h - b - 0.08) / (n + 1)
        parts.append(_box(-xi, xi, -d / 2 + 0.01, d / 2, z - b / 2, z + b / 2, (0, 1, 2)))
    return ObjectModel("bookshelf", 10, tuple(parts), True)


def _front_doors(w: float, y_front: float, z0: float, z1: float, n: int) -> list[Part]:
    """``n`` thin door panels on a front face at ``y = y_front``, spanning x in [-w/2, w/2]."""
    out, gap = [], 0.01
    for i in range(n):
        xa = -w / 2 + i * w / n + gap
        xb = -w / 2 + (i + 1) * w / n - gap
        out.append(_box(xa, xb, y_front, y_front + 0.02, z0, z1, (2,)))
    return out


def cabinet(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.45, 0.6), rng.uniform(0.75, 0.95)
    parts = [_box(-w / 2, w / 2, -d / 2, d / 2, 0.0, h, (BOTTOM,))]
    parts += _front_doors(w, d / 2, 0.06, h - 0.04, 2)
    return ObjectModel("cabinet", 3, tuple(parts), True)


def counter(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(1.4, 2.4), rng.uniform(0.6, 0.66), rng.uniform(0.88, 0.92)
    t, recess = 0.04, 0.05
    db = d - recess
    parts = [
        _box(-w / 2, w / 2, -d / 2, d / 2, h - t, h),  # worktop with front overhang
        _box(-w / 2 + 0.02, w / 2 - 0.02, -d / 2, -d / 2 + db, 0.0, h - t, (BOTTOM, TOP)),  # base
    ]
    parts += _front_doors(w - 0.04, -d / 2 + db, 0.08, h - t - 0.03, int(rng.integers(2, 4)))
    return ObjectModel("counter", 12, tuple(parts), True)


def refrigerator(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(0.7, 0.9), rng.uniform(0.65, 0.75), rng.uniform(1.7, 1.9)
    split = h * rng.uniform(0.62, 0.7)
    parts = [
        _box(-w / 2, w / 2, -d / 2, d / 2 - 0.04, 0.0, h, (BOTTOM,)),  # body
        _box(-w / 2 + 0.01, w / 2 - 0.01, d / 2 - 0.04, d / 2, 0.02, split - 0.01, (2,)),  # main door
        _box(-w / 2 + 0.01, w / 2 - 0.01, d / 2 - 0.04, d / 2, split + 0.01, h - 0.01, (2,)),  # freezer door
    ]
    xh = w / 2 - 0.08
    parts.append(_box(xh - 0.015, xh + 0.015, d / 2, d / 2 + 0.03, split - 0.45, split - 0.1, (2,)))  # handles
    parts.append(_box(xh - 0.015, xh + 0.015, d / 2, d / 2 + 0.03, split + 0.08, split + 0.3, (2,)))
    return ObjectModel("refrigerator", 24, tuple(parts), True)


def toilet(rng: np.random.Generator) -> ObjectModel:
    w, d, hb = rng.uniform(0.36, 0.42), rng.uniform(0.6, 0.7), rng.uniform(0.37, 0.41)
    tw, tdep, th = rng.uniform(0.42, 0.5), 0.2, rng.uniform(0.32, 0.4)
    parts = [
        _box(-w / 2, w / 2, -d / 2, d / 2, 0.0, hb, (BOTTOM,)),  # bowl block
        _box(-tw / 2, tw / 2, -d / 2, -d / 2 + tdep, hb, hb + th),  # tank (wider than the bowl)
        _box(-w / 2 + 0.01, w / 2 - 0.01, -d / 2 + tdep + 0.02, d / 2 - 0.01, hb, hb + 0.03, (BOTTOM,)),  # lid
    ]
    return ObjectModel("toilet", 33, tuple(parts), True)


def sink(rng: np.random.Generator) -> ObjectModel:
    w, d, top = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.5), rng.uniform(0.8, 0.9)
    t, wall = 0.16, 0.04
    z0 = top - t
    parts = [
        _box(-0.09, 0.09, -d / 2, -d / 2 + 0.18, 0.0, z0, (BOTTOM, TOP)),  # pedestal
        _box(-w / 2, w / 2, -d / 2, d / 2, z0, z0 + 0.04),  # basin floor
        _box(-w / 2, w / 2, -d / 2, -d / 2 + wall, z0 + 0.04, top, (BOTTOM,)),  # back rim
        _box(-w / 2, w / 2, d / 2 - wall, d / 2, z0 + 0.04, top, (BOTTOM,)),  # front rim
        _box(-w / 2, -w / 2 + wall, -d / 2 + wall, d / 2 - wall, z0 + 0.04, top, (BOTTOM, 2, 3)),  # left rim
        _box(w / 2 - wall, w / 2, -d / 2 + wall, d / 2 - wall, z0 + 0.04, top, (BOTTOM, 2, 3)),  # right rim
    ]
    return ObjectModel("sink", 34, tuple(parts), True)


def bathtub(rng: np.random.Generator) -> ObjectModel:
    length, w, h = rng.uniform(1.5, 1.7), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
    t = 0.06
    parts = [
        _box(-length / 2, length / 2, -w / 2, -w / 2 + t, 0.0, h, (BOTTOM,)),  # back wall
        _box(-length / 2, length / 2, w / 2 - t, w / 2, 0.0, h, (BOTTOM,)),  # front wall
        _box(-length / 2, -length / 2 + t, -w / 2 + t, w / 2 - t, 0.0, h, (BOTTOM, 2, 3)),  # end walls
        _box(length / 2 - t, length / 2, -w / 2 + t, w / 2 - t, 0.0, h, (BOTTOM, 2, 3)),
        _box(-length / 2 + t, length / 2 - t, -w / 2 + t, w / 2 - t, 0.0, 0.1, (BOTTOM, 0, 1, 2, 3)),  # floor
    ]
    return ObjectModel("bathtub", 36, tuple(parts), True)


def otherfurniture(rng: np.random.Generator) -> ObjectModel:
    w, d, h = rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.5), rng.uniform(0.45, 0.7)
    parts = [
        _box(-w / 2 + 0.02, w / 2 - 0.02, -d / 2 + 0.02, d / 2 - 0.02, 0.0, h - 0.03, (BOTTOM, TOP)),  # body
        _box(-w / 2, w / 2, -d / 2, d / 2, h - 0.03, h),  # top slab
    ]
    return ObjectModel("otherfurniture", 39, tuple(parts), False)


def clutter(rng: np.random.Generator) -> ObjectModel:
    """An unannotated box on the floor (nyu40 0, raw id 0, no instance), as ScanNet has unlabelled stuff."""
    w, d, h = rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.4), rng.uniform(0.15, 0.4)
    return ObjectModel("clutter", 0, (_box(-w / 2, w / 2, -d / 2, d / 2, 0.0, h, (BOTTOM,)),), False)


FURNITURE: dict[str, Callable[[np.random.Generator], ObjectModel]] = {
    "bed": bed, "chair": chair, "sofa": sofa, "table": table, "desk": desk, "bookshelf": bookshelf,
    "cabinet": cabinet, "counter": counter, "refrigerator": refrigerator, "toilet": toilet,
    "sink": sink, "bathtub": bathtub, "otherfurniture": otherfurniture,
}
"""Floor-standing object kinds and their builders."""

# --------------------------------------------------------------------------------------
# Wall objects: thin boxes proud of a wall. Frame: x along the wall, y away from it, z up.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WallObject:
    """A thin box on a wall: width along the wall, bottom height, height, depth (proud)."""

    kind: str
    nyu40: int
    width: float
    bottom: float
    height: float
    depth: float


def wall_object(kind: str, rng: np.random.Generator) -> WallObject:
    """Draw a wall object of ``kind`` (door, window, picture, curtain, whiteboard)."""
    if kind == "door":
        return WallObject(kind, 8, rng.uniform(0.8, 0.95), 0.0, rng.uniform(2.0, 2.1), 0.04)
    if kind == "window":
        h = rng.uniform(1.0, 1.4)
        return WallObject(kind, 9, rng.uniform(0.8, 1.6), rng.uniform(0.8, 1.0), h, 0.03)
    if kind == "picture":
        h = rng.uniform(0.3, 0.8)
        return WallObject(kind, 11, rng.uniform(0.4, 1.0), rng.uniform(1.5, 1.8) - h / 2, h, 0.025)
    if kind == "curtain":
        return WallObject(kind, 16, rng.uniform(0.4, 0.7), 0.03, rng.uniform(2.0, 2.25), 0.1)
    if kind == "whiteboard":
        h = rng.uniform(0.9, 1.2)
        return WallObject(kind, 30, rng.uniform(1.2, 2.0), rng.uniform(0.85, 1.0), h, 0.02)
    raise KeyError(f"unknown wall object {kind!r}")
