"""The project stage: per shard, carry 2D labels to points and keep the pixel<->point pairs.

Reads a prepared store (points, poses, intrinsics, depth), the CLIP store (raw labels) and the
refine store (SAM-refined labels) of one shard, and writes one ``points`` store
(:data:`pipeline.stores.registry.POINTS`): per point the multi-view majority of the refined labels
(``points/label``) and of the raw CLIP labels (``points/label_clip``), vote count, agreement,
seen flag; per view the CSR pairs (``views/pair_offsets``, ``pairs/point``, ``pairs/pixel``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.errors import UserError

log = logging.getLogger(__name__)

BACKFACE_MAX_SHARE: float = 0.25
"""Largest share of the depth-tested pairs the back-face test may remove; more means the mesh's
triangles wind the other way (or are not oriented), and the test is skipped with a warning."""


def project_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``project`` config section with defaults filled (validated against the schema)."""
    from pipeline.config import validate

    return validate({"project": dict(options or {})})["project"]


def sample_cameras(prepared, sample: str, label_size: tuple[int, int], options: Mapping[str, Any]):
    """:class:`~pipeline.project.reference.Cameras` of a prepared sample at ``label_size`` (W, H).

    The colour intrinsics (stored at the working resolution ``views/image_size``) are scaled to
    the label maps' resolution with :func:`pipeline.camera.scale_intrinsics`; depth keeps its
    own resolution and intrinsics. Samples without ``views/depth`` (lidar samples) use
    ``min_depth`` and the devkit's border in the native image instead (``views/native_intrinsics``,
    ``views/native_size``; rule 2b of :mod:`pipeline.project.reference`).
    """
    from pipeline.camera import scale_intrinsics
    from pipeline.project.reference import Cameras, Occlusion

    poses = prepared.read(sample, "views/pose")
    intrinsics = prepared.read(sample, "views/intrinsics")
    sizes = prepared.read(sample, "views/image_size")
    label_k = np.stack([scale_intrinsics(k, tuple(int(x) for x in s), label_size) for k, s in zip(intrinsics, sizes)])
    occ = options["occlusion"]
    occlusion = Occlusion(occ["mode"], float(occ["threshold"]), occ["footprint"], int(occ["border"]))
    kwargs: dict[str, Any] = {"occlusion": occlusion, "min_depth": float(options["min_depth"])}
    if prepared.has(sample, "views/depth"):
        if not prepared.has(sample, "views/depth_intrinsics"):
            raise UserError(f"{prepared.path}: sample {sample} has views/depth but no views/depth_intrinsics")
        kwargs.update(
            depth=prepared.read(sample, "views/depth"),
            depth_k=prepared.read(sample, "views/depth_intrinsics"),
            depth_scale=float(prepared.sample_attrs(sample).get("depth_scale", 1000.0)),
        )
    else:
        for name in ("views/native_intrinsics", "views/native_size"):
            if not prepared.has(sample, name):
                raise UserError(f"{prepared.path}: sample {sample} has no views/depth and no {name} (the devkit's border needs it)")
        kwargs.update(native_k=prepared.read(sample, "views/native_intrinsics"), native_size=prepared.read(sample, "views/native_size"))
    try:
        return Cameras(poses, label_k, label_size, **kwargs)
    except ValueError as err:
        raise UserError(f"{prepared.path}: sample {sample}: {err}") from None


