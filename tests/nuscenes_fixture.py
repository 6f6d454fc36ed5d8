"""A minimal, format-true nuScenes tree with hand-chosen geometry (for tests and benches).

Written from the format facts in /work/shared/nuscenes.md, not from the devkit: all 13 tables of
``<version>/`` plus ``lidarseg.json``, ``samples/CAM_*/*.jpg``, ``samples/LIDAR_TOP/*.pcd.bin``,
``sweeps/LIDAR_TOP/*.pcd.bin``, ``lidarseg/<version>/*_lidarseg.bin`` and one map PNG, so the
real devkit loads it.

Geometry (all known exactly, as matrices built from angles, independent of the code under test):
the ego drives an arc (speed ``speed`` m/s, yaw rate ``yaw_rate`` rad/s) about 1 km from the
global origin; each camera fires ``CAMERA_DELAY_US`` after the lidar, so the ego poses of lidar
and camera differ. Every lidar cloud (key frame or sweep) starts with ``STATIC_MARKERS`` fixed
world points expressed in its own lidar frame; every key-frame cloud then holds one marker per
camera that projects to ``Fixture.marker_pixel[channel]`` at ``MARKER_DEPTH`` metres.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
CAMERA_YAW_DEG = {"CAM_FRONT": 0.0, "CAM_FRONT_RIGHT": -55.0, "CAM_BACK_RIGHT": -110.0, "CAM_BACK": 180.0,
                  "CAM_BACK_LEFT": 110.0, "CAM_FRONT_LEFT": 55.0}
CAMERA_DELAY_US = {"CAM_FRONT": 24000, "CAM_FRONT_RIGHT": 31000, "CAM_BACK_RIGHT": 38000, "CAM_BACK": 45000,
                   "CAM_BACK_LEFT": 20000, "CAM_FRONT_LEFT": 27000}
NON_UNIT_CAMERA = "CAM_BACK"
"""Its calibrated_sensor quaternion is written scaled by 1.02 (readers must normalise it)."""
FINE_CLASSES = (
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.stroller",
    "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris", "movable_object.pushable_pullable",
    "movable_object.trafficcone", "static_object.bicycle_rack", "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid",
    "vehicle.car", "vehicle.construction", "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.motorcycle",
    "vehicle.trailer", "vehicle.truck", "flat.driveable_surface", "flat.other", "flat.sidewalk", "flat.terrain",
    "static.manmade", "static.other", "static.vegetation", "vehicle.ego",
)
"""The 32 lidarseg categories in the order of the real category.json (index = position)."""
STATIC_MARKERS = 8
MARKER_DEPTH = 6.0
LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)
LIDAR_YAW_DEG = -90.0
# cam x -> ego -y, cam y -> ego -z, cam z -> ego +x: the forward camera's orientation, and its quaternion
R_FRONT = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
Q_FRONT = (0.5, -0.5, 0.5, -0.5)


@dataclass(frozen=True)
class FixtureSpec:
    """What to write; sizes in pixels (W, H), speeds in m/s and rad/s."""

    version: str = "v1.0-mini"
    scenes: tuple[str, ...] = ("scene-0061", "scene-0103")
    samples_per_scene: int = 3
    sweeps_between: int = 2
    image_size: tuple[int, int] = (160, 90)
    n_points: int = 300
    speed: float = 12.0
    yaw_rate: float = 0.5
    jpeg_quality: int = 90
    seed: int = 0


@dataclass
class Fixture:
    """What was written: tokens, files and the true geometry."""

    root: Path
    spec: FixtureSpec
    scene_samples: dict[str, list[str]] = field(default_factory=dict)  # scene name -> sample tokens in time order
    lidar_token: dict[str, str] = field(default_factory=dict)  # sample -> key-frame lidar sample_data
    camera_token: dict[str, dict[str, str]] = field(default_factory=dict)  # sample -> channel -> sample_data
    filename: dict[str, str] = field(default_factory=dict)  # sample_data token -> file relative to root
    to_global: dict[str, np.ndarray] = field(default_factory=dict)  # sample_data token -> (4, 4) sensor -> global
    ego_to_global: dict[str, np.ndarray] = field(default_factory=dict)  # sample_data token -> (4, 4) ego -> global
    sensor_to_ego: dict[str, np.ndarray] = field(default_factory=dict)  # channel -> (4, 4)
    intrinsic: np.ndarray = field(default_factory=lambda: np.eye(3))
    marker_pixel: dict[str, tuple[float, float]] = field(default_factory=dict)  # channel -> (u, v) of its marker
    n_points: dict[str, int] = field(default_factory=dict)  # lidar sample_data -> points written

    def marker_index(self, channel: str) -> int:
        """Index, in every key-frame cloud, of the marker point seen by ``channel``."""
        return STATIC_MARKERS + CAMERAS.index(channel)


def token(*parts: object) -> str:
    """A deterministic 32-hex token."""
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def q_z(angle: float) -> np.ndarray:
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


def q_mul(a, b) -> np.ndarray:
    """Hamilton product of quaternions [w, x, y, z]."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def matrix(rot: np.ndarray, trans) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = trans
    return out


