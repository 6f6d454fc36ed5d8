"""The one class palette: ScanNet's benchmark colours for ScanNet, the nuScenes devkit's for
nuScenes and nuImages. Every picture, overlay and PLY colours classes through :func:`class_palette`.
"""

from __future__ import annotations

import numpy as np

from pipeline.vocab import IGNORE, NUSCENES_CLASS_SPACES, NUSCENES_FINE_TO_CLASS, Benchmark

IGNORE_COLOUR: tuple[int, int, int] = (0, 0, 0)
"""Colour of IGNORE (no label / unannotated) everywhere: black."""

SCANNET20_COLOURS: tuple[tuple[int, int, int], ...] = (
    (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
    (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189),
    (196, 156, 148), (23, 190, 207), (247, 182, 210), (219, 219, 141), (255, 127, 14),
    (158, 218, 229), (44, 160, 44), (112, 128, 144), (227, 119, 194), (82, 84, 163),
)
"""The ScanNet benchmark's colours of its 20 classes, in ``scannet20`` order (wall, floor, ...)."""

NUSCENES_FINE_COLOURS: dict[str, tuple[int, int, int]] = {
    "noise": (0, 0, 0), "animal": (70, 130, 180), "human.pedestrian.adult": (0, 0, 230),
    "human.pedestrian.child": (135, 206, 235), "human.pedestrian.construction_worker": (100, 149, 237),
    "human.pedestrian.personal_mobility": (219, 112, 147), "human.pedestrian.police_officer": (0, 0, 128),
    "human.pedestrian.stroller": (240, 128, 128), "human.pedestrian.wheelchair": (138, 43, 226),
    "movable_object.barrier": (112, 128, 144), "movable_object.debris": (210, 105, 30),
    "movable_object.pushable_pullable": (105, 105, 105), "movable_object.trafficcone": (47, 79, 79),
    "static_object.bicycle_rack": (188, 143, 143), "vehicle.bicycle": (220, 20, 60), "vehicle.bus.bendy": (255, 127, 80),
    "vehicle.bus.rigid": (255, 69, 0), "vehicle.car": (255, 158, 0), "vehicle.construction": (233, 150, 70),
    "vehicle.emergency.ambulance": (255, 83, 0), "vehicle.emergency.police": (255, 215, 0),
    "vehicle.motorcycle": (255, 61, 99), "vehicle.trailer": (255, 140, 0), "vehicle.truck": (255, 99, 71),
    "flat.driveable_surface": (0, 207, 191), "flat.other": (175, 0, 75), "flat.sidewalk": (75, 0, 75),
    "flat.terrain": (112, 180, 60), "static.manmade": (222, 184, 135), "static.other": (255, 228, 196),
    "static.vegetation": (0, 175, 0), "vehicle.ego": (255, 240, 245),
}
"""The nuScenes devkit's colours of the 32 fine categories (``nuscenes.utils.color_map.get_colormap``)."""


def _spread(n: int) -> np.ndarray:
    """``n`` distinct colours for vocabularies without a published palette (golden-angle hues)."""
    hue = (np.arange(n) * 0.618033988749895) % 1.0
    k = (np.array([5.0, 3.0, 1.0])[None, :] + hue[:, None] * 6.0) % 6.0
    rgb = 0.85 - 0.6 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return np.round(rgb * 255).astype(np.uint8)


def class_palette(bench: Benchmark) -> np.ndarray:
    """RGB colours (256, 3) uint8 indexed by class index of ``bench``; IGNORE and unused ids black.

    ``scannet20``: the ScanNet benchmark colours; the nuScenes class spaces: for each class the
    devkit's colour of the first fine category (in ``category.json`` order) that maps to it;
    any other vocabulary: distinct generated hues.
    """
    out = np.zeros((256, 3), np.uint8)
    if bench.name == "scannet20":
        out[: len(SCANNET20_COLOURS)] = np.array(SCANNET20_COLOURS, np.uint8)
    elif bench.name in NUSCENES_CLASS_SPACES:
        for c, name in enumerate(bench.class_names):
            fine = next(f for f, merged in NUSCENES_FINE_TO_CLASS.items() if merged == name)
            out[c] = NUSCENES_FINE_COLOURS[fine]
    else:
        out[: bench.n_classes] = _spread(bench.n_classes)
    out[IGNORE] = IGNORE_COLOUR
    return out


def colour_labels(labels: np.ndarray, bench: Benchmark) -> np.ndarray:
    """Class indices (any shape, IGNORE allowed) → RGB (*shape, 3) uint8 in :func:`class_palette`."""
    return class_palette(bench)[np.asarray(labels).astype(np.int64) & 0xFF]