def _post_filters(prepared, sample: str, xyz: np.ndarray, cams, options: Mapping[str, Any], offsets: np.ndarray,
                  point: np.ndarray, pixel: np.ndarray, stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The float64 tests after the exact pass: back faces (samples with a mesh) and, for views
    without depth, ``lidar_occlusion`` when enabled. Returns the kept pairs (offsets (V+1,),
    point (N,), pixel (N,) int64) and the statistics with what each test removed."""
    if options["occlusion"]["backface"] and prepared.has(sample, "mesh/faces"):
        from pipeline.project.backface import BackFaces, drop_back_faces

        back = BackFaces(xyz, prepared.read(sample, "mesh/faces"))
        kept = drop_back_faces(back, cams.poses, offsets, point, pixel)
        if kept[3] > BACKFACE_MAX_SHARE * point.size:
            log.warning("%s: the back-face test would remove %d of %d pairs of sample %s: the mesh's winding "
                        "looks reversed or inconsistent; test skipped", prepared.path, kept[3], point.size, sample)
            stats = {**stats, "backface_skipped": True}
        else:
            offsets, point, pixel = kept[:3]
            stats = {**stats, "backface_removed": kept[3]}
    lidar = options["lidar_occlusion"]
    if lidar["enabled"] and cams.depth is None:
        from pipeline.project.lidar_occlusion import LidarOcclusion, drop_lidar_occluded

        try:
            occ = LidarOcclusion.from_options(lidar)
        except ValueError as err:
            raise UserError(f"config key project.lidar_occlusion: {err}") from None
        chunk = int(options["chunk_pairs"] or (1 << 16))
        offsets, point, pixel, removed = drop_lidar_occluded(xyz, cams, offsets, point, pixel, occ, chunk)
        stats = {**stats, "lidar_occlusion_removed": removed}
    return offsets, point, pixel, stats


def project_sample(
    prepared, clip, refined, sample: str, options: Mapping[str, Any], threads: int = 1, ignore: str = "abstain"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays of one sample for the points store, and its attributes (statistics). ``options`` is the
    ``project`` section; ``ignore`` the voting policy of IGNORE labels (``refine.ignore``)."""
    from pipeline.project.runner import visible_pairs
    from pipeline.pairs import pair_depths, pair_labels
    from pipeline.voting import majority

    clip_labels = clip.read(sample, "views/label")
    refined_labels = refined.read(sample, "views/label")
    n_views = prepared.sample_attrs(sample)["sizes"]["view"]
    for store, labels in ((clip, clip_labels), (refined, refined_labels)):
        if labels.shape[0] != n_views:
            raise UserError(f"{store.path}: sample {sample} has {labels.shape[0]} label maps, the prepared store {n_views} views")
    if clip_labels.shape != refined_labels.shape:
        raise UserError(
            f"{refined.path}: sample {sample} label maps are {refined_labels.shape[1:]}, the CLIP store's {clip_labels.shape[1:]}"
        )
    label_size = (int(clip_labels.shape[2]), int(clip_labels.shape[1]))
    xyz = prepared.read(sample, "points/xyz") if prepared.has(sample, "points/xyz") else np.zeros((0, 3), np.float32)
    n_points = xyz.shape[0]
    start = time.perf_counter()
    if n_points:
        cams = sample_cameras(prepared, sample, label_size, options)
        pairs = visible_pairs(
            xyz, cams, device=options["device"], chunk_pairs=options["chunk_pairs"], block_size=int(options["block_size"]), threads=threads
        )
        offsets, point, pixel, stats = _post_filters(
            prepared, sample, xyz, cams, options, pairs.view_offsets, pairs.point, pairs.pixel, pairs.stats
        )
    else:
        offsets, point, pixel, stats = np.zeros(n_views + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), {}
    seconds = time.perf_counter() - start
    rank = pair_depths(xyz, prepared.read(sample, "views/pose"), offsets, point) if options["tie_break"] == "nearest" else None
    refined_votes = majority(point, pair_labels(refined_labels, offsets, pixel), n_points, rank=rank, ignore=ignore)
    clip_votes = majority(point, pair_labels(clip_labels, offsets, pixel), n_points, rank=rank, ignore=ignore)
    seen = np.bincount(point, minlength=n_points) > 0
    arrays = {
        "points/label": refined_votes.label,
        "points/label_clip": clip_votes.label,
        "points/votes": np.minimum(refined_votes.votes, np.iinfo(np.uint16).max).astype(np.uint16),
        "points/agreement": refined_votes.agreement.astype(np.float16),
        "points/seen": seen,
        "views/pair_offsets": offsets.astype(np.int64),
        "pairs/point": point.astype(np.int32),
        "pairs/pixel": pixel.astype(np.int32),
    }
    attrs = {
        "label_size": list(label_size),
        "projection_seconds": round(seconds, 4),
        "points_seen": int(seen.sum()),
        "points_labelled": int((refined_votes.label != 255).sum()),
        **{f"projection_{k}": v for k, v in stats.items()},
    }
    return arrays, attrs


def project_shard(
    prepared: str | Path, clip: str | Path, refined: str | Path, out: str | Path,
    options: Mapping[str, Any] | None = None, threads: int = 1, ignore: str = "abstain", benchmark: str = "scannet20",
) -> Path:
    """Write the points store ``out`` for every sample of the prepared store (atomically).

    ``options``: the ``project`` section (defaults filled); ``ignore``: ``refine.ignore``, how IGNORE
    labels vote (the one voting rule, :mod:`pipeline.voting`); ``benchmark``: ``vocabulary.benchmark``,
    which the CLIP and refine stores must come from and ``out`` records."""
    from pipeline.progress import progress

    from pipeline.config import config_hash
    from pipeline.stores import StoreReader, StoreWriter
    from pipeline.stores.registry import vocabulary_record

    opts = project_options(options)
    prep = StoreReader(prepared, "prepared")
    clip_store = StoreReader(clip, "clip", benchmark=benchmark)
    refined_store = StoreReader(refined, "refined", benchmark=benchmark)
    for store in (clip_store, refined_store):
        store.require_samples(prep)
    recorded = {"project": opts, "refine": {"ignore": ignore}}
    attrs = {
        "vocabulary": vocabulary_record(benchmark),
        "shard": prep.attrs.get("shard"),
        "split": prep.attrs.get("split"),
        "options": recorded,
        "config_hash": config_hash(recorded),
        "inputs": {"prepared": str(prepared), "clip": str(clip), "refined": str(refined)},
        "clip_backend": clip_store.attrs.get("backend"),
    }
    with StoreWriter(out, "points", attrs=attrs) as writer:
        for sample in progress(prep.samples, desc=f"project {Path(out).name}", unit="sample"):
            arrays, sample_attrs = project_sample(prep, clip_store, refined_store, sample, opts, threads, ignore)
            writer.add_sample(sample, arrays, sample_attrs)
            log.info(
                "%s: %d of %d points seen, %d pairs in %.2f s",
                sample, sample_attrs["points_seen"], arrays["points/seen"].size, arrays["pairs/point"].size, sample_attrs["projection_seconds"],
            )
    return Path(out)
