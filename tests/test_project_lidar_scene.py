"""A synthetic nuScenes-like lidar sample with ray-cast truth (numpy only), and checks of that truth.

A street: a ground plane 1.84 m below the lidar (the lidar frame is the sample frame), cars,
vans, trucks, poles and building fronts as axis-aligned boxes, a spinning 32-beam lidar at the
origin (nuScenes' HDL-32E elevations, -30.67 to +10.67 degrees) ray-cast against them, and six
cameras with nuScenes' mounting (positions relative to the lidar, yaws 0, -55, -110, 180, 110, 55
degrees, 1600x900 native images, nuScenes' focal lengths). Truth by ray casting: which points each
camera sees (the segment from the camera to the point is unobstructed), and the class of the
surface at every pixel centre of a label map. The cameras sit lower than the lidar and up to a
metre from it, so the lidar sees points the cameras do not (parallax occlusion).

Used by tests/test_project_lidar_occlusion.py and bench/project_lidar.py; not by the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GROUND_Z = -1.84
"""The ground plane's z in the lidar frame (metres): nuScenes' LIDAR_TOP height."""
GROUND_CLASS = 24
"""flat.driveable_surface (nuScenes lidarseg fine index); boxes carry their own."""
CAMERAS = (  # channel, position relative to the lidar (x forward, y left, z up; metres), yaw (degrees), fx, cx, cy
    ("CAM_FRONT", (0.76, 0.0, -0.33), 0.0, 1266.4, 816.3, 491.5),
    ("CAM_FRONT_RIGHT", (0.61, -0.49, -0.35), -55.0, 1260.5, 807.9, 495.3),
    ("CAM_BACK_RIGHT", (0.10, -0.48, -0.27), -110.0, 1259.5, 807.3, 501.2),
    ("CAM_BACK", (-0.91, 0.0, -0.27), 180.0, 809.2, 829.2, 481.8),
    ("CAM_BACK_LEFT", (0.09, 0.48, -0.28), 110.0, 1256.7, 817.8, 451.9),
    ("CAM_FRONT_LEFT", (0.58, 0.49, -0.33), 55.0, 1272.6, 826.6, 479.8),
)
BEAMS = np.linspace(-30.67, 10.67, 32)


@dataclass
class LidarScene:
    """Points (P, 3) float32 (lidar frame), their fine class (P,) uint8, six cameras (poses (V, 4, 4)
    camera -> lidar, OpenCV axes; native intrinsics (V, 3, 3); native sizes (V, 2) (W, H)) and the
    boxes (B, 3) lo / hi with their classes (B,)."""

    points: np.ndarray
    label: np.ndarray
    poses: np.ndarray
    native_k: np.ndarray
    native_size: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    box_class: np.ndarray


def _box(rng, x, y, size, cls):
    w, l, h = size
    return np.array([x - l / 2, y - w / 2, GROUND_Z]), np.array([x + l / 2, y + w / 2, GROUND_Z + h]), cls


def _street(rng: np.random.Generator, n_cars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes: parked and moving vehicles on both lanes, poles, building fronts on both sides."""
    boxes = []
    kinds = ((1.9, 4.6, 1.55, 17), (2.0, 5.2, 2.1, 17), (2.5, 9.0, 3.4, 23), (0.7, 0.7, 1.75, 2))  # car, van, truck, pedestrian
    for _ in range(n_cars):
        w, l, h, cls = kinds[rng.choice(4, p=[0.6, 0.15, 0.1, 0.15])]
        while True:
            x, y = rng.uniform(-45, 45), rng.choice([-6.0, -3.0, 3.0, 6.0]) + rng.uniform(-0.5, 0.5)
            if abs(x) > 6 or abs(y) > 2.5:
                break
        boxes.append(_box(rng, x, y, (w, l, h), cls))
    for x in np.arange(-40, 41, 12.0):  # poles (static.manmade)
        boxes.append(_box(rng, x + rng.uniform(-2, 2), rng.choice([-8.3, 8.3]), (0.25, 0.25, 4.0), 28))
    for side in (-1, 1):  # building fronts with gaps
        for x in np.arange(-60, 60, 14.0):
            boxes.append(_box(rng, x, side * (13 + rng.uniform(0, 3)), (4.0, rng.uniform(8, 13), rng.uniform(6, 15)), 28))
        for x in np.arange(-50, 50, 9.0):  # vegetation hedges in front of them
            boxes.append(_box(rng, x + rng.uniform(-2, 2), side * 10.0, (1.0, rng.uniform(2, 5), rng.uniform(0.8, 1.6)), 30))
    lo, hi, cls = zip(*boxes)
    return np.stack(lo), np.stack(hi), np.asarray(cls, dtype=np.uint8)


