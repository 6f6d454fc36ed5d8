"""Where objects go: zones of the street (lanes, parking strips, sidewalks) and a scene's cast.

Nothing enters the ego's corridor (its lane from behind its start to ahead of its end), and
footprints never overlap (axis-aligned test with a margin, :class:`street.Occupancy`). Every
scene gets, near the ego's path, cars, a truck, a bus, a trailer, a construction site
(construction vehicle, barriers, cones, a worker), pedestrians, bicycles and motorcycles, so
the lidar sees every object class; more cars and pedestrians fill the rest of the street.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.demo_nuscenes.parts import PartList
from pipeline.demo_nuscenes.shapes import Shape, make_shape
from pipeline.demo_nuscenes.street import TOPS, Occupancy, Street

EGO_REAR: float = 0.9
EGO_FRONT: float = 3.4
"""Metres the ego body reaches behind / ahead of its origin (rear axle)."""
NEAR: float = 40.0
"""Half length (m) of the stretch around the path that gets the guaranteed cast."""


@dataclass(frozen=True)
class Zone:
    """x interval, y interval (m), ground height (m) and the headings (rad) objects take there."""

    x: tuple[float, float]
    y: tuple[float, float]
    ground: float
    headings: tuple[float, ...]
    any_heading: bool = False


def zones(street: Street, path: tuple[float, float]) -> dict[str, Zone]:
    """Named zones: ``oncoming``, ``ahead``, ``behind``, ``parking<sign>``, ``sidewalk<sign>``."""
    hl, lane = street.half_length - 10.0, street.lane_width
    out = {
        "oncoming": Zone((-hl, hl), (0.2, lane - 0.2), TOPS["road"], (math.pi,)),
        "ahead": Zone((path[1] + EGO_FRONT + 4.0, hl), (-lane + 0.2, -0.2), TOPS["road"], (0.0,)),
        "behind": Zone((-hl, path[0] - EGO_REAR - 4.0), (-lane + 0.2, -0.2), TOPS["road"], (0.0,)),
    }
    for side in street.sides:
        key = "+" if side.sign > 0 else "-"
        if side.parking is not None:
            y0, y1 = side.y_range(side.parking[0] + 0.15, side.parking[1] - 0.15)
            out["parking" + key] = Zone((-hl, hl), (y0, y1), TOPS["parking"], (0.0, math.pi))
        y0, y1 = side.y_range(side.sidewalk[0] + 0.85, side.sidewalk[1] - 0.2)
        out["sidewalk" + key] = Zone((-hl, hl), (y0, y1), TOPS["sidewalk"], (0.0,), any_heading=True)
    return out


def _footprint(shape: Shape, x: float, y: float, yaw: float) -> tuple[float, float, float, float]:
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    hx = (shape.length * c + shape.width * s) / 2
    hy = (shape.length * s + shape.width * c) / 2
    return x - hx, x + hx, y - hy, y + hy


def place(parts: PartList, occupancy: Occupancy, zone: Zone, shape: Shape, x_range: tuple[float, float] | None = None,
          tries: int = 40) -> bool:
    """Put ``shape`` somewhere free in ``zone`` (x limited to ``x_range``); False if no spot was found."""
    rng = parts.rng
    x0, x1 = zone.x if x_range is None else (max(zone.x[0], x_range[0]), min(zone.x[1], x_range[1]))
    for _ in range(tries):
        if zone.any_heading:
            yaw = float(rng.uniform(-math.pi, math.pi))
        else:
            slack = max(0.0, zone.y[1] - zone.y[0] - shape.width) / max(shape.length, 1.0)
            jitter = min(0.03, 0.9 * slack)
            yaw = float(zone.headings[int(rng.integers(0, len(zone.headings)))] + rng.uniform(-jitter, jitter))
        _, half_x, _, half_y = _footprint(shape, 0.0, 0.0, yaw)
        if x1 - x0 < 2 * half_x or zone.y[1] - zone.y[0] < 2 * half_y:
            return False
        x = float(rng.uniform(x0 + half_x, x1 - half_x))
        y = float(rng.uniform(zone.y[0] + half_y, zone.y[1] - half_y))
        rect = _footprint(shape, x, y, yaw)
        if occupancy.free(rect):
            occupancy.take(rect)
            _emit(parts, shape, (x, y, zone.ground), yaw)
            return True
    return False


def _emit(parts: PartList, shape: Shape, origin: tuple[float, float, float], yaw: float) -> None:
    inst = parts.new_instance(shape.category)
    for piece in shape.pieces:
        parts.add_local(origin, yaw, piece.centre, piece.size, shape.category, inst, piece.material,
                        rgb=piece.rgb, tilt=piece.tilt)


def _pick(rng: np.random.Generator, names: list[str]) -> str:
    return names[int(rng.integers(0, len(names)))]


def _construction_site(parts: PartList, occ: Occupancy, zs: dict[str, Zone], centre: float) -> None:
    rng = parts.rng
    parking = _pick(rng, sorted(k for k in zs if k.startswith("parking")))
    sidewalk = "sidewalk" + parking[-1]
    near = (centre - 15.0, centre + 15.0)
    place(parts, occ, zs[parking], make_shape("construction", rng), near)
    for _ in range(int(rng.integers(2, 5))):
        place(parts, occ, zs[sidewalk], make_shape("barrier", rng), near)
    for _ in range(int(rng.integers(3, 7))):
        place(parts, occ, zs[_pick(rng, [parking, sidewalk, "oncoming"])], make_shape("cone", rng), near)
    place(parts, occ, zs[sidewalk], make_shape("worker", rng), near)


def populate(parts: PartList, street: Street, occupancy: Occupancy, path: tuple[float, float]) -> None:
    """Place the scene's objects around the ego ``path`` (x interval of its origin, street frame)."""
    rng = parts.rng
    zs = zones(street, path)
    mid = (path[0] + path[1]) / 2
    near = (mid - NEAR, mid + NEAR)
    parking = sorted(k for k in zs if k.startswith("parking"))
    sidewalks = sorted(k for k in zs if k.startswith("sidewalk"))
    _construction_site(parts, occupancy, zs, mid + float(rng.uniform(-25.0, 25.0)))
    cast = [
        ("bus", ["oncoming", "ahead"]), ("truck", ["oncoming", "ahead", "behind"] + parking),
        ("trailer", parking), ("car", ["ahead"]), ("car", ["behind"]),
    ]
    cast += [("car", ["oncoming"] + parking) for _ in range(int(rng.integers(4, 8)))]
    cast += [("motorcycle", parking + ["oncoming"]) for _ in range(int(rng.integers(1, 3)))]
    cast += [("bicycle", sidewalks + parking) for _ in range(int(rng.integers(1, 4)))]
    cast += [("adult", sidewalks) for _ in range(int(rng.integers(4, 9)))]
    cast += [("child", sidewalks) for _ in range(int(rng.integers(0, 3)))]
    for kind, where in cast:
        place(parts, occupancy, zs[_pick(rng, where)], make_shape(kind, rng), near)
    far = [("car", ["oncoming", "ahead", "behind"] + parking)] * int(rng.integers(6, 12))
    far += [("adult", sidewalks)] * int(rng.integers(4, 10))
    for kind, where in far:
        place(parts, occupancy, zs[_pick(rng, where)], make_shape(kind, rng))
