"""The predict step: stage-1 networks → a ``predictions`` store per shard (stage 2's targets).

Per sample and view: the 2D network's prediction at label resolution, refined by the view's
SAM segments (``views/label``; unrefined in ``views/label_raw``). Per point: the 3D network's
prediction on the whole cloud (``points/label_raw``). The 3D prediction is carried into each
view through the pairs (majority over the points falling in a pixel) and refined by the SAM
segments (``views/label_3d``); each point's refined 3D label is the majority of that map over
its pairs (``points/label``; the raw prediction where the point is unseen). The 2D
prediction is carried to points the same way (``points/label_2d``; 255 where unseen).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from pipeline.images import read_view_images
from pipeline.layout import StoreReader, StoreWriter
from pipeline.vocab import IGNORE, benchmark
from train.data.pairs import expand_view_offsets
from train.data.stores import check_vocabulary
from train.engine.checkpoint import load_for_inference
from train.inference import majority, predict_points, predict_views
from train.segment_vote import segment_vote_np

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def predict_sample(
    net2d, net3d, meta: dict, prepared: StoreReader, sam: StoreReader, points: StoreReader, sample: str,
    refine: bool = True, device: torch.device = torch.device("cpu"),
) -> dict[str, np.ndarray]:
    """The ``predictions`` arrays of one sample."""
    n_classes = len(meta["classes"])
    segments = sam.read(sample, "views/segments")
    n_views, hl, wl = segments.shape
    images = read_view_images(prepared, sample, None) if n_views else np.zeros((0, hl, wl, 3), np.uint8)
    raw2d = predict_views(net2d, images, (wl, hl), device=device) if n_views else np.zeros((0, hl, wl), np.uint8)
    pred2d = np.stack([segment_vote_np(raw2d[v], segments[v], n_classes) for v in range(n_views)]) if refine and n_views else raw2d
    xyz = prepared.read(sample, "points/xyz")
    rgb = prepared.read(sample, "points/rgb") if prepared.has(sample, "points/rgb") else np.full((xyz.shape[0], 3), 128, np.uint8)
    raw3d = predict_points(net3d, xyz, rgb, meta["net3d"]["input_features"], meta["net3d"]["voxel_size"], device)
    view = expand_view_offsets(points.read(sample, "views/pair_offsets"))
    pixel = points.read(sample, "pairs/pixel").astype(np.int64)
    point = points.read(sample, "pairs/point").astype(np.int64)
    flat_pix = view.astype(np.int64) * (hl * wl) + pixel
    map3d = majority(flat_pix, raw3d[point], n_views * hl * wl, n_classes).reshape(n_views, hl, wl)
    if refine:
        map3d = np.stack([segment_vote_np(map3d[v], segments[v], n_classes) for v in range(n_views)]) if n_views else map3d
        pts3d = majority(point, map3d.reshape(-1)[flat_pix], xyz.shape[0], n_classes)
        pts3d = np.where(pts3d == IGNORE, raw3d, pts3d)
    else:
        pts3d = raw3d
    pts2d = majority(point, pred2d.reshape(-1)[flat_pix], xyz.shape[0], n_classes)
    return {
        "views/label": pred2d.astype(np.uint8),
        "views/label_raw": raw2d.astype(np.uint8),
        "views/label_3d": map3d.astype(np.uint8),
        "points/label": pts3d.astype(np.uint8),
        "points/label_raw": raw3d.astype(np.uint8),
        "points/label_2d": pts2d.astype(np.uint8),
    }


def predict_shard(
    checkpoint: str | Path,
    stores: Mapping[str, str | Path],
    out: str | Path,
    refine: bool = True,
    device: str = "auto",
    threads: int = 0,
) -> Path:
    """Write the ``predictions`` store ``out`` for one shard (``stores``: prepared, sam, points)."""
    from tqdm import tqdm

    net2d, net3d, meta, dev = load_for_inference(checkpoint, device, threads)
    bench = benchmark(meta["benchmark"])
    readers = {role: StoreReader(stores[role], stage) for role, stage in (("prepared", "prepare"), ("sam", "sam"), ("points", "points"))}
    check_vocabulary(readers["points"], bench)
    attrs = {
        "vocabulary": {"benchmark": bench.name, "class_names": list(bench.class_names)},
        "checkpoint": {"path": str(checkpoint), "sha256": file_sha256(checkpoint), "stage": meta["stage"], "step": meta["step"]},
        "refine": refine,
        "transductive": meta.get("transductive", False),
        "stores": {role: str(r.path) for role, r in readers.items()},
    }
    samples = readers["prepared"].samples
    with StoreWriter(out, "predictions", attrs=attrs) as writer:
        for sample in tqdm(samples, desc=f"predict {Path(out).name}", unit="sample", dynamic_ncols=True):
            arrays = predict_sample(net2d, net3d, meta, readers["prepared"], readers["sam"], readers["points"], sample, refine, dev)
            writer.add_sample(sample, arrays)
    log.info("wrote %s (%d samples)", out, len(samples))
    return Path(out)
