"""Upper bound that voxelisation puts on a 3D network: each voxel predicts the majority ground truth
of its points, mapped back to the points, scored like ``python -m train evaluate`` scores a
network (mIoU over the scannet20 classes; unlabelled ground truth skipped).

Two rows: on every point with ground truth, and on the points the pipeline's pseudo-labels
cover (the "labelled only" comparison of docs/benchmarks.md), next to the pseudo-labels
themselves on those points. Reads the prepared and points stores of the given shards only.

Run: ``PYTHONPATH=. python bench/voxel_oracle.py --results results/demo_learning --split val``
(``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def oracle_labels(xyz: np.ndarray, gt: np.ndarray, voxel: float, n_classes: int) -> np.ndarray:
    """Per point (P,) int64: the majority ground-truth class of its voxel (``voxel`` metres, the
    network's voxels: :func:`train.sparse.voxelize.point_voxel_keys`); ``xyz`` (P, 3) float metres,
    ``gt`` (P,) int with 255 = unlabelled, which casts no vote."""
    from train.sparse.voxelize import point_voxel_keys  # the network's voxels, range checked

    _, inverse = np.unique(point_voxel_keys(xyz, voxel), return_inverse=True)
    inverse = inverse.reshape(-1)
    ok = gt != 255
    table = np.zeros((int(inverse.max()) + 1, n_classes), dtype=np.int64)
    np.add.at(table, (inverse[ok], gt[ok].astype(np.int64)), 1)
    return table.argmax(axis=1)[inverse]


def main() -> None:
    from pipeline.stores import StoreReader
    from pipeline.vocab import apply_lut, benchmark, prepared_ground_truth_luts
    from pipeline.metrics import confusion, iou

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="a results folder (holds prepared/ and points/)")
    parser.add_argument("--split", default="val", help="shards whose name starts with this (default val)")
    parser.add_argument("--voxel-size", type=float, default=0.1, help="voxel edge in metres (default 0.1)")
    args = parser.parse_args()
    vocab = benchmark("scannet20")
    n = len(vocab.class_names)
    conf = {k: np.zeros((n, n + 1), np.int64) for k in ("oracle_all", "oracle_labelled", "pseudo_labelled")}
    shards = sorted(Path(args.results, "prepared").glob(f"{args.split}-*.zarr"))
    if not shards:
        raise SystemExit(f"no {args.split}-*.zarr stores under {args.results}/prepared")
    for prepared_path in shards:
        prep = StoreReader(prepared_path, "prepared")
        points = StoreReader(Path(args.results, "points", prepared_path.name), "points")
        luts = prepared_ground_truth_luts(prep.attrs, vocab)
        for sample in prep.samples:
            gt = apply_lut(luts["points"], prep.read(sample, "points/label"), default=255).astype(np.int64)
            pseudo = points.read(sample, "points/label").astype(np.int64)
            oracle = oracle_labels(prep.read(sample, "points/xyz"), gt, args.voxel_size, n)
            covered = pseudo != 255
            conf["oracle_all"] += confusion(gt, oracle, n)
            conf["oracle_labelled"] += confusion(gt[covered], oracle[covered], n)
            conf["pseudo_labelled"] += confusion(gt[covered], pseudo[covered], n)
    print(json.dumps({
        "settings": vars(args),
        **{k: round(float(np.nanmean(iou(c))) * 100, 1) for k, c in conf.items()},
    }))


if __name__ == "__main__":
    main()
