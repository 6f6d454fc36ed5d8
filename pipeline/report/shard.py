"""One shard's part of the quality report: confusion matrices, coverage and an overlay figure.

Ground truth comes from the prepared store (raw ids mapped to the benchmark with
:func:`pipeline.vocab.prepared_ground_truth_luts`); 2D ground truth is resized (nearest) to the
label maps' resolution when the two differ. Without ground truth only coverage is reported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.metrics import confusion

log = logging.getLogger(__name__)

PIXEL_KEYS = ("clip", "refined", "refined_alt")
POINT_KEYS = ("clip", "refined")


def ground_truth(prep, sample: str, luts: dict, label_shape: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    from pipeline.images import resize_labels
    from pipeline.vocab import apply_lut

    gt_views = gt_points = None
    if "views" in luts and prep.has(sample, "views/label"):
        raw = prep.read(sample, "views/label")
        mapped = apply_lut(luts["views"], raw, default=255).astype(np.uint8)
        if mapped.shape[1:] != label_shape:
            size = (label_shape[1], label_shape[0])
            mapped = np.stack([resize_labels(m, size) for m in mapped])
        gt_views = mapped
    if "points" in luts and prep.has(sample, "points/label"):
        gt_points = apply_lut(luts["points"], prep.read(sample, "points/label"), default=255).astype(np.uint8)
    return gt_views, gt_points


def _pick_views(view_counts: list[int], n: int) -> list[tuple[int, int]]:
    """(sample index, view index) of ``n`` views spread over the samples (middle views first)."""
    picks: list[tuple[int, int]] = []
    if not view_counts or n <= 0:
        return picks
    per_sample = max(1, -(-n // len(view_counts)))
    for s, count in enumerate(view_counts):
        if count == 0:
            continue
        for j in range(min(per_sample, count)):
            picks.append((s, int((j + 0.5) * count / min(per_sample, count))))
    return picks[:n]


def _point_coverage(points, sample: str, coverage: dict[str, int]) -> np.ndarray | None:
    """Add a sample's point counts to ``coverage``; its refined point labels (P,) uint8, or None
    without a points store (image-only datasets)."""
    if points is None:
        return None
    label = points.read(sample, "points/label")
    coverage["points"] += int(label.size)
    coverage["points_seen"] += int(points.read(sample, "points/seen").sum())
    coverage["points_labelled"] += int((label != 255).sum())
    coverage["pairs"] += int(points.sample_attrs(sample)["sizes"].get("pair", 0))
    return label


def shard_report(
    prepared: str | Path, clip: str | Path, sam: str | Path, refined: str | Path, points: str | Path | None,
    benchmark: str, out: str | Path, overlays_out: str | Path | None = None, overlays: int = 2,
) -> dict[str, Any]:
    """Compute the shard's confusion matrices and coverage, write them as JSON to ``out``.
    ``points`` is None for image-only datasets (nuImages): the point rows stay empty."""
    from pipeline.images import read_view_images, resize_image
    from pipeline.stores import StoreReader
    from pipeline.refine.stage import other_order
    from pipeline.vocab import benchmark as get_benchmark
    from pipeline.vocab import prepared_ground_truth_luts

    bench = get_benchmark(benchmark)
    k = bench.n_classes
    prep = StoreReader(prepared, "prepared")
    clip_store = StoreReader(clip, "clip", benchmark=bench.name)
    sam_store = StoreReader(sam, "sam")
    ref_store = StoreReader(refined, "refined", benchmark=bench.name)
    pts_store = None if points is None else StoreReader(points, "points", benchmark=bench.name)
    luts = prepared_ground_truth_luts(prep.attrs, bench)
    order = ref_store.attrs.get("options", {}).get("nesting_order", "part")
    matrices = {f"pixels.{key}": np.zeros((k, k + 1), np.int64) for key in PIXEL_KEYS}
    matrices.update({f"points.{key}": np.zeros((k, k + 1), np.int64) for key in POINT_KEYS})
    coverage = dict.fromkeys(("pixels", "pixels_in_mask", "points", "points_seen", "points_labelled", "pairs"), 0)
    has_gt = {"pixels": False, "points": False}
    panels = []
    picks = _pick_views([prep.sample_attrs(s)["sizes"]["view"] for s in prep.samples], overlays)
    for index, sample in enumerate(prep.samples):
        clip_labels = clip_store.read(sample, "views/label")
        refined_labels = ref_store.read(sample, "views/label")
        alt_labels = ref_store.read(sample, "views/label_alt") if ref_store.has(sample, "views/label_alt") else refined_labels
        segments = sam_store.read(sample, "views/segments")
        coverage["pixels"] += int(segments.size)
        coverage["pixels_in_mask"] += int((segments >= 0).sum())
        gt_views, gt_points = ground_truth(prep, sample, luts, clip_labels.shape[1:])
        point_label = _point_coverage(pts_store, sample, coverage)
        gt_points = None if point_label is None else gt_points
        if gt_views is not None:
            has_gt["pixels"] = True
            for key, pred in (("clip", clip_labels), ("refined", refined_labels), ("refined_alt", alt_labels)):
                matrices[f"pixels.{key}"] += confusion(gt_views, pred, k)
        if gt_points is not None:
            has_gt["points"] = True
            matrices["points.clip"] += confusion(gt_points, pts_store.read(sample, "points/label_clip"), k)
            matrices["points.refined"] += confusion(gt_points, point_label, k)
        for s, v in picks:
            if s == index:
                image = read_view_images(prep, sample, [v])[0]
                size = (clip_labels.shape[2], clip_labels.shape[1])
                panels.append(
                    {
                        "title": f"{sample} view {v}",
                        "image": resize_image(image, size),
                        "segments": segments[v],
                        "clip": clip_labels[v],
                        "refined": refined_labels[v],
                        "truth": None if gt_views is None else gt_views[v],
                    }
                )
    result = {
        "shard": prep.attrs.get("shard"),
        "split": prep.attrs.get("split"),
        "benchmark": bench.name,
        "class_names": list(bench.class_names),
        "scored": list(bench.scored_classes),
        "nesting_order": order,
        "alt_nesting_order": other_order(order),
        "ground_truth": has_gt,
        "backends": {"clip": clip_store.attrs.get("backend"), "sam": sam_store.attrs.get("backend")},
        "samples": list(prep.samples),
        "coverage": coverage,
        "input_checks": dict(prep.attrs.get("input_checks") or {}),
        "confusion": {key: m.tolist() for key, m in matrices.items()},
    }
    _write_json(out, result)
    if overlays_out is not None:
        from pipeline.report.plots import overlay_figure

        overlay_figure(panels, bench, overlays_out, title=f"{result['shard']}: image / SAM segments / CLIP / refined ({order}) / ground truth")
    return result


def _write_json(path: str | Path, data: Any) -> None:
    from pipeline.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
