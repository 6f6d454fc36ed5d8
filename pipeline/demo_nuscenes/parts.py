"""The world as boxes: parts with a fine class, an instance and a material, turned into a
:class:`pipeline.demo.boxes.BoxSet` (whose ``raw`` and ``nyu40`` columns hold the lidarseg fine
index) and moved rigidly.

A part is an oriented box given by its centre, its rotation (local axes as columns) and its
size. Colours vary per instance (the material's base colour times a jitter), textures per face.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from pipeline.demo.boxes import BoxSet, BoxSetBuilder
from pipeline.demo_nuscenes.categories import LOOKS, fine_index
from pipeline.demo_nuscenes.geometry import yaw_matrix


@dataclass(frozen=True)
class Part:
    """One box: centre (3,) m, rotation (3, 3), size (3,) m, fine class index, instance id, RGB, material."""

    centre: np.ndarray
    rotation: np.ndarray
    size: np.ndarray
    fine: int
    instance: int
    rgb: np.ndarray
    material: str


@dataclass
class PartList:
    """Accumulates parts; instance ids count from 1 in the order :meth:`new_instance` is called."""

    rng: np.random.Generator
    parts: list[Part] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)

    def new_instance(self, category: str) -> int:
        """Start a new instance of fine class ``category``; returns its id (1..)."""
        self.instances.append(category)
        return len(self.instances)

    def tint(self, material: str, jitter: float = 0.08) -> np.ndarray:
        """The material's base colour times a random per-channel factor 1 ± ``jitter``, clipped to 0..1."""
        rgb = np.asarray(LOOKS[material].rgb)
        return np.clip(rgb * (1.0 + self.rng.uniform(-jitter, jitter, 3)), 0.0, 1.0)

    def add(self, centre: ArrayLike, size: ArrayLike, category: str, instance: int, material: str, *, yaw: float = 0.0,
            rotation: np.ndarray | None = None, rgb: np.ndarray | None = None) -> None:
        """Add a box of ``size`` (3,) centred at ``centre`` (3,), turned by ``yaw`` (or ``rotation``)."""
        rot = yaw_matrix(yaw) if rotation is None else np.asarray(rotation, dtype=np.float64)
        colour = self.tint(material) if rgb is None else np.asarray(rgb, dtype=np.float64)
        self.parts.append(Part(np.asarray(centre, dtype=np.float64), rot, np.asarray(size, dtype=np.float64),
                               fine_index(category), instance, colour, material))

    def add_local(self, origin: ArrayLike, yaw: float, local_centre: ArrayLike, size: ArrayLike, category: str, instance: int, material: str,
                  *, rgb: np.ndarray | None = None, tilt: np.ndarray | None = None) -> None:
        """Add a part given in an object frame at ``origin`` (3,) turned by ``yaw`` (optionally tilted)."""
        frame = yaw_matrix(yaw)
        centre = np.asarray(origin, dtype=np.float64) + frame @ np.asarray(local_centre, dtype=np.float64)
        rotation = frame if tilt is None else frame @ tilt
        self.add(centre, size, category, instance, material, rotation=rotation, rgb=rgb)


def to_boxes(parts: list[Part], rng: np.random.Generator) -> BoxSet:
    """A :class:`BoxSet` of ``parts`` (texture seeds drawn from ``rng``, one per face)."""
    builder = BoxSetBuilder()
    for part in parts:
        look = LOOKS[part.material]
        builder.add(
            part.centre, part.rotation, part.size / 2.0, nyu40=part.fine, raw=part.fine, instance=part.instance,
            colour=part.rgb, texture=look.texture, tex_scale=look.scale, tex_seed=rng.integers(0, 256, 6),
        )
    return builder.build()


def reflectivity(parts: list[Part]) -> np.ndarray:
    """Lidar reflectivity (B,) float64 of each part's material, in box order."""
    return np.array([LOOKS[p.material].reflectivity for p in parts], dtype=np.float64)


def move_boxes(boxes: BoxSet, pose: np.ndarray) -> BoxSet:
    """``boxes`` moved by the rigid transform ``pose`` (4, 4): centres and rotations change."""
    rot, trans = pose[:3, :3], pose[:3, 3]
    return dataclasses.replace(boxes, centre=boxes.centre @ rot.T + trans, rotation=np.einsum("ij,bjk->bik", rot, boxes.rotation))


def concat_boxes(*sets: BoxSet) -> BoxSet:
    """One :class:`BoxSet` holding the boxes of ``sets`` in order."""
    names = [f.name for f in dataclasses.fields(BoxSet)]
    return BoxSet(**{n: np.concatenate([getattr(s, n) for s in sets]) for n in names})
