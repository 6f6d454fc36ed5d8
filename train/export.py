"""Exports: ScanNet benchmark label files and PLY meshes coloured by prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.vocab import Benchmark

PALETTE = np.array(
    [
        [174, 199, 232], [152, 223, 138], [31, 119, 180], [255, 187, 120], [188, 189, 34],
        [140, 86, 75], [255, 152, 150], [214, 39, 40], [197, 176, 213], [148, 103, 189],
        [196, 156, 148], [23, 190, 207], [247, 182, 210], [219, 219, 141], [255, 127, 14],
        [158, 218, 229], [44, 160, 44], [112, 128, 144], [227, 119, 194], [82, 84, 163],
    ],
    dtype=np.uint8,
)
"""Colours of class indices 0..19 (ScanNet's benchmark colours of the 20 classes); others grey."""


def class_colours(classes: np.ndarray) -> np.ndarray:
    """Class indices (N,) → RGB (N, 3) uint8; ignore and indices >= 20 are grey."""
    classes = np.asarray(classes).astype(np.int64)
    out = np.full((classes.size, 3), 128, np.uint8)
    ok = classes < len(PALETTE)
    out[ok] = PALETTE[classes[ok]]
    return out


def write_benchmark_labels(path: str | Path, classes: np.ndarray, bench: Benchmark) -> Path:
    """ScanNet benchmark format: one raw (nyu40) id per vertex per line, in vertex order."""
    from pipeline.atomic import atomic_write_text

    raw = bench.to_raw(np.asarray(classes, dtype=np.uint8))
    atomic_write_text(path, "".join(f"{int(v)}\n" for v in raw))
    return Path(path)


def write_prediction_ply(path: str | Path, xyz: np.ndarray, classes: np.ndarray, faces: np.ndarray | None = None) -> Path:
    """Binary PLY: vertices (x, y, z, red, green, blue) coloured by class, plus faces if given."""
    from plyfile import PlyData, PlyElement

    path = Path(path)
    rgb = class_colours(classes)
    vertex = np.empty(xyz.shape[0], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    elements = [PlyElement.describe(vertex, "vertex")]
    if faces is not None and len(faces):
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face"))
    from pipeline.atomic import atomic_file

    with atomic_file(path) as tmp:
        PlyData(elements, text=False).write(str(tmp))
    return path
