"""The predict step: stage-1 networks → a ``predictions`` store per shard (stage 2's targets).

Per sample and view: the 2D network's prediction at label resolution, refined by the view's
SAM segments (``views/label``; unrefined in ``views/label_raw``). Per point: the 3D network's
prediction on the whole cloud (``points/label_raw``). The 3D prediction is carried into each
view through the pairs (majority over the points falling in a pixel) and refined by the SAM
segments (``views/label_3d``); each point's refined 3D label is the majority of that map over
its pairs (``points/label``; the raw prediction where the point is unseen). The 2D
prediction is carried to points the same way (``points/label_2d``; 255 where unseen). Every
majority is the one voting rule (:mod:`pipeline.voting`) with the pipeline's options:
``refine.ignore`` everywhere, and ``project.tie_break`` across pairs (``nearest``: ties go to
the vote of the point nearest the camera, as in the project stage).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from pipeline.images import read_view_images
from pipeline.pairs import expand_view_offsets, pair_depths
from pipeline.provenance import file_sha256
from pipeline.stores import StoreReader, StoreWriter, stage_options, store_spec, vocabulary_record
from pipeline.vocab import IGNORE, benchmark
from pipeline.voting import majority, segment_majority
from train.engine.checkpoint import load_for_inference
from train.inference import predict_points, predict_views

log = logging.getLogger(__name__)


def _refine_views(maps: np.ndarray, segments: np.ndarray, ignore: str, n_classes: int) -> np.ndarray:
    """Each view's labels (V, Hl, Wl) made constant inside its SAM segments (the voting rule)."""
    return np.stack([segment_majority(maps[v], segments[v], ignore, n_classes) for v in range(maps.shape[0])]) if maps.shape[0] else maps


def predict_sample(
    net2d, net3d, meta: dict, stores: Mapping[str, StoreReader], sample: str, options: Mapping[str, Any],
    device: torch.device = torch.device("cpu"),
) -> dict[str, np.ndarray]:
    """The ``predictions`` arrays of one sample. ``stores``: prepared, sam, points readers (no points
    and ``net3d`` None for image-only checkpoints: empty point arrays, ``views/label_3d`` all 255);
    ``options``: the validated config (``train.predict.refine``, ``refine.ignore``, ``project.tie_break``)."""
    prepared = stores["prepared"]
    n_classes = len(meta["classes"])
    refine, ignore = bool(options["train"]["predict"]["refine"]), options["refine"]["ignore"]
    segments = stores["sam"].read(sample, "views/segments")
    n_views, hl, wl = segments.shape
    images = read_view_images(prepared, sample, None) if n_views else np.zeros((0, hl, wl, 3), np.uint8)
    raw2d = predict_views(net2d, images, (wl, hl), device=device) if n_views else np.zeros((0, hl, wl), np.uint8)
    pred2d = _refine_views(raw2d, segments, ignore, n_classes) if refine else raw2d
    if net3d is None:  # image-only: no points, so no 3D prediction and no pairs (label_3d: 255 = no pair)
        none = np.zeros(0, np.uint8)
        return {"views/label": pred2d.astype(np.uint8), "views/label_raw": raw2d.astype(np.uint8),
                "views/label_3d": np.full_like(raw2d, IGNORE, dtype=np.uint8), "points/label": none, "points/label_raw": none,
                "points/label_2d": none}
    points = stores["points"]
    xyz = prepared.read(sample, "points/xyz")
    rgb = prepared.read(sample, "points/rgb") if prepared.has(sample, "points/rgb") else np.full((xyz.shape[0], 3), 128, np.uint8)
    intensity = prepared.read(sample, "points/intensity") if prepared.has(sample, "points/intensity") else None
    raw3d = predict_points(net3d, xyz, rgb, meta["net3d"]["input_features"], meta["net3d"]["voxel_size"], device, intensity)
    offsets = points.read(sample, "views/pair_offsets")
    pixel = points.read(sample, "pairs/pixel").astype(np.int64)
    point = points.read(sample, "pairs/point").astype(np.int64)
    rank = pair_depths(xyz, prepared.read(sample, "views/pose"), offsets, point) if options["project"]["tie_break"] == "nearest" else None
    flat_pix = expand_view_offsets(offsets).astype(np.int64) * (hl * wl) + pixel

    def carry(keys: np.ndarray, labels: np.ndarray, n_keys: int) -> np.ndarray:
        return majority(keys, labels, n_keys, rank=rank, ignore=ignore, n_classes=n_classes).label

    map3d = carry(flat_pix, raw3d[point], n_views * hl * wl).reshape(n_views, hl, wl)
    if refine:
        map3d = _refine_views(map3d, segments, ignore, n_classes)
        pts3d = carry(point, map3d.reshape(-1)[flat_pix], xyz.shape[0])
        pts3d = np.where(pts3d == IGNORE, raw3d, pts3d)
    else:
        pts3d = raw3d
    pts2d = carry(point, pred2d.reshape(-1)[flat_pix], xyz.shape[0])
    return {
        "views/label": pred2d.astype(np.uint8),
        "views/label_raw": raw2d.astype(np.uint8),
        "views/label_3d": map3d.astype(np.uint8),
        "points/label": pts3d.astype(np.uint8),
        "points/label_raw": raw3d.astype(np.uint8),
        "points/label_2d": pts2d.astype(np.uint8),
    }


def predict_shard(checkpoint: str | Path, stores: Mapping[str, str | Path], out: str | Path, config: Mapping[str, Any]) -> Path:
    """Write the ``predictions`` store ``out`` for one shard (``stores``: prepared, sam, points paths;
    ``config``: the validated config, of which the keys the registry declares for ``predictions``)."""
    from pipeline.progress import progress

    train = config["train"]
    net2d, net3d, meta, dev = load_for_inference(checkpoint, train["device"], train["threads"])
    bench = benchmark(meta["benchmark"])
    reads = [n for n in store_spec("predictions").reads if not (n == "points" and net3d is None)]  # image-only: no points
    readers = {name: StoreReader(stores[name], name, benchmark=bench.name) for name in reads}
    for name, reader in readers.items():
        reader.require_samples(readers["prepared"], f"rerun the stage that writes {name} stores")
    attrs = {
        "vocabulary": vocabulary_record(bench.name),
        "checkpoint": {"path": str(checkpoint), "sha256": file_sha256(checkpoint), "stage": meta["stage"], "step": meta["step"]},
        "options": stage_options(config, "predictions"),
        "transductive": meta.get("transductive", False),
        "stores": {name: str(r.path) for name, r in readers.items()},
    }
    samples = readers["prepared"].samples
    with StoreWriter(out, "predictions", attrs=attrs) as writer:
        for sample in progress(samples, desc=f"predict {Path(out).name}", unit="sample"):
            writer.add_sample(sample, predict_sample(net2d, net3d, meta, readers, sample, config, dev))
    log.info("wrote %s (%d samples)", out, len(samples))
    return Path(out)
