"""Demo scene names, split and seeds. Standard library only: the Snakefile imports this at DAG-build time."""

from __future__ import annotations

import hashlib
import re

DEFAULT_VIEWS: int = 12
DEFAULT_COLOR_SIZE: tuple[int, int] = (648, 484)
"""Colour image size (W, H): half of ScanNet's 1296 x 968."""
DEFAULT_DEPTH_SIZE: tuple[int, int] = (320, 240)
"""Depth image size (W, H): half of ScanNet's 640 x 480."""
DEFAULT_VERTEX_SPACING: float = 0.1
"""Mesh grid spacing in metres."""
DEFAULT_JPEG_QUALITY: int = 90

SCENE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""Accepted scene directory names (ScanNet's are ``sceneNNNN_NN``)."""


def scene_names(num_scenes: int, num_val: int) -> tuple[list[str], list[str]]:
    """Demo scene names ``scene{i:04d}_00`` for ``i < num_scenes``, split into (train, val).

    The last ``num_val`` scenes are the validation split, so growing ``num_scenes`` with a fixed
    ``num_val`` moves scenes between splits; growing both keeps existing train scenes. Raises
    ``ValueError`` unless ``1 <= num_scenes <= 10000`` and ``0 <= num_val < num_scenes``.
    """
    if not 1 <= num_scenes <= 10000:
        raise ValueError(f"num_scenes must be in 1..10000, got {num_scenes}")
    if not 0 <= num_val < num_scenes:
        raise ValueError(f"num_val must be in 0..num_scenes-1 ({num_scenes - 1}), got {num_val}")
    names = [f"scene{i:04d}_00" for i in range(num_scenes)]
    return names[: num_scenes - num_val], names[num_scenes - num_val :]


def scene_seed(seed: int, scene: str, purpose: str = "scene") -> int:
    """64-bit seed for numpy's Generator from (seed, scene name, purpose), via SHA-256.

    Stable across processes and platforms (unlike Python's ``hash``). ``purpose`` separates
    independent random streams of one scene (geometry vs. injected defects).
    """
    digest = hashlib.sha256(f"cns-demo/{purpose}/{int(seed)}/{scene}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