def first_hit(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter ``t`` (N,) float64 of the first surface along ``origin + t dirs`` (origin (3,)
    or (N, 3); dirs (N, 3)) among the boxes (entered from outside; slab test) and the ground plane
    (inf = none), and the index (N,) int64 of what was hit (-1 none, B = the ground)."""
    n = dirs.shape[0]
    origin = np.broadcast_to(np.asarray(origin, dtype=np.float64), (n, 3))
    best = np.full(n, np.inf)
    which = np.full(n, -1, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = [1.0 / np.ascontiguousarray(dirs[:, a]) for a in range(3)]
        org = [np.ascontiguousarray(origin[:, a]) for a in range(3)]
        tg = (GROUND_Z - org[2]) * inv[2]
        hit = tg > 1e-9
        best[hit], which[hit] = tg[hit], lo.shape[0]
        for b in range(lo.shape[0]):
            t_near, t_far = np.full(n, -np.inf), np.full(n, np.inf)
            for a in range(3):  # slab test, axis by axis on contiguous arrays
                t1, t2 = (lo[b, a] - org[a]) * inv[a], (hi[b, a] - org[a]) * inv[a]
                np.fmax(t_near, np.fmin(t1, t2), out=t_near)
                np.fmin(t_far, np.fmax(t1, t2), out=t_far)
            closer = (t_near <= t_far) & (t_near > 1e-9) & (t_near < best)
            best[closer], which[closer] = t_near[closer], b
    return best, which


def _pose(position, yaw_deg: float) -> np.ndarray:
    """Camera -> lidar (4, 4): OpenCV axes, optical axis horizontal at ``yaw`` (0 = lidar +x)."""
    yaw = math.radians(yaw_deg)
    forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    right = np.cross(down, forward)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = position
    return pose


def make_lidar_scene(seed: int = 0, n_cars: int = 40, azimuths: int = 1084, max_range: float = 70.0) -> LidarScene:
    """A deterministic street sample (module docstring): ~30-35k points with 1084 azimuths."""
    rng = np.random.default_rng(seed)
    lo, hi, box_class = _street(rng, n_cars)
    elev = np.radians(BEAMS)[:, None]
    az = (np.arange(azimuths) / azimuths * 2 * math.pi)[None, :] + rng.uniform(0, 2 * math.pi / azimuths, (BEAMS.size, 1))
    dirs = np.stack(np.broadcast_arrays(np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)), axis=-1).reshape(-1, 3)
    t, which = first_hit(np.zeros(3), dirs, lo, hi)
    keep = np.isfinite(t) & (t <= max_range)
    points = (dirs[keep] * t[keep, None]).astype(np.float32)
    label = np.where(which[keep] == lo.shape[0], GROUND_CLASS, box_class[np.minimum(which[keep], lo.shape[0] - 1)]).astype(np.uint8)
    poses = np.stack([_pose(c[1], c[2]) for c in CAMERAS])
    native_k = np.stack([np.array([[c[3], 0, c[4]], [0, c[3], c[5]], [0, 0, 1.0]]) for c in CAMERAS])
    native_size = np.tile([1600, 900], (len(CAMERAS), 1)).astype(np.int64)
    return LidarScene(points, label, poses, native_k, native_size, lo, hi, box_class)


def camera_sees(scene: LidarScene, view: int, point: np.ndarray, tol: float = 2e-3) -> np.ndarray:
    """Truth (N,) bool: nothing lies between camera ``view`` and each point of ``point`` (indices)
    (the first surface along the ray is the point's own, within ``tol`` metres)."""
    c = scene.poses[view, :3, 3]
    d = scene.points[point].astype(np.float64) - c
    dist = np.linalg.norm(d, axis=1)
    t, _ = first_hit(c, d / dist[:, None], scene.lo, scene.hi)
    return t >= dist - tol


def label_maps(scene: LidarScene, label_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Truth label maps (V, H, W) uint8 (fine class of the surface at each pixel centre, 0 = sky) at
    ``label_size``, and the label intrinsics (V, 3, 3) (native scaled)."""
    from pipeline.camera import scale_intrinsics

    width, height = label_size
    maps = np.zeros((scene.poses.shape[0], height, width), dtype=np.uint8)
    ks = np.stack([scale_intrinsics(k, tuple(s), label_size) for k, s in zip(scene.native_k, scene.native_size)])
    for v, (pose, k) in enumerate(zip(scene.poses, ks)):
        xs, ys = (np.arange(width) - k[0, 2]) / k[0, 0], (np.arange(height) - k[1, 2]) / k[1, 1]
        cam = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], np.ones((1, 1))), axis=-1).reshape(-1, 3)
        _, which = first_hit(pose[:3, 3], cam @ pose[:3, :3].T, scene.lo, scene.hi)
        cls = np.where(which == scene.lo.shape[0], GROUND_CLASS, scene.box_class[np.clip(which, 0, scene.lo.shape[0] - 1)])
        maps[v] = np.where(which >= 0, cls, 0).reshape(height, width)
    return maps, ks


def test_lidar_points_lie_on_the_surfaces_the_lidar_hits_first():
    scene = make_lidar_scene(seed=1, n_cars=20, azimuths=360)
    assert 8000 < scene.points.shape[0] <= 32 * 360
    assert set(np.unique(scene.label).tolist()) <= {2, 17, 23, 24, 28, 30}
    r = np.linalg.norm(scene.points, axis=1)
    t, _ = first_hit(np.zeros(3), scene.points / r[:, None], scene.lo, scene.hi)
    np.testing.assert_allclose(t, r, rtol=1e-5)


def test_cameras_see_most_points_in_front_and_parallax_hides_some():
    scene = make_lidar_scene(seed=1, n_cars=30, azimuths=360)
    q = (scene.points - scene.poses[0, :3, 3]) @ scene.poses[0, :3, :3]
    front = np.flatnonzero(q[:, 2] > 1.0)
    seen = camera_sees(scene, 0, front)
    assert 0.6 < seen.mean() < 1.0  # the lidar sees over and past what hides things from the camera
    maps, _ = label_maps(scene, (160, 90))
    assert maps.shape == (6, 90, 160) and (maps[0] == GROUND_CLASS).mean() > 0.2
