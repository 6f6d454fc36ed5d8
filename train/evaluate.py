"""Evaluation of trained networks on a split, with exports.

3D: every original point (voxel predictions mapped back through the voxelisation's inverse).
2D: every view with ground truth, at the working resolution of the ground truth (logits
bilinearly resized from the network's label-resolution input). One confusion matrix per
row over the whole split; per-class IoU, mIoU, accuracy. Every row of a modality's table
averages the same classes, those present in the split's ground truth of that modality
(:func:`pipeline.metrics.comparable`); the official evaluators' mean (classes in ground truth or
predicted) is recorded as ``miou_gt_or_pred`` and shown beside it where it differs. No test-time augmentation. The pipeline's own pseudo-labels on the
same samples are scored too when their stores are given, as the reference rows:
``pseudo-labels (labelled only)`` skips elements the pipeline left unlabelled (the harder bar);
``pseudo-labels (all)`` counts them as misses; ``3D network (pseudo-labelled points only)``
scores the network on exactly the points that have a pseudo-label (like for like).

Outputs in ``out``: ``metrics.json``, ``metrics.md``, ``confusion_{2d,3d}.json``,
``figures/views.png`` and ``figures/points.png`` (the report's pictures) and, per scene,
``benchmark/<scene>.txt`` (ScanNet format, benchmark ``scannet20``) and ``ply/<scene>.ply``.
Benchmark ``nuscenes16``: the lidarseg submission instead of the ScanNet files,
``lidarseg/<split>/<lidar_token>_lidarseg.bin`` per sample and ``<split>/submission.json`` per
split (devkit split names), and ``results["3d"]["miou_official"]``: the devkit's mIoU of the same
3D confusion matrix (``miou_official_by_split`` per split). Only a sample's keyframe points (all
but the last ``sweep_points``, its attribute when the store appends sweep points) are scored and
exported; the network sees all of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.images import read_view_images, resize_image, resize_labels
from pipeline.metrics import CLASS_SET, comparable, confusion, markdown_table
from pipeline.stores.keyframes import keyframe_points
from pipeline.stores import StoreError, StoreReader, shard_of
from pipeline.vocab import IGNORE, benchmark, prepared_ground_truth_luts
from train.engine.checkpoint import load_for_inference
from train.export import (
    devkit_split,
    lidarseg_official_miou,
    nuimages_export_lut,
    write_benchmark_labels,
    write_lidarseg_labels,
    write_lidarseg_submission,
    write_nuimages_png,
    write_prediction_ply,
    write_truth_and_error_plys,
)
from train.inference import predict_points, predict_views

log = logging.getLogger(__name__)


def _label_size(stores: Mapping[str, StoreReader], prepared: StoreReader, sample: str) -> tuple[int, int]:
    for reader in stores.values():
        if sample in reader.samples:
            sizes = reader.sample_attrs(sample)["sizes"]
            if "Wl" in sizes:
                return int(sizes["Wl"]), int(sizes["Hl"])
    size = prepared.read(sample, "views/image_size")[0]
    return int(size[0]), int(size[1])


ROW_LABELS: dict[str, str] = {
    "3d": "3D network", "3d_labelled": "3D network (pseudo-labelled points only)",
    "pseudo3d": "3D pseudo-labels (labelled only)", "pseudo3d_all": "3D pseudo-labels (all)",
    "2d": "2D network", "pseudo2d": "2D pseudo-labels (labelled only)", "pseudo2d_all": "2D pseudo-labels (all)",
}
"""Result key → row name of the tables; one confusion matrix each, over the whole split."""

MODALITIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "3d": ("3D (every point)", "points", ("3d", "3d_labelled", "pseudo3d", "pseudo3d_all")),
    "2d": ("2D (every view with ground truth)", "pixels at the ground truth's resolution", ("2d", "pseudo2d", "pseudo2d_all")),
}
"""Modality → (table title, ground-truth unit, result keys): one table each, one class set each;
the first key's ground truth is the full split's (its counts head the per-class table)."""


@dataclass
class Options:
    """What to write besides the metrics, and whether to score the pseudo-labels too."""

    export_benchmark: bool
    export_ply: bool
    pseudo_labels: bool
    export_lidarseg: bool = True
    plumbing_below_steps: int = 1000
    export_png: bool = True
    ply_variants: tuple[str, ...] = ("prediction", "truth", "error")
    figure_views: int = 4
    figure_scenes: int = 2


LEARNING_RUNS: dict[str, tuple[str, str, str]] = {
    "scannet20": ("snakemake --configfile workflow/configs/demo_learning_fast.yaml --cores 2 all",
                  "about 7 minutes per stage-1 run on 2 CPU cores", "Does CNS work?"),
    "nuscenes16": ("snakemake --configfile workflow/configs/demo_nuscenes.yaml workflow/configs/demo_nuscenes_learning.yaml "
                   "--cores 2 all", "about an hour per stage-1 run on 2 CPU cores", "Does learning work outdoors?"),
}
"""Benchmark → (command of the demo run that learns, its cost, its docs/benchmarks.md section)."""


def plumbing_note(meta: Mapping, below: int) -> str:
    """The plumbing-run label of a checkpoint's evaluation (one Markdown paragraph), or "" when its
    stage 1 trained ``below`` steps or more (``evaluate.plumbing_below_steps``; 0: never)."""
    stage2 = meta["stage"] == "stage2"
    stage1_steps = int((meta.get("config") or {}).get("stage1", {}).get("steps", 0)) if stage2 else int(meta["step"])
    if stage1_steps >= below:
        return ""
    trained = f"stage 1 trained {stage1_steps} steps" + (f" (then stage 2 {int(meta['step'])})" if stage2 else "")
    run, cost, section = LEARNING_RUNS.get(str(meta.get("benchmark")), LEARNING_RUNS["scannet20"])
    return (f"**Plumbing run**: {trained}, fewer than `evaluate.plumbing_below_steps` ({below}). It shows that every "
            "stage runs end to end; its networks have barely started to learn, so these figures say nothing about the "
            f"method. A run that learns on the demo ({cost}): `{run}` "
            f"(docs/benchmarks.md, \"{section}\"); on real data, raise `train.stage1.steps`.")


LIDARSEG_BENCHMARK = "nuscenes16"
"""The benchmark whose 3D predictions are exported (and scored officially) as nuScenes lidarseg."""


class Evaluation:
    """Confusion matrices of one checkpoint accumulated over samples, then written."""

    def __init__(self, checkpoint: str | Path, out: Path, options: Options, device: str, threads: int) -> None:
        self.checkpoint = checkpoint
        self.net2d, self.net3d, self.meta, self.device = load_for_inference(checkpoint, device, threads)
        self.bench = benchmark(self.meta["benchmark"])
        self.out, self.options = out, options
        k = self.bench.n_classes
        self.conf = {key: np.zeros((k, k + 1), np.int64) for key in ROW_LABELS}
        self.splits: set[str] = set()
        self.samples = self.views_with_gt = 0
        self.lidarseg = self.bench.name == LIDARSEG_BENCHMARK
        self.split = ""  # the devkit's name of the current shard's split
        self.conf_official: dict[str, np.ndarray] = {}  # devkit split -> the "3d" matrix of its samples
        self.exported: set[str] = set()  # devkit splits with lidarseg files written
        self.view_panels: list[dict] = []  # figures/views.png: the first view of the first samples
        self.point_scenes: list[dict] = []  # figures/points.png: the first samples

    def add(self, key: str, gt: np.ndarray, pred: np.ndarray) -> None:
        self.conf[key] += confusion(gt, pred, self.bench.n_classes)

    def points(self, prepared: StoreReader, readers: Mapping[str, StoreReader], luts: dict, sample: str) -> None:
        """Score (and export) the 3D network's prediction of every (keyframe) point of ``sample``."""
        xyz = prepared.read(sample, "points/xyz") if prepared.has(sample, "points/xyz") else None
        if xyz is None or not xyz.shape[0]:
            return
        rgb = prepared.read(sample, "points/rgb") if prepared.has(sample, "points/rgb") else np.full((xyz.shape[0], 3), 128, np.uint8)
        intensity = prepared.read(sample, "points/intensity") if prepared.has(sample, "points/intensity") else None
        net = self.meta["net3d"]
        pred_all = predict_points(self.net3d, xyz, rgb, net["input_features"], net["voxel_size"], self.device, intensity)
        n = keyframe_points(prepared, sample, xyz.shape[0])
        pred3d = pred_all[:n]
        has_gt = prepared.has(sample, "points/label") and "points" in luts
        if len(self.point_scenes) < self.options.figure_scenes:
            self.point_scenes.append({"title": sample, "xyz": np.asarray(xyz[:n], np.float32), "pred": pred3d,
                                      "truth": _apply(luts["points"], prepared.read(sample, "points/label")[:n]) if has_gt else None})
        if has_gt:
            gt3d = _apply(luts["points"], prepared.read(sample, "points/label")[:n])
            self.add("3d", gt3d, pred3d)
            if self.lidarseg:
                matrix = self.conf_official.setdefault(self.split, np.zeros_like(self.conf["3d"]))
                matrix += confusion(gt3d, pred3d, self.bench.n_classes)
            if self.options.pseudo_labels and "points" in readers:
                pseudo = readers["points"].read(sample, "points/label")[:n]
                labelled_gt = np.where(pseudo == IGNORE, IGNORE, gt3d)
                self.add("pseudo3d_all", gt3d, pseudo)
                self.add("pseudo3d", labelled_gt, pseudo)
                self.add("3d_labelled", labelled_gt, pred3d)
            self.export_points(prepared, sample, xyz, pred_all, pred3d, gt3d)
        else:
            self.export_points(prepared, sample, xyz, pred_all, pred3d, None)

    def export_points(self, prepared: StoreReader, sample: str, xyz: np.ndarray, pred_all: np.ndarray, pred3d: np.ndarray,
                      gt3d: np.ndarray | None) -> None:
        """Write the exports of one sample: ``pred_all`` (P,) uint8 over every stored point (PLYs),
        ``pred3d`` (n,) uint8 over its keyframe points (benchmark files), ``gt3d`` (n,) uint8 its
        ground truth if any (ground-truth and error PLYs; later points, e.g. sweeps, unlabelled)."""
        if self.lidarseg and self.options.export_lidarseg:
            token = prepared.sample_attrs(sample).get("lidar_token")
            if not token:
                raise StoreError(f"{prepared.path}: sample {sample} has no attribute 'lidar_token' (needed by the lidarseg export)")
            write_lidarseg_labels(self.out, self.split, str(token), pred3d, self.bench)
            self.exported.add(self.split)
        elif self.options.export_benchmark and not self.lidarseg:
            write_benchmark_labels(self.out / "benchmark" / f"{sample}.txt", pred3d, self.bench)
        if self.options.export_ply:
            faces = prepared.read(sample, "mesh/faces") if prepared.has(sample, "mesh/faces") else None
            if "prediction" in self.options.ply_variants:
                write_prediction_ply(self.out / "ply" / f"{sample}.ply", xyz, pred_all, self.bench, faces)
            if gt3d is not None and {"truth", "error"} & set(self.options.ply_variants):
                truth = np.full(pred_all.shape, IGNORE, np.uint8)
                truth[: gt3d.shape[0]] = gt3d
                write_truth_and_error_plys(self.out / "ply" / sample, xyz, pred_all, truth, self.bench, faces,
                                           variants=self.options.ply_variants)

    def figure_view(self, prepared: StoreReader, readers: Mapping[str, StoreReader], sample: str, view: int,
                    truth: np.ndarray | None, pred: np.ndarray | None = None) -> None:
        """Keep one view for figures/views.png (image, pseudo-label, prediction, ground truth at the
        ground truth's size, else at label resolution), up to ``figure_views`` views."""
        if len(self.view_panels) >= self.options.figure_views:
            return
        label_size = _label_size(readers, prepared, sample)
        size = (truth.shape[1], truth.shape[0]) if truth is not None else label_size
        image = read_view_images(prepared, sample, [view])
        if pred is None:
            pred = predict_views(self.net2d, image, label_size, size, self.device)[0]
        pseudo = readers["refined"].read(sample, "views/label", view) if "refined" in readers else None
        self.view_panels.append({"title": f"{sample} view {view}", "image": resize_image(image[0], size), "pred": pred, "truth": truth,
                                 "pseudo": None if pseudo is None else resize_labels(pseudo, size)})

    def views(self, prepared: StoreReader, readers: Mapping[str, StoreReader], luts: dict, sample: str) -> None:
        """Score the 2D network on every view of ``sample`` with ground truth, at its resolution."""
        if not (prepared.has(sample, "views/label") and "views" in luts):
            if len(self.view_panels) < self.options.figure_views and prepared.has(sample, "views/image_size") \
                    and prepared.read(sample, "views/image_size").shape[0]:
                self.figure_view(prepared, readers, sample, 0, None)  # no 2D ground truth (nuScenes): prediction only
            return
        pictured = False
        label_size = _label_size(readers, prepared, sample)
        gt_raw = prepared.array(sample, "views/label")
        for v in range(gt_raw.shape[0]):
            gt2d = _apply(luts["views"], np.asarray(gt_raw[v]))
            if not (gt2d != IGNORE).any():
                continue
            self.views_with_gt += 1
            h, w = gt2d.shape
            pred2d = predict_views(self.net2d, read_view_images(prepared, sample, [v]), label_size, (w, h), self.device)[0]
            self.add("2d", gt2d, pred2d)
            if not pictured:
                self.figure_view(prepared, readers, sample, v, gt2d, pred2d)
                pictured = True
            if self.options.pseudo_labels and "refined" in readers:
                pseudo = readers["refined"].read(sample, "views/label", v)
                gt_small = resize_labels(gt2d, (pseudo.shape[1], pseudo.shape[0]))
                self.add("pseudo2d_all", gt_small, pseudo)
                self.add("pseudo2d", np.where(pseudo == IGNORE, IGNORE, gt_small), pseudo)

    def shard(self, prepared_path: str | Path, by_store: Mapping[str, Mapping[str, str | Path]]) -> None:
        """Score every sample of one shard (its prepared store and the other stores of that shard)."""
        from pipeline.progress import progress

        prepared = StoreReader(prepared_path, "prepared")
        name = shard_of(str(prepared_path))
        readers = {store: StoreReader(paths[name], store, benchmark=self.bench.name) for store, paths in by_store.items() if name in paths}
        self.splits.add(prepared.attrs.get("split"))
        self.split = devkit_split(str(prepared.attrs.get("split") or "unknown"))
        try:
            luts = prepared_ground_truth_luts(prepared.attrs, self.bench)
        except ValueError as err:
            raise StoreError(f"{prepared.path}: {err}") from None
        for sample in progress(prepared.samples, desc=f"evaluate {name}", unit="sample"):
            self.samples += 1
            self.points(prepared, readers, luts, sample)
            self.views(prepared, readers, luts, sample)
            if self.options.export_png and prepared.attrs.get("label_spaces", {}).get("views") == "nuimages":
                self.export_nuimages(prepared, readers, sample)

    def export_nuimages(self, prepared: StoreReader, readers: Mapping[str, StoreReader], sample: str) -> None:
        """nuImages: each view's 2D prediction at the image's native size as a PNG of fine indices
        (``get_segmentation``'s numbering) and a colour overlay, ``nuimages/<split>/<sample_data token>``."""
        lut = nuimages_export_lut(prepared.attrs.get("nuimages_categories") or (), self.bench)
        token = prepared.sample_attrs(sample).get("camera_token") or sample
        images = read_view_images(prepared, sample, None)
        for v, (w, h) in enumerate(prepared.read(sample, "views/native_size")):
            pred = predict_views(self.net2d, images[v:v + 1], _label_size(readers, prepared, sample), (int(w), int(h)), self.device)[0]
            write_nuimages_png(self.out / "nuimages" / str(prepared.attrs.get("split")), f"{token}" + (f"_{v}" if v else ""),
                               lut[pred], pred, resize_image(images[v], (int(w), int(h))), self.bench)

    def write_lidarseg(self, results: dict) -> str:
        """nuscenes16: add the devkit's mIoU to ``results["3d"]`` (``miou_official``, and
        ``miou_official_by_split``, devkit split → mIoU) and write each exported split's
        ``submission.json``. Returns the line metrics.md adds ("" for other benchmarks)."""
        for split in sorted(self.exported):
            write_lidarseg_submission(self.out, split)
        if not (self.lidarseg and "3d" in results):
            return ""
        res = results["3d"]
        res["miou_official"] = lidarseg_official_miou(self.conf["3d"])
        res["miou_official_by_split"] = {split: lidarseg_official_miou(c) for split, c in sorted(self.conf_official.items())}
        by_split = ", ".join(f"{split} {100 * v:.1f}" for split, v in res["miou_official_by_split"].items())
        return f"\n3D mIoU as the nuScenes lidarseg devkit scores it: {100 * res['miou_official']:.1f} ({by_split}).\n"

    def results(self) -> dict[str, dict]:
        """Result key → summary, every row of a modality over that modality's one class set."""
        names = list(self.bench.class_names)
        results: dict[str, dict] = {}
        for _, _, keys in MODALITIES.values():
            rows = {k: self.conf[k] for k in keys if self.conf[k].sum() > 0}
            if rows:
                results.update(comparable(rows, names, self.bench.scored_classes))
        return results

    def write(self) -> dict:
        """Write metrics.json, confusion_{3d,2d}.json and metrics.md; returns the metrics dict."""
        names, meta = list(self.bench.class_names), self.meta
        results = self.results()
        official = self.write_lidarseg(results)
        note = plumbing_note(meta, self.options.plumbing_below_steps)
        metrics = {
            "plumbing_run": bool(note),
            "note": note,
            "checkpoint": {"path": str(self.checkpoint), "stage": meta["stage"], "step": meta["step"], "final": Path(self.checkpoint).name == "final.pt"},
            "benchmark": self.bench.name,
            "splits": sorted(s for s in self.splits if s),
            "samples": self.samples,
            "views_with_gt": self.views_with_gt,
            "transductive": bool(meta.get("transductive", False)),
            "tta": False,
            "class_set": CLASS_SET,
            "results": results,
        }
        _write_json(self.out / "metrics.json", metrics)
        for key in ("3d", "2d"):
            _write_json(self.out / f"confusion_{key}.json",
                        {"classes": names, "rows": "ground truth", "columns": names + ["<ignore>"], "matrix": self.conf[key].tolist()})
        text = (
            f"# Evaluation: {meta['stage']} final checkpoint (step {meta['step']})\n\n"
            f"Splits {metrics['splits']}, {self.samples} samples, {self.views_with_gt} views with ground truth; transductive: "
            f"{metrics['transductive']}; no test-time augmentation. IoU in percent; mIoU averages over "
            f"{_class_set(self.bench)}.\n"
            + (f"\n{note}\n" if note else "")
        )
        for title, unit, keys in MODALITIES.values():
            rows = {ROW_LABELS[k]: results[k] for k in keys if k in results}
            if rows:
                text += f"\n## {title}\n\n" + markdown_table(rows, names, unit)
        atomic_write_text(self.out / "metrics.md", text + official)
        from pipeline.figures import write_prediction_figures

        write_prediction_figures(self.out / "figures", self.bench, self.view_panels, self.point_scenes,
                                 f"{meta['stage']} final networks, split(s) {', '.join(metrics['splits'])}")
        return metrics


