"""ScanNet v2 adapter: reads the exported-frames layout (SensReader output + release files).

Per scene, below ``<root>/<scans_dir>/<scene>/``::

    color/N.jpg                 colour frames (1296x968 on the real sensor)
    depth/N.png                 uint16 depth, millimetres (640x480), 0 = no return
    pose/N.txt                  4x4 camera-to-world; some are -inf (tracking lost): skipped
    intrinsic/intrinsic_color.txt, intrinsic_depth.txt, extrinsic_color.txt, extrinsic_depth.txt
    label-filt/N.png            optional: 2D labels, ScanNet raw category ids
    instance-filt/N.png         optional: 2D instance ids
    <scene>_vh_clean_2.ply      mesh: vertices (x, y, z, r, g, b), faces
    <scene>_vh_clean_2.labels.ply   optional: per-vertex nyu40 ``label``

Frames are enumerated from ``color/``; a frame is kept if its number is a multiple of
``frame_skip`` and its pose is finite and rigid. Colour, 2D labels and the colour intrinsics
are stored at the working resolution; depth keeps its own resolution and intrinsics (the two
are *not* proportional on the real sensor). Raw ids are kept; vocabularies apply downstream.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline import camera
from pipeline.datasets.scannet_arrays import label_arrays, view_arrays
from pipeline.errors import InputFileError, UserError
from pipeline.vocab import read_scannet_label_map

log = logging.getLogger(__name__)

_FRAME = re.compile(r"^(\d+)\.jpg$")


@dataclass
class PreparedSample:
    """A sample ready for :meth:`pipeline.stores.StoreWriter.add_sample`."""

    sample_id: str
    split: str
    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanNetOptions:
    """Adapter options (the ``dataset`` config section)."""

    root: Path
    scans_dir: str = "scans"
    label_map: str = "scannetv2-labels.combined.tsv"
    split_files: tuple[tuple[str, str], ...] = (("train", "scannetv2_train.txt"), ("val", "scannetv2_val.txt"))
    frame_skip: int = 20
    working_size: tuple[int, int] = (640, 480)
    image_codec: str = "jpeg"
    jpeg_quality: int = 95
    threads: int = 2

    @classmethod
    def from_config(cls, dataset: dict[str, Any], threads: int = 2) -> "ScanNetOptions":
        return cls(
            root=Path(dataset["root"]),
            scans_dir=dataset.get("scans_dir", "scans"),
            label_map=dataset.get("label_map", "scannetv2-labels.combined.tsv"),
            split_files=tuple(sorted(dataset.get("split_files", {}).items())),
            frame_skip=int(dataset.get("frame_skip", 20)),
            working_size=tuple(int(v) for v in dataset.get("working_size", (640, 480))),
            image_codec=dataset.get("image_codec", "jpeg"),
            jpeg_quality=int(dataset.get("jpeg_quality", 95)),
            threads=threads,
        )


# --------------------------------------------------------------------------------------
# File readers: each raises InputFileError naming the file and the problem.
# --------------------------------------------------------------------------------------


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


def read_png16(path: Path, what: str) -> np.ndarray:
    """Read a single-channel 8/16-bit PNG (depth, labels, instances) → (H, W) uint16."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("I;16", "I;16B", "I", "L", "P"):
                raise InputFileError(path, f"{what} must be a single-channel PNG, found mode {img.mode}")
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


