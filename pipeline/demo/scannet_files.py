"""Writers for the ScanNet v2 export formats (atomic output: :mod:`pipeline.atomic`).

Formats, as ScanNet's SensReader and release write them:

* ``pose/N.txt``, ``intrinsic/*.txt``: a 4x4 matrix, one row per line, values ``%f``
  separated by single spaces (``-inf`` for failed poses).
* ``color/N.jpg``: JPEG; ``depth/N.png``: 16-bit grey PNG, millimetres, 0 = no return;
  ``label-filt/N.png``: 16-bit PNG of raw category ids; ``instance-filt/N.png``: 8-bit PNG
  (16-bit when a scene has more than 255 instances).
* ``<scene>_vh_clean_2.ply``: binary little-endian, vertex ``float x y z, uchar red green blue
  alpha``, face ``list uchar int vertex_indices``; ``<scene>_vh_clean_2.labels.ply`` adds
  ``ushort label`` (nyu40 id) to the vertices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------
# Matrices
# --------------------------------------------------------------------------------------


def format_matrix(matrix: np.ndarray) -> str:
    """SensReader's text for a 4x4 matrix: each row ``%f``-formatted, space separated."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 matrix, got shape {m.shape}")
    return "".join(" ".join("%f" % x for x in row) + "\n" for row in m)


def parse_matrix(text: str) -> np.ndarray:
    """Inverse of :func:`format_matrix` (4, 4) float64 (accepts ``-inf``)."""
    rows = [[float(x) for x in line.split()] for line in text.strip().splitlines()]
    m = np.array(rows, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected 4 rows of 4 numbers, got shape {m.shape}")
    return m


def as_written(matrix: np.ndarray) -> np.ndarray:
    """The matrix a reader gets back after :func:`format_matrix` (6 decimals)."""
    return parse_matrix(format_matrix(matrix))


def intrinsic_4x4(k: np.ndarray) -> np.ndarray:
    """3x3 intrinsics → the 4x4 form of ``intrinsic_*.txt``."""
    m = np.eye(4)
    m[:3, :3] = k
    return m


# --------------------------------------------------------------------------------------
# Images and meshes
# --------------------------------------------------------------------------------------


def write_png(path: Path, image: np.ndarray) -> None:
    """Grey PNG: uint8 → 8-bit, uint16 → 16-bit (values kept)."""
    from PIL import Image

    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 2:
        raise ValueError(f"{path}: need a 2D uint8 or uint16 image, got {image.dtype} {image.shape}")
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """RGB JPEG of a (H, W, 3) uint8 image."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="JPEG", quality=int(quality))


def _vertex_array(vertices: np.ndarray, rgb: np.ndarray, label: np.ndarray | None) -> np.ndarray:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    if label is not None:
        fields.append(("label", "<u2"))
    out = np.empty(vertices.shape[0], dtype=fields)
    out["x"], out["y"], out["z"] = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    out["red"], out["green"], out["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    out["alpha"] = 255
    if label is not None:
        out["label"] = label
    return out


def ply_data(vertices: np.ndarray, rgb: np.ndarray, faces: np.ndarray, label: np.ndarray | None = None):
    """The mesh as a :class:`plyfile.PlyData` (binary little-endian, ScanNet's properties)."""
    from plyfile import PlyData, PlyElement

    vertex = PlyElement.describe(_vertex_array(vertices, rgb, label), "vertex")
    face_data = np.empty(faces.shape[0], dtype=[("vertex_indices", "i4", (3,))])
    face_data["vertex_indices"] = faces
    face = PlyElement.describe(face_data, "face", len_types={"vertex_indices": "u1"})
    return PlyData([vertex, face], text=False, byte_order="<")


def write_ply(path: Path, vertices: np.ndarray, rgb: np.ndarray, faces: np.ndarray,
              label: np.ndarray | None = None) -> None:
    """ScanNet-style binary PLY: vertices (V, 3) float32, rgb (V, 3) uint8, faces (F, 3) int32,
    optional ``label`` (V,) uint16 (nyu40 ids, for ``*.labels.ply``)."""
    ply_data(vertices, rgb, faces, label).write(str(path))
