"""One procedural room: walls, floor, ceiling, furniture and wall objects, as a :class:`BoxSet`.

Placement happens in a *room frame* (origin at the floor centre, x and y along the walls, z
up); the whole room is then turned by a random yaw and shifted, as ScanNet scenes are not axis
aligned. Floor objects never overlap (2D oriented-rectangle test with a margin); objects that go
against a wall keep a gap larger than the deepest wall object, so nothing intersects in 3D.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pipeline.demo.boxes import BoxSet, BoxSetBuilder
from pipeline.demo.categories import CLASS_LOOKS, FLOOR_TILES, UNANNOTATED_LOOK, Look, raw_ids_for
from pipeline.demo.furniture import FURNITURE, ObjectModel, WallObject, clutter, wall_object

log = logging.getLogger(__name__)

ROOM_TYPES: dict[str, tuple[str, ...]] = {
    "bedroom": ("bed", "cabinet", "desk", "chair", "bookshelf", "otherfurniture"),
    "living": ("sofa", "table", "chair", "chair", "bookshelf", "otherfurniture", "cabinet"),
    "kitchen": ("counter", "refrigerator", "cabinet", "sink", "table", "chair", "chair"),
    "bathroom": ("bathtub", "toilet", "sink", "cabinet", "otherfurniture"),
    "office": ("desk", "desk", "chair", "chair", "bookshelf", "cabinet", "table"),
}
"""Furniture each room type asks for; every room also gets two random extra kinds and 1-3
unannotated clutter boxes (nyu40 0)."""

WALL_GAP: float = 0.13
"""Minimum gap (m) between a wall and floor furniture: more than the deepest wall object (0.1)."""
CAMERA_CLEARANCE: float = 0.35
"""Minimum horizontal distance (m) from a camera centre to any furniture footprint."""
WALL_CLEARANCE: float = 0.6
"""Minimum distance (m) from a camera centre to the walls."""
MIN_FREE_FRACTION: float = 0.15
"""Furniture that would leave less of the floor free for cameras is not placed."""
_OVERLAP_MARGIN = 0.08
_INSTANCE_JITTER = 0.07


@dataclass(frozen=True)
class Footprint:
    """A floor object's footprint in the room frame: centre (2,), yaw (rad), half extents (2,)."""

    centre: np.ndarray
    yaw: float
    half: np.ndarray
    kind: str

    def axes(self) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, s], [-s, c]])  # rows: local x and y axes in the room frame

    def corners(self) -> np.ndarray:
        ax = self.axes()
        signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
        return self.centre + (signs * self.half) @ ax

    def overlaps(self, other: "Footprint", margin: float) -> bool:
        """Separating-axis test of the two rectangles, each grown by ``margin / 2``."""
        a_ax, b_ax = self.axes(), other.axes()
        d = other.centre - self.centre
        for axis in np.vstack([a_ax, b_ax]):
            ra = np.sum(np.abs((self.half + margin / 2) * (a_ax @ axis)))
            rb = np.sum(np.abs((other.half + margin / 2) * (b_ax @ axis)))
            if abs(d @ axis) >= ra + rb:
                return False
        return True

    def distance(self, point: np.ndarray) -> float:
        """Distance (m) from a 2D point to the rectangle (0 inside)."""
        return float(self.distances(np.asarray(point, dtype=np.float64)[None])[0])

    def distances(self, points: np.ndarray) -> np.ndarray:
        """Distances (N,) from 2D points (N, 2) to the rectangle (0 inside)."""
        q = (points - self.centre) @ self.axes().T
        return np.linalg.norm(np.maximum(np.abs(q) - self.half, 0.0), axis=1)


@dataclass(frozen=True)
class Wall:
    """A wall of the room frame: a point at its middle, inward normal, tangent and length."""

    middle: np.ndarray
    normal: np.ndarray
    tangent: np.ndarray
    length: float

    @property
    def yaw(self) -> float:
        """Yaw of an object frame whose +y points into the room (its x runs along the wall)."""
        return math.atan2(-self.normal[0], self.normal[1])


