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

import functools
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline import camera
from pipeline.datasets.scannet_arrays import label_arrays, unmapped_raw_ids, view_arrays
from pipeline.datasets.scannet_files import (  # noqa: F401  (read_color: also the nuScenes adapter's)
    read_color, read_matrix, read_ply_vertices, read_png16, read_split_entries, read_split_file, warn_repeated,
)
from pipeline.errors import InputFileError, UserError
from pipeline.vocab import read_scannet_label_map

log = logging.getLogger(__name__)

_FRAME = re.compile(r"^(\d+)\.jpg$")
NYU40_MAX = 40
"""Largest nyu40 id; labels.ply ids above it are counted (``labels_outside_nyu40``)."""


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
        """Scenes of ``split`` from its split file (each once)."""
        return read_split_file(self._split_file(split))

    def _split_file(self, split: str) -> Path:
        files = dict(self.options.split_files)
        if split not in files:
            raise UserError(f"config key dataset.split_files: no file for split {split!r}")
        return self.options.root / files[split]

    def dataset_checks(self, split: str) -> dict[str, int]:
        """Dataset-level counts of :mod:`pipeline.input_checks` for ``split``: ``split_duplicates``."""
        path = self._split_file(split)
        repeated = read_split_entries(path)[1]
        warn_repeated(path, repeated)
        return {"split_duplicates": len(repeated)}

    @functools.cached_property
    def label_map(self) -> dict[int, int]:
        """The raw category id → nyu40 id map of ``label-filt`` images (``options.label_map``).

        A missing or unreadable map is an :class:`InputFileError`: without it the 2D labels mean
        nothing downstream (every CLIP job would fail on the store instead of here).
        """
        path = self.options.root / self.options.label_map
        if not path.is_file():
            raise InputFileError(
                path, "label map not found: it maps label-filt raw ids to nyu40 (it ships with ScanNet as "
                "scannetv2-labels.combined.tsv; set dataset.label_map if it has another name)",
            )
        try:
            return read_scannet_label_map(path)
        except (ValueError, OSError, UnicodeDecodeError) as err:
            text = str(err)
            rest = text[len(str(path)):] if text.startswith(str(path)) else f": {text}"
            line = re.match(r"^:(\d+): (.*)$", rest)
            raise InputFileError(path, f"line {line[1]}: {line[2]}" if line else rest.lstrip(": ")) from None

    def root_attrs(self) -> dict[str, Any]:
        """Store-level attributes: label spaces and the raw → nyu40 map of 2D labels."""
        return {
            "label_spaces": {"points": "nyu40", "views": "scannet-raw"},
            "label_map": sorted([int(k), int(v)] for k, v in self.label_map.items()),
        }

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
            if path.exists() and not np.allclose(read_matrix(path), np.eye(4), atol=1e-5):
                raise InputFileError(
                    path, "extrinsic is not identity, but this adapter projects colour and depth with the one pose "
                    "of pose/N.txt (registered frames, as ScanNet v2 exports are); the result would be misaligned",
                )
        for name, k in out.items():
            if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
                raise InputFileError(folder / f"{name}.txt", "intrinsics must be finite with positive focal lengths")
        return out

    def load(self, scene: str, split: str) -> PreparedSample:
        """Read one scene → arrays named as in :data:`pipeline.stores.registry.PREPARED`; the
        sample attribute ``input_checks`` holds its counts (:mod:`pipeline.input_checks`)."""
        opts = self.options
        folder = self.scene_dir(scene)
        if not folder.is_dir():
            raise InputFileError(folder, "scene folder not found")
        intr = self._intrinsics(scene)
        all_frames = self.list_frames(scene)
        frames = [f for f in all_frames if f % opts.frame_skip == 0]
        no_color = _depth_without_color(scene, folder, set(all_frames), opts.frame_skip)
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
        unmapped = self._unmapped_pixels(scene, folder, arrays.get("views/label"))
        mesh, mesh_checks = _mesh_arrays(scene, folder)
        arrays.update(mesh)
        attrs = {
            "split": split,
            "source": str(folder),
            "image_codec": opts.image_codec,
            "depth_scale": 1000.0,
            "frames_total": len(all_frames),
            "frames_selected": len(frames),
            "skipped_views": {"invalid_pose": skipped, "missing_label": missing_labels},
            "input_checks": {
                "invalid_pose_views": len(skipped), "depth_without_color": len(no_color),
                "missing_label_views": len(missing_labels), "unmapped_raw_label_pixels": unmapped, **mesh_checks,
            },
        }
        return PreparedSample(scene, split, arrays, attrs)

    def _unmapped_pixels(self, scene: str, folder: Path, labels: np.ndarray | None) -> int:
        """Pixels of the stored 2D labels whose raw id (not 0) the label map lacks; logs them."""
        if labels is None:
            return 0
        ids, count = unmapped_raw_ids(labels, self.label_map)
        if count:
            log.warning(
                "%s: %d label-filt pixels carry raw ids absent from %s %s; they count as unannotated",
                folder / "label-filt", count, self.options.label_map, ids[:5],
            )
        return count

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
            "depth": read_png16(folder / "depth" / f"{frame}.png", "depth", sixteen_bit=True),
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


