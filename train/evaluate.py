"""Evaluation of trained networks on a split, with exports.

3D: every original point (voxel predictions mapped back through the voxelisation's inverse).
2D: every view with ground truth, at the working resolution of the ground truth (logits
bilinearly resized from the network's label-resolution input). One confusion matrix per
modality over the whole split; per-class IoU, mIoU (mean over classes present in ground truth
or predictions), accuracy. No test-time augmentation. The pipeline's own pseudo-labels on the
same samples are scored too when their stores are given, as the reference rows:
``pseudo-labels (labelled only)`` skips elements the pipeline left unlabelled (the harder bar);
``pseudo-labels (all)`` counts them as misses; ``3D network (pseudo-labelled points only)``
scores the network on exactly the points that have a pseudo-label (like for like).

Outputs in ``out``: ``metrics.json``, ``metrics.md``, ``confusion_{2d,3d}.json`` and, per scene,
``benchmark/<scene>.txt`` (ScanNet format) and ``ply/<scene>.ply``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.images import read_view_images, resize_labels
from pipeline.layout import StoreError, StoreReader
from pipeline.vocab import IGNORE, benchmark, prepared_ground_truth_luts
from train.data.stores import check_vocabulary
from train.engine.checkpoint import load_for_inference
from train.export import write_benchmark_labels, write_prediction_ply
from train.inference import predict_points, predict_views
from train.metrics import confusion, markdown_table, summary

log = logging.getLogger(__name__)


def _label_size(stores: Mapping[str, StoreReader], prepared: StoreReader, sample: str) -> tuple[int, int]:
    for role in ("refined", "sam", "predictions"):
        reader = stores.get(role)
        if reader is not None and sample in reader.samples:
            sizes = reader.sample_attrs(sample)["sizes"]
            if "Wl" in sizes:
                return int(sizes["Wl"]), int(sizes["Hl"])
    size = prepared.read(sample, "views/image_size")[0]
    return int(size[0]), int(size[1])


def evaluate(
    checkpoint: str | Path,
    stores: Mapping[str, Sequence[str | Path]],
    out: str | Path,
    export_benchmark: bool = True,
    export_ply: bool = True,
    pseudo_labels: bool = True,
    device: str = "auto",
    threads: int = 0,
) -> dict:
    """Evaluate ``checkpoint`` on the shards given in ``stores`` (role → paths, ``prepared``
    required; ``refined``/``points`` for the pseudo-label rows; ``sam`` for the label size).
    Writes the outputs into ``out`` and returns the metrics dict."""
    from tqdm import tqdm

    net2d, net3d, meta, dev = load_for_inference(checkpoint, device, threads)
    bench = benchmark(meta["benchmark"])
    k = bench.n_classes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    conf = {name: np.zeros((k, k + 1), np.int64) for name in ("3d", "3d_labelled", "2d", "pseudo3d", "pseudo3d_all", "pseudo2d", "pseudo2d_all")}
    prepared_paths = list(stores["prepared"])
    by_role = {role: {Path(p).name: p for p in paths} for role, paths in stores.items() if paths}
    splits, n_samples, n_views_gt = set(), 0, 0
    for path in prepared_paths:
        prepared = StoreReader(path, "prepare")
        name = Path(path).name
        readers = {role: StoreReader(paths[name], {"refined": "refine", "points": "points", "sam": "sam"}[role])
                   for role, paths in by_role.items() if role in ("refined", "points", "sam") and name in paths}
        for r in readers.values():
            check_vocabulary(r, bench)
        splits.add(prepared.attrs.get("split"))
        try:
            luts = prepared_ground_truth_luts(prepared.attrs, bench)
        except ValueError as err:
            raise StoreError(f"{prepared.path}: {err}") from None
        for sample in tqdm(prepared.samples, desc=f"evaluate {name}", unit="sample", dynamic_ncols=True):
            n_samples += 1
            xyz = prepared.read(sample, "points/xyz") if prepared.has(sample, "points/xyz") else None
            if xyz is not None and xyz.shape[0]:
                rgb = prepared.read(sample, "points/rgb") if prepared.has(sample, "points/rgb") else np.full((xyz.shape[0], 3), 128, np.uint8)
                pred3d = predict_points(net3d, xyz, rgb, meta["net3d"]["input_features"], meta["net3d"]["voxel_size"], dev)
                if prepared.has(sample, "points/label") and "points" in luts:
                    gt3d = _apply(luts["points"], prepared.read(sample, "points/label"))
                    conf["3d"] += confusion(gt3d, pred3d, k)
                    if pseudo_labels and "points" in readers:
                        pseudo = readers["points"].read(sample, "points/label")
                        conf["pseudo3d_all"] += confusion(gt3d, pseudo, k)
                        conf["pseudo3d"] += confusion(np.where(pseudo == IGNORE, IGNORE, gt3d), pseudo, k)
                        conf["3d_labelled"] += confusion(np.where(pseudo == IGNORE, IGNORE, gt3d), pred3d, k)
                if export_benchmark:
                    write_benchmark_labels(out / "benchmark" / f"{sample}.txt", pred3d, bench)
                if export_ply:
                    faces = prepared.read(sample, "mesh/faces") if prepared.has(sample, "mesh/faces") else None
                    write_prediction_ply(out / "ply" / f"{sample}.ply", xyz, pred3d, faces)
            if prepared.has(sample, "views/label") and "views" in luts:
                label_size = _label_size(readers, prepared, sample)
                gt_raw = prepared.array(sample, "views/label")
                n_views = gt_raw.shape[0]
                for v in range(n_views):
                    gt2d = _apply(luts["views"], np.asarray(gt_raw[v]))
                    if not (gt2d != IGNORE).any():
                        continue
                    n_views_gt += 1
                    image = read_view_images(prepared, sample, [v])
                    h, w = gt2d.shape
                    pred2d = predict_views(net2d, image, label_size, (w, h), dev)[0]
                    conf["2d"] += confusion(gt2d, pred2d, k)
                    if pseudo_labels and "refined" in readers:
                        pseudo = readers["refined"].read(sample, "views/label", v)
                        gt_small = resize_labels(gt2d, (pseudo.shape[1], pseudo.shape[0]))
                        conf["pseudo2d_all"] += confusion(gt_small, pseudo, k)
                        conf["pseudo2d"] += confusion(np.where(pseudo == IGNORE, IGNORE, gt_small), pseudo, k)
    names = list(bench.class_names)
    results = {key: summary(c, names) for key, c in conf.items() if c.sum() > 0}
    metrics = {
        "checkpoint": {"path": str(checkpoint), "stage": meta["stage"], "step": meta["step"], "final": Path(checkpoint).name == "final.pt"},
        "benchmark": bench.name,
        "splits": sorted(s for s in splits if s),
        "samples": n_samples,
        "views_with_gt": n_views_gt,
        "transductive": bool(meta.get("transductive", False)),
        "tta": False,
        "results": results,
    }
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "confusion_3d.json", {"classes": names, "rows": "ground truth", "columns": names + ["<ignore>"], "matrix": conf["3d"].tolist()})
    _write_json(out / "confusion_2d.json", {"classes": names, "rows": "ground truth", "columns": names + ["<ignore>"], "matrix": conf["2d"].tolist()})
    labels = {"3d": "3D network", "3d_labelled": "3D network (pseudo-labelled points only)",
              "pseudo3d": "3D pseudo-labels (labelled only)", "pseudo3d_all": "3D pseudo-labels (all)",
              "2d": "2D network", "pseudo2d": "2D pseudo-labels (labelled only)", "pseudo2d_all": "2D pseudo-labels (all)"}
    rows = {labels[key]: res for key, res in results.items()}
    text = (
        f"# Evaluation: {meta['stage']} final checkpoint (step {meta['step']})\n\n"
        f"Splits {metrics['splits']}, {n_samples} samples, {n_views_gt} views with ground truth; transductive: "
        f"{metrics['transductive']}; no test-time augmentation. IoU in percent.\n\n" + markdown_table(rows, names)
    )
    atomic_write_text(out / "metrics.md", text)
    return metrics


def _apply(lut: np.ndarray, raw: np.ndarray) -> np.ndarray:
    from pipeline.vocab import apply_lut

    return apply_lut(lut, raw, default=IGNORE).astype(np.uint8)


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))