def camera_calibration(channel: str) -> tuple[np.ndarray, list[float], list[float]]:
    """(sensor -> ego (4, 4), translation, quaternion as written) of camera ``channel``."""
    yaw = np.radians(CAMERA_YAW_DEG[channel])
    trans = [round(1.0 + 0.7 * np.cos(yaw), 6), round(0.5 * np.sin(yaw), 6), 1.5]
    quat = q_mul(q_z(yaw), Q_FRONT) * (1.02 if channel == NON_UNIT_CAMERA else 1.0)
    return matrix(rot_z(yaw) @ R_FRONT, trans), trans, quat.tolist()


def ego_pose(scene_index: int, seconds: float, spec: FixtureSpec) -> tuple[np.ndarray, list[float], list[float]]:
    """(ego -> global (4, 4), translation, quaternion) on the scene's arc at ``seconds``."""
    yaw0 = 0.3 + scene_index
    x0, y0 = 600.0 + 100.0 * scene_index, 1600.0 + 50.0 * scene_index
    yaw = yaw0 + spec.yaw_rate * seconds
    radius = spec.speed / spec.yaw_rate
    trans = [x0 + radius * (np.sin(yaw) - np.sin(yaw0)), y0 - radius * (np.cos(yaw) - np.cos(yaw0)), 0.0]
    return matrix(rot_z(yaw), trans), trans, q_z(yaw).tolist()


