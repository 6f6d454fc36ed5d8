"""Synthetic but contract-true stores for the trainer's tests (written with StoreWriter).

Each sample is a floor plane (z = 0) of random points whose class is a function of (x, y)
(a few rectangular regions); views look straight down from 2-3 m. Pairs come from projecting
the points with :mod:`pipeline.camera`; label maps from intersecting each pixel's ray with
the plane, so 2D and 3D labels agree exactly before noise. Pseudo-labels are the truth with
a given share of wrong labels; SAM segments are the regions; SAM features are a per-class
vector plus noise, stored reduced (a basis), int8-quantised as the registry declares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import camera
from pipeline.stores import store_path
from pipeline.stores.sam_codecs import encode_features, encode_rle
from pipeline.vocab import IGNORE, benchmark
from tests.factory import prepared_arrays, write_store

BENCH = benchmark("scannet20")
CLASSES = (0, 1, 2, 4, 6)  # wall, floor, cabinet, chair, table
COLOURS = np.array([[200, 50, 50], [50, 200, 50], [50, 50, 200], [200, 200, 50], [50, 200, 200]], np.uint8)
SIZE = (32, 24)  # working = label resolution (W, H), 4:3
FEAT_C = 8


def region_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Region index 0..4 of floor coordinates (a 2 x 2 grid plus a central square)."""
    region = (x > 2.0).astype(np.int64) + 2 * (y > 1.5).astype(np.int64)
    centre = (np.abs(x - 2.0) < 0.5) & (np.abs(y - 1.5) < 0.5)
    return np.where(centre, 4, region)


def _camera(rng: np.random.Generator, size=SIZE):
    w, h = size
    f = 0.9 * w
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    pose = np.eye(4)
    # camera axes: x right, y down, z forward = looking down -z of the world
    pose[:3, :3] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    pose[:3, 3] = [rng.uniform(1.0, 3.0), rng.uniform(0.8, 2.2), rng.uniform(2.0, 3.0)]
    return k, pose


def make_sample(rng: np.random.Generator, n_points=400, n_views=3, noise=0.2, feat_basis=None, size=SIZE, extent=(4.0, 3.0)):
    """``extent``: the floor's size in metres (x, y); benchmarks enlarge it to reach a voxel budget."""
    w, h = size
    xyz = np.stack([rng.uniform(0, extent[0], n_points), rng.uniform(0, extent[1], n_points), np.zeros(n_points)], 1).astype(np.float32)
    xyz[:, 2] = rng.normal(0, 0.01, n_points)
    region = region_of(xyz[:, 0], xyz[:, 1])
    classes = np.array(CLASSES)[region]
    rgb = np.clip(COLOURS[region].astype(np.int64) + rng.integers(-20, 21, (n_points, 3)), 0, 255).astype(np.uint8)
    views = {k: [] for k in ("pose", "K", "image", "label", "segments", "pix", "pt", "region_map")}
    for _ in range(n_views):
        k, pose = _camera(rng, size)
        cam = camera.transform_points(camera.invert_rigid(pose), xyz.astype(np.float64))
        uv, z = camera.project(cam, k)
        pix = camera.pixel_index(uv)
        ok = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        pts = np.flatnonzero(ok)
        views["pix"].append((pix[ok, 1] * w + pix[ok, 0]).astype(np.int32))
        views["pt"].append(pts.astype(np.int32))
        # each pixel's ray hits the floor at (x, y)
        xs, ys = np.meshgrid(np.arange(w), np.arange(h))
        rays = np.stack([(xs - k[0, 2]) / k[0, 0], (ys - k[1, 2]) / k[1, 1], np.ones_like(xs, dtype=float)], -1)
        world = rays @ pose[:3, :3].T
        t = -pose[2, 3] / world[..., 2]
        gx, gy = pose[0, 3] + t * world[..., 0], pose[1, 3] + t * world[..., 1]
        reg = region_of(gx, gy)
        views["region_map"].append(reg)
        views["label"].append(np.array(CLASSES)[reg].astype(np.uint8))
        views["image"].append(np.clip(COLOURS[reg].astype(np.int64) + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8))
        views["segments"].append(reg.astype(np.int32))
        views["pose"].append(pose)
        views["K"].append(k)
    gt2d = np.stack(views["label"])
    flip = rng.random(gt2d.shape) < noise
    refined = np.where(flip, np.array(CLASSES)[rng.integers(0, len(CLASSES), gt2d.shape)], gt2d).astype(np.uint8)
    flip3 = rng.random(n_points) < noise
    point_pseudo = np.where(flip3, np.array(CLASSES)[rng.integers(0, len(CLASSES), n_points)], classes).astype(np.uint8)
    seen = np.zeros(n_points, bool)
    for p in views["pt"]:
        seen[p] = True
    point_pseudo[~seen] = IGNORE
    return {
        "xyz": xyz, "rgb": rgb, "classes": classes.astype(np.uint8), "views": views, "gt2d": gt2d,
        "refined": refined, "point_pseudo": point_pseudo, "seen": seen,
    }


def _features(rng, regions: np.ndarray, basis: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(V, Hl, Wl) regions → features per SAM cell (V, Hc, Wc, 256) from the cells' region (nearest)."""
    v, h, w = regions.shape
    rows, cols = camera.sam_valid_grid((w, h))
    centres = np.random.default_rng(123).normal(size=(len(CLASSES), 256))
    xy = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)
    cells = camera.sam_cell_index(xy, (w, h))
    out = np.zeros((v, rows, cols, 256), np.float32)
    for i in range(v):
        out[i, cells[:, 1], cells[:, 0]] = centres[regions[i].reshape(-1)] + rng.normal(0, 0.3, (xy.shape[0], 256))
    return out