def evaluate(
    checkpoint: str | Path,
    stores: Mapping[str, Sequence[str | Path]],
    out: str | Path,
    export_benchmark: bool = True,
    export_ply: bool = True,
    pseudo_labels: bool = True,
    device: str = "auto",
    threads: int = 0,
    export_lidarseg: bool = True,
    plumbing_below_steps: int = 1000,
    export_png: bool = True,
    ply_variants: Sequence[str] = ("prediction", "truth", "error"),
    figure_views: int = 4,
    figure_scenes: int = 2,
) -> dict:
    """Evaluate ``checkpoint`` on the shards given in ``stores`` (store name → paths, ``prepared``
    required; ``refined``/``points`` for the pseudo-label rows; ``sam`` for the label size).
    ``export_benchmark``: ScanNet files (scannet20); ``export_lidarseg``: the nuScenes lidarseg
    submission (nuscenes16); ``plumbing_below_steps``: label a run whose stage 1 trained fewer steps
    a plumbing run (:func:`plumbing_note`); ``ply_variants``: which PLYs ``export_ply`` writes. Writes the outputs into ``out`` and returns the metrics dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = Evaluation(checkpoint, out, Options(export_benchmark, export_ply, pseudo_labels, export_lidarseg,
                                              plumbing_below_steps, export_png, tuple(ply_variants),
                                              figure_views, figure_scenes), device, threads)
    by_store = {store: {shard_of(str(p)): p for p in paths} for store, paths in stores.items() if paths and store != "prepared"}
    for path in stores["prepared"]:
        run.shard(path, by_store)
    return run.write()


def _apply(lut: np.ndarray, raw: np.ndarray) -> np.ndarray:
    from pipeline.vocab import apply_lut

    return apply_lut(lut, raw, default=IGNORE).astype(np.uint8)


def _class_set(bench) -> str:
    """The classes mIoU averages over, as the tables say it (benchmark ``scored`` classes)."""
    scored = bench.scored_classes
    if len(scored) == bench.n_classes:
        return f"the {bench.n_classes} classes of `{bench.name}`"
    return f"the {len(scored)} scored classes of `{bench.name}` ({', '.join(bench.class_names[c] for c in scored)})"


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))
