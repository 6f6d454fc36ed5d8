"""Where the ego is: a smooth drive along its lane, and the street's place in the global frame.

In the street frame the ego's origin follows ``x(t) = x0 + v t + a t^2 / 2`` (v 5-10 m/s,
|a| <= 0.6 m/s^2) and weaves ``y(t) = lane + A sin(w t + phase)`` (A 0.1-0.35 m), heading along
its velocity; z = 0. The street frame sits in the global (map) frame at a random yaw and an
offset of a few hundred metres to ~2 km, as nuScenes' maps. Ego poses are what
``ego_pose`` holds: translation [x, y, 0] and a unit quaternion [w, x, y, z] (a yaw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.demo_nuscenes.geometry import matrix_quaternion, transform, yaw_matrix


@dataclass(frozen=True)
class Trajectory:
    """Motion parameters of one scene (street frame) and the street → global transform (4, 4)."""

    x0: float
    speed: float
    accel: float
    lane_y: float
    amplitude: float
    omega: float
    phase: float
    street_to_global: np.ndarray

    def street_pose(self, t: float) -> tuple[float, float, float]:
        """Position (x, y) m and heading (rad) in the street frame at ``t`` seconds after the scene start."""
        x = self.x0 + self.speed * t + 0.5 * self.accel * t * t
        y = self.lane_y + self.amplitude * math.sin(self.omega * t + self.phase)
        vx = self.speed + self.accel * t
        vy = self.amplitude * self.omega * math.cos(self.omega * t + self.phase)
        return x, y, math.atan2(vy, vx)

    def record(self, t: float) -> tuple[list[float], list[float]]:
        """``ego_pose`` translation [x, y, 0] (m, global) and rotation [w, x, y, z] at ``t`` s."""
        x, y, heading = self.street_pose(t)
        pose = self.street_to_global @ transform([x, y, 0.0], yaw_matrix(heading))
        return [float(pose[0, 3]), float(pose[1, 3]), 0.0], matrix_quaternion(pose[:3, :3])


def draw_trajectory(rng: np.random.Generator, lane_y: float, duration: float) -> Trajectory:
    """A drive of ``duration`` seconds centred on street x = 0, in the lane at ``lane_y``."""
    speed, accel = float(rng.uniform(5.0, 10.0)), float(rng.uniform(-0.6, 0.6))
    x0 = -(speed * duration + 0.5 * accel * duration * duration) / 2.0
    yaw = float(rng.uniform(-math.pi, math.pi))
    offset = [float(rng.uniform(300.0, 2000.0)), float(rng.uniform(300.0, 2000.0)), 0.0]
    return Trajectory(
        x0, speed, accel, lane_y, float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.6, 1.5)),
        float(rng.uniform(0.0, 2 * math.pi)), transform(offset, yaw_matrix(yaw)),
    )


def path_extent(trajectory: Trajectory, duration: float) -> tuple[float, float]:
    """Street-frame x interval (m) the ego's origin covers in ``[0, duration]`` s."""
    xs = [trajectory.street_pose(t)[0] for t in np.linspace(0.0, duration, 9)]
    return float(min(xs)), float(max(xs))
