"""Array builders of the ScanNet adapter: decoded frames in, ``prepared`` store arrays out.

Pure functions (no file access, no logging): :meth:`pipeline.datasets.scannet.ScanNetAdapter.load`
reads and checks the files, these stack what it read into the arrays named in
:data:`pipeline.stores.registry.PREPARED`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from pipeline import camera, images

if TYPE_CHECKING:
    from pipeline.datasets.scannet import ScanNetOptions


def view_arrays(
    frames: Sequence[int],
    poses: Sequence[np.ndarray],
    views: Sequence[dict],
    native_size: tuple[int, int],
    k_color: np.ndarray,
    k_depth: np.ndarray,
    opts: ScanNetOptions,
) -> dict[str, np.ndarray]:
    """Per-view camera, depth and colour arrays of the kept frames (V of them).

    Returns ``views/frame`` (V,) int64, ``views/pose`` (V, 4, 4) float64, ``views/image_size`` and
    ``views/native_size`` (V, 2) int32 (W, H), ``views/intrinsics`` (colour K scaled to the working
    size), ``views/native_intrinsics`` and ``views/depth_intrinsics`` (V, 3, 3) float64,
    ``views/depth`` (V, Hd, Wd) uint16 millimetres, and the colour frames resized to the working
    size: ``views/image`` (V, H, W, 3) uint8 for codec ``raw``, else ``views/image_bytes`` and
    ``views/image_offsets`` (encoded with ``opts.image_codec``).
    """
    work = tuple(opts.working_size)
    k_work = camera.scale_intrinsics(k_color, native_size, work)
    n = len(frames)
    color_work = [images.resize_image(v["color"], work) for v in views]
    arrays: dict[str, np.ndarray] = {
        "views/frame": np.asarray(frames, dtype=np.int64),
        "views/pose": np.stack(poses).astype(np.float64),
        "views/image_size": np.tile(np.asarray(work, dtype=np.int32), (n, 1)),
        "views/intrinsics": np.repeat(k_work[None], n, axis=0),
        "views/native_size": np.tile(np.asarray(native_size, dtype=np.int32), (n, 1)),
        "views/native_intrinsics": np.repeat(k_color[None], n, axis=0),
        "views/depth": np.stack([v["depth"] for v in views]),
        "views/depth_intrinsics": np.repeat(k_depth[None], n, axis=0),
    }
    if opts.image_codec == "raw":
        arrays["views/image"] = np.stack(color_work)
    else:
        flat, offsets = images.encode_images(color_work, opts.image_codec, opts.jpeg_quality)
        arrays["views/image_bytes"] = flat
        arrays["views/image_offsets"] = offsets
    return arrays


def label_arrays(views: Sequence[dict], has_labels: bool, has_instances: bool, work: tuple[int, int]) -> dict[str, np.ndarray]:
    """2D label and instance arrays at the working size ``work`` (W, H), nearest-neighbour resized.

    Returns ``views/label`` if the scene has ``label-filt/`` and ``views/instance`` if it has
    ``instance-filt/``, each (V, H, W) uint16 raw ids; a view without its image gets zeros.
    """
    arrays: dict[str, np.ndarray] = {}
    if has_labels:
        arrays["views/label"] = np.stack(
            [
                images.resize_labels(v["label"], work) if v.get("label") is not None else np.zeros(work[::-1], np.uint16)
                for v in views
            ]
        )
    if has_instances:
        arrays["views/instance"] = np.stack(
            [
                images.resize_labels(v["instance"], work) if v.get("instance") is not None else np.zeros(work[::-1], np.uint16)
                for v in views
            ]
        )
    return arrays


def unmapped_raw_ids(labels: np.ndarray, label_map: Mapping[int, int]) -> tuple[list[int], int]:
    """Raw ids in ``labels`` (any shape, integer) that are neither 0 (unannotated) nor keys of
    ``label_map`` → (those ids sorted, number of pixels carrying them)."""
    ids, counts = np.unique(np.asarray(labels), return_counts=True)
    unknown = [(int(i), int(c)) for i, c in zip(ids, counts) if i != 0 and int(i) not in label_map]
    return [i for i, _ in unknown], sum(c for _, c in unknown)