def read_split_file(path: Path) -> list[str]:
    """Scene names listed one per line (blank lines and '#' comments ignored)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise InputFileError(path, "split file not found") from None
    scenes = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    bad = [s for s in scenes if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", s)]
    if bad:
        raise InputFileError(path, f"invalid scene names {bad[:3]}")
    return scenes


# --------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------


class ScanNetAdapter:
    """Reads ScanNet-format scenes into :class:`PreparedSample` objects."""

    kind = "scannet"

    def __init__(self, options: ScanNetOptions) -> None:
        self.options = options

    # -- dataset level ----------------------------------------------------------------------
    def scene_dir(self, scene: str) -> Path:
        return self.options.root / self.options.scans_dir / scene

    def sample_scene(self, sample_id: str) -> str:
        """The scene a sample belongs to (a ScanNet sample is a scene)."""
        return sample_id

    def list_samples(self, split: str) -> list[str]:
        """Scenes of ``split`` from its split file."""
        files = dict(self.options.split_files)
        if split not in files:
            raise UserError(f"config key dataset.split_files: no file for split {split!r}")
        return read_split_file(self.options.root / files[split])

    def root_attrs(self) -> dict[str, Any]:
        """Store-level attributes: label spaces and the raw → nyu40 map of 2D labels."""
        path = self.options.root / self.options.label_map
        attrs: dict[str, Any] = {"label_spaces": {"points": "nyu40", "views": "scannet-raw"}}
        if path.is_file():
            try:
                mapping = read_scannet_label_map(path)
            except ValueError as err:
                raise InputFileError(path, str(err).split(": ", 1)[-1]) from None
            attrs["label_map"] = sorted([int(k), int(v)] for k, v in mapping.items())
        else:
            log.warning("%s not found: 2D raw labels cannot be mapped to classes downstream", path)
            attrs["label_spaces"]["views"] = None
        return attrs

    # -- scene level ------------------------------------------------------------------------
    def list_frames(self, scene: str) -> list[int]:
        """Frame numbers present in ``color/``, sorted."""
        color = self.scene_dir(scene) / "color"
        if not color.is_dir():
            raise InputFileError(color, "colour frame folder not found (export frames with SensReader first)")
        frames = sorted(int(m.group(1)) for p in color.iterdir() if (m := _FRAME.match(p.name)))
        if not frames:
            raise InputFileError(color, "no N.jpg frames found")
        return frames

    def _intrinsics(self, scene: str) -> dict[str, np.ndarray]:
        folder = self.scene_dir(scene) / "intrinsic"
        out = {name: read_matrix(folder / f"{name}.txt") for name in ("intrinsic_color", "intrinsic_depth")}
        for name in ("extrinsic_color", "extrinsic_depth"):
            path = folder / f"{name}.txt"
            if path.exists():
                ext = read_matrix(path)
                if not np.allclose(ext, np.eye(4), atol=1e-6):
                    log.warning("%s is not identity; poses are used as given for both sensors", path)
        for name, k in out.items():
            if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
                raise InputFileError(folder / f"{name}.txt", "intrinsics must be finite with positive focal lengths")
        return out

    def load(self, scene: str, split: str) -> PreparedSample:
        """Read one scene → arrays named as in :data:`pipeline.stores.registry.PREPARED`."""
        opts = self.options
        folder = self.scene_dir(scene)
        if not folder.is_dir():
            raise InputFileError(folder, "scene folder not found")
        intr = self._intrinsics(scene)
        all_frames = self.list_frames(scene)
        frames = [f for f in all_frames if f % opts.frame_skip == 0]
        poses, kept, skipped = _read_poses(scene, folder, frames)
        has_labels = (folder / "label-filt").is_dir()
        has_instances = (folder / "instance-filt").is_dir()
        views = self._load_views(folder, kept, has_labels, has_instances)
        native_size, k_color, k_depth = _check_views(folder, kept, views, intr)
        arrays = view_arrays(kept, poses, views, native_size, k_color, k_depth, opts)
        missing_labels = [f for f, v in zip(kept, views) if has_labels and v.get("label") is None]
        arrays.update(label_arrays(views, has_labels, has_instances, tuple(opts.working_size)))
        if missing_labels:
            log.warning("%s: %d views have no label-filt image; their 2D labels are 0 (unannotated)", scene, len(missing_labels))
        arrays.update(_mesh_arrays(scene, folder))
        attrs = {
            "split": split,
            "source": str(folder),
            "image_codec": opts.image_codec,
            "depth_scale": 1000.0,
            "frames_total": len(all_frames),
            "frames_selected": len(frames),
            "skipped_views": {"invalid_pose": skipped, "missing_label": missing_labels},
        }
        return PreparedSample(scene, split, arrays, attrs)

    def _load_views(self, folder: Path, frames: list[int], has_labels: bool, has_instances: bool) -> list[dict[str, np.ndarray | None]]:
        """Decode ``frames`` with ``options.threads`` threads; returns one :meth:`_load_view` dict per
        frame, in order."""
        with ThreadPoolExecutor(max_workers=max(1, self.options.threads)) as pool:
            return list(pool.map(lambda f: self._load_view(folder, f, has_labels, has_instances), frames))

    def _load_view(self, folder: Path, frame: int, has_labels: bool, has_instances: bool) -> dict[str, np.ndarray | None]:
        """One frame's ``color`` (H, W, 3) uint8, ``depth`` (Hd, Wd) uint16 mm, and ``label`` /
        ``instance`` (H', W') uint16 (None where disabled or the file is absent)."""
        view: dict[str, np.ndarray | None] = {
            "color": read_color(folder / "color" / f"{frame}.jpg"),
            "depth": read_png16(folder / "depth" / f"{frame}.png", "depth"),
        }
        for enabled, key, name in ((has_labels, "label", "label-filt"), (has_instances, "instance", "instance-filt")):
            path = folder / name / f"{frame}.png"
            view[key] = read_png16(path, name) if enabled and path.exists() else None
        return view


def _read_poses(scene: str, folder: Path, frames: list[int]) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Read ``pose/N.txt`` of ``frames``; returns (valid 4x4 float64 poses, their frames, frames
    skipped for a non-finite or non-rigid pose). Logs the skipped ones; none valid is an error."""
    poses, kept, skipped = [], [], []
    for frame in frames:
        pose = read_matrix(folder / "pose" / f"{frame}.txt")
        if camera.pose_is_valid(pose):
            poses.append(pose)
            kept.append(frame)
        else:
            skipped.append(frame)
    if skipped:
        log.warning("%s: skipped %d views with non-finite or non-rigid poses: %s", scene, len(skipped), skipped)
    if not kept:
        raise InputFileError(folder / "pose", f"no frame with a valid pose among {len(frames)} selected frames")
    return poses, kept, skipped


