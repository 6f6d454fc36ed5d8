"""The sensor rig of one log: calibrated sensors (sensor → ego) and each camera's firing delay.

Mounting follows nuScenes' Renault Zoe (ego frame: origin at the rear axle on the ground, x
forward, y left, z up): LIDAR_TOP 1.84 m up, turned -90 degrees about z (its x points right,
its y forward, as in nuScenes); six cameras at 1.5-1.6 m, level, facing 0, -55, -110, 180, 110
and 55 degrees. Camera axes are OpenCV's (x right, y down, z forward). Intrinsics are nuScenes'
(1600 x 900; CAM_BACK is wider), scaled to the demo's image size. Each log perturbs positions
(1 cm), angles (0.4-0.6 degrees) and intrinsics (0.5 %, 4 px) so no two logs share a calibration.

The lidar spins once per 50 ms; a camera fires when the sweep crosses its optical axis, 7-49 ms
after the lidar's timestamp (:func:`firing_delays_us`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.camera import scale_intrinsics
from pipeline.demo.cameras import look_rotation
from pipeline.demo_nuscenes import spec
from pipeline.demo_nuscenes.geometry import matrix_quaternion, transform, yaw_matrix

NUSCENES_SIZE: tuple[int, int] = (1600, 900)
LIDAR_MOUNT: tuple[float, float, float] = (0.943, 0.0, 1.84)
LIDAR_YAW_DEG: float = -90.0

CAMERA_MOUNTS: dict[str, tuple[tuple[float, float, float], float, tuple[float, float, float]]] = {
    "CAM_FRONT": ((1.70, 0.016, 1.51), 0.0, (1266.4, 816.3, 491.5)),
    "CAM_FRONT_RIGHT": ((1.55, -0.49, 1.50), -55.0, (1260.8, 807.9, 495.3)),
    "CAM_BACK_RIGHT": ((1.04, -0.48, 1.56), -110.0, (1259.5, 807.3, 501.2)),
    "CAM_BACK": ((0.03, 0.003, 1.58), 180.0, (809.2, 829.2, 481.8)),
    "CAM_BACK_LEFT": ((1.05, 0.48, 1.56), 110.0, (1256.7, 792.1, 492.8)),
    "CAM_FRONT_LEFT": ((1.56, 0.50, 1.52), 55.0, (1272.6, 826.6, 479.8)),
}
"""Channel → (translation m, yaw deg, (f, cx, cy) px at 1600 x 900)."""

SWEEP_US: int = 50_000
"""One lidar revolution (20 Hz)."""
SWEEP_START_DEG: float = 210.0
"""Ego-frame azimuth the (clockwise) sweep points at at the lidar's timestamp."""


@dataclass(frozen=True)
class Mount:
    """One calibrated sensor: ``translation`` (m) and unit ``rotation`` [w, x, y, z] (sensor → ego)."""

    channel: str
    modality: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    intrinsic: np.ndarray | None = None  # (3, 3) float64 at the demo's image size, cameras only
    delay_us: int = 0  # firing delay after the lidar's timestamp, cameras only

    def matrix(self) -> np.ndarray:
        """T(cs) (4, 4): sensor → ego."""
        return transform(self.translation, self.rotation)

    def intrinsic_record(self) -> list[list[float]]:
        """``camera_intrinsic`` as the table holds it (``[]`` for the lidar)."""
        return [] if self.intrinsic is None else [[float(v) for v in row] for row in self.intrinsic]


def firing_delays_us(rng: np.random.Generator) -> dict[str, int]:
    """Per camera, microseconds after the lidar timestamp that it fires (7..49 ms, jitter ±0.5 ms).

    The sweep turns clockwise from :data:`SWEEP_START_DEG`; a camera at yaw ``a`` fires after
    the fraction ``((start - a) mod 360) / 360`` of a revolution, mapped onto 7..49 ms.
    """
    out = {}
    for channel in spec.CAMERAS:
        frac = ((SWEEP_START_DEG - CAMERA_MOUNTS[channel][1]) % 360.0) / 360.0
        ms = 7.0 + 42.0 * frac + rng.uniform(-0.5, 0.5)
        out[channel] = round(float(np.clip(ms, 7.0, 49.0)) * 1000.0)
    return out


def _camera(rng: np.random.Generator, channel: str, size: tuple[int, int], delay_us: int) -> Mount:
    (x, y, z), yaw, (f, cx, cy) = CAMERA_MOUNTS[channel]
    t = np.array([x, y, z]) + rng.uniform(-0.01, 0.01, 3)
    rot = look_rotation(
        math.radians(yaw + rng.uniform(-0.6, 0.6)), math.radians(rng.uniform(-0.6, 0.6)),
        math.radians(rng.uniform(-0.4, 0.4)),
    )
    fx = f * (1.0 + rng.uniform(-0.005, 0.005))
    k = np.array([[fx, 0.0, cx + rng.uniform(-4, 4)], [0.0, fx, cy + rng.uniform(-4, 4)], [0.0, 0.0, 1.0]])
    k = scale_intrinsics(k, NUSCENES_SIZE, size)
    return Mount(channel, "camera", tuple(float(v) for v in t), tuple(matrix_quaternion(rot)), k, delay_us)


def build_rig(rng: np.random.Generator, camera_size: tuple[int, int]) -> dict[str, Mount]:
    """The log's mounts by channel: LIDAR_TOP first, then the cameras in :data:`spec.CAMERAS` order."""
    t = np.array(LIDAR_MOUNT) + rng.uniform(-0.01, 0.01, 3)
    tilt = yaw_matrix(math.radians(LIDAR_YAW_DEG + rng.uniform(-0.3, 0.3)))
    small = look_rotation(0.0, math.radians(rng.uniform(-0.2, 0.2)), math.radians(rng.uniform(-0.2, 0.2)))
    level = look_rotation(0.0, 0.0, 0.0)
    rot = tilt @ (small @ level.T)  # a small pitch/roll of the lidar about the ego axes
    rig = {spec.LIDAR: Mount(spec.LIDAR, "lidar", tuple(float(v) for v in t), tuple(matrix_quaternion(rot)))}
    delays = firing_delays_us(rng)
    for channel in spec.CAMERAS:
        rig[channel] = _camera(rng, channel, camera_size, delays[channel])
    return rig
