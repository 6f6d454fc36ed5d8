"""Accuracy of the project stage on a demo scene: visibility against the generator's ray casting,
point labels against ground truth (issue 4's acceptance figures).

Generates one demo scene (ScanNet export format), prepares it at the working size, writes CLIP
and refine stores whose labels are the 2D ground truth (what the simulated backends give at zero
noise), runs the project stage and compares, per (view, vertex) pair, with the generator's
``_demo_gt/visibility.npz``:

* recall = truly visible pairs found / truly visible pairs;
* false positives = pairs found but not truly visible / truly visible pairs;
* labels = points whose majority label equals their ground truth, among the truly visible
  points with a benchmark class.

Run: ``PYTHONPATH=. python bench/project_accuracy.py`` (``--help`` for options). The defaults are
the acceptance test's scene (tests/test_project_stage.py: seed 0, 8 views, working size 320x240).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def measure(root: Path, args: argparse.Namespace) -> dict[str, float]:
    """Generate, prepare, project and score one scene under ``root``."""
    from pipeline.demo.generate import DemoOptions, generate_scene, write_meta
    from pipeline.stores import StoreReader, StoreWriter
    from pipeline.prepare import prepare_shard
    from pipeline.project.stage import project_shard
    from pipeline.vocab import apply_lut, benchmark, prepared_ground_truth_luts

    scene = args.scene
    options = DemoOptions(seed=args.seed, views=args.views, depth_size=tuple(args.depth_size), vertex_spacing=args.vertex_spacing)
    generate_scene(root, scene, options)
    write_meta(root, [scene], [])
    dataset = {
        "name": "demo", "kind": "scannet", "root": str(root), "scans_dir": "scans",
        "label_map": "scannetv2-labels.combined.tsv", "split_files": {"train": "scannetv2_train.txt"},
        "frame_skip": 1, "working_size": list(args.working_size), "image_codec": "jpeg", "jpeg_quality": 95,
    }
    prepared_path = prepare_shard(dataset, "train-000", "train", [scene], root / "prepared.zarr", threads=2)
    prepared = StoreReader(prepared_path, "prepared")
    luts = prepared_ground_truth_luts(prepared.attrs, benchmark("scannet20"))
    truth_2d = apply_lut(luts["views"], prepared.read(scene, "views/label"), default=255).astype(np.uint8)
    with StoreWriter(root / "clip.zarr", "clip", attrs={"backend": "ground-truth"}) as clip, \
            StoreWriter(root / "refined.zarr", "refined", attrs={"options": {"nesting_order": "part"}}) as refined:
        clip.add_sample(scene, {"views/label": truth_2d, "views/confidence": np.ones(truth_2d.shape, np.float16)})
        refined.add_sample(scene, {"views/label": truth_2d, "views/label_alt": truth_2d})
    out = project_shard(prepared_path, root / "clip.zarr", root / "refined.zarr", root / "points.zarr", json.loads(args.options), threads=2)
    points = StoreReader(out, "points")
    offsets, pair_point = points.read(scene, "views/pair_offsets"), points.read(scene, "pairs/point")
    gt = np.load(root / "scans" / scene / "_demo_gt" / "visibility.npz")
    by_frame = {int(f): gt["vertices"][gt["offsets"][i] : gt["offsets"][i + 1]] for i, f in enumerate(gt["frames"])}
    n_points = prepared.sample_attrs(scene)["sizes"]["point"]
    tp = fn = fp = 0
    truly = np.zeros(n_points, bool)
    for v, frame in enumerate(prepared.read(scene, "views/frame")):
        ours = np.zeros(n_points, bool)
        ours[pair_point[offsets[v] : offsets[v + 1]]] = True
        real = np.zeros(n_points, bool)
        real[by_frame[int(frame)]] = True
        tp += int((ours & real).sum())
        fn += int((~ours & real).sum())
        fp += int((ours & ~real).sum())
        truly |= real
    point_gt = apply_lut(luts["points"], prepared.read(scene, "points/label"), default=255).astype(np.uint8)
    scored = truly & (point_gt != 255)
    label = points.read(scene, "points/label")
    return {
        "vertices": int(n_points),
        "truly_visible_pairs": tp + fn,
        "recall": round(tp / (tp + fn), 4),
        "false_positives": round(fp / (tp + fn), 4),
        "labels": round(float((label[scored] == point_gt[scored]).mean()), 4),
        "scored_points": int(scored.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default="scene0000_00", help="scene name (hashed with the seed)")
    parser.add_argument("--seed", type=int, default=0, help="demo seed (default 0)")
    parser.add_argument("--views", type=int, default=8, help="views of the scene (default 8)")
    parser.add_argument("--depth-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"), help="depth image size (default 320 240)")
    parser.add_argument("--vertex-spacing", type=float, default=0.1, help="mesh grid spacing in metres (default 0.1)")
    parser.add_argument("--working-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"), help="label map size (default 320 240)")
    parser.add_argument("--options", default="{}", help="project options as JSON, e.g. '{\"occlusion\": {\"footprint\": \"nearest\"}}'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="project-accuracy-") as tmp:
        result = measure(Path(tmp), args)
    print(json.dumps({"settings": {k: v for k, v in vars(args).items()}, **result}))


if __name__ == "__main__":
    main()