@dataclass(frozen=True)
class Room:
    """A generated room: its boxes (world frame) and what camera placement needs to know."""

    boxes: BoxSet
    size: np.ndarray  # (3,) X, Y, H in metres
    to_world: np.ndarray  # (4, 4) room frame → world
    footprints: tuple[Footprint, ...]  # floor objects, room frame
    kind: str
    objects: tuple[str, ...]  # kinds placed, for logs


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _walls(x: float, y: float) -> tuple[Wall, ...]:
    return (
        Wall(np.array([0.0, -y / 2]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), x),
        Wall(np.array([x / 2, 0.0]), np.array([-1.0, 0.0]), np.array([0.0, 1.0]), y),
        Wall(np.array([0.0, y / 2]), np.array([0.0, -1.0]), np.array([-1.0, 0.0]), x),
        Wall(np.array([-x / 2, 0.0]), np.array([1.0, 0.0]), np.array([0.0, -1.0]), y),
    )


class _RoomBuilder:
    """Places objects in the room frame and emits their boxes in the world frame."""

    def __init__(self, rng: np.random.Generator, size: np.ndarray, to_world: np.ndarray) -> None:
        self.rng = rng
        self.size = size
        self.to_world = to_world
        self.walls = _walls(size[0], size[1])
        self.boxes = BoxSetBuilder()
        self.footprints: list[Footprint] = []
        self.keep_out: list[Footprint] = []  # door swing areas
        self.wall_intervals: list[list[tuple[float, float]]] = [[] for _ in self.walls]
        self.next_instance = 1
        self.placed: list[str] = []
        gx = np.linspace(-size[0] / 2, size[0] / 2, 41)
        gy = np.linspace(-size[1] / 2, size[1] / 2, 41)
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        self.free_grid = grid[(np.abs(grid[:, 0]) <= size[0] / 2 - WALL_CLEARANCE) & (np.abs(grid[:, 1]) <= size[1] / 2 - WALL_CLEARANCE)]
        self.free = np.ones(self.free_grid.shape[0], dtype=bool)  # camera spots not blocked yet

    # -- boxes -----------------------------------------------------------------------------
    def _instance_look(self, look: Look) -> tuple[np.ndarray, float]:
        rgb = np.asarray(look.rgb) * (1.0 + self.rng.normal(0.0, _INSTANCE_JITTER, 3)) * self.rng.uniform(0.9, 1.1)
        return np.clip(rgb, 0.03, 1.0), look.scale * self.rng.uniform(0.8, 1.25)

    def emit(self, centre_room: np.ndarray, yaw: float, half, nyu40: int, raw: int, instance: int,
             rgb: np.ndarray, look: Look, scale: float, hidden: tuple[int, ...]) -> None:
        rot_room = _yaw_matrix(yaw)
        centre = self.to_world[:3, :3] @ centre_room + self.to_world[:3, 3]
        self.boxes.add(
            centre, self.to_world[:3, :3] @ rot_room, np.asarray(half, dtype=np.float64),
            nyu40=nyu40, raw=raw, instance=instance, colour=rgb, texture=look.texture,
            tex_scale=scale, tex_seed=int(self.rng.integers(0, 2**31)), hidden=hidden,
        )

    def new_instance(self) -> int:
        inst = self.next_instance
        self.next_instance += 1
        return inst

    # -- the room shell --------------------------------------------------------------------
    def shell(self) -> None:
        x, y, h = self.size
        wall_look = CLASS_LOOKS[1]
        floor_look = FLOOR_TILES if self.rng.random() < 0.4 else CLASS_LOOKS[2]
        ceil_look = CLASS_LOOKS[22]
        wall_rgb, wall_scale = self._instance_look(wall_look)
        floor_rgb, floor_scale = self._instance_look(floor_look)
        ceil_rgb, ceil_scale = self._instance_look(ceil_look)
        # faces: 0 -x (wall 3), 1 +x (wall 1), 2 -y (wall 0), 3 +y (wall 2), 4 floor, 5 ceiling
        wall_instances = [self.new_instance() for _ in range(4)]  # walls 0..3
        face_wall = (3, 1, 0, 2)
        instance = [wall_instances[w] for w in face_wall] + [self.new_instance(), self.new_instance()]
        self.boxes.add(
            self.to_world[:3, :3] @ np.array([0.0, 0.0, h / 2]) + self.to_world[:3, 3],
            self.to_world[:3, :3], np.array([x / 2, y / 2, h / 2]),
            nyu40=[1, 1, 1, 1, 2, 22],
            raw=[raw_ids_for(1)[0]] * 4 + [raw_ids_for(2)[0], raw_ids_for(22)[0]],
            instance=instance,
            colour=[wall_rgb] * 4 + [floor_rgb, ceil_rgb],
            texture=[wall_look.texture] * 4 + [floor_look.texture, ceil_look.texture],
            tex_scale=[wall_scale] * 4 + [floor_scale, ceil_scale],
            tex_seed=self.rng.integers(0, 2**31, 6),
            inside=True, part_per_face=True,
        )

    # -- wall objects ----------------------------------------------------------------------
    def _free_interval(self, wall: int, lo: float, hi: float) -> bool:
        return all(hi + 0.1 <= a or lo - 0.1 >= b for a, b in self.wall_intervals[wall])

    def wall_item(self, obj: WallObject, wall: int | None = None, at: float | None = None) -> tuple[int, float] | None:
        """Place ``obj`` on a wall (random unless given); returns (wall, centre along it) or None."""
        for _ in range(30 if at is None else 1):
            w = int(self.rng.integers(0, 4)) if wall is None else wall
            length = self.walls[w].length
            room = length / 2 - obj.width / 2 - 0.15
            if room <= 0:
                continue
            u = float(self.rng.uniform(-room, room)) if at is None else at
            if abs(u) > room or not self._free_interval(w, u - obj.width / 2, u + obj.width / 2):
                continue
            self.wall_intervals[w].append((u - obj.width / 2, u + obj.width / 2))
            wl = self.walls[w]
            base = wl.middle + u * wl.tangent
            centre = np.array([*(base + wl.normal * obj.depth / 2), obj.bottom + obj.height / 2])
            hidden = (2, 4) if obj.bottom <= 0.0 else (2,)
            rgb, scale = self._instance_look(CLASS_LOOKS[obj.nyu40])
            raw = int(self.rng.choice(raw_ids_for(obj.nyu40)))
            self.emit(centre, wl.yaw, (obj.width / 2, obj.depth / 2, obj.height / 2), obj.nyu40, raw,
                      self.new_instance(), rgb, CLASS_LOOKS[obj.nyu40], scale, hidden)
            if obj.kind == "door":
                self.keep_out.append(Footprint(base + wl.normal * 0.5, wl.yaw, np.array([obj.width / 2 + 0.1, 0.5]), "door swing"))
            self.placed.append(obj.kind)
            return w, u
        log.debug("no room on the walls for a %s", obj.kind)
        return None

    def wall_objects(self, kind: str) -> None:
        self.wall_item(wall_object("door", self.rng))
        for _ in range(int(self.rng.integers(1, 3))):
            win = wall_object("window", self.rng)
            spot = self.wall_item(win)
            if spot is None:
                continue
            for side in (-1, 1):
                if self.rng.random() < 0.45:
                    cur = wall_object("curtain", self.rng)
                    self.wall_item(cur, spot[0], spot[1] + side * (win.width / 2 + 0.1 + cur.width / 2 + 0.01))
        for _ in range(int(self.rng.integers(1, 4))):
            self.wall_item(wall_object("picture", self.rng))
        if kind == "office" or self.rng.random() < 0.25:
            self.wall_item(wall_object("whiteboard", self.rng))

    # -- floor objects ---------------------------------------------------------------------
    def _fits(self, fp: Footprint, wall_margin: float) -> bool:
        x, y, _ = self.size
        corners = fp.corners()
        if np.any(np.abs(corners[:, 0]) > x / 2 - wall_margin) or np.any(np.abs(corners[:, 1]) > y / 2 - wall_margin):
            return False
        return not any(fp.overlaps(o, _OVERLAP_MARGIN) for o in self.footprints + self.keep_out)

    def _footprint(self, model: ObjectModel, origin: np.ndarray, yaw: float) -> Footprint:
        x0, x1, y0, y1 = model.footprint()
        c, s = math.cos(yaw), math.sin(yaw)
        local = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        centre = origin + np.array([c * local[0] - s * local[1], s * local[0] + c * local[1]])
        return Footprint(centre, yaw, np.array([(x1 - x0) / 2, (y1 - y0) / 2]), model.kind)

    def _place_against_wall(self, model: ObjectModel) -> tuple[np.ndarray, float] | None:
        x0, x1, y0, y1 = model.footprint()
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        lengths = np.array([w.length for w in self.walls])
        for _ in range(40):
            wl = self.walls[int(self.rng.choice(4, p=lengths / lengths.sum()))]
            yaw = wl.yaw + math.radians(self.rng.uniform(-10.0, 10.0))
            c, s = math.cos(yaw), math.sin(yaw)
            rotated = corners @ np.array([[c, s], [-s, c]])
            dist = WALL_GAP + self.rng.uniform(0.0, 0.05) - float(np.min(rotated @ wl.normal))
            u = self.rng.uniform(-wl.length / 2, wl.length / 2)
            origin = wl.middle + u * wl.tangent + dist * wl.normal
            fp = self._footprint(model, origin, yaw)
            if self._fits(fp, WALL_GAP - 1e-6):  # clear of wall objects on every wall
                return origin, yaw
        return None

    def _place_free(self, model: ObjectModel) -> tuple[np.ndarray, float] | None:
        x, y, _ = self.size
        tables = [f for f in self.footprints if f.kind in ("table", "desk")]
        for attempt in range(40):
            if model.kind == "chair" and tables and attempt < 25:
                t = tables[int(self.rng.integers(0, len(tables)))]
                ax = t.axes()
                sides = [(ax[1], t.half[1])] if t.kind == "desk" else [(ax[1], t.half[1]), (-ax[1], t.half[1]), (ax[0], t.half[0]), (-ax[0], t.half[0])]
                direction, reach = sides[int(self.rng.integers(0, len(sides)))]
                along = np.array([-direction[1], direction[0]])
                spread = max(t.half @ np.abs(t.axes() @ along) - 0.25, 0.0)
                origin = t.centre + direction * (reach + 0.3 + self.rng.uniform(0.0, 0.1)) + along * self.rng.uniform(-spread, spread)
                to_table = -direction
                yaw = math.atan2(-to_table[0], to_table[1]) + math.radians(self.rng.uniform(-20.0, 20.0))
            else:
                origin = np.array([self.rng.uniform(-x / 2, x / 2), self.rng.uniform(-y / 2, y / 2)])
                yaw = self.rng.uniform(0.0, 2 * math.pi)
            fp = self._footprint(model, origin, yaw)
            if self._fits(fp, WALL_GAP):
                return origin, yaw
        return None

    def floor_object(self, kind: str) -> None:
        model = clutter(self.rng) if kind == "clutter" else FURNITURE[kind](self.rng)
        spot = self._place_against_wall(model) if model.against_wall else self._place_free(model)
        if spot is None:
            log.debug("no room on the floor for a %s", kind)
            return
        origin, yaw = spot
        fp = self._footprint(model, origin, yaw)
        free = self.free & (fp.distances(self.free_grid) >= CAMERA_CLEARANCE)
        if free.sum() < MIN_FREE_FRACTION * self.free_grid.shape[0]:
            log.debug("a %s would leave too little room for cameras", kind)
            return
        self.free = free
        self.footprints.append(fp)
        look = CLASS_LOOKS[model.nyu40] if model.nyu40 else UNANNOTATED_LOOK
        rgb, scale = self._instance_look(look)
        if model.nyu40:
            raw, inst = int(self.rng.choice(raw_ids_for(model.nyu40))), self.new_instance()
        else:  # unannotated: raw id 0, no instance, as in ScanNet's label-filt / instance-filt
            raw, inst = 0, 0
        c, s = math.cos(yaw), math.sin(yaw)
        for part in model.parts:
            px, py, pz = part.centre
            centre = np.array([origin[0] + c * px - s * py, origin[1] + s * px + c * py, pz])
            self.emit(centre, yaw, part.half, model.nyu40, raw, inst, rgb, look, scale, part.hidden)
        self.placed.append(kind)


