"""Object models: vehicles, people, bicycles, barriers and cones as a few boxes each.

A :class:`Shape` is drawn at random sizes (``make_shape(kind, rng)``) and lives in an object
frame (x forward, y left, z up, origin at the footprint centre on the ground); placement turns
it into parts (:mod:`pipeline.demo_nuscenes.placement`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.demo_nuscenes.categories import CAR_PAINTS, LOOKS


@dataclass(frozen=True)
class Piece:
    """One box of a shape: centre and size in the object frame (m), material, optional colour and tilt."""

    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    material: str
    rgb: np.ndarray | None = None
    tilt: np.ndarray | None = None  # (3, 3) rotation in the object frame


@dataclass(frozen=True)
class Shape:
    """An object model: fine class, footprint length (x) and width (y) in metres, its pieces."""

    category: str
    length: float
    width: float
    pieces: tuple[Piece, ...]


def _jitter(rng: np.random.Generator, rgb, amount: float = 0.08) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float64) * (1.0 + rng.uniform(-amount, amount, 3)), 0.0, 1.0)


def _axles(length: float, width: float, xs: list[float], diameter: float) -> list[Piece]:
    return [Piece((x, 0.0, diameter / 2), (diameter, width + 0.02, diameter), "tyre") for x in xs]


def car(rng: np.random.Generator) -> Shape:
    """vehicle.car: body, glass cabin, two axles."""
    length, width, height = rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.7)
    paint = _jitter(rng, CAR_PAINTS[int(rng.integers(0, len(CAR_PAINTS)))], 0.05)
    cab0, cab1 = -0.35 * length, 0.2 * length
    pieces = [
        Piece((0.0, 0.0, 0.625), (length, width, 0.65), "car", paint),
        Piece(((cab0 + cab1) / 2, 0.0, (0.95 + height) / 2), (cab1 - cab0, width - 0.12, height - 0.95), "glass_dark"),
    ] + _axles(length, width, [-0.32 * length, 0.32 * length], 0.62)
    return Shape("vehicle.car", length, width, tuple(pieces))


def truck(rng: np.random.Generator) -> Shape:
    """vehicle.truck: cab, cargo box, chassis, axles."""
    length, width, height = rng.uniform(6.5, 9.0), rng.uniform(2.35, 2.5), rng.uniform(3.0, 3.6)
    cab = _jitter(rng, LOOKS["truck"].rgb, 0.2)
    pieces = [
        Piece((length / 2 - 1.1, 0.0, 1.7), (2.2, width, 2.4), "truck", cab),
        Piece((-1.2, 0.0, (0.9 + height) / 2), (length - 2.4, width, height - 0.9), "truck"),
        Piece((0.0, 0.0, 0.65), (length - 0.2, width - 0.3, 0.5), "tyre"),
    ] + _axles(length, width, [length / 2 - 1.3, -length / 2 + 1.6, -length / 2 + 2.7], 0.9)
    return Shape("vehicle.truck", length, width, tuple(pieces))


def bus(rng: np.random.Generator) -> Shape:
    """vehicle.bus.rigid (or .bendy, 30 %): body(s) with a window band, axles."""
    bendy = rng.random() < 0.3
    seg = rng.uniform(8.5, 9.5) if bendy else rng.uniform(10.0, 12.5)
    width, height = 2.55, rng.uniform(3.1, 3.4)
    length = 2 * seg + 1.0 if bendy else seg
    paint = _jitter(rng, LOOKS["bus"].rgb, 0.2)
    centres = [length / 2 - seg / 2, -length / 2 + seg / 2] if bendy else [0.0]
    pieces = []
    for cx in centres:
        pieces += [
            Piece((cx, 0.0, (0.35 + height) / 2), (seg, width, height - 0.35), "bus", paint),
            Piece((cx, 0.0, 2.05), (seg - 0.6, width + 0.02, 1.1), "glass_dark"),
        ]
        pieces += _axles(seg, width, [cx + seg / 2 - 2.2, cx - seg / 2 + 2.8], 1.0)
    if bendy:
        pieces.append(Piece((0.0, 0.0, (0.4 + height) / 2), (1.2, width - 0.2, height - 0.5), "tyre"))
    return Shape("vehicle.bus.bendy" if bendy else "vehicle.bus.rigid", length, width, tuple(pieces))


def trailer(rng: np.random.Generator) -> Shape:
    """vehicle.trailer: a raised box on rear axles and front legs."""
    length, width, height = rng.uniform(8.0, 12.0), 2.5, rng.uniform(3.6, 4.0)
    pieces = [
        Piece((0.0, 0.0, (1.1 + height) / 2), (length, width, height - 1.1), "trailer", _jitter(rng, LOOKS["trailer"].rgb, 0.2)),
        Piece((length / 2 - 2.0, 0.0, 0.56), (0.25, width - 0.4, 1.12), "tyre"),
    ] + _axles(length, width, [-length / 2 + 1.2, -length / 2 + 2.4], 1.0)
    return Shape("vehicle.trailer", length, width, tuple(pieces))


def construction(rng: np.random.Generator) -> Shape:
    """vehicle.construction: tracks, body, cab and a raised boom."""
    length, width = rng.uniform(5.0, 6.5), rng.uniform(2.3, 2.5)
    paint = _jitter(rng, LOOKS["construction"].rgb, 0.1)
    pitch = math.radians(rng.uniform(25.0, 45.0))
    c, s = math.cos(pitch), math.sin(pitch)
    tilt = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # nose up about y
    boom = 3.5
    pieces = [
        Piece((0.0, width / 2 - 0.3, 0.4), (length, 0.6, 0.8), "tyre"),
        Piece((0.0, -width / 2 + 0.3, 0.4), (length, 0.6, 0.8), "tyre"),
        Piece((-0.4, 0.0, 1.4), (length * 0.7, width, 1.2), "construction", paint),
        Piece((0.3, 0.35, 2.6), (1.6, 1.3, 1.2), "glass_dark"),
        Piece((length * 0.2 + c * boom / 2, -0.4, 1.9 + s * boom / 2), (boom, 0.4, 0.4), "construction", paint, tilt),
    ]
    return Shape("vehicle.construction", length, width, tuple(pieces))


def _person(rng: np.random.Generator, category: str, height: float, torso: str) -> Shape:
    clothes = _jitter(rng, LOOKS["clothes"].rgb, 0.4)
    top = _jitter(rng, LOOKS[torso].rgb, 0.3 if torso == "clothes" else 0.05)
    pieces = (
        Piece((0.0, 0.0, 0.235 * height), (0.25, 0.32, 0.47 * height), "clothes", clothes),
        Piece((0.0, 0.0, 0.655 * height), (0.28, 0.46, 0.37 * height), torso, top),
        Piece((0.0, 0.0, 0.93 * height), (0.2, 0.18, 0.14 * height), "skin"),
    )
    return Shape(category, 0.35, 0.5, pieces)


def adult(rng: np.random.Generator) -> Shape:
    """human.pedestrian.adult, 1.55-1.9 m."""
    return _person(rng, "human.pedestrian.adult", float(rng.uniform(1.55, 1.9)), "clothes")


def child(rng: np.random.Generator) -> Shape:
    """human.pedestrian.child, 1.0-1.35 m."""
    return _person(rng, "human.pedestrian.child", float(rng.uniform(1.0, 1.35)), "clothes")


def worker(rng: np.random.Generator) -> Shape:
    """human.pedestrian.construction_worker: an adult in a high-visibility vest."""
    return _person(rng, "human.pedestrian.construction_worker", float(rng.uniform(1.6, 1.9)), "vest")


def bicycle(rng: np.random.Generator) -> Shape:
    """vehicle.bicycle: two wheels, a frame and a handlebar."""
    paint = _jitter(rng, LOOKS["bicycle"].rgb, 0.4)
    pieces = (
        Piece((0.52, 0.0, 0.34), (0.68, 0.1, 0.68), "tyre"),
        Piece((-0.52, 0.0, 0.34), (0.68, 0.1, 0.68), "tyre"),
        Piece((0.0, 0.0, 0.62), (0.95, 0.1, 0.36), "bicycle", paint),
        Piece((0.42, 0.0, 1.0), (0.1, 0.55, 0.1), "bicycle", paint),
    )
    return Shape("vehicle.bicycle", 1.72, 0.6, pieces)


def motorcycle(rng: np.random.Generator) -> Shape:
    """vehicle.motorcycle: two wheels, a body and a handlebar."""
    paint = _jitter(rng, LOOKS["motorcycle"].rgb, 0.5)
    pieces = (
        Piece((0.68, 0.0, 0.31), (0.62, 0.16, 0.62), "tyre"),
        Piece((-0.68, 0.0, 0.31), (0.62, 0.16, 0.62), "tyre"),
        Piece((0.0, 0.0, 0.72), (1.3, 0.46, 0.55), "motorcycle", paint),
        Piece((0.52, 0.0, 1.08), (0.1, 0.76, 0.1), "motorcycle", paint),
    )
    return Shape("vehicle.motorcycle", 2.0, 0.8, pieces)


def barrier(rng: np.random.Generator) -> Shape:
    """movable_object.barrier: one block, 1.6-2.5 m long."""
    length, depth, height = rng.uniform(1.6, 2.5), rng.uniform(0.4, 0.6), rng.uniform(0.9, 1.1)
    piece = Piece((0.0, 0.0, height / 2), (length, depth, height), "barrier", _jitter(rng, LOOKS["barrier"].rgb, 0.1))
    return Shape("movable_object.barrier", length, depth, (piece,))


def cone(rng: np.random.Generator) -> Shape:
    """movable_object.trafficcone: a square base and a post."""
    height = float(rng.uniform(0.55, 0.8))
    rgb = _jitter(rng, LOOKS["cone"].rgb, 0.05)
    pieces = (
        Piece((0.0, 0.0, 0.025), (0.42, 0.42, 0.05), "cone", rgb),
        Piece((0.0, 0.0, height / 2), (0.24, 0.24, height), "cone", rgb),
    )
    return Shape("movable_object.trafficcone", 0.42, 0.42, pieces)


SHAPES: dict[str, Callable[[np.random.Generator], Shape]] = {
    "car": car, "truck": truck, "bus": bus, "trailer": trailer, "construction": construction,
    "adult": adult, "child": child, "worker": worker, "bicycle": bicycle, "motorcycle": motorcycle,
    "barrier": barrier, "cone": cone,
}
"""Object kinds the world places, by short name."""


def make_shape(kind: str, rng: np.random.Generator) -> Shape:
    """A random instance of object ``kind`` (a key of :data:`SHAPES`)."""
    return SHAPES[kind](rng)
