"""The refine stage runner: CLIP store + SAM store of a shard → refine store.

Per view, the SAM masks (decoded with :func:`pipeline.stores.sam_codecs.decode_masks`) vote on the
CLIP labels (:mod:`pipeline.refine.paint`, the one voting rule of :mod:`pipeline.voting`); overlapping masks are painted in the configured
nesting order (``views/label``) and in the other one (``views/label_alt``), both with SAM's
own :func:`pipeline.sam.masks.paint_order`, so segment maps and refined labels agree on what
"part" and "object" mean.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.errors import UserError

log = logging.getLogger(__name__)

NESTING_ORDERS: tuple[str, ...] = ("part", "object")


def refine_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``refine`` config section with defaults filled (validated against the schema)."""
    from pipeline.config import validate

    return validate({"refine": dict(options or {})})["refine"]


def other_order(order: str) -> str:
    """The nesting order that is not ``order``."""
    if order not in NESTING_ORDERS:
        raise ValueError(f"nesting order must be one of {NESTING_ORDERS}, got {order!r}")
    return NESTING_ORDERS[1 - NESTING_ORDERS.index(order)]


def refine_sample(clip, sam, sample: str, options: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Refined label maps of one sample (``views/label``, ``views/label_alt``) and statistics."""
    from pipeline.refine.paint import refine_view
    from pipeline.sam.masks import paint_order
    from pipeline.stores.sam_codecs import decode_masks

    labels = clip.read(sample, "views/label")
    n_views, height, width = labels.shape
    sam_sizes = sam.sample_attrs(sample)["sizes"]
    if (sam_sizes.get("view"), sam_sizes.get("Hl"), sam_sizes.get("Wl")) != (n_views, height, width):
        raise UserError(
            f"{sam.path}: sample {sample} has {sam_sizes.get('view')} views of {sam_sizes.get('Wl')}x{sam_sizes.get('Hl')} "
            f"masks, the CLIP store {clip.path} {n_views} label maps of {width}x{height}; both stages must write at the "
            "same label resolution (clip.output_size and the SAM stage's label size)"
        )
    view_off = sam.read(sample, "views/mask_offsets")
    rle_off = sam.read(sample, "masks/rle_offsets")
    rle = sam.read(sample, "masks/rle")
    area = sam.read(sample, "masks/area")
    order, alt = options["nesting_order"], other_order(options["nesting_order"])
    out = np.empty_like(labels)
    out_alt = np.empty_like(labels)
    changed = changed_alt = 0
    for v in range(n_views):
        masks_v = range(int(view_off[v]), int(view_off[v + 1]))
        masks = decode_masks(rle, rle_off, masks_v, (height, width))
        areas = area[int(view_off[v]) : int(view_off[v + 1])]
        out[v], out_alt[v] = refine_view(labels[v], masks, [paint_order(areas, order), paint_order(areas, alt)], options["ignore"])
        changed += int((out[v] != labels[v]).sum())
        changed_alt += int((out_alt[v] != labels[v]).sum())
    pixels = max(1, labels.size)
    attrs = {
        "nesting_order": order,
        "alt_nesting_order": alt,
        "masks": int(view_off[-1]) if view_off.size else 0,
        "changed_fraction": changed / pixels,
        "changed_fraction_alt": changed_alt / pixels,
    }
    return {"views/label": out, "views/label_alt": out_alt}, attrs


def refine_shard(
    clip: str | Path, sam: str | Path, out: str | Path, options: Mapping[str, Any] | None = None, benchmark: str = "scannet20",
) -> Path:
    """Write the refine store ``out`` for every sample of the CLIP store (atomically); the CLIP
    store must come from ``benchmark``'s vocabulary (``vocabulary.benchmark``), which ``out`` records."""
    from pipeline.progress import progress

    from pipeline.config import config_hash
    from pipeline.stores import StoreReader, StoreWriter
    from pipeline.stores.registry import vocabulary_record

    opts = refine_options(options)
    clip_store = StoreReader(clip, "clip", benchmark=benchmark)
    sam_store = StoreReader(sam, "sam")
    sam_store.require_samples(clip_store, "rerun the sam stage")
    attrs = {
        "vocabulary": vocabulary_record(benchmark),
        "shard": clip_store.attrs.get("shard"),
        "split": clip_store.attrs.get("split"),
        "options": opts,
        "config_hash": config_hash(opts),
        "inputs": {"clip": str(clip), "sam": str(sam)},
        "clip_backend": clip_store.attrs.get("backend"),
        "sam_backend": sam_store.attrs.get("backend"),
    }
    with StoreWriter(out, "refined", attrs=attrs) as writer:
        for sample in progress(clip_store.samples, desc=f"refine {Path(out).name}", unit="sample"):
            arrays, sample_attrs = refine_sample(clip_store, sam_store, sample, opts)
            writer.add_sample(sample, arrays, sample_attrs)
            log.info("%s: %d masks changed %.1f %% of pixels (%s order)", sample, sample_attrs["masks"], 100 * sample_attrs["changed_fraction"], opts["nesting_order"])
    return Path(out)
