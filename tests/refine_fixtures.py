"""Stores for the refine / project / report tests: a generated demo scene, prepared, and CLIP /
refine stores made from its ground truth (what the simulated backends give at zero noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.demo.generate import DemoOptions, generate_scene, write_meta
from pipeline.stores import StoreReader, StoreWriter
from pipeline.prepare import prepare_shard
from pipeline.vocab import apply_lut, benchmark, prepared_ground_truth_luts

SCENE = "scene0000_00"
DEMO = DemoOptions(seed=0, views=8)  # default sizes: colour 648x484, depth 320x240
WORKING = (320, 240)


def dataset_options(root: Path, working=WORKING) -> dict:
    return {
        "name": "demo", "kind": "scannet", "root": str(root), "scans_dir": "scans",
        "label_map": "scannetv2-labels.combined.tsv", "split_files": {"train": "scannetv2_train.txt"},
        "frame_skip": 1, "working_size": list(working), "image_codec": "jpeg", "jpeg_quality": 95,
    }


def make_prepared(root: Path, scenes=(SCENE,), options: DemoOptions = DEMO, working=WORKING) -> Path:
    """Generate ``scenes`` under ``root`` and prepare them into ``root/prepared.zarr``."""
    for scene in scenes:
        generate_scene(root, scene, options)
    write_meta(root, list(scenes), [])
    return prepare_shard(dataset_options(root, working), "train-000", "train", list(scenes), root / "prepared.zarr", threads=2)


def ground_truth_views(prepared: StoreReader, sample: str) -> np.ndarray:
    """2D ground truth of a prepared sample as benchmark classes (V, H, W) uint8."""
    luts = prepared_ground_truth_luts(prepared.attrs, benchmark("scannet20"))
    return apply_lut(luts["views"], prepared.read(sample, "views/label"), default=255).astype(np.uint8)


def ground_truth_points(prepared: StoreReader, sample: str) -> np.ndarray:
    luts = prepared_ground_truth_luts(prepared.attrs, benchmark("scannet20"))
    return apply_lut(luts["points"], prepared.read(sample, "points/label"), default=255).astype(np.uint8)


def label_stores(prepared_path: Path, out: Path, labels_of=None) -> tuple[Path, Path]:
    """CLIP and refine stores whose labels are ``labels_of(reader, sample)`` (default: ground truth)."""
    prepared = StoreReader(prepared_path, "prepared")
    labels_of = labels_of or ground_truth_views
    clip_path, refined_path = out / "clip.zarr", out / "refined.zarr"
    with StoreWriter(clip_path, "clip", attrs={"backend": "ground-truth"}) as clip, StoreWriter(refined_path, "refined", attrs={"options": {"nesting_order": "part"}}) as ref:
        for sample in prepared.samples:
            labels = labels_of(prepared, sample)
            clip.add_sample(sample, {"views/label": labels, "views/confidence": np.ones(labels.shape, np.float16)})
            ref.add_sample(sample, {"views/label": labels, "views/label_alt": labels})
    return clip_path, refined_path


def demo_visibility(scene_dir: Path, frames: np.ndarray) -> list[np.ndarray]:
    """The generator's ray-cast visible vertices of each prepared view (by frame number)."""
    gt = np.load(scene_dir / "_demo_gt" / "visibility.npz")
    by_frame = {int(f): gt["vertices"][gt["offsets"][i] : gt["offsets"][i + 1]] for i, f in enumerate(gt["frames"])}
    return [by_frame[int(f)] for f in frames]
