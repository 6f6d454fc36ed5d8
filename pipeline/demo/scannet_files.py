"""Writers for the ScanNet v2 export formats, and atomic files and directories.

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

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

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
    optional ``label`` (V,) uint16 (nyu40 ids, for ``*.labels.ply``).

    plyfile writes the header and would write the same body, but it serialises list properties
    row by row in Python (about 0.25 s per demo mesh); the body is written here in one go
    instead. A test checks the bytes equal ``PlyData.write``'s.
    """
    ply = ply_data(vertices, rgb, faces, label)
    tris = np.empty(faces.shape[0], dtype=[("n", "u1"), ("vertex_indices", "<i4", (3,))])
    tris["n"] = 3
    tris["vertex_indices"] = faces
    with open(path, "wb") as stream:
        stream.write(ply.header.encode("ascii") + b"\n")
        stream.write(ply["vertex"].data.tobytes())
        stream.write(tris.tobytes())


# --------------------------------------------------------------------------------------
# Atomic output
# --------------------------------------------------------------------------------------


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete hidden temporaries left beside ``path`` by killed writers; returns them."""
    removed = []
    if path.parent.is_dir():
        for child in sorted(path.parent.iterdir()):
            if child.name.startswith(_partial_prefix(path)):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                removed.append(child)
    return removed


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a directory under a hidden temporary sibling; rename it to ``path`` on success.

    An existing ``path`` is replaced only after the new one is complete. On an exception the
    temporary is removed and ``path`` is untouched; a killed process leaves only the hidden
    temporary (``.<name>.partial-*``), which the next writer of ``path`` removes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = path.parent / f"{_partial_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f"{_partial_prefix(path)}old-{secrets.token_hex(4)}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a hidden temporary in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_partial_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
