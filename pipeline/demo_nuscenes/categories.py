"""The 32 fine classes of nuScenes-lidarseg (index = position) and how each looks to the demo.

The order is that of the real ``category.json`` (see /work/shared/nuscenes.md: the devkit's
``instructions_lidarseg.md`` lists a wrong order). A look is a base colour, a texture kind and
period (:mod:`pipeline.demo.texture`) and a lidar reflectivity (intensity at 10 m, head-on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.demo.categories import CHECKER, NOISE, STRIPES, WEAVE

FINE_CLASSES: tuple[tuple[str, str], ...] = (
    ("noise", "Points with no meaningful surface."),
    ("animal", "All animals."),
    ("human.pedestrian.adult", "Adult pedestrian."),
    ("human.pedestrian.child", "Child pedestrian."),
    ("human.pedestrian.construction_worker", "Person working at a construction site."),
    ("human.pedestrian.personal_mobility", "Person on a scooter, skateboard or similar."),
    ("human.pedestrian.police_officer", "Police officer."),
    ("human.pedestrian.stroller", "Stroller."),
    ("human.pedestrian.wheelchair", "Wheelchair."),
    ("movable_object.barrier", "Temporary road barrier."),
    ("movable_object.debris", "Debris on the road."),
    ("movable_object.pushable_pullable", "Carts, bins and other things pushed or pulled."),
    ("movable_object.trafficcone", "Traffic cone."),
    ("static_object.bicycle_rack", "Bicycle rack."),
    ("vehicle.bicycle", "Bicycle."),
    ("vehicle.bus.bendy", "Articulated bus."),
    ("vehicle.bus.rigid", "Rigid bus."),
    ("vehicle.car", "Passenger car, van or SUV."),
    ("vehicle.construction", "Construction vehicle."),
    ("vehicle.emergency.ambulance", "Ambulance."),
    ("vehicle.emergency.police", "Police car or motorcycle."),
    ("vehicle.motorcycle", "Motorcycle or scooter."),
    ("vehicle.trailer", "Trailer."),
    ("vehicle.truck", "Truck."),
    ("flat.driveable_surface", "Road surface a car may drive on."),
    ("flat.other", "Other flat ground: traffic islands, parking strips."),
    ("flat.sidewalk", "Sidewalk."),
    ("flat.terrain", "Grass, soil and other natural ground."),
    ("static.manmade", "Buildings, walls, poles and other structures."),
    ("static.other", "Other static background."),
    ("static.vegetation", "Trees and bushes."),
    ("vehicle.ego", "The ego vehicle itself."),
)
"""(name, description) of the 32 fine classes; the index in this tuple is the lidarseg value."""

FINE_INDEX: dict[str, int] = {name: i for i, (name, _) in enumerate(FINE_CLASSES)}


@dataclass(frozen=True)
class Look:
    """Base colour (RGB 0..1), texture kind, texture period (m) and lidar reflectivity (0..255)."""

    rgb: tuple[float, float, float]
    texture: int
    scale: float
    reflectivity: float


LOOKS: dict[str, Look] = {
    "road": Look((0.30, 0.30, 0.32), NOISE, 0.9, 12.0),
    "marking": Look((0.92, 0.92, 0.88), NOISE, 0.5, 90.0),
    "parking": Look((0.52, 0.47, 0.43), CHECKER, 0.45, 20.0),
    "sidewalk": Look((0.66, 0.65, 0.62), CHECKER, 0.8, 25.0),
    "terrain": Look((0.36, 0.50, 0.22), NOISE, 0.6, 18.0),
    "ground": Look((0.45, 0.42, 0.30), NOISE, 2.5, 15.0),
    "brick": Look((0.60, 0.30, 0.22), CHECKER, 0.6, 30.0),
    "concrete": Look((0.70, 0.69, 0.66), CHECKER, 3.0, 35.0),
    "glass": Look((0.40, 0.55, 0.70), CHECKER, 2.2, 8.0),
    "plaster": Look((0.86, 0.80, 0.66), WEAVE, 1.6, 40.0),
    "pole": Look((0.45, 0.46, 0.48), STRIPES, 0.5, 60.0),
    "sign": Look((0.15, 0.35, 0.75), NOISE, 0.3, 200.0),
    "trunk": Look((0.38, 0.27, 0.18), STRIPES, 0.15, 22.0),
    "crown": Look((0.16, 0.42, 0.14), NOISE, 0.35, 28.0),
    "bush": Look((0.22, 0.48, 0.18), WEAVE, 0.3, 26.0),
    "car": Look((0.55, 0.10, 0.10), NOISE, 0.8, 45.0),
    "glass_dark": Look((0.12, 0.15, 0.20), NOISE, 0.4, 6.0),
    "tyre": Look((0.07, 0.07, 0.07), STRIPES, 0.12, 4.0),
    "truck": Look((0.80, 0.80, 0.78), STRIPES, 0.7, 50.0),
    "bus": Look((0.85, 0.62, 0.12), STRIPES, 1.2, 55.0),
    "trailer": Look((0.62, 0.64, 0.68), STRIPES, 0.35, 50.0),
    "construction": Look((0.93, 0.70, 0.08), NOISE, 0.6, 60.0),
    "skin": Look((0.80, 0.62, 0.50), NOISE, 0.1, 20.0),
    "clothes": Look((0.25, 0.28, 0.45), WEAVE, 0.05, 20.0),
    "vest": Look((0.95, 0.55, 0.08), WEAVE, 0.05, 150.0),
    "bicycle": Look((0.10, 0.45, 0.60), STRIPES, 0.1, 40.0),
    "motorcycle": Look((0.20, 0.20, 0.22), NOISE, 0.2, 45.0),
    "barrier": Look((0.90, 0.88, 0.85), STRIPES, 0.5, 120.0),
    "cone": Look((0.95, 0.40, 0.05), STRIPES, 0.15, 160.0),
    "ego": Look((0.88, 0.88, 0.90), NOISE, 0.7, 45.0),
}
"""Looks by material key; the world generator picks a class and a material per part."""

CAR_PAINTS: tuple[tuple[float, float, float], ...] = (
    (0.85, 0.85, 0.86), (0.10, 0.10, 0.12), (0.55, 0.56, 0.58), (0.60, 0.08, 0.08),
    (0.12, 0.22, 0.55), (0.30, 0.35, 0.30), (0.75, 0.62, 0.35),
)
"""Paint colours cars draw from (per instance)."""


def fine_index(name: str) -> int:
    """Lidarseg index (0..31) of fine class ``name``; ``KeyError`` for an unknown name."""
    return FINE_INDEX[name]


def category_records(make_token: Callable[[str], str]) -> list[dict]:
    """The lidarseg ``category.json`` records: token (``make_token(name)``), name, description, index."""
    return [
        {"token": make_token(name), "name": name, "description": text, "index": i}
        for i, (name, text) in enumerate(FINE_CLASSES)
    ]