def _check_views(folder: Path, frames: list[int], views: list[dict], intr: dict[str, np.ndarray]) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Check the frames' image sizes against each other and the intrinsics; returns (colour size
    (W, H), colour K (3, 3) float64, depth K (3, 3) float64)."""
    native_size = _common_size(folder / "color", frames, [v["color"] for v in views], "jpg", "colour image")
    depth_size = _common_size(folder / "depth", frames, [v["depth"] for v in views], "png", "depth image")
    for frame, view in zip(frames, views):
        for key, name in (("label", "label-filt"), ("instance", "instance-filt")):
            if view.get(key) is not None and view[key].shape != view["color"].shape[:2]:
                raise InputFileError(
                    folder / name / f"{frame}.png",
                    f"{name} image is {view[key].shape[1]}x{view[key].shape[0]}, colour is {native_size[0]}x{native_size[1]}",
                )
    k_color = intr["intrinsic_color"][:3, :3]
    k_depth = intr["intrinsic_depth"][:3, :3]
    _check_principal_point(folder / "intrinsic" / "intrinsic_color.txt", k_color, native_size)
    _check_principal_point(folder / "intrinsic" / "intrinsic_depth.txt", k_depth, depth_size)
    return native_size, k_color, k_depth


def _mesh_arrays(scene: str, folder: Path) -> dict[str, np.ndarray]:
    """The mesh's ``points/xyz`` (N, 3) float32, ``points/rgb`` (N, 3) uint8 and ``mesh/faces``
    (F, 3) int32 where present, and ``points/label`` (N,) uint16 nyu40 from the labels ply if any."""
    arrays: dict[str, np.ndarray] = {}
    mesh_path = folder / f"{scene}_vh_clean_2.ply"
    vertices, faces = read_ply_vertices(mesh_path)
    arrays["points/xyz"] = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1).astype(np.float32)
    if all(c in vertices for c in ("red", "green", "blue")):
        arrays["points/rgb"] = np.stack([vertices["red"], vertices["green"], vertices["blue"]], axis=1).astype(np.uint8)
    if faces is not None:
        arrays["mesh/faces"] = faces
    label_path = folder / f"{scene}_vh_clean_2.labels.ply"
    if label_path.exists():
        labelled, _ = read_ply_vertices(label_path, need_label=True)
        if len(labelled["label"]) != len(vertices["x"]):
            raise InputFileError(label_path, f"has {len(labelled['label'])} vertices, the mesh {mesh_path.name} has {len(vertices['x'])}")
        arrays["points/label"] = labelled["label"].astype(np.uint16)
    if not np.all(np.isfinite(arrays["points/xyz"])):
        raise InputFileError(mesh_path, "vertex coordinates are not all finite")
    return arrays


def _common_size(folder: Path, frames: Sequence[int], arrays: Sequence[np.ndarray], ext: str, what: str) -> tuple[int, int]:
    """The size (W, H) most frames share; any frame of another size is an error naming it."""
    sizes = [(a.shape[1], a.shape[0]) for a in arrays]
    values, counts = np.unique(np.asarray(sizes), axis=0, return_counts=True)
    common = tuple(int(v) for v in values[int(np.argmax(counts))])
    for frame, size in zip(frames, sizes):
        if size != common:
            raise InputFileError(
                folder / f"{frame}.{ext}", f"{what} is {size[0]}x{size[1]}, the scene's other frames are {common[0]}x{common[1]}"
            )
    return common


def _check_principal_point(path: Path, k: np.ndarray, size: Sequence[int]) -> None:
    """The principal point must lie in the central half of the images it describes.

    Real cameras have it near the centre; a point outside that band means the intrinsics do
    not belong to images of this size (a wrong-size export, or colour/depth files swapped).
    """
    if not (0.25 * size[0] < k[0, 2] < 0.75 * size[0] and 0.25 * size[1] < k[1, 2] < 0.75 * size[1]):
        raise InputFileError(
            path,
            f"principal point ({k[0, 2]:.1f}, {k[1, 2]:.1f}) does not fit the {size[0]}x{size[1]} images it should describe",
        )