def _mesh_arrays(scene: str, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The mesh's ``points/xyz`` (N, 3) float32, ``points/rgb`` (N, 3) uint8 and ``mesh/faces``
    (F, 3) int32 where present, and ``points/label`` (N,) uint16 nyu40 from the labels ply if any;
    with the counts ``mesh_without_faces``, ``mesh_without_colors`` (0/1) and ``labels_outside_nyu40``."""
    arrays: dict[str, np.ndarray] = {}
    mesh_path = folder / f"{scene}_vh_clean_2.ply"
    vertices, faces = read_ply_vertices(mesh_path)
    arrays["points/xyz"] = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1).astype(np.float32)
    if all(c in vertices for c in ("red", "green", "blue")):
        arrays["points/rgb"] = np.stack([vertices["red"], vertices["green"], vertices["blue"]], axis=1).astype(np.uint8)
    else:
        log.warning("%s: vertices have no red/green/blue; the 3D network's colour input will be grey", mesh_path)
    if faces is not None:
        arrays["mesh/faces"] = faces
    else:
        log.warning("%s: no faces; project cannot drop back-facing points of this scene", mesh_path)
    outside = 0
    label_path = folder / f"{scene}_vh_clean_2.labels.ply"
    if label_path.exists():
        labelled, _ = read_ply_vertices(label_path, need_label=True)
        if len(labelled["label"]) != len(vertices["x"]):
            raise InputFileError(label_path, f"has {len(labelled['label'])} vertices, the mesh {mesh_path.name} has {len(vertices['x'])}")
        label = np.asarray(labelled["label"])
        if label.dtype.kind not in "iu" or label.min(initial=0) < 0 or label.max(initial=0) > 65535:
            raise InputFileError(label_path, f"vertex labels must be non-negative integers (nyu40 ids), found {label.dtype}")
        outside = int((label > NYU40_MAX).sum())
        if outside:
            log.warning("%s: %d vertices carry ids outside nyu40 (0-%d) %s; they are ignored in evaluation",
                        label_path, outside, NYU40_MAX, np.unique(label[label > NYU40_MAX])[:5].tolist())
        arrays["points/label"] = label.astype(np.uint16)
    if not np.all(np.isfinite(arrays["points/xyz"])):
        raise InputFileError(mesh_path, "vertex coordinates are not all finite")
    checks = {"labels_outside_nyu40": outside, "mesh_without_faces": int(faces is None),
              "mesh_without_colors": int("points/rgb" not in arrays)}
    return arrays, checks


def _depth_without_color(scene: str, folder: Path, color_frames: set[int], frame_skip: int) -> list[int]:
    """Selected frame numbers (multiples of ``frame_skip``) with ``depth/N.png`` but no
    ``color/N.jpg``: frames are enumerated from ``color/``, so these are skipped; logged."""
    depth = folder / "depth"
    numbers = (int(p.stem) for p in depth.iterdir() if p.suffix == ".png" and p.stem.isdigit()) if depth.is_dir() else ()
    missing = sorted(n for n in numbers if n % frame_skip == 0 and n not in color_frames)
    if missing:
        log.warning("%s: %d frames have depth but no colour image, skipped: %s", folder / "color", len(missing), missing[:10])
    return missing


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
