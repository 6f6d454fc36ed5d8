"""One scene's world: the static street with its objects (global frame) and the ego's body.

The world is static; only the ego moves. :meth:`World.boxes_at` gives the boxes at one instant:
the static ones plus the ego body (class ``vehicle.ego``) placed at that instant's ego pose, so
the roof lidar sees the ego's roof, as in real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.demo.boxes import BoxSet
from pipeline.demo_nuscenes.parts import (
    PartList,
    concat_boxes,
    move_boxes,
    reflectivity,
    to_boxes,
)
from pipeline.demo_nuscenes.placement import populate
from pipeline.demo_nuscenes.street import (
    Occupancy,
    Street,
    add_buildings,
    add_ground,
    add_posts,
    add_trees,
)

EGO_BODY: tuple[tuple[tuple[float, float, float], tuple[float, float, float], str], ...] = (
    ((1.25, 0.0, 0.575), (4.3, 1.73, 0.65), "ego"),  # body: x -0.9..3.4, up to 0.9 m
    ((0.85, 0.0, 1.14), (2.1, 1.4, 0.48), "ego"),  # cabin: x -0.2..1.9, roof at 1.38 m
    ((0.0, 0.0, 0.31), (0.62, 1.75, 0.62), "tyre"),  # rear axle
    ((2.59, 0.0, 0.31), (0.62, 1.75, 0.62), "tyre"),  # front axle
)
"""The ego body in the ego frame: (centre, size, material); below every sensor (cameras >= 1.5 m)."""


@dataclass(frozen=True)
class World:
    """Static boxes (global frame), the ego body (ego frame), per-box lidar reflectivity, the street."""

    static: BoxSet
    static_reflectivity: np.ndarray  # (S,)
    ego: BoxSet
    ego_reflectivity: np.ndarray  # (E,)
    street: Street
    instances: tuple[str, ...]  # fine class name of each instance id - 1

    def boxes_at(self, ego_pose: np.ndarray) -> BoxSet:
        """All boxes with the ego at ``ego_pose`` (4, 4, ego → global): the static ones first."""
        return concat_boxes(self.static, move_boxes(self.ego, ego_pose))

    @property
    def reflectivity(self) -> np.ndarray:
        """Reflectivity (S + E,) in the order of :meth:`boxes_at`."""
        return np.concatenate([self.static_reflectivity, self.ego_reflectivity])


def build_world(rng: np.random.Generator, street: Street, path: tuple[float, float], street_to_global: np.ndarray) -> World:
    """Ground, buildings, trees, posts and objects around the ego ``path`` (street-frame x interval)."""
    parts = PartList(rng)
    add_ground(parts, street)
    add_buildings(parts, street)
    occupancy = Occupancy()
    add_trees(parts, street, occupancy)
    add_posts(parts, street, occupancy)
    populate(parts, street, occupancy, path)
    static = move_boxes(to_boxes(parts.parts, rng), street_to_global)
    ego_parts = PartList(rng)
    inst = ego_parts.new_instance("vehicle.ego")
    for centre, size, material in EGO_BODY:
        ego_parts.add(centre, size, "vehicle.ego", inst, material)
    ego = to_boxes(ego_parts.parts, rng)
    return World(static, reflectivity(parts.parts), ego, reflectivity(ego_parts.parts), street, tuple(parts.instances))
