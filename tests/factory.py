"""One store factory for the tests and the benchmarks, on the registry's declarations.

Every store a test or a bench writes goes through :func:`write_store` (so it is validated
against :mod:`pipeline.stores.registry` like the pipeline's own); :func:`prepared_arrays`
fills a prepared sample's required arrays around the images a test cares about;
:func:`copy_store` rewrites a store with changes (corrupted inputs, other vocabularies).
Benches import it with the repository root on ``sys.path``: ``from tests.factory import ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pipeline.stores import StoreReader, StoreWriter, store_spec

Arrays = dict[str, np.ndarray]


def pinhole(size: tuple[int, int], focal: float | None = None) -> np.ndarray:
    """Intrinsics (3, 3) float64 of a centred pinhole camera of ``size`` (W, H); focal = W by default."""
    w, h = size
    f = float(w if focal is None else focal)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], dtype=np.float64)


def prepared_arrays(
    images: np.ndarray,
    codec: str = "raw",
    focal: float | None = None,
    poses: np.ndarray | None = None,
    intrinsics: np.ndarray | None = None,
    frames: np.ndarray | None = None,
    **arrays: np.ndarray,
) -> tuple[Arrays, dict[str, Any]]:
    """A prepared sample from its images (V, H, W, 3) uint8: (arrays, sample attrs).

    Poses default to identity, intrinsics to :func:`pinhole`, frames to 0..V-1; images are stored
    raw or encoded with ``codec`` (``jpeg``/``png``). ``arrays`` adds further declared arrays by
    path with ``/`` written as ``__`` (``points__xyz=...``, ``views__label=...``).
    """
    from pipeline.images import encode_images

    n, h, w = images.shape[:3]
    k = pinhole((w, h), focal) if intrinsics is None else intrinsics
    ks = np.repeat(k[None], n, 0) if k.ndim == 2 else k
    out: Arrays = {
        "views/frame": np.arange(n, dtype=np.int64) if frames is None else np.asarray(frames, np.int64),
        "views/pose": np.repeat(np.eye(4)[None], n, 0) if poses is None else np.asarray(poses, np.float64),
        "views/image_size": np.tile([w, h], (n, 1)).astype(np.int32),
        "views/intrinsics": ks,
        "views/native_size": np.tile([w, h], (n, 1)).astype(np.int32),
        "views/native_intrinsics": ks,
    }
    if codec == "raw":
        out["views/image"] = np.asarray(images, np.uint8)
    else:
        out["views/image_bytes"], out["views/image_offsets"] = encode_images(list(images), codec)
    out.update({name.replace("__", "/"): value for name, value in arrays.items()})
    return out, {"image_codec": codec}


def complete_arrays(store: str, arrays: Arrays, sizes: Mapping[str, int]) -> Arrays:
    """``arrays`` plus zeros of the declared dtype and shape for every required array they lack
    (``sizes`` gives the named dimensions, e.g. ``{"view": 2, "Hc": 2, "Wc": 2, "C": 4}``)."""
    out = dict(arrays)
    for spec in store_spec(store).arrays:
        if spec.required and spec.path not in out:
            shape = tuple(int(d) if d.isdigit() else sizes[d] for d in spec.dims)
            out[spec.path] = np.zeros(shape, dtype=spec.dtype)
    return out


def write_store(
    path: str | Path,
    store: str,
    samples: Mapping[str, Arrays | tuple[Arrays, Mapping[str, Any]]],
    attrs: Mapping[str, Any] | None = None,
    store_arrays: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write store ``store`` at ``path``: ``samples`` {id: arrays or (arrays, sample attrs)}."""
    with StoreWriter(path, store, attrs=attrs) as writer:
        for sample, item in samples.items():
            arrays, sample_attrs = item if isinstance(item, tuple) else (item, None)
            writer.add_sample(sample, arrays, sample_attrs)
        for name, data in (store_arrays or {}).items():
            writer.add_store_array(name, data)
    return Path(path)


def write_prepared(path: str | Path, images: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None, **kwargs) -> Path:
    """A prepared store of ``images`` {sample: (V, H, W, 3) uint8}; ``kwargs`` go to :func:`prepared_arrays`
    (per-sample arrays given as {sample: array} mappings)."""
    samples = {}
    for sample, views in images.items():
        extra = {k: (v[sample] if isinstance(v, Mapping) else v) for k, v in kwargs.items() if not isinstance(v, Mapping) or sample in v}
        samples[sample] = prepared_arrays(views, **extra)
    return write_store(path, "prepared", samples, attrs=attrs)


def sample_arrays(reader: StoreReader, sample: str) -> Arrays:
    """Every declared array ``sample`` of ``reader`` holds, read whole."""
    return {spec.path: reader.read(sample, spec.path) for spec in reader.spec.arrays if reader.has(sample, spec.path)}


def copy_store(
    src: str | Path,
    dst: str | Path,
    transform: Callable[[str, Arrays], Arrays] | None = None,
    root_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Rewrite store ``src`` at ``dst``: each sample's arrays through ``transform(sample, arrays)``,
    root attributes updated with ``root_attrs``; store-level arrays copied."""
    reader = StoreReader(src)
    spec = store_spec(reader.attrs["store"])
    samples = {}
    for sample in reader.samples:
        arrays = sample_arrays(reader, sample)
        attrs = {k: v for k, v in reader.sample_attrs(sample).items() if k != "sizes"}
        samples[sample] = (transform(sample, arrays) if transform else arrays, attrs)
    level = {s.path: reader.read_store_array(s.path) for s in spec.store_arrays if reader.has_store_array(s.path)}
    return write_store(dst, spec.name, samples, attrs={**reader.attrs, **(root_attrs or {})}, store_arrays=level)
