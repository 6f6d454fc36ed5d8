"""One scene end to end: draw it, cast the lidar and render the cameras at their own timestamps,
write its sample files and sidecar ground truth, and return what the tables need.

A scene is a deterministic function of (seed, scene name, options): each purpose (world, rig,
times, motion, lidar noise) has its own random stream (:func:`spec.scene_seed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.demo_nuscenes import spec
from pipeline.demo_nuscenes.files import (
    camera_filename,
    lidar_filename,
    lidarseg_filename,
    write_jpeg,
    write_labels,
    write_points,
    write_truth,
)
from pipeline.demo_nuscenes.geometry import lidar_to_camera, transform
from pipeline.demo_nuscenes.lidar import cast_sweep
from pipeline.demo_nuscenes.render import render_camera
from pipeline.demo_nuscenes.rig import Mount, build_rig
from pipeline.demo_nuscenes.street import draw_street
from pipeline.demo_nuscenes.timeline import LogInfo, draw_log, keyframe_times
from pipeline.demo_nuscenes.trajectory import Trajectory, draw_trajectory, path_extent
from pipeline.demo_nuscenes.truth import visible_points
from pipeline.demo_nuscenes.world import World, build_world


@dataclass(frozen=True)
class SceneSettings:
    """What a scene needs from the options: seed, keyframes, image size, lidar grid, JPEG quality."""

    seed: int
    samples: int
    camera_size: tuple[int, int]
    beams: int
    azimuths: int
    jpeg_quality: int


@dataclass(frozen=True)
class Frame:
    """One channel's keyframe: timestamp (µs), file below the root, ego pose record, image size."""

    channel: str
    timestamp: int
    filename: str
    translation: list[float]
    rotation: list[float]
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class SceneMeta:
    """A written scene: its name, log, rig (channel → mount), keyframes (channel → frame, per
    keyframe), a description and the number of lidar points per keyframe."""

    name: str
    log: LogInfo
    rig: dict[str, Mount]
    keyframes: list[dict[str, Frame]]
    description: str
    points: list[int]


def _rng(settings: SceneSettings, name: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng(spec.scene_seed(settings.seed, name, purpose))


@dataclass(frozen=True)
class StreetDrive:
    """One street and the ego's drive through it: log, camera rig, keyframe times (channel →
    timestamp in µs, per keyframe), ego trajectory and the world of boxes."""

    log: LogInfo
    rig: dict[str, Mount]
    times: list[dict[str, int]]
    trajectory: Trajectory
    world: World


def build_street_drive(rng: Callable[[str], np.random.Generator], camera_size: tuple[int, int], keyframes: int,
                       stride: int = 1) -> StreetDrive:
    """Draw a log, rig, street, trajectory and world; ``rng(purpose)`` gives the generator of each
    purpose ("log", "rig", "times", "world", "motion"). ``keyframes`` times are kept, every
    ``stride``-th of a ``keyframes * stride`` timeline (nuImages: images 2 s apart)."""
    log = draw_log(rng("log"))
    rig = build_rig(rng("rig"), camera_size)
    delays = {c: rig[c].delay_us for c in spec.CAMERAS}
    times = keyframe_times(rng("times"), log.start_us, keyframes * stride, delays)[::stride]
    duration = (max(times[-1].values()) - log.start_us) / 1e6
    world_rng = rng("world")
    street = draw_street(world_rng)
    trajectory = draw_trajectory(rng("motion"), street.ego_lane_y, duration)
    world = build_world(world_rng, street, path_extent(trajectory, duration), trajectory.street_to_global)
    return StreetDrive(log, rig, times, trajectory, world)


def _pose(trajectory: Trajectory, log: LogInfo, timestamp: int) -> tuple[list[float], list[float], np.ndarray]:
    translation, rotation = trajectory.record((timestamp - log.start_us) / 1e6)
    return translation, rotation, transform(translation, rotation)


def _keyframe(root: Path, name: str, k: int, settings: SceneSettings, world: World, rig: dict[str, Mount],
              log: LogInfo, trajectory: Trajectory, times: dict[str, int], noise: np.random.Generator,
              skip: frozenset[str]) -> tuple[dict[str, Frame], int]:
    """Write keyframe ``k``'s lidar, lidarseg, images (except channels in ``skip``) and truth."""
    lidar = rig[spec.LIDAR]
    translation, rotation, ego_l = _pose(trajectory, log, times[spec.LIDAR])
    lidar_pose = ego_l @ lidar.matrix()
    sweep = cast_sweep(world.boxes_at(ego_l), world.reflectivity, lidar_pose, settings.beams, settings.azimuths, noise)
    stem = spec.file_stem(log.logfile, spec.LIDAR, times[spec.LIDAR])
    frames = {spec.LIDAR: Frame(spec.LIDAR, times[spec.LIDAR], lidar_filename(stem), translation, rotation)}
    write_points(root / frames[spec.LIDAR].filename, sweep.points)
    write_labels(root / lidarseg_filename(spec.sample_data_token(settings.seed, name, spec.LIDAR, k)), sweep.labels)
    truth = {}
    width, height = settings.camera_size
    for channel in spec.CAMERAS:
        cam = rig[channel]
        translation, rotation, ego_c = _pose(trajectory, log, times[channel])
        cam_pose = ego_c @ cam.matrix()
        boxes = world.boxes_at(ego_c)
        image, labels, instances = render_camera(boxes, cam_pose, cam.intrinsic, settings.camera_size)
        filename = camera_filename(channel, spec.file_stem(log.logfile, channel, times[channel]))
        if channel not in skip:
            write_jpeg(root / filename, image, settings.jpeg_quality)
        frames[channel] = Frame(channel, times[channel], filename, translation, rotation, width, height)
        chain = lidar_to_camera(lidar.matrix(), ego_l, ego_c, cam.matrix())
        truth[f"visible_{channel}"] = visible_points(
            boxes, sweep.points, lidar_pose, chain, cam_pose, cam.intrinsic, settings.camera_size)
        truth[f"labels_{channel}"] = labels
        truth[f"instances_{channel}"] = instances
    write_truth(root / spec.TRUTH_DIR / f"{spec.sample_token(settings.seed, name, k)}.npz", truth)
    return frames, int(sweep.points.shape[0])


def generate_scene(root: Path, name: str, settings: SceneSettings, skip: frozenset[tuple[int, str]] = frozenset()) -> SceneMeta:
    """Write scene ``name``'s sample files and truth under ``root`` (whose folders exist).

    ``skip`` holds (keyframe, camera channel) pairs whose image is not written (a defect).
    """
    drive = build_street_drive(lambda purpose: _rng(settings, name, purpose), settings.camera_size, settings.samples)
    log, rig, times, trajectory, world = drive.log, drive.rig, drive.times, drive.trajectory, drive.world
    noise = _rng(settings, name, "lidar-noise")
    keyframes, points = [], []
    for k, stamp in enumerate(times):
        skip_k = frozenset(c for kk, c in skip if kk == k)
        frames, n = _keyframe(root, name, k, settings, world, rig, log, trajectory, stamp, noise, skip_k)
        keyframes.append(frames)
        points.append(n)
    description = (f"Demo street in {log.location}, ego at {trajectory.speed:.1f} m/s, "
                   f"{len(world.instances)} instances, {len(world.static)} boxes")
    return SceneMeta(name, log, rig, keyframes, description, points)