def generate_room(rng: np.random.Generator) -> Room:
    """Draw one room from ``rng`` (sizes, objects, placement, looks); deterministic given its state."""
    size = np.array([rng.uniform(4.0, 7.0), rng.uniform(3.5, 6.0), rng.uniform(2.5, 3.0)])
    yaw = rng.uniform(0.0, 2 * math.pi)
    to_world = np.eye(4)
    to_world[:3, :3] = _yaw_matrix(yaw)
    to_world[:2, 3] = rng.uniform(0.5, 3.5, 2)
    kind = str(rng.choice(sorted(ROOM_TYPES)))
    builder = _RoomBuilder(rng, size, to_world)
    builder.shell()
    builder.wall_objects(kind)
    extras = [str(k) for k in rng.choice(sorted(FURNITURE), 2)]
    wanted = list(ROOM_TYPES[kind]) + extras + ["clutter"] * int(rng.integers(1, 4))
    # big wall-standing objects first, free-standing ones next, then chairs (they join tables), clutter
    order = sorted(wanted, key=lambda k: (k == "clutter", k == "chair", k in ("table", "otherfurniture")))
    for k in order:
        builder.floor_object(k)
    return Room(builder.boxes.build(), size, to_world, tuple(builder.footprints), kind, tuple(builder.placed))
