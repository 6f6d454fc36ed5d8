"""The SAM stage runner: one prepared store in, one ``sam`` store out (atomic).

Order of work: the model is loaded (or the simulated backend set up) before anything is
written, so a bad checkpoint leaves no output. Then the ``features.fit_views`` views spread
evenly over the shard are processed first and their cells fit the store's PCA basis; then every
sample is processed in order (fit views reuse their cached results) and written with its masks,
segment-id maps and int8 feature coefficients.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.config import config_hash, validate
from pipeline.errors import UserError
from pipeline.sam.features import mean_cosine
from pipeline.stores.sam_codecs import FEATURE_DIM, decode_features, encode_features, fit_basis
from pipeline.sam.masks import ViewMasks, pack_views

log = logging.getLogger(__name__)

MAX_FIT_CELLS = 65536
"""At most this many cells (of the fit views) fit the PCA basis."""


def sam_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ``sam`` config section against the schema and fill its defaults."""
    return validate({"sam": dict(options)})["sam"]


def fit_view_keys(views: list[tuple[str, int]], count: int) -> list[tuple[str, int]]:
    """``count`` views spread evenly over the shard's (sample, view) list, in order."""
    if not views:
        return []
    idx = np.unique(np.round(np.linspace(0, len(views) - 1, min(count, len(views)))).astype(int))
    return [views[i] for i in idx]


def _sample_sizes(reader, sample_id: str, output_size) -> tuple[int, tuple[int, int], tuple[int, int]]:
    n_views = int(reader.sample_attrs(sample_id)["sizes"]["view"])
    sizes = reader.read(sample_id, "views/image_size").reshape(-1, 2)
    uniq = {tuple(int(x) for x in s) for s in sizes}
    if len(uniq) > 1:
        raise UserError(f"{reader.path}: sample {sample_id!r} mixes image sizes {sorted(uniq)}; the sam stage needs one size per sample")
    image_size = uniq.pop() if uniq else (0, 0)
    label_size = tuple(int(x) for x in output_size) if output_size else image_size
    return n_views, image_size, label_size


def run_sam_stage(
    prepared: str | Path,
    out: str | Path,
    options: Mapping[str, Any],
    shard: str | None = None,
    backend: Any = None,
) -> Path:
    """Run the SAM stage on a prepared store and write the ``sam`` store ``out``; returns ``out``.

    ``options`` is the ``sam`` config section (validated and completed here). ``backend``, if
    given, replaces the one the options describe (an already loaded model: benchmarks, tests).
    Raises :class:`pipeline.errors.UserError` (nothing written) on bad options, checkpoints or
    inputs.
    """
    from pipeline.progress import progress

    from pipeline.stores import StoreReader, StoreWriter
    from pipeline.sam.backends import make_backend

    opts = sam_options(options)
    reader = StoreReader(prepared, "prepared")
    plan = {sid: _sample_sizes(reader, sid, opts["output_size"]) for sid in reader.samples}
    backend = backend if backend is not None else make_backend(opts)
    channels = int(opts["features"]["channels"])
    shard = shard or reader.attrs.get("shard") or Path(out).stem
    all_views = [(sid, v) for sid, (n, _, _) in plan.items() for v in range(n)]
    fit_keys = fit_view_keys(all_views, int(opts["features"]["fit_views"]))
    attrs = _root_attrs(backend, opts, reader, prepared, shard, channels, fit_keys)
    passes_before = getattr(backend, "encoder_passes", None)
    start = time.perf_counter()
    with StoreWriter(out, "sam", attrs=attrs) as writer:
        bar = progress(total=len(all_views), desc=f"sam {shard}", unit="view")
        cache = _run_fit_views(reader, backend, plan, fit_keys, bar)
        basis, mean = _fit_feature_basis(cache, channels)
        writer.add_store_array("_store/feature_basis", basis)
        writer.add_store_array("_store/feature_mean", mean)
        cosines: list[float] = []
        n_masks = 0
        for sid, sizes in plan.items():
            results = _sample_results(reader, backend, sid, sizes, cache, bar)
            arrays, sample_attrs, sample_cos = _encode_sample(backend, sizes, results, basis, mean)
            n_masks += int(arrays["masks/area"].size)
            cosines.extend(sample_cos)
            writer.add_sample(sid, arrays, attrs=sample_attrs)
        bar.close()
        writer.attrs.update(_summary_attrs(len(all_views), n_masks, cosines, start))
        if passes_before is not None:
            writer.attrs["encoder_passes"] = int(backend.encoder_passes - passes_before)
    log.info(
        "sam %s: %d views, %d masks, feature cosine %.4f, %.1f s -> %s",
        shard, len(all_views), n_masks, float(np.mean(cosines)) if cosines else float("nan"),
        time.perf_counter() - start, out,
    )
    return Path(out)


