"""The static street in its own frame (x along the road, y to the left, z up, ground at z = 0).

Cross-section, from the centre line outwards on each side: a lane (driveable surface, with a
dashed centre line and solid edge lines), on some sides a parking strip (flat.other), a raised
sidewalk (15 cm curb), a strip of terrain with trees, then buildings (static.manmade) with
bushes in the gaps, and lamp posts and signs on the sidewalk. A large slab of bare ground
(terrain) lies under everything so the ground reaches the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.demo_nuscenes.parts import PartList

SLAB_BOTTOM: float = -0.4
TOPS: dict[str, float] = {"road": 0.0, "parking": 0.02, "sidewalk": 0.15, "terrain": 0.10, "ground": -0.05}
"""Top height (m) of each flat surface; distinct so that no two coincide."""
MARK_TOP: float = 0.006


@dataclass(frozen=True)
class Side:
    """One side of the street: ``sign`` +1 (left, y > 0) or -1; ranges are distances from the centre line (m)."""

    sign: int
    parking: tuple[float, float] | None
    sidewalk: tuple[float, float]
    terrain: tuple[float, float]
    building_front: float

    def y_range(self, near: float, far: float) -> tuple[float, float]:
        """The y interval of distances ``near``..``far`` from the centre line on this side."""
        return (near, far) if self.sign > 0 else (-far, -near)


@dataclass(frozen=True)
class Street:
    """Lane width (m; the road is two lanes), half length along x (m) and the two sides (left, right)."""

    lane_width: float
    half_length: float
    sides: tuple[Side, Side]

    @property
    def ego_lane_y(self) -> float:
        """Centre of the lane the ego drives in (the right lane, y < 0)."""
        return -self.lane_width / 2.0


@dataclass
class Occupancy:
    """Axis-aligned footprints (x0, x1, y0, y1) already taken in the street frame."""

    rects: list[tuple[float, float, float, float]] = field(default_factory=list)

    def free(self, rect: tuple[float, float, float, float], margin: float = 0.3) -> bool:
        """True if ``rect`` grown by ``margin`` overlaps no taken footprint."""
        x0, x1, y0, y1 = rect
        return all(x1 + margin <= a0 or x0 - margin >= a1 or y1 + margin <= b0 or y0 - margin >= b1
                   for a0, a1, b0, b1 in self.rects)

    def take(self, rect: tuple[float, float, float, float]) -> None:
        """Mark ``rect`` (x0, x1, y0, y1) as taken."""
        self.rects.append(tuple(float(v) for v in rect))


def draw_street(rng: np.random.Generator, half_length: float = 150.0) -> Street:
    """A random cross-section; at least one side has a parking strip."""
    lane = float(rng.uniform(3.3, 3.8))
    parked = [bool(rng.random() < 0.5), bool(rng.random() < 0.5)]
    if not any(parked):
        parked[int(rng.integers(0, 2))] = True
    sides = []
    for sign, has_parking in zip((1, -1), parked):
        edge = lane
        parking = (edge, edge + 3.0) if has_parking else None
        walk0 = edge + 3.0 if has_parking else edge
        walk1 = walk0 + float(rng.uniform(2.5, 4.0))
        terr1 = walk1 + float(rng.uniform(2.0, 4.5))
        sides.append(Side(sign, parking, (walk0, walk1), (walk1, terr1), terr1 + float(rng.uniform(0.5, 3.0))))
    return Street(lane, half_length, (sides[0], sides[1]))


def _slab(parts: PartList, x: tuple[float, float], y: tuple[float, float], top: float, category: str,
          material: str, bottom: float = SLAB_BOTTOM) -> None:
    size = (x[1] - x[0], y[1] - y[0], top - bottom)
    parts.add(((x[0] + x[1]) / 2, (y[0] + y[1]) / 2, (top + bottom) / 2), size, category,
              parts.new_instance(category), material)


def add_ground(parts: PartList, street: Street) -> None:
    """Base ground, road with markings, parking strips, sidewalks and terrain strips."""
    hl, lane = street.half_length, street.lane_width
    x = (-hl, hl)
    _slab(parts, (-hl - 120.0, hl + 120.0), (-150.0, 150.0), TOPS["ground"], "flat.terrain", "ground", bottom=-1.0)
    _slab(parts, x, (-lane, lane), TOPS["road"], "flat.driveable_surface", "road")
    road = "flat.driveable_surface"
    for y in (-lane + 0.3, lane - 0.3):
        _slab(parts, x, (y - 0.075, y + 0.075), MARK_TOP, road, "marking", bottom=-0.05)
    start = -hl + float(parts.rng.uniform(0.0, 9.0))
    for x0 in np.arange(start, hl - 3.0, 9.0):
        _slab(parts, (x0, x0 + 3.0), (-0.075, 0.075), MARK_TOP, road, "marking", bottom=-0.05)
    for side in street.sides:
        if side.parking is not None:
            _slab(parts, x, side.y_range(*side.parking), TOPS["parking"], "flat.other", "parking")
        _slab(parts, x, side.y_range(*side.sidewalk), TOPS["sidewalk"], "flat.sidewalk", "sidewalk")
        _slab(parts, x, side.y_range(*side.terrain), TOPS["terrain"], "flat.terrain", "terrain")


def _building(parts: PartList, side: Side, x0: float, x1: float) -> None:
    rng = parts.rng
    material = str(rng.choice(["brick", "concrete", "glass", "plaster"]))
    depth = float(rng.uniform(8.0, 18.0))
    height = float(rng.choice([rng.uniform(4.0, 9.0), rng.uniform(9.0, 26.0)]))
    front = side.building_front + float(rng.uniform(0.0, 1.5))
    y0, y1 = side.y_range(front, front + depth)
    inst = parts.new_instance("static.manmade")
    rgb = parts.tint(material, 0.15)
    parts.add(((x0 + x1) / 2, (y0 + y1) / 2, height / 2 - 0.2), (x1 - x0, y1 - y0, height + 0.4),
              "static.manmade", inst, material, rgb=rgb)
    if height > 10.0 and rng.random() < 0.4:  # a set-back upper storey
        inset = float(rng.uniform(1.5, 3.0))
        ya, yb = side.y_range(front + inset, front + depth - 1.0)
        top = float(rng.uniform(3.0, 8.0))
        parts.add(((x0 + x1) / 2, (ya + yb) / 2, height + top / 2), (x1 - x0 - 2 * inset, yb - ya, top),
                  "static.manmade", inst, material, rgb=rgb * 0.9)


def _bushes(parts: PartList, side: Side, x0: float, x1: float) -> None:
    rng = parts.rng
    x = x0 + 0.5
    while x < x1 - 1.0:
        w = float(min(rng.uniform(1.0, 3.0), x1 - x - 0.5))
        d, h = float(rng.uniform(0.8, 2.0)), float(rng.uniform(0.6, 1.8))
        dist = side.building_front + float(rng.uniform(0.0, 2.0))
        y0, y1 = side.y_range(dist, dist + d)
        parts.add((x + w / 2, (y0 + y1) / 2, h / 2 - 0.1), (w, d, h + 0.2), "static.vegetation",
                  parts.new_instance("static.vegetation"), "bush", yaw=float(rng.uniform(-0.2, 0.2)))
        x += w + float(rng.uniform(0.3, 2.5))


def add_buildings(parts: PartList, street: Street) -> None:
    """Buildings along both sides (widths 8-25 m), with bushes in some of the gaps between them."""
    rng = parts.rng
    for side in street.sides:
        x = -street.half_length + float(rng.uniform(-10.0, 0.0))
        while x < street.half_length:
            width = float(rng.uniform(8.0, 25.0))
            _building(parts, side, x, x + width)
            x += width
            if rng.random() < 0.5:
                gap = float(rng.uniform(3.0, 12.0))
                _bushes(parts, side, x, x + gap)
                x += gap


def add_trees(parts: PartList, street: Street, occupancy: Occupancy) -> None:
    """Trees (a trunk and a crown) along each terrain strip, every 12-25 m."""
    rng = parts.rng
    for side in street.sides:
        x = -street.half_length + float(rng.uniform(0.0, 10.0))
        mid = side.sign * (side.terrain[0] + side.terrain[1]) / 2
        while x < street.half_length:
            inst = parts.new_instance("static.vegetation")
            trunk_h, crown = float(rng.uniform(2.2, 3.5)), float(rng.uniform(2.5, 4.5))
            top = TOPS["terrain"]
            parts.add((x, mid, top + trunk_h / 2 - 0.05), (0.35, 0.35, trunk_h + 0.1), "static.vegetation", inst, "trunk")
            parts.add((x, mid, top + trunk_h + crown * 0.4), (crown, crown, crown * 0.9), "static.vegetation", inst,
                      "crown", yaw=float(rng.uniform(-0.3, 0.3)))
            occupancy.take((x - 0.4, x + 0.4, mid - 0.4, mid + 0.4))
            x += float(rng.uniform(12.0, 25.0))


def add_posts(parts: PartList, street: Street, occupancy: Occupancy) -> None:
    """Lamp posts (with an arm over the road) and signs near the curb, every 18-35 m per side."""
    rng = parts.rng
    for side in street.sides:
        x = -street.half_length + float(rng.uniform(0.0, 15.0))
        y = side.sign * (side.sidewalk[0] + 0.45)
        base = TOPS["sidewalk"]
        while x < street.half_length:
            inst = parts.new_instance("static.manmade")
            if rng.random() < 0.6:
                h = float(rng.uniform(6.0, 8.5))
                parts.add((x, y, base + h / 2), (0.2, 0.2, h), "static.manmade", inst, "pole")
                parts.add((x, y - side.sign * 0.8, base + h - 0.1), (0.3, 1.6, 0.15), "static.manmade", inst, "pole")
            else:
                parts.add((x, y, base + 1.3), (0.1, 0.1, 2.6), "static.manmade", inst, "pole")
                parts.add((x, y, base + 2.3), (0.06, 0.7, 0.7), "static.manmade", inst, "sign")
            occupancy.take((x - 0.3, x + 0.3, y - 0.3, y + 0.3))
            x += float(rng.uniform(18.0, 35.0))
