"""The steps that build one training item: points → labels → views → pairs.

Each step is a function of the sample (:class:`train.data.sample.SampleData`), the options and
the item's generator; :class:`train.data.dataset.ItemBuilder` calls them in this order, and the
order of their random draws is part of the contract (a resumed run must draw the same):

1. :func:`select_points`: 3D augmentation, one random point per voxel, the voxel-budget crop.
2. :func:`label_points`: each origin's own and paired realisation per kept point.
3. :func:`choose_views` then :func:`crop_view` per view: crop, image, label maps, SAM cells,
   features and segments, and the view's pixel↔point pairs seen from the crop.
4. :func:`pair_indices`: one random pair per point among this step's views (latent and online).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.vocab import IGNORE
from train.config import DataConfig
from train.data.augment import Crop, augment_points, grid_sample, sphere_crop
from train.data.pairs import random_first, random_pair_per_point
from train.data.sample import SampleData, SampleSource

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 → (3, H, W) float32 normalised with ImageNet statistics (torchvision's)."""
    return ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


INTENSITY_SCALE: float = 255.0
"""Lidar intensity is divided by this (nuScenes intensities lie in 0..255)."""


def point_features(xyz: np.ndarray, rgb: np.ndarray, names: Sequence[str], intensity: np.ndarray | None = None) -> np.ndarray:
    """Per-point input channels (N, C) float32 from xyz (N, 3) metres, rgb (N, 3) uint8 and lidar
    ``intensity`` (N,) float32, in the order of ``names``: ``rgb`` in [-1, 1], ``xyz`` in metres,
    ``ones``, ``intensity`` / 255."""
    parts = []
    for name in names:
        if name == "rgb":
            parts.append(rgb.astype(np.float32) / 127.5 - 1.0)
        elif name == "xyz":
            parts.append(xyz.astype(np.float32))
        elif name == "ones":
            parts.append(np.ones((xyz.shape[0], 1), np.float32))
        elif name == "intensity":
            if intensity is None:
                raise ValueError("input feature 'intensity' needs points/intensity in the prepared store (lidar datasets)")
            parts.append((np.asarray(intensity, np.float32) / INTENSITY_SCALE).reshape(-1, 1))
        else:
            raise ValueError(f"unknown input feature {name!r}")
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class PointRows:
    """The points an item keeps. ``xyz`` (P, 3) float32: every original point, augmented;
    ``chosen`` (n,) int64: original index of each kept row; ``row_of_point`` (P,) int64: kept row
    of each original point's voxel, -1 where the voxel was cropped away."""

    xyz: np.ndarray
    chosen: np.ndarray
    row_of_point: np.ndarray


def select_points(sample: SampleData, data: DataConfig, voxel_size: float, rng: np.random.Generator) -> PointRows:
    """Step 1: augment (:func:`augment_points`), keep one random point per ``voxel_size`` voxel
    (``data.grid_sample``; else every point) and crop to ``data.max_voxels_per_sample`` rows."""
    xyz = augment_points(sample.xyz, rng, data.rotate, data.flip, data.scale, data.jitter)
    if data.grid_sample:
        chosen, voxel_of_point = grid_sample(xyz, voxel_size, rng)
    else:
        chosen = np.arange(sample.n_points, dtype=np.int64)
        voxel_of_point = chosen.copy()
    keep = sphere_crop(xyz[chosen], data.max_voxels_per_sample, rng)
    row_of_voxel = np.full(chosen.size, -1, dtype=np.int64)
    row_of_voxel[keep] = np.arange(keep.size)
    return PointRows(xyz, chosen[keep], row_of_voxel[voxel_of_point])