def _root_attrs(backend, opts: dict[str, Any], reader, prepared, shard: str, channels: int,
                fit_keys: list[tuple[str, int]]) -> dict[str, Any]:
    """Root attributes written when the store opens: the backend's metadata, options and their
    hash, shard/split, the prepared store, encodings and the fit views (JSON-ready dict)."""
    return {
        **backend.metadata(),
        "options": opts,
        "config_hash": config_hash(opts),
        "shard": shard,
        "split": reader.attrs.get("split"),
        "prepared": str(prepared),
        "prepared_config_hash": reader.attrs.get("config_hash"),
        "nesting_order": opts["nesting_order"],
        "feature_channels": min(channels, FEATURE_DIM),
        "feature_encoding": "pca-int8",
        "mask_encoding": "row-major-rle",
        "fit_views": [[s, v] for s, v in fit_keys],
    }


def _run_fit_views(reader, backend, plan: dict, fit_keys: list[tuple[str, int]], bar) -> dict[tuple[str, int], tuple[ViewMasks, np.ndarray]]:
    """Run the backend on the fit views, sample by sample; returns {(sample, view): (masks,
    features (Hc, Wc, FEATURE_DIM))}, the cache the per-sample pass reuses."""
    cache: dict[tuple[str, int], tuple[ViewMasks, np.ndarray]] = {}
    by_sample: dict[str, list[int]] = {}
    for sid, v in fit_keys:
        by_sample.setdefault(sid, []).append(v)
    for sid, views in by_sample.items():
        _, _, label_size = plan[sid]
        for v, result in zip(views, backend.run_views(reader, sid, views, label_size)):
            cache[(sid, v)] = result
            bar.update(1)
    return cache


def _fit_feature_basis(cache: dict[tuple[str, int], tuple[ViewMasks, np.ndarray]], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The store's PCA basis from the cached fit views' cells (at most :data:`MAX_FIT_CELLS`,
    evenly strided); returns (basis (C, FEATURE_DIM) float32, mean (FEATURE_DIM,) float32),
    C = min(channels, FEATURE_DIM)."""
    samples = np.concatenate([f.reshape(-1, FEATURE_DIM) for _, f in cache.values()]) if cache else np.zeros((1, FEATURE_DIM))
    if samples.shape[0] > MAX_FIT_CELLS:  # evenly strided subset keeps the fit cheap and deterministic
        samples = samples[np.linspace(0, samples.shape[0] - 1, MAX_FIT_CELLS).astype(np.int64)]
    return fit_basis(samples, channels)


def _sample_results(reader, backend, sid: str, sizes: tuple, cache: dict, bar) -> dict[int, tuple[ViewMasks, np.ndarray]]:
    """Every view's (masks, features) of sample ``sid``: fit views popped from ``cache``, the others
    run now (advancing ``bar``); returns {view index: result}."""
    n_views, _, label_size = sizes
    todo = [v for v in range(n_views) if (sid, v) not in cache]
    results = {v: cache.pop((sid, v)) for v in range(n_views) if (sid, v) in cache}
    for v, result in zip(todo, backend.run_views(reader, sid, todo, label_size)):
        results[v] = result
        bar.update(1)
    return results


def _encode_sample(backend, sizes: tuple, results: dict, basis: np.ndarray,
                   mean: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any], list[float]]:
    """Pack one sample's masks and int8-encode its features (consumes ``results``); returns
    (arrays of the ``sam`` store, sample attrs, per-view feature cosine after decoding)."""
    n_views, image_size, label_size = sizes
    masks, coefs, scales, sample_cos = [], [], [], []
    grid = backend.grid(image_size) if n_views else (0, 0)
    for v in range(n_views):
        view_masks, feats = results.pop(v)
        q, scale = encode_features(feats, basis, mean)
        sample_cos.append(mean_cosine(feats, decode_features(q, scale, basis, mean)))
        masks.append(view_masks)
        coefs.append(q)
        scales.append(scale)
    arrays = pack_views(masks) if masks else _empty_masks(label_size)
    arrays["views/features"] = np.stack(coefs) if coefs else np.zeros((0, *grid, basis.shape[0]), np.int8)
    arrays["views/feature_scale"] = np.stack(scales) if scales else np.zeros((0, *grid), np.float16)
    attrs = {
        "image_size": list(image_size),
        "label_size": list(label_size),
        "grid": list(grid),
        "feature_cosine": [round(c, 5) for c in sample_cos],
    }
    return arrays, attrs, sample_cos


def _summary_attrs(views: int, n_masks: int, cosines: list[float], start: float) -> dict[str, Any]:
    """Root attributes recorded when every sample is written: counts, feature cosine mean/min
    (None without views) and the wall time since ``start`` (seconds, perf_counter)."""
    return {
        "views": views,
        "masks": n_masks,
        "feature_cosine_mean": float(np.mean(cosines)) if cosines else None,
        "feature_cosine_min": float(np.min(cosines)) if cosines else None,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _empty_masks(label_size: tuple[int, int]) -> dict[str, np.ndarray]:
    return {
        "views/mask_offsets": np.zeros(1, np.int64),
        "masks/rle_offsets": np.zeros(1, np.int64),
        "masks/rle": np.zeros(0, np.uint32),
        "masks/area": np.zeros(0, np.int64),
        "masks/bbox": np.zeros((0, 4), np.int32),
        "masks/predicted_iou": np.zeros(0, np.float32),
        "masks/stability_score": np.zeros(0, np.float32),
        "views/segments": np.zeros((0, label_size[1], label_size[0]), np.int32),
    }
