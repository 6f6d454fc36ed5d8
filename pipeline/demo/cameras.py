"""Per-scene intrinsics of the colour and depth cameras, and the camera path.

ScanNet's colour (1296 x 968) and depth (640 x 480) cameras are registered (one pose) but not
proportional: 640/1296 = 0.494 across, 480/968 = 0.496 down. In ScanNet the depth intrinsics
are (to the printed digits) the colour ones resized per axis; the demo goes one step further and
perturbs the depth camera per scene, so that code must read ``intrinsic_depth.txt``: neither a
uniform nor a per-axis rescale of the colour intrinsics gives the depth ones.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.camera import scale_intrinsics
from pipeline.demo.room import CAMERA_CLEARANCE, WALL_CLEARANCE, Room

SCANNET_COLOR_SIZE: tuple[int, int] = (1296, 968)
SCANNET_COLOR_K = np.array([[1169.621094, 0.0, 646.295044], [0.0, 1167.105103, 489.927032], [0.0, 0.0, 1.0]])
SCANNET_DEPTH_SIZE: tuple[int, int] = (640, 480)
SCANNET_DEPTH_K = np.array([[577.590698, 0.0, 318.905426], [0.0, 578.729797, 242.683609], [0.0, 0.0, 1.0]])
"""Intrinsics of a typical ScanNet v2 scene (pixel centres at integer coordinates)."""



def _signed(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi))


def scene_intrinsics(
    rng: np.random.Generator, color_size: tuple[int, int], depth_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Colour and depth intrinsics (3, 3) float64 for images of ``color_size``/``depth_size`` (W, H).

    Colour: ScanNet's, resized per axis, focal lengths x(1 ± 2 %), principal point ± 0.4 % of
    the size. Depth: the colour camera resized per axis (as ScanNet's registered depth nearly
    is), then made a camera of its own: focal lengths 0.8-1.5 % off in opposite directions on
    the two axes, principal point 0.5-1 % of the size off (random signs). So the per-axis
    colour/depth ratios differ (already by 0.4 % from the sizes, like ScanNet's 0.494 vs
    0.496) and no rescale of the colour intrinsics gives the depth ones.
    """
    kc = scale_intrinsics(SCANNET_COLOR_K, SCANNET_COLOR_SIZE, color_size)
    kc[0, 0] *= 1.0 + rng.uniform(-0.02, 0.02)
    kc[1, 1] *= 1.0 + rng.uniform(-0.02, 0.02)
    kc[0, 2] += rng.uniform(-0.004, 0.004) * color_size[0]
    kc[1, 2] += rng.uniform(-0.004, 0.004) * color_size[1]
    kd = scale_intrinsics(kc, color_size, depth_size)
    focal = _signed(rng, 0.008, 0.015)
    kd[0, 0] *= 1.0 + focal
    kd[1, 1] *= 1.0 - np.sign(focal) * rng.uniform(0.008, 0.015)
    kd[0, 2] += _signed(rng, 0.005, 0.01) * depth_size[0]
    kd[1, 2] += _signed(rng, 0.005, 0.01) * depth_size[1]
    return kc, kd


def look_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-frame rotation (3, 3), OpenCV axes (x right, y down, z forward), frame z up.

    ``yaw`` turns the forward direction about z, ``pitch`` < 0 looks down, ``roll`` turns
    about the forward axis. Columns: right, down, forward.
    """
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    cr, sr = math.cos(roll), math.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    return np.stack([right, down, forward], axis=1)


def _clearance(room: Room, p: np.ndarray) -> float:
    x, y, _ = room.size
    wall = min(x / 2 - abs(p[0]), y / 2 - abs(p[1])) - WALL_CLEARANCE + CAMERA_CLEARANCE
    return min([wall] + [f.distance(p) for f in room.footprints])


def _camera_xy(rng: np.random.Generator, room: Room, angle: float, radius: float) -> np.ndarray:
    """A free camera position near ``radius`` x the ellipse around the room centre at ``angle``."""
    x, y, _ = room.size
    best, best_clear = None, -math.inf
    for attempt in range(60):
        if attempt < 40:
            r = radius * rng.uniform(0.6, 1.3) if attempt < 20 else rng.uniform(0.05, 0.85)
            a = angle + rng.uniform(-0.2, 0.2) * (1 + attempt // 20)
            p = np.array([r * x / 2 * math.cos(a), r * y / 2 * math.sin(a)]) + rng.normal(0.0, 0.08, 2)
        else:
            p = np.array([rng.uniform(-x / 2, x / 2), rng.uniform(-y / 2, y / 2)])
        clear = _clearance(room, p)
        if clear >= CAMERA_CLEARANCE:
            return p
        if clear > best_clear:
            best, best_clear = p, clear
    if best_clear < 0.1:
        raise RuntimeError("demo room has no free spot for a camera; the furniture fills the room")
    return best


def camera_path(rng: np.random.Generator, room: Room, views: int) -> np.ndarray:
    """Camera-to-world poses (views, 4, 4) float64 moving once around the room.

    Positions follow an ellipse around the room centre (radius 30-60 % of the half sizes, with
    jitter) at 1.3-1.7 m, each at least :data:`CAMERA_CLEARANCE` from furniture. Each view looks
    at a random point of the room at 0.3-1.3 m height, at least 1.2 m away, pitched 5-35 degrees
    down, rolled up to 3 degrees.
    """
    x, y, _ = room.size
    start = rng.uniform(0.0, 2 * math.pi)
    turn = rng.choice([-1.0, 1.0])
    radius = rng.uniform(0.3, 0.6)
    h0, hphase = rng.uniform(1.4, 1.6), rng.uniform(0.0, 2 * math.pi)
    poses = np.zeros((views, 4, 4))
    for i in range(views):
        angle = start + turn * 2 * math.pi * i / views
        xy = _camera_xy(rng, room, angle, radius)
        z = float(np.clip(h0 + 0.1 * math.sin(2 * angle + hphase) + rng.uniform(-0.05, 0.05), 1.3, 1.7))
        for _ in range(30):
            target = np.array([rng.uniform(-x / 2 + 0.3, x / 2 - 0.3), rng.uniform(-y / 2 + 0.3, y / 2 - 0.3)])
            if np.linalg.norm(target - xy) >= 1.2:
                break
        else:
            target = -xy * 2.0 if np.linalg.norm(xy) > 1e-3 else np.array([x / 2, 0.0])
        dxy = target - xy
        tz = rng.uniform(0.3, 1.3)
        yaw = math.atan2(dxy[1], dxy[0])
        pitch = float(np.clip(math.atan2(tz - z, np.linalg.norm(dxy)), math.radians(-35), math.radians(-5)))
        rot = look_rotation(yaw, pitch, math.radians(rng.uniform(-3.0, 3.0)))
        local = np.eye(4)
        local[:3, :3] = rot
        local[:3, 3] = [xy[0], xy[1], z]
        poses[i] = room.to_world @ local
    return poses