def _sam_arrays(rng, v: dict, n_views: int, basis: np.ndarray, mean: np.ndarray) -> dict:
    regions = np.stack(v["region_map"])
    masks = [(i, r) for i in range(n_views) for r in np.unique(regions[i])]
    rles = [encode_rle(regions[i] == r) for i, r in masks]
    q, scale = encode_features(_features(rng, regions, basis, mean), basis, mean)
    return {
        "views/mask_offsets": np.concatenate([[0], np.cumsum([np.unique(regions[i]).size for i in range(n_views)])]).astype(np.int64),
        "masks/rle_offsets": np.concatenate([[0], np.cumsum([len(r) for r in rles])]).astype(np.int64),
        "masks/rle": np.concatenate(rles).astype(np.uint32),
        "masks/area": np.array([(regions[i] == r).sum() for i, r in masks], np.int64),
        "masks/bbox": np.zeros((len(masks), 4), np.int32),
        "masks/predicted_iou": np.ones(len(masks), np.float32),
        "masks/stability_score": np.ones(len(masks), np.float32),
        "views/segments": np.stack(v["segments"]),
        "views/features": q,
        "views/feature_scale": scale,
    }


def _shifted(labels: np.ndarray, shift: int) -> np.ndarray:
    """``labels`` with every class index moved by ``shift`` (mod the class count); IGNORE kept."""
    out = labels.copy()
    keep = labels != IGNORE
    out[keep] = (labels[keep].astype(np.int64) + shift) % BENCH.n_classes
    return out


def _sample_stores(rng, s: dict, n_views: int, size, basis: np.ndarray, mean: np.ndarray, clip_shift: int = 0) -> dict[str, tuple[dict, dict]]:
    """One synthetic sample's arrays (and sample attrs) in every pipeline store; the raw CLIP labels
    are the refined ones moved by ``clip_shift`` classes (0: equal)."""
    v, n_points = s["views"], s["xyz"].shape[0]
    prepared, attrs = prepared_arrays(
        np.stack(v["image"]), intrinsics=np.stack(v["K"]), poses=np.stack(v["pose"]),
        points__xyz=s["xyz"], points__rgb=s["rgb"], points__label=BENCH.to_raw(s["classes"]).astype(np.uint16),
        mesh__faces=np.array([[0, 1, 2], [1, 2, 3]], np.int32), views__label=BENCH.to_raw(s["gt2d"]).astype(np.uint16),
    )
    votes = np.zeros(n_points, np.uint16)
    for p in v["pt"]:
        votes[p] += 1
    return {
        "prepared": (prepared, {"split": "train", **attrs}),
        "clip": ({"views/label": _shifted(s["refined"], clip_shift), "views/confidence": np.ones(s["refined"].shape, np.float16)}, {}),
        "sam": (_sam_arrays(rng, v, n_views, basis, mean), {}),
        "refined": ({"views/label": s["refined"]}, {}),
        "points": ({
            "points/label": s["point_pseudo"], "points/label_clip": _shifted(s["point_pseudo"], clip_shift), "points/votes": votes,
            "points/agreement": np.ones(n_points, np.float16), "points/seen": s["seen"],
            "views/pair_offsets": np.concatenate([[0], np.cumsum([len(p) for p in v["pt"]])]).astype(np.int64),
            "pairs/point": np.concatenate(v["pt"]).astype(np.int32), "pairs/pixel": np.concatenate(v["pix"]).astype(np.int32),
        }, {}),
    }


def make_stores(root: str | Path, samples_per_shard=(2, 1), n_points=400, n_views=3, noise=0.2, seed=0, vocabulary="scannet20",
                size=SIZE, extent=(4.0, 3.0), first_shard=0, clip_shift=0) -> dict:
    """Write prepared/clip/sam/refined/points stores for shards ``train-000``... → dict with
    ``stores`` (store name → paths), ``truth`` (sample → arrays), the SAM feature ``basis`` and ``mean``.
    ``first_shard`` numbers the shards (and their samples) from there, so that several calls (e.g.
    in parallel processes) make stores whose shard and sample names do not collide. ``clip_shift``:
    the raw CLIP labels are the refined ones moved by that many classes (0: equal)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    vocab = {"benchmark": vocabulary, "class_names": list(BENCH.class_names) if vocabulary == "scannet20" else ["x"]}
    root_attrs = {
        "prepared": {"label_spaces": {"points": "nyu40", "views": "nyu40"}, "split": "train"},
        "clip": {"vocabulary": vocab}, "sam": {}, "refined": {"vocabulary": vocab}, "points": {"vocabulary": vocab},
    }
    stores: dict[str, list[str]] = {name: [] for name in root_attrs}
    truth = {}
    basis = np.linalg.qr(np.random.default_rng(7).normal(size=(256, FEAT_C)))[0].T.astype(np.float32)  # (C, 256) orthonormal rows
    mean = np.zeros(256, np.float32)
    for shard_i, n in enumerate(samples_per_shard, start=first_shard):
        shard = f"train-{shard_i:03d}"
        per_store: dict[str, dict] = {name: {} for name in root_attrs}
        for j in range(n):
            sid = f"scene{shard_i:02d}{j:02d}_00"
            truth[sid] = make_sample(rng, n_points, n_views, noise, size=size, extent=extent)
            for name, item in _sample_stores(rng, truth[sid], n_views, size, basis, mean, clip_shift).items():
                per_store[name][sid] = item
        for name, samples in per_store.items():
            level = {"_store/feature_basis": basis, "_store/feature_mean": mean} if name == "sam" else None
            stores[name].append(str(write_store(store_path(str(root), name, shard), name, samples, root_attrs[name], level)))
    return {"stores": stores, "truth": truth, "basis": basis, "mean": mean}