def synthetic_image(rng: np.random.Generator, size: tuple[int, int], tint: int) -> np.ndarray:
    """An RGB (H, W, 3) uint8 image: gradients, a few boxes and mild noise (compresses like a photo-ish scene)."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([80 + 100 * xs / width, 60 + 120 * ys / height, 40 + 30 * tint + 40 * np.sin(xs / 37.0 + ys / 53.0)], axis=-1)
    for _ in range(6):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        img[y0:y0 + height // 4, x0:x0 + width // 5] = rng.integers(0, 255, 3)
    img += rng.normal(0.0, 6.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


class _Writer:
    def __init__(self, root: Path, spec: FixtureSpec) -> None:
        self.root, self.spec = Path(root), spec
        self.rng = np.random.default_rng(spec.seed)
        self.fx = Fixture(self.root, spec)
        self.tables: dict[str, list] = {name: [] for name in (
            "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
            "sample_annotation", "sample_data", "scene", "sensor", "visibility", "lidarseg")}
        width, height = spec.image_size
        self.fx.intrinsic = np.array([[0.79 * width, 0.0, 0.51 * width], [0.0, 0.79 * width, 0.54 * height], [0.0, 0.0, 1.0]])
        self.fx.marker_pixel = {c: (0.85 * width - 0.12 * width * i, 0.62 * height) for i, c in enumerate(CAMERAS)}
        self.static = np.stack([np.array([610.0 + 3 * i, 1590.0 + 4 * (i % 3), 0.5 + 0.3 * i]) for i in range(STATIC_MARKERS)])

    def write(self) -> Fixture:
        self.sensors()
        for s, name in enumerate(self.spec.scenes):
            self.scene(s, name)
        self.categories()
        self.map_record()
        folder = self.root / self.spec.version
        folder.mkdir(parents=True, exist_ok=True)
        for name, records in self.tables.items():
            (folder / f"{name}.json").write_text(json.dumps(records, indent=0))
        return self.fx

    def sensors(self) -> None:
        for channel in (*CAMERAS, "LIDAR_TOP"):
            modality = "lidar" if channel == "LIDAR_TOP" else "camera"
            self.tables["sensor"].append({"token": token("sensor", channel), "channel": channel, "modality": modality})
        lidar = matrix(rot_z(np.radians(LIDAR_YAW_DEG)), LIDAR_TRANSLATION)
        self.fx.sensor_to_ego["LIDAR_TOP"] = lidar
        self.lidar_calib = (list(LIDAR_TRANSLATION), q_z(np.radians(LIDAR_YAW_DEG)).tolist())
        for channel in CAMERAS:
            self.fx.sensor_to_ego[channel] = camera_calibration(channel)[0]

    def calibration(self, scene: int, channel: str) -> str:
        tok = token("calibrated_sensor", scene, channel)
        if channel == "LIDAR_TOP":
            trans, quat = self.lidar_calib
            k = []
        else:
            _, trans, quat = camera_calibration(channel)
            k = self.fx.intrinsic.tolist()
        self.tables["calibrated_sensor"].append({"token": tok, "sensor_token": token("sensor", channel), "translation": trans,
                                                 "rotation": quat, "camera_intrinsic": k})
        return tok

    def scene(self, s: int, name: str) -> None:
        spec = self.spec
        log_token, scene_token = token("log", s), token("scene", s)
        logfile = f"n015-2018-07-2{s}-11-22-45+0800"
        self.tables["log"].append({"token": log_token, "logfile": logfile, "vehicle": "n015", "date_captured": "2018-07-24",
                                   "location": "singapore-onenorth"})
        calib = {c: self.calibration(s, c) for c in (*CAMERAS, "LIDAR_TOP")}
        start = 1532402927647951 + s * 100_000_000
        samples = [token("sample", s, k) for k in range(spec.samples_per_scene)]
        self.fx.scene_samples[name] = samples
        for k, tok in enumerate(samples):
            self.tables["sample"].append({"token": tok, "timestamp": start + k * 500_000, "scene_token": scene_token,
                                          "prev": samples[k - 1] if k else "", "next": samples[k + 1] if k + 1 < len(samples) else ""})
        self.tables["scene"].append({"token": scene_token, "name": name, "description": "fixture", "log_token": log_token,
                                     "nbr_samples": len(samples), "first_sample_token": samples[0], "last_sample_token": samples[-1]})
        for channel in CAMERAS:  # first: the lidar key frames hold markers placed by the cameras' poses
            records = [(start + k * 500_000 + CAMERA_DELAY_US[channel], sample, True) for k, sample in enumerate(samples)]
            self.chain(s, start, logfile, channel, calib[channel], records)
        lidar_records = []
        for k, sample in enumerate(samples):
            for j in range(spec.sweeps_between, 0, -1):
                lidar_records.append((start + k * 500_000 - j * 50_000, sample, False))
            lidar_records.append((start + k * 500_000, sample, True))
        self.chain(s, start, logfile, "LIDAR_TOP", calib["LIDAR_TOP"], lidar_records)

    def chain(self, s: int, start: int, logfile: str, channel: str, calib: str, records: list) -> None:
        """Write one channel's sample_data records (prev/next linked), their ego poses and files."""
        tokens = [token("sample_data", s, channel, stamp) for stamp, _, _ in records]
        for i, ((stamp, sample, key), tok) in enumerate(zip(records, tokens)):
            pose, trans, quat = ego_pose(s, (stamp - start) / 1e6, self.spec)
            self.tables["ego_pose"].append({"token": tok, "timestamp": stamp, "translation": trans, "rotation": quat})
            ext = "pcd.bin" if channel == "LIDAR_TOP" else "jpg"
            filename = f"{'samples' if key else 'sweeps'}/{channel}/{logfile}__{channel}__{stamp}.{ext}"
            width, height = (0, 0) if channel == "LIDAR_TOP" else self.spec.image_size
            self.tables["sample_data"].append({
                "token": tok, "sample_token": sample, "ego_pose_token": tok, "calibrated_sensor_token": calib,
                "timestamp": stamp, "fileformat": "pcd" if channel == "LIDAR_TOP" else "jpg", "is_key_frame": key,
                "height": height, "width": width, "filename": filename,
                "prev": tokens[i - 1] if i else "", "next": tokens[i + 1] if i + 1 < len(tokens) else ""})
            self.fx.filename[tok] = filename
            self.fx.ego_to_global[tok] = pose
            self.fx.to_global[tok] = pose @ self.fx.sensor_to_ego[channel]
            if key:
                if channel == "LIDAR_TOP":
                    self.fx.lidar_token[sample] = tok
                else:
                    self.fx.camera_token.setdefault(sample, {})[channel] = tok
        for (stamp, sample, key), tok in zip(records, tokens):
            if channel == "LIDAR_TOP":
                self.lidar_file(tok, sample, key)
            else:
                path = self.root / self.fx.filename[tok]
                path.parent.mkdir(parents=True, exist_ok=True)
                from PIL import Image

                Image.fromarray(synthetic_image(self.rng, self.spec.image_size, CAMERAS.index(channel))).save(
                    path, quality=self.spec.jpeg_quality)

    def lidar_file(self, tok: str, sample: str, key: bool) -> None:
        """Static markers, camera markers (key frames), random points; lidarseg labels for key frames."""
        to_lidar = np.linalg.inv(self.fx.to_global[tok])
        parts = [self.static @ to_lidar[:3, :3].T + to_lidar[:3, 3]]
        if key:
            k_inv = np.linalg.inv(self.fx.intrinsic)
            for channel in CAMERAS:
                u, v = self.fx.marker_pixel[channel]
                p_cam = MARKER_DEPTH * (k_inv @ np.array([u, v, 1.0]))
                p_global = self.fx.to_global[self.fx.camera_token[sample][channel]] @ np.append(p_cam, 1.0)
                parts.append((to_lidar @ p_global)[None, :3])
        n_rand = max(0, self.spec.n_points - sum(len(p) for p in parts))
        azimuth = self.rng.uniform(-np.pi, np.pi, n_rand)
        dist = self.rng.uniform(2.0, 40.0, n_rand)
        parts.append(np.stack([dist * np.cos(azimuth), dist * np.sin(azimuth), self.rng.uniform(-1.8, 3.0, n_rand)], axis=1))
        xyz = np.concatenate(parts)
        n = len(xyz)
        data = np.concatenate([xyz, self.rng.uniform(0, 100, (n, 1)), (np.arange(n) % 32)[:, None]], axis=1).astype("<f4")
        path = self.root / self.fx.filename[tok]
        path.parent.mkdir(parents=True, exist_ok=True)
        data.tofile(path)
        self.fx.n_points[tok] = n
        if key:
            rel = f"lidarseg/{self.spec.version}/{tok}_lidarseg.bin"
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            self.rng.integers(0, 32, n).astype(np.uint8).tofile(self.root / rel)
            self.tables["lidarseg"].append({"token": tok, "sample_data_token": tok, "filename": rel})

    def categories(self) -> None:
        for index, name in enumerate(FINE_CLASSES):
            self.tables["category"].append({"token": token("category", name), "name": name, "description": name, "index": index})

    def map_record(self) -> None:
        from PIL import Image

        tok = token("map")
        path = self.root / "maps" / f"{tok}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
        self.tables["map"].append({"token": tok, "log_tokens": [r["token"] for r in self.tables["log"]],
                                   "category": "semantic_prior", "filename": f"maps/{tok}.png"})


def write_nuscenes(root: str | Path, spec: FixtureSpec = FixtureSpec()) -> Fixture:
    """Write a nuScenes tree under ``root`` (see the module docstring); returns what was written."""
    return _Writer(Path(root), spec).write()


def lidarseg_labels(fixture: Fixture, sample: str) -> np.ndarray:
    """The fine labels (P,) uint8 written for ``sample``'s key-frame cloud."""
    tok = fixture.lidar_token[sample]
    return np.fromfile(fixture.root / f"lidarseg/{fixture.spec.version}/{tok}_lidarseg.bin", dtype=np.uint8)
