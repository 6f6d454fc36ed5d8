"""Generate one demo scene end to end, and the dataset's label map and split lists.

A scene is a deterministic function of (seed, scene name): both are hashed into the seed of a
numpy Generator (:func:`pipeline.demo.spec.scene_seed`). Poses and intrinsics are rounded to
what their text files hold *before* rendering, so what a reader gets back is exactly the camera
that made the images.

Output (``<root>/scans/<scene>/``, built in a hidden temporary sibling, renamed when complete)::

    color/N.jpg  depth/N.png  pose/N.txt  label-filt/N.png  instance-filt/N.png
    intrinsic/{intrinsic,extrinsic}_{color,depth}.txt
    <scene>_vh_clean_2.ply  <scene>_vh_clean_2.labels.ply
    _demo_gt/visibility.npz  _demo_gt/vertex_instance.npy  _demo_gt/vertex_part.npy
    _demo_gt/scene.json      (test ground truth, not part of the ScanNet format)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.demo import spec
from pipeline.demo.cameras import camera_path, scene_intrinsics
from pipeline.demo.categories import labels_tsv
from pipeline.demo.defects import MIN_VIEWS_FOR_DEFECTS, Defects, draw_defects, punch_holes
from pipeline.demo.mesh import Mesh, label_colour, tessellate
from pipeline.demo.render import render_view
from pipeline.demo.room import Room, generate_room
from pipeline.atomic import atomic_directory, atomic_write_text
from pipeline.demo.scannet_files import (
    as_written, format_matrix, intrinsic_4x4, write_jpeg, write_ply, write_png,
)
from pipeline.demo.visibility import visible_vertices
from pipeline.errors import UserError

log = logging.getLogger(__name__)

LABEL_MAP_FILE = "scannetv2-labels.combined.tsv"
SPLIT_FILES = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt"}
SCANS_DIR = "scans"
GT_DIR = "_demo_gt"
FRAME_DIRS = ("color", "depth", "pose", "label-filt", "instance-filt")


@dataclass(frozen=True)
class DemoOptions:
    """Generation settings of one scene (see ``python -m pipeline demo-scene --help``)."""

    seed: int = 0
    views: int = spec.DEFAULT_VIEWS
    color_size: tuple[int, int] = spec.DEFAULT_COLOR_SIZE
    depth_size: tuple[int, int] = spec.DEFAULT_DEPTH_SIZE
    vertex_spacing: float = spec.DEFAULT_VERTEX_SPACING
    defects: bool = False
    jpeg_quality: int = spec.DEFAULT_JPEG_QUALITY

    def validate(self) -> None:
        """Raise :class:`UserError` naming the option that is out of range."""
        if not 1 <= self.views <= 10000:
            raise UserError(f"--views must be in 1..10000, got {self.views}")
        if self.defects and self.views < MIN_VIEWS_FOR_DEFECTS:
            raise UserError(f"--defects needs --views >= {MIN_VIEWS_FOR_DEFECTS}, got {self.views}")
        for name, (w, h) in (("--color-size", self.color_size), ("--depth-size", self.depth_size)):
            if not (8 <= w <= 8192 and 8 <= h <= 8192):
                raise UserError(f"{name} must be two sizes in 8..8192 (W H), got {w} {h}")
        if not 0.01 <= self.vertex_spacing <= 1.0:
            raise UserError(f"--vertex-spacing must be in 0.01..1.0 m, got {self.vertex_spacing}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class DemoScene:
    """A generated scene before writing: geometry, cameras (as their files hold them), defects."""

    name: str
    room: Room
    mesh: Mesh
    color_k: np.ndarray  # (3, 3)
    depth_k: np.ndarray  # (3, 3)
    poses: np.ndarray  # (views, 4, 4) true cam-to-world poses (finite, as written to 6 decimals)
    defects: Defects = field(default_factory=Defects)


def build_scene(scene: str, options: DemoOptions) -> DemoScene:
    """Geometry, mesh, intrinsics, poses and defect choice of ``scene`` (no I/O)."""
    if not spec.SCENE_NAME.match(scene):
        raise UserError(f"--scene {scene!r}: use letters, digits, '_', '.', '-' (e.g. scene0000_00)")
    options.validate()
    rng = np.random.default_rng(spec.scene_seed(options.seed, scene))
    room = generate_room(rng)
    color_k, depth_k = scene_intrinsics(rng, options.color_size, options.depth_size)
    color_k = as_written(intrinsic_4x4(color_k))[:3, :3]
    depth_k = as_written(intrinsic_4x4(depth_k))[:3, :3]
    poses = np.stack([as_written(p) for p in camera_path(rng, room, options.views)])
    mesh = tessellate(room.boxes, options.vertex_spacing)
    defects = Defects()
    if options.defects:
        defects = draw_defects(np.random.default_rng(spec.scene_seed(options.seed, scene, "defects")), options.views)
    return DemoScene(scene, room, mesh, color_k, depth_k, poses, defects)


def _write_static(out: Path, demo: DemoScene) -> None:
    intr = out / "intrinsic"
    intr.mkdir()
    (intr / "intrinsic_color.txt").write_text(format_matrix(intrinsic_4x4(demo.color_k)))
    (intr / "intrinsic_depth.txt").write_text(format_matrix(intrinsic_4x4(demo.depth_k)))
    (intr / "extrinsic_color.txt").write_text(format_matrix(np.eye(4)))
    (intr / "extrinsic_depth.txt").write_text(format_matrix(np.eye(4)))
    mesh = demo.mesh
    write_ply(out / f"{demo.name}_vh_clean_2.ply", mesh.vertices, mesh.colours, mesh.faces)
    write_ply(out / f"{demo.name}_vh_clean_2.labels.ply", mesh.vertices, label_colour(mesh.nyu40), mesh.faces, mesh.nyu40)


def generate_scene(root: str | Path, scene: str, options: DemoOptions) -> Path:
    """Write ``<root>/scans/<scene>/`` atomically; returns that path."""
    from tqdm import tqdm

    start = time.perf_counter()
    demo = build_scene(scene, options)
    mesh, defects = demo.mesh, demo.defects
    hole_rng = np.random.default_rng(spec.scene_seed(options.seed, scene, "depth-holes"))
    final = Path(root) / SCANS_DIR / scene
    frames, seen = [], []
    with atomic_directory(final) as out:
        for d in FRAME_DIRS + (GT_DIR,):
            (out / d).mkdir()
        _write_static(out, demo)
        vertices = mesh.vertices.astype(np.float64)
        inst_dtype = np.uint8 if int(mesh.instance.max()) < 256 else np.uint16
        for n in tqdm(range(options.views), desc=scene, unit="view", leave=False, disable=None):
            if n in defects.missing_frames:
                continue
            pose = demo.poses[n]
            img = render_view(demo.room.boxes, pose, demo.color_k, options.color_size, demo.depth_k, options.depth_size)
            depth = punch_holes(hole_rng, img.depth_mm) if n in defects.holed_depth_frames else img.depth_mm
            write_jpeg(out / "color" / f"{n}.jpg", img.color, options.jpeg_quality)
            write_png(out / "depth" / f"{n}.png", depth)
            write_png(out / "label-filt" / f"{n}.png", img.label)
            write_png(out / "instance-filt" / f"{n}.png", img.instance.astype(inst_dtype))
            written_pose = np.full((4, 4), -np.inf) if n in defects.inf_pose_frames else pose
            (out / "pose" / f"{n}.txt").write_text(format_matrix(written_pose))
            frames.append(n)
            seen.append(visible_vertices(demo.room.boxes, vertices, pose, demo.color_k, options.color_size))
        offsets = np.zeros(len(seen) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in seen])
        np.savez(
            out / GT_DIR / "visibility.npz",
            frames=np.asarray(frames, dtype=np.int64), offsets=offsets,
            vertices=np.concatenate(seen).astype(np.int64) if seen else np.zeros(0, np.int64),
        )
        np.save(out / GT_DIR / "vertex_instance.npy", mesh.instance.astype(np.int32))
        np.save(out / GT_DIR / "vertex_part.npy", mesh.part.astype(np.int32))
        info = {
            "scene": scene,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
            "room_type": demo.room.kind,
            "room_size_m": [round(float(v), 4) for v in demo.room.size],
            "objects": list(demo.room.objects),
            "defects": defects.as_dict(),
            "true_poses": {str(n): demo.poses[n].tolist() for n in defects.inf_pose_frames},
        }
        (out / GT_DIR / "scene.json").write_text(json.dumps(info, indent=1) + "\n")
    log.info(
        "%s: room type %s (%s), %d vertices, %d frames written in %.2f s",
        scene, demo.room.kind, ", ".join(demo.room.objects), mesh.vertices.shape[0], len(frames),
        time.perf_counter() - start,
    )
    return final


def write_meta(root: str | Path, train: Sequence[str], val: Sequence[str]) -> list[Path]:
    """Write the label map and split lists under ``root`` (each atomically); returns their paths."""
    names = list(train) + list(val)
    bad = [n for n in names if not spec.SCENE_NAME.match(n)]
    if bad:
        raise UserError(f"demo-meta: invalid scene names {bad}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"demo-meta: scenes listed twice or in both --train and --val: {dup}")
    root = Path(root)
    out = [root / LABEL_MAP_FILE, root / SPLIT_FILES["train"], root / SPLIT_FILES["val"]]
    atomic_write_text(out[0], labels_tsv())
    atomic_write_text(out[1], "".join(f"{n}\n" for n in train))
    atomic_write_text(out[2], "".join(f"{n}\n" for n in val))
    return out
