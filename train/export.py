"""Exports: ScanNet benchmark label files, nuScenes lidarseg submissions (and the devkit's scoring
of one), PLY meshes coloured by prediction, nuImages label PNGs with colour overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.vocab import IGNORE, Benchmark

LIDARSEG_META: dict[str, bool] = {
    "use_camera": True, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": True,
}
"""``submission.json``'s ``meta`` (exactly the devkit's five booleans): cameras and lidar are used;
CLIP and SAM count as external data."""

DEVKIT_SPLITS: tuple[str, ...] = ("train", "val", "test", "mini_train", "mini_val", "train_detect", "train_track")
"""Split names of the nuScenes devkit (``nuscenes.utils.splits.create_splits_scenes``)."""

ERROR_COLOURS: dict[str, tuple[int, int, int]] = {"correct": (190, 190, 190), "wrong": (220, 30, 30), "unlabelled": (0, 0, 0)}
"""Colours of the error PLY: prediction equals ground truth, differs, no ground truth."""


def write_benchmark_labels(path: str | Path, classes: np.ndarray, bench: Benchmark) -> Path:
    """ScanNet benchmark format: one raw (nyu40) id per vertex per line, in vertex order."""
    from pipeline.atomic import atomic_write_text

    raw = bench.to_raw(np.asarray(classes, dtype=np.uint8))
    atomic_write_text(path, "".join(f"{int(v)}\n" for v in raw))
    return Path(path)


def write_label_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray, properties: dict[str, np.ndarray],
                    faces: np.ndarray | None = None, comments: Sequence[str] = ()) -> Path:
    """Binary PLY, written atomically: vertices (x, y, z float32, red, green, blue uint8) plus one
    uint8 vertex property per entry of ``properties`` (each (N,)), faces if given, header comments."""
    from plyfile import PlyData, PlyElement

    from pipeline.atomic import atomic_file

    path = Path(path)
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.empty(xyz.shape[0], dtype=fields + [(name, "u1") for name in properties])
    vertex["x"], vertex["y"], vertex["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    for name, values in properties.items():
        vertex[name] = values
    elements = [PlyElement.describe(vertex, "vertex")]
    if faces is not None and len(faces):
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face"))
    with atomic_file(path) as tmp:
        PlyData(elements, text=False, comments=list(comments)).write(str(tmp))
    return path


def _class_comments(bench: Benchmark) -> list[str]:
    return [f"label: class index of benchmark {bench.name}, 255 = none"] + [
        f"class {c} {name}" for c, name in enumerate(bench.class_names)
    ]


def write_prediction_ply(path: str | Path, xyz: np.ndarray, classes: np.ndarray, bench: Benchmark,
                         faces: np.ndarray | None = None) -> Path:
    """``<name>.ply``: vertices coloured by predicted class (:func:`pipeline.palette.class_palette`),
    with a ``label`` vertex property (class index, uint8) and the class names in the header."""
    from pipeline.palette import colour_labels

    classes = np.asarray(classes, np.uint8)
    return write_label_ply(path, xyz, colour_labels(classes, bench), {"label": classes}, faces, _class_comments(bench))


def write_truth_and_error_plys(stem: str | Path, xyz: np.ndarray, pred: np.ndarray, truth: np.ndarray, bench: Benchmark,
                               faces: np.ndarray | None = None, variants: Sequence[str] = ("truth", "error")) -> list[Path]:
    """``<stem>.gt.ply`` (coloured by ground truth, ``label`` = its class, 255 = unlabelled) and
    ``<stem>.error.ply`` (grey = correct, red = wrong, black = no ground truth; ``label`` =
    prediction, ``gt`` = ground truth), those named in ``variants``. ``pred``, ``truth`` (N,) uint8
    class indices. Returns the paths written."""
    from pipeline.palette import colour_labels

    pred, truth = np.asarray(pred, np.uint8), np.asarray(truth, np.uint8)
    stem = Path(stem)
    comments = _class_comments(bench)
    written = []
    if "truth" in variants:
        written.append(write_label_ply(stem.with_name(stem.name + ".gt.ply"), xyz, colour_labels(truth, bench), {"label": truth},
                                       faces, comments))
    if "error" not in variants:
        return written
    rgb = np.empty((pred.size, 3), np.uint8)
    labelled = truth != IGNORE
    rgb[:] = ERROR_COLOURS["unlabelled"]
    rgb[labelled & (pred == truth)] = ERROR_COLOURS["correct"]
    rgb[labelled & (pred != truth)] = ERROR_COLOURS["wrong"]
    written.append(write_label_ply(stem.with_name(stem.name + ".error.ply"), xyz, rgb, {"label": pred, "gt": truth}, faces,
                                   comments + ["colours: grey = correct, red = wrong, black = no ground truth"]))
    return written


def devkit_split(split: str) -> str:
    """The devkit's name of our split: shard names cannot hold ``_``, so ``minival`` / ``mini-val``
    / ``mini_val`` all give ``mini_val``; names the devkit does not know (a split file's) are kept."""
    key = split.replace("_", "").replace("-", "").lower()
    return next((name for name in DEVKIT_SPLITS if name.replace("_", "") == key), split)


def write_lidarseg_labels(out: str | Path, split: str, lidar_token: str, classes: np.ndarray, bench: Benchmark) -> Path:
    """nuScenes lidarseg result file ``<out>/lidarseg/<split>/<lidar_token>_lidarseg.bin``: one uint8
    benchmark id (class index + 1, 1..16) per point of the keyframe cloud, in point order.

    ``classes`` (P,) uint8 class indices; ``split`` is the devkit's name (:func:`devkit_split`).
    Raises ``ValueError`` if a point has no class (the devkit accepts only 1..n_classes).
    """
    from pipeline.atomic import atomic_file

    classes = np.asarray(classes).reshape(-1)
    if classes.size and int(classes.max()) >= bench.n_classes:
        raise ValueError(f"lidarseg export of {lidar_token}: class {int(classes.max())} outside 0..{bench.n_classes - 1}")
    raw = bench.to_raw(classes.astype(np.uint8)).astype(np.uint8)
    path = Path(out) / "lidarseg" / split / f"{lidar_token}_lidarseg.bin"
    with atomic_file(path) as tmp:
        raw.tofile(tmp)
    return path


def write_lidarseg_submission(out: str | Path, split: str) -> Path:
    """``<out>/<split>/submission.json`` = ``{"meta": LIDARSEG_META}``."""
    import json

    from pipeline.atomic import atomic_write_text

    path = Path(out) / split / "submission.json"
    atomic_write_text(path, json.dumps({"meta": LIDARSEG_META}, indent=1))
    return path


def lidarseg_official_iou(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU (K,) float64 of our (K, K + 1) confusion matrix computed as the devkit's
    ``ConfusionMatrix.get_per_class_iou`` does: a (K + 1)-class matrix (devkit id = class + 1) with
    the ignore row and column 0 zeroed, TP / (TP + FP + FN) with the union cast to float32 first
    (counts above 2**24 round), NaN for classes in neither ground truth nor prediction.
    Unlabelled predictions (our last column; impossible in a submission) count as misses."""
    return _devkit_iou(matrix)[1:]


def lidarseg_official_miou(matrix: np.ndarray) -> float:
    """The devkit's mIoU of our (K, K + 1) matrix: ``nanmean`` over its K + 1 per-class IoUs
    (the ignore class is NaN), as ``ConfusionMatrix.get_mean_iou``; NaN when every class is."""
    values = _devkit_iou(matrix)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _devkit_iou(matrix: np.ndarray) -> np.ndarray:
    """(K + 1,) IoUs in the devkit's indexing (0 = ignore, NaN) from our (K, K + 1) matrix."""
    m = np.asarray(matrix, dtype=np.int64)
    k = m.shape[0]
    full = np.zeros((k + 1, k + 1), np.int64)
    full[1:, 1:] = m[:, :k]
    tp = np.diagonal(full)
    gt_count = np.concatenate([[0], m.sum(axis=1)])  # our unlabelled column: misses of the true class
    union = gt_count + full.sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / union.astype(np.float32)


NUIMAGES_EXPORT_NAMES: dict[str, str] = {
    "barrier": "movable_object.barrier", "bicycle": "vehicle.bicycle", "bus": "vehicle.bus.rigid", "car": "vehicle.car",
    "construction_vehicle": "vehicle.construction", "motorcycle": "vehicle.motorcycle", "pedestrian": "human.pedestrian.adult",
    "traffic_cone": "movable_object.trafficcone", "trailer": "vehicle.trailer", "truck": "vehicle.truck",
    "driveable_surface": "flat.driveable_surface",
}
"""Class → the nuImages category its predictions are exported as (several fine classes map to one
class; the most common one stands for it). Classes nuImages does not annotate export as 0."""


def nuimages_export_lut(categories: Sequence[Sequence], bench: Benchmark) -> np.ndarray:
    """LUT class index → nuImages fine index (``get_segmentation``'s numbering, from the prepared
    store's ``nuimages_categories`` [[index, name], ...]): (256,) uint8, 0 for IGNORE, for classes
    nuImages does not annotate and for categories the table lacks."""
    index = {str(name): int(i) for i, name in categories}
    lut = np.zeros(256, np.uint8)
    for c, name in enumerate(bench.class_names):
        fine = NUIMAGES_EXPORT_NAMES.get(name)
        lut[c] = index.get(fine, 0) if fine else 0
    return lut


def write_nuimages_png(folder: Path, name: str, fine: np.ndarray, classes: np.ndarray, image: np.ndarray, bench: Benchmark) -> None:
    """``<folder>/<name>.png``: ``fine`` (H, W) uint8 nuImages fine indices (what ``get_segmentation``
    numbers), and ``<folder>/<name>_overlay.jpg``: ``image`` (H, W, 3) uint8 blended half and half with
    the colours of ``classes`` (H, W) class indices (the devkit's palette). Both written atomically."""
    import io

    from PIL import Image

    from pipeline.atomic import atomic_file

    folder.mkdir(parents=True, exist_ok=True)
    from pipeline.palette import colour_labels

    colours = colour_labels(classes, bench)
    blend = ((image.astype(np.uint16) + colours.astype(np.uint16)) // 2).astype(np.uint8)
    for path, array, fmt in ((folder / f"{name}.png", np.ascontiguousarray(fine, np.uint8), "PNG"),
                             (folder / f"{name}_overlay.jpg", blend, "JPEG")):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt)
        with atomic_file(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