def label_points(sample: SampleData, origins: Sequence[str], chosen: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: (own3d, paired3d), each (O, n) uint8: every origin's point label of each kept point,
    and its 2D realisation at one uniformly random pair of the point (255 when unpaired)."""
    n = chosen.size
    own = np.stack([sample.point_labels[o][chosen] for o in origins]) if origins else np.zeros((0, n), np.uint8)
    pair = random_pair_per_point(chosen, sample.pair_order, sample.point_pair_offsets, rng)
    paired = np.full((len(origins), n), IGNORE, np.uint8)
    has = pair >= 0
    for i, o in enumerate(origins):
        paired[i, has] = sample.pair_labels[o][pair[has]]
    return own, paired


def choose_views(n_views: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Step 3a: ``count`` random view indices (v,) int64, without replacement unless there are fewer views."""
    return rng.choice(n_views, size=count, replace=n_views < count).astype(np.int64)


@dataclass(frozen=True)
class ViewCrop:
    """One view of an item, cropped to (h, w). Index values are already item-level (``slot`` j
    of the item's views): cells ``j * cells_per_view + cell``, pixels ``j * h * w + pixel``,
    segments ``segment_base + id``; -1 = none.

    ``image`` (3, h, w) float32; ``own`` / ``paired`` (O, h, w) uint8; ``cells``, ``segments``,
    ``pix_row3d`` (h, w) int64; ``features`` (cells_per_view or 0, D) float16;
    ``segment_count``: segment ids the view uses; ``latent_rows`` / ``latent_cells`` and
    ``online_rows`` / ``online_pixels`` (k,) int64: the view's pairs as (point row, cell) and
    (point row, crop pixel), the candidates of :func:`pair_indices`.
    """

    crop: Crop
    image: np.ndarray
    own: np.ndarray
    paired: np.ndarray
    cells: np.ndarray
    features: np.ndarray
    segments: np.ndarray
    segment_count: int
    pix_row3d: np.ndarray
    latent_rows: np.ndarray
    latent_cells: np.ndarray
    online_rows: np.ndarray
    online_pixels: np.ndarray


def crop_view(
    source: SampleSource, sample: SampleData, view: int, slot: int, rows: PointRows, data: DataConfig,
    features: bool, online: bool, segment_base: int, rng: np.random.Generator,
) -> ViewCrop:
    """Step 3b: view ``view`` as the item's ``slot``-th view: a random crop (``data.crop_size``,
    mirrored when ``data.flip``), its image and label maps, SAM cells (from the *original* pixel),
    features (when ``features``), segments and the pixel → point map (when ``online``)."""
    index, origins = sample.index, source.origins
    wl, hl = sample.label_size
    cw, ch = data.crop_size
    n_cells = sample.sam_grid[0] * sample.sam_grid[1]
    crop = Crop.random((wl, hl), (cw, ch), rng, data.flip)
    image = normalise_image(crop.apply(source.view_image(index, view), 0)) * crop.apply(np.ones((hl, wl), np.float32), 0)[None]
    maps = source.view_maps(index, view)
    own = np.stack([crop.apply(maps[o], IGNORE) for o in origins]).astype(np.uint8, copy=False) if origins else np.zeros((0, ch, cw), np.uint8)
    sl = sample.view_pairs(view)
    pix, pts = sample.pair_pixel[sl], sample.pair_point[sl]
    point_of_pixel = crop.apply(random_first(pix, pts, wl * hl, rng).reshape(hl, wl), -1)
    has = point_of_pixel >= 0
    paired = np.full((len(origins), ch, cw), IGNORE, np.uint8)
    for i, o in enumerate(origins):
        paired[i][has] = sample.point_labels[o][point_of_pixel[has]]
    inside = crop.apply(np.ones((hl, wl), bool), False)
    cells = np.where(inside, crop.apply(sample.cell_of_pixel.reshape(hl, wl), -1) + slot * n_cells, -1)
    dim = source.feature_dim() if features else 0
    feats = source.view_features(index, view).reshape(n_cells, -1).astype(np.float16) if features else np.zeros((0, dim), np.float16)
    point_rows = rows.row_of_point[pts]
    ok = point_rows >= 0
    segments = np.full((ch, cw), -1, np.int64)
    pix_row3d = np.full((ch, cw), -1, np.int64)
    count, online_rows, online_pixels = 0, np.zeros(0, np.int64), np.zeros(0, np.int64)
    if online:
        seg = source.view_segments(index, view).astype(np.int64)
        count = int(seg.max()) + 1 if seg.size and seg.max() >= 0 else 0
        segments = crop.apply(np.where(seg >= 0, seg + segment_base, -1), -1)
        pix_row3d = np.where(has, rows.row_of_point[np.maximum(point_of_pixel, 0)], -1)
        flat = crop.to_crop(pix)
        ok2 = (flat >= 0) & ok
        online_rows, online_pixels = point_rows[ok2], flat[ok2] + slot * ch * cw
    return ViewCrop(crop, image, own, paired, cells, feats, segments, count, pix_row3d,
                    point_rows[ok], sample.cell_of_pixel[pix[ok]] + slot * n_cells, online_rows, online_pixels)


def _random_per_row(rows: list[np.ndarray], values: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    if not rows:
        return np.full(n, -1, np.int64)
    return random_first(np.concatenate(rows), np.concatenate(values), n, rng)


def pair_indices(views: Sequence[ViewCrop], n: int, online: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: (latent3d, row_pix2d), each (n,) int64, -1 = none: for every kept point, the
    feature row of a uniformly random pair among this step's views, and (``online``) the crop
    pixel of a uniformly random pair inside this step's crops."""
    latent = _random_per_row([v.latent_rows for v in views], [v.latent_cells for v in views], n, rng)
    if not online:
        return latent, np.full(n, -1, np.int64)
    return latent, _random_per_row([v.online_rows for v in views], [v.online_pixels for v in views], n, rng)
