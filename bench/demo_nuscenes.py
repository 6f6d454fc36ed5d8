"""Time the nuScenes demo generator: the default demo end to end, and where one scene's time goes.

Run: ``PYTHONPATH=. python bench/demo_nuscenes.py [--workers 0] [--scenes 4] [--samples 3]``

Reports the wall time of ``generate_dataset`` (what ``python -m pipeline demo-nuscenes`` runs)
with the given workers and the CPU time of a serial run (the steadier figure on a shared
machine), then one scene's keyframes split into world building, lidar ray casting, camera
rendering, visibility ground truth, and the rest (encoding and writing files).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np

from pipeline.demo_nuscenes import spec
from pipeline.demo_nuscenes.generate import NuScenesDemoOptions, generate_dataset
from pipeline.demo_nuscenes.geometry import lidar_to_camera, transform
from pipeline.demo_nuscenes.lidar import cast_sweep
from pipeline.demo_nuscenes.render import render_camera
from pipeline.demo_nuscenes.rig import build_rig
from pipeline.demo_nuscenes.street import draw_street
from pipeline.demo_nuscenes.timeline import draw_log, keyframe_times
from pipeline.demo_nuscenes.trajectory import draw_trajectory, path_extent
from pipeline.demo_nuscenes.truth import visible_points
from pipeline.demo_nuscenes.world import build_world


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(options: NuScenesDemoOptions) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), _cpu()
        generate_dataset(f"{tmp}/demo", options)
        return time.perf_counter() - start, _cpu() - cpu


def _breakdown(options: NuScenesDemoOptions, name: str) -> dict[str, float]:
    """Seconds per phase for the keyframes of scene ``name`` (same draws as the generator)."""
    rng = lambda purpose: np.random.default_rng(spec.scene_seed(options.seed, name, purpose))
    parts = {}
    start = time.perf_counter()
    log, rig = draw_log(rng("log")), build_rig(rng("rig"), options.camera_size)
    times = keyframe_times(rng("times"), log.start_us, options.samples_per_scene, {c: rig[c].delay_us for c in spec.CAMERAS})
    duration = (max(times[-1].values()) - log.start_us) / 1e6
    world_rng = rng("world")
    street = draw_street(world_rng)
    traj = draw_trajectory(rng("motion"), street.ego_lane_y, duration)
    world = build_world(world_rng, street, path_extent(traj, duration), traj.street_to_global)
    parts["world"] = time.perf_counter() - start
    parts.update(lidar=0.0, render=0.0, truth=0.0)
    pose = lambda ts: transform(*traj.record((ts - log.start_us) / 1e6))
    for stamp in times:
        ego_l = pose(stamp[spec.LIDAR])
        lidar_pose = ego_l @ rig[spec.LIDAR].matrix()
        start = time.perf_counter()
        sweep = cast_sweep(world.boxes_at(ego_l), world.reflectivity, lidar_pose, options.lidar_beams,
                           options.lidar_azimuths, rng("lidar-noise"))
        parts["lidar"] += time.perf_counter() - start
        for channel in spec.CAMERAS:
            cam, ego_c = rig[channel], pose(stamp[channel])
            boxes, cam_pose = world.boxes_at(ego_c), ego_c @ rig[channel].matrix()
            start = time.perf_counter()
            render_camera(boxes, cam_pose, cam.intrinsic, options.camera_size)
            parts["render"] += time.perf_counter() - start
            start = time.perf_counter()
            chain = lidar_to_camera(rig[spec.LIDAR].matrix(), ego_l, ego_c, cam.matrix())
            visible_points(boxes, sweep.points, lidar_pose, chain, cam_pose, cam.intrinsic, options.camera_size)
            parts["truth"] += time.perf_counter() - start
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=0, help="worker processes of the timed run (0 = auto)")
    parser.add_argument("--scenes", type=int, default=spec.DEFAULT_SCENES)
    parser.add_argument("--samples", type=int, default=spec.DEFAULT_SAMPLES)
    args = parser.parse_args()
    options = NuScenesDemoOptions(scenes=args.scenes, val=min(1, args.scenes - 1), samples_per_scene=args.samples,
                                  workers=args.workers, defects=True)
    wall, cpu = _timed(options)
    print(f"generate_dataset, {args.scenes} scenes x {args.samples} keyframes, cameras {options.camera_size}, "
          f"lidar {options.lidar_beams} x {options.lidar_azimuths}, workers={args.workers}: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU")
    serial = NuScenesDemoOptions(**{**options.__dict__, "workers": 1})
    wall1, cpu1 = _timed(serial)
    print(f"same, serial: {wall1:.2f} s wall, {cpu1:.2f} s CPU")
    parts = _breakdown(serial, spec.MINI_TRAIN[0])
    scene_wall = wall1 / args.scenes
    rest = max(0.0, scene_wall - sum(parts.values()))
    for name, seconds in list(parts.items()) + [("files and tables (rest)", rest)]:
        print(f"  {name:26s} {seconds:6.2f} s  {100 * seconds / max(scene_wall, 1e-9):5.1f} % of a scene")


if __name__ == "__main__":
    main()
