"""File readers of the ScanNet adapter: each reads one file of the export layout and raises
:class:`~pipeline.errors.InputFileError` naming the file and the problem (never a traceback)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from pipeline.errors import InputFileError

log = logging.getLogger(__name__)

_SCENE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")




def read_matrix(path: Path, rows: int = 4, cols: int = 4) -> np.ndarray:
    """Read a whitespace-separated ``rows x cols`` text matrix (float64); ``-inf`` allowed."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as err:
        raise InputFileError(path, f"cannot read ({err.strerror})") from None
    try:
        values = np.array([float(tok) for tok in text.split()], dtype=np.float64)
    except ValueError:
        raise InputFileError(path, f"expected {rows}x{cols} numbers, found non-numeric text") from None
    if values.size != rows * cols:
        raise InputFileError(path, f"expected {rows}x{cols} = {rows * cols} numbers, found {values.size}")
    return values.reshape(rows, cols)


def read_color(path: Path) -> np.ndarray:
    """Decode a colour frame → (H, W, 3) uint8."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as err:  # PIL: truncated or not an image
        raise InputFileError(path, f"cannot decode image ({err})") from None


def read_png16(path: Path, what: str, sixteen_bit: bool = False) -> np.ndarray:
    """Read a single-channel 8/16-bit PNG (depth, labels, instances) → (H, W) uint16.

    ``sixteen_bit`` refuses 8-bit images: ScanNet depth is 16-bit millimetres, and an 8-bit depth
    PNG (a preview, or depth rescaled to 0-255) would be read silently in another unit.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("I;16", "I;16B", "I", "L", "P"):
                raise InputFileError(path, f"{what} must be a single-channel PNG, found mode {img.mode}")
            if sixteen_bit and img.mode in ("L", "P"):
                raise InputFileError(
                    path, f"{what} PNG is 8-bit (mode {img.mode}); it must be 16-bit millimetres as SensReader writes it "
                    "(an 8-bit image holds another unit: re-export the frames)",
                )
            data = np.asarray(img)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as err:
        raise InputFileError(path, f"cannot decode {what} PNG ({err})") from None
    if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
        raise InputFileError(path, f"{what} values outside uint16")
    return data.astype(np.uint16)


def read_ply_vertices(path: Path, need_label: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read a ScanNet ply → ({x,y,z,red,green,blue[,label]} arrays, faces (F, 3) int32 or None)."""
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(path))
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except Exception as err:  # plyfile raises PlyParseError, ValueError, EOFError...
        raise InputFileError(path, f"cannot parse ply ({err})") from None
    if "vertex" not in ply or ply["vertex"].count == 0:
        raise InputFileError(path, "ply has no vertices")
    vertex = ply["vertex"].data
    names = vertex.dtype.names or ()
    needed = ["x", "y", "z"] + (["label"] if need_label else [])
    missing = [n for n in needed if n not in names]
    if missing:
        raise InputFileError(path, f"ply vertices lack properties {missing}")
    out = {n: np.asarray(vertex[n]) for n in names}
    faces = None
    if "face" in ply and ply["face"].count:
        face_data = ply["face"].data
        key = "vertex_indices" if "vertex_indices" in face_data.dtype.names else face_data.dtype.names[0]
        lists = face_data[key]
        lengths = np.fromiter((len(f) for f in lists), dtype=np.int64, count=len(lists))
        if np.any(lengths != 3):
            raise InputFileError(path, "ply faces must be triangles")
        faces = np.stack(lists).astype(np.int32)
        if faces.size and (faces.min() < 0 or faces.max() >= len(out["x"])):
            raise InputFileError(path, "ply face indices out of range")
    return out, faces


def read_split_entries(path: Path) -> tuple[list[str], list[str]]:
    """Scene names listed one per line (blank lines and '#' comments ignored) → (the scenes in
    order, each once; the entries that repeat an earlier line)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise InputFileError(path, "split file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(path, f"cannot read split file ({err})") from None
    scenes = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    bad = [s for s in scenes if not _SCENE_NAME.match(s)]
    if bad:
        raise InputFileError(path, f"invalid scene names {bad[:3]}")
    unique = list(dict.fromkeys(scenes))
    repeated = list(scenes)
    for scene in unique:
        repeated.remove(scene)
    return unique, repeated


def read_split_file(path: Path) -> list[str]:
    """The scenes of a split file, each once; a scene listed twice is read once, with a warning."""
    scenes, repeated = read_split_entries(path)
    warn_repeated(path, repeated)
    return scenes


def warn_repeated(path: Path, repeated: list[str]) -> None:
    """Log the entries of split file ``path`` that repeat an earlier line, if any."""
    if repeated:
        log.warning("%s: %d scenes listed more than once (each is read once): %s", path, len(repeated), sorted(set(repeated))[:5])
