"""Shared pieces of the clip-stage tests: a tiny open_clip ViT and small prepared stores."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

TINY_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
"""Same architecture as ViT-B-16-quickgelu, tiny: width 64, 2 layers, patch 16, image 64."""


def tiny_config(**vision) -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["vision_cfg"].update(vision)
    return cfg


def tiny_clip(seed: int = 0, **vision):
    """A LoadedClip of the tiny config with random weights (seeded)."""
    from pipeline.clip.checkpoint import load_clip

    return load_clip("tiny", None, random_init=True, model_config=tiny_config(**vision), seed=seed)


def clip_options(**clip) -> dict:
    """Stage options for the tiny random model on CPU, scene templates only (fast)."""
    base = {"random_init": True, "model_config": TINY_CONFIG, "device": "cpu", "batch_size": 4, "decode_workers": 1}
    base.update(clip)
    return {"clip": base, "vocabulary": {"benchmark": "scannet20", "templates": ["scene"],
                                         "extra_prompts": {"ceiling": ["ceiling"]}}}


def write_prepared(path: Path, samples: dict[str, int], size=(48, 32), codec="jpeg", seed=0, labels=None, instances=None) -> Path:
    """A prepared store with ``samples`` {id: n_views} of random-ish images (W, H = size).

    ``labels``/``instances``: optional {id: (V, H, W) uint16} 2D ground truth (raw nyu40 ids).
    """
    from tests.factory import write_prepared as write

    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    images = {
        sample_id: np.stack([
            np.stack([(xx * 5 + 40 * v) % 256, (yy * 7) % 256, rng.integers(0, 256, (height, width))], -1) for v in range(n)
        ]).astype(np.uint8) if n else np.zeros((0, height, width, 3), np.uint8)
        for sample_id, n in samples.items()
    }
    frames = {sample_id: np.arange(n, dtype=np.int64) * 10 for sample_id, n in samples.items()}
    return write(path, images, attrs={"dataset": "test", "label_spaces": {"points": "nyu40", "views": "nyu40"}}, codec=codec,
                 frames=frames, views__label=labels or {}, views__instance=instances or {})


CLIP_COMMANDS = ("pipeline.clip.cli", "pipeline.clip.convert_cli")


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``python -m pipeline ...`` (the real dispatcher and error handling) with only the clip commands
    registered, so these tests do not depend on other stages' modules."""
    import pipeline.__main__ as entry

    monkeypatch.setattr(entry, "COMMAND_MODULES", CLIP_COMMANDS)
    return entry.main(argv)
