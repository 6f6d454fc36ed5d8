"""When things happen: the log of a scene (vehicle, place, date) and every keyframe's timestamps.

Timestamps are integer microseconds since the Unix epoch, from the log's local start time.
Keyframes are 0.5 s apart (2 Hz) with a few milliseconds of jitter; each camera's timestamp is
the lidar's plus its firing delay (:func:`pipeline.demo_nuscenes.rig.firing_delays_us`) plus
±0.3 ms, so cameras fire 7-49 ms after the lidar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from pipeline.demo_nuscenes import spec

LOCATIONS: dict[str, tuple[str, int]] = {
    "boston-seaport": ("n008", -4),
    "singapore-onenorth": ("n015", 8),
    "singapore-queenstown": ("n015", 8),
    "singapore-hollandvillage": ("n015", 8),
}
"""Location → (vehicle, UTC offset in hours), as nuScenes' logs."""


@dataclass(frozen=True)
class LogInfo:
    """A log: ``logfile`` (e.g. ``n015-2018-07-24-11-22-45+0800``), vehicle, date, location, start (µs)."""

    logfile: str
    vehicle: str
    date_captured: str
    location: str
    start_us: int


def draw_log(rng: np.random.Generator) -> LogInfo:
    """A random log between July and November 2018, 8:00-18:00 local time."""
    location = sorted(LOCATIONS)[int(rng.integers(0, len(LOCATIONS)))]
    vehicle, utc_hours = LOCATIONS[location]
    tz = dt.timezone(dt.timedelta(hours=utc_hours))
    day = dt.date(2018, 7, 1) + dt.timedelta(days=int(rng.integers(0, 150)))
    local = dt.datetime(day.year, day.month, day.day, tzinfo=tz) + dt.timedelta(seconds=int(rng.integers(8 * 3600, 18 * 3600)))
    sign = "+" if utc_hours >= 0 else "-"
    logfile = f"{vehicle}-{local.strftime('%Y-%m-%d-%H-%M-%S')}{sign}{abs(utc_hours):02d}00"
    start_us = int(local.timestamp()) * 1_000_000 + int(rng.integers(5, 600)) * 1_000_000 + int(rng.integers(0, 1_000_000))
    return LogInfo(logfile, vehicle, day.isoformat(), location, start_us)


def keyframe_times(rng: np.random.Generator, start_us: int, samples: int, delays_us: dict[str, int]) -> list[dict[str, int]]:
    """Per keyframe, channel → timestamp (µs): LIDAR_TOP first, then the cameras."""
    out = []
    for k in range(samples):
        lidar = start_us + k * spec.KEYFRAME_INTERVAL_US + (int(rng.integers(-3000, 3001)) if k else 0)
        times = {spec.LIDAR: lidar}
        for channel in spec.CAMERAS:
            times[channel] = lidar + delays_us[channel] + int(rng.integers(-300, 301))
        out.append(times)
    return out
