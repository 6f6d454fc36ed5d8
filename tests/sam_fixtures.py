"""Shared helpers of the SAM tests: synthetic scenes, prepared stores, tiny models, mask matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np


# AMG thresholds that yield masks on the tiny random model (its predicted IoUs lie around
# -0.1..0.25 and its logits are small, so SAM's defaults 0.88 / 0.95 keep nothing): predicted
# IoU above 0.001 keeps roughly a quarter of the candidates, the stability filter is off
# (offset 1 gives 0 for every mask of a random model), and boxes of random masks span most of
# the image, so NMS at SAM's 0.7 keeps one; 0.98 keeps the distinct ones.
TINY_AMG = {
    "points_per_side": 8,
    "points_per_batch": 16,
    "pred_iou_thresh": 0.001,
    "stability_score_thresh": 0.0,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 0.98,
    "crop_nms_thresh": 0.98,
}
TINY = {"image_size": 256}


def scene(seed: int, h: int = 96, w: int = 128, n: int = 6, smax: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat-coloured synthetic view: (image (h, w, 3) uint8, instance (h, w) uint16, raw label (h, w) uint16).

    Rectangles painted in order (later ones cover earlier ones); instance ids 1..n, labels 3..n+2,
    background label 1 and no instance.
    """
    rng = np.random.default_rng(seed)
    smax = smax or max(h, w) // 2
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = rng.integers(0, 255, 3)
    instance = np.zeros((h, w), np.uint16)
    label = np.ones((h, w), np.uint16)
    for i in range(1, n + 1):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        hh, ww = rng.integers(8, smax), rng.integers(8, smax)
        image[y0 : y0 + hh, x0 : x0 + ww] = rng.integers(0, 255, 3)
        instance[y0 : y0 + hh, x0 : x0 + ww] = i
        label[y0 : y0 + hh, x0 : x0 + ww] = i + 2
    return image, instance, label


def write_prepared(path: Path, samples: dict[str, list[int]], h: int = 96, w: int = 128, codec: str = "raw") -> Path:
    """A prepared store with the given samples → list of scene seeds (one view per seed)."""
    from tests.factory import write_prepared as write

    views = {sid: [scene(s, h, w) for s in seeds] for sid, seeds in samples.items()}
    return write(path, {sid: np.stack([v[0] for v in vs]) for sid, vs in views.items()}, attrs={"shard": "train-000", "split": "train"},
                 codec=codec, focal=100.0, views__instance={sid: np.stack([v[1] for v in vs]) for sid, vs in views.items()},
                 views__label={sid: np.stack([v[2] for v in vs]) for sid, vs in views.items()})


def tiny_sam(seed: int = 0, **tiny):
    """A random tiny SAM (eval mode)."""
    from pipeline.sam.model import load_sam

    return load_sam("tiny", None, random_init=True, seed=seed, tiny={**TINY, **tiny}).model


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def assert_masks_match(ours: np.ndarray, official: np.ndarray, min_iou: float = 0.98) -> None:
    """Same count, and a one-to-one matching (greedy on IoU) with every IoU >= min_iou."""
    assert len(ours) == len(official), f"{len(ours)} masks vs official {len(official)}"
    free = set(range(len(ours)))
    for ref in official:
        best = max(free, key=lambda j: mask_iou(ours[j], ref))
        iou = mask_iou(ours[best], ref)
        assert iou >= min_iou, f"best match IoU {iou:.4f} < {min_iou}"
        free.remove(best)


def official_masks(sam, image: np.ndarray, **amg):
    """The official ``SamAutomaticMaskGenerator``'s masks (N, H, W) bool and its records."""
    from segment_anything import SamAutomaticMaskGenerator

    records = SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **amg).generate(image)
    return np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, *image.shape[:2]), bool), records


def one_pass_masks(sam, images, encoder_batch: int = 1, **amg):
    """Our one-pass generator and its per-view outputs for ``images``."""
    from pipeline.sam.generator import OnePassMaskGenerator

    gen = OnePassMaskGenerator(sam, amg)
    return gen, list(gen.generate_views(images, encoder_batch))
