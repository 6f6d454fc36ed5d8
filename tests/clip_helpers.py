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
    from pipeline.images import encode_images
    from pipeline.layout import StoreWriter

    rng = np.random.default_rng(seed)
    width, height = size
    k = np.array([[width, 0, (width - 1) / 2], [0, width, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)
    attrs = {"dataset": "test", "label_spaces": {"points": "nyu40", "views": "nyu40"}}
    with StoreWriter(path, "prepare", attrs=attrs) as writer:
        for sample_id, n in samples.items():
            yy, xx = np.mgrid[0:height, 0:width]
            images = np.stack([
                np.stack([(xx * 5 + 40 * v) % 256, (yy * 7) % 256, rng.integers(0, 256, (height, width))], -1)
                for v in range(n)
            ]).astype(np.uint8) if n else np.zeros((0, height, width, 3), np.uint8)
            arrays = {
                "views/frame": np.arange(n, dtype=np.int64) * 10,
                "views/pose": np.repeat(np.eye(4)[None], n, axis=0),
                "views/image_size": np.tile([width, height], (n, 1)).astype(np.int32),
                "views/intrinsics": np.repeat(k[None], n, axis=0),
                "views/native_size": np.tile([width, height], (n, 1)).astype(np.int32),
                "views/native_intrinsics": np.repeat(k[None], n, axis=0),
            }
            sample_attrs = {"image_codec": codec}
            if codec == "raw":
                arrays["views/image"] = images
            else:
                arrays["views/image_bytes"], arrays["views/image_offsets"] = encode_images(list(images), codec)
            if labels is not None and sample_id in labels:
                arrays["views/label"] = labels[sample_id]
            if instances is not None and sample_id in instances:
                arrays["views/instance"] = instances[sample_id]
            writer.add_sample(sample_id, arrays, attrs=sample_attrs)
    return path


CLIP_COMMANDS = ("pipeline.clip.cli", "pipeline.clip.convert_cli")


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``python -m pipeline ...`` (the real dispatcher and error handling) with only the clip commands
    registered, so these tests do not depend on other stages' modules."""
    import pipeline.__main__ as entry

    monkeypatch.setattr(entry, "COMMAND_MODULES", CLIP_COMMANDS)
    return entry.main(argv)
