"""Names, defaults, tokens and seeds of the nuScenes demo. Standard library only (a Snakefile may
import it when it builds the DAG).

Scene names come from the official mini splits (``nuscenes-devkit`` ``utils/splits.py``): the
training scenes first, then the validation scenes, so split-based tools find them by name.
"""

from __future__ import annotations

import hashlib

VERSION: str = "v1.0-mini"
"""The version folder the demo writes (tables under ``<root>/v1.0-mini/``)."""
MINI_TRAIN: tuple[str, ...] = (
    "scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077", "scene-1094", "scene-1100",
)
MINI_VAL: tuple[str, ...] = ("scene-0103", "scene-0916")

LIDAR: str = "LIDAR_TOP"
CAMERAS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT",
)
"""Camera channels, in nuScenes' usual order."""

TRUTH_DIR: str = "demo_truth"
"""Sidecar ground truth for tests, ``<root>/demo_truth/<sample token>.npz`` (not part of the format)."""

DEFAULT_SCENES: int = 4
DEFAULT_VAL: int = 1
DEFAULT_SAMPLES: int = 3
DEFAULT_CAMERA_SIZE: tuple[int, int] = (400, 225)
"""Camera image size (W, H): a quarter of nuScenes' 1600 x 900 per axis."""
DEFAULT_BEAMS: int = 32
DEFAULT_AZIMUTHS: int = 1024
DEFAULT_JPEG_QUALITY: int = 90
KEYFRAME_INTERVAL_US: int = 500_000
"""Keyframes at 2 Hz."""


def scene_names(num_scenes: int, num_val: int) -> tuple[list[str], list[str]]:
    """(train, val) scene names: the first ``num_scenes - num_val`` of mini_train, the first ``num_val`` of mini_val.

    Raises ``ValueError`` unless ``0 <= num_val <= 2``, ``0 <= num_scenes - num_val <= 8`` and
    ``num_scenes >= 1``.
    """
    num_train = num_scenes - num_val
    if num_scenes < 1 or not 0 <= num_val <= len(MINI_VAL) or not 0 <= num_train <= len(MINI_TRAIN):
        raise ValueError(
            f"scenes {num_scenes} with {num_val} for validation: need 1 <= scenes, 0 <= val <= {len(MINI_VAL)}, "
            f"0 <= scenes - val <= {len(MINI_TRAIN)} (the official mini splits)"
        )
    return list(MINI_TRAIN[:num_train]), list(MINI_VAL[:num_val])


def token(seed: int, *parts: object) -> str:
    """A nuScenes-style token (32 lowercase hex digits), a SHA-256 of the seed and ``parts``."""
    text = "/".join(["cns-demo-nuscenes", str(int(seed))] + [str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def scene_seed(seed: int, scene: str, purpose: str = "scene") -> int:
    """64-bit seed of numpy's Generator from (seed, scene name, purpose); stable across processes."""
    digest = hashlib.sha256(f"cns-demo-nuscenes/{purpose}/{int(seed)}/{scene}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_token(seed: int, scene: str, index: int) -> str:
    """Token of keyframe ``index`` of ``scene``."""
    return token(seed, "sample", scene, index)


def sample_data_token(seed: int, scene: str, channel: str, index: int) -> str:
    """Token of ``channel``'s keyframe ``index`` of ``scene``; also its ego_pose token (as in nuScenes)
    and, for the lidar, its lidarseg token."""
    return token(seed, "sample_data", scene, channel, index)


def file_stem(logfile: str, channel: str, timestamp_us: int) -> str:
    """``<log>__<CHANNEL>__<timestamp>``: the name of a sample file without its extension."""
    return f"{logfile}__{channel}__{int(timestamp_us)}"
