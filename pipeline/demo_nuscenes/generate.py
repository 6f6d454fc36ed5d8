"""Generate the nuScenes-format demo dataset end to end.

Output (``<root>/``, built in a hidden temporary sibling and renamed when complete)::

    samples/LIDAR_TOP/<log>__LIDAR_TOP__<ts>.pcd.bin    samples/CAM_*/<log>__CAM_*__<ts>.jpg
    lidarseg/v1.0-mini/<lidar sample_data token>_lidarseg.bin
    maps/<map token>.png    v1.0-mini/<13 tables>.json + lidarseg.json
    demo_truth/<sample token>.npz, demo_truth/defects.json   (test ground truth, not the format)

Scenes are independent (each a function of the seed and its name), so they are generated in
parallel worker processes; the result does not depend on the number of workers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import atomic_directory
from pipeline.demo_nuscenes import spec
from pipeline.demo_nuscenes.defects import Defects, draw_defects
from pipeline.demo_nuscenes.files import write_map, write_table
from pipeline.demo_nuscenes.scene import SceneMeta, SceneSettings, generate_scene
from pipeline.demo_nuscenes.tables import build_tables
from pipeline.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NuScenesDemoOptions:
    """Settings of the dataset (see ``python -m pipeline demo-nuscenes --help``)."""

    scenes: int = spec.DEFAULT_SCENES
    val: int = spec.DEFAULT_VAL
    seed: int = 0
    samples_per_scene: int = spec.DEFAULT_SAMPLES
    camera_size: tuple[int, int] = spec.DEFAULT_CAMERA_SIZE
    lidar_beams: int = spec.DEFAULT_BEAMS
    lidar_azimuths: int = spec.DEFAULT_AZIMUTHS
    defects: bool = False
    jpeg_quality: int = spec.DEFAULT_JPEG_QUALITY
    workers: int = 0
    """Worker processes; 0 = one per scene, at most the CPUs this process may use."""

    def validate(self) -> None:
        """Raise :class:`UserError` naming the option that is out of range."""
        try:
            spec.scene_names(self.scenes, self.val)
        except ValueError as err:
            raise UserError(f"--scenes/--val: {err}") from None
        if not 1 <= self.samples_per_scene <= 40:
            raise UserError(f"--samples-per-scene must be in 1..40, got {self.samples_per_scene}")
        w, h = self.camera_size
        if not (16 <= w <= 3200 and 16 <= h <= 1800):
            raise UserError(f"--camera-size must be W in 16..3200 and H in 16..1800, got {w} {h}")
        if not 4 <= self.lidar_beams <= 128:
            raise UserError(f"--lidar-beams must be in 4..128, got {self.lidar_beams}")
        if not 64 <= self.lidar_azimuths <= 8192:
            raise UserError(f"--lidar-azimuths must be in 64..8192, got {self.lidar_azimuths}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0, got {self.workers}")

    def settings(self) -> SceneSettings:
        """What each scene needs."""
        return SceneSettings(self.seed, self.samples_per_scene, tuple(self.camera_size), self.lidar_beams,
                             self.lidar_azimuths, self.jpeg_quality)


def _make_dirs(out: Path) -> None:
    for channel in (spec.LIDAR,) + spec.CAMERAS:
        (out / "samples" / channel).mkdir(parents=True)
    for sub in ("sweeps", "maps", spec.VERSION, f"lidarseg/{spec.VERSION}", spec.TRUTH_DIR):
        (out / sub).mkdir(parents=True)


def _workers(options: NuScenesDemoOptions, scenes: int) -> int:
    if options.workers:
        return min(options.workers, scenes)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, scenes))


def _run_scenes(out: Path, names: list[str], options: NuScenesDemoOptions, defects: Defects) -> list[SceneMeta]:
    settings = options.settings()
    workers = _workers(options, len(names))
    if workers == 1:
        return [generate_scene(out, n, settings, defects.skipped(n)) for n in names]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(generate_scene, out, n, settings, defects.skipped(n)) for n in names]
        return [f.result() for f in futures]


def generate_dataset(root: str | Path, options: NuScenesDemoOptions) -> Path:
    """Write the whole dataset at ``root`` atomically (replacing what was there); returns ``root``."""
    options.validate()
    start = time.perf_counter()
    train, val = spec.scene_names(options.scenes, options.val)
    names = train + val
    defects = draw_defects(options.seed, names, options.samples_per_scene) if options.defects else Defects()
    root = Path(root)
    with atomic_directory(root) as out:
        _make_dirs(out)
        scenes = _run_scenes(out, names, options, defects)
        tables = build_tables(options.seed, scenes, defects)
        for name, records in tables.items():
            write_table(out / spec.VERSION / f"{name}.json", records)
        for record in tables["map"]:
            write_map(out / record["filename"])
        (out / spec.TRUTH_DIR / "defects.json").write_text(json.dumps(defects.as_dict(), indent=1) + "\n")
    points = sum(sum(s.points) for s in scenes)
    log.info("nuScenes demo: %d scenes (%d val) x %d keyframes, %d lidar points, written to %s in %.1f s",
             len(names), len(val), options.samples_per_scene, points, root, time.perf_counter() - start)
    return root
