"""Training items and batches: one sample's points + a few views, then concatenated batches.

An item is built from a key ``(sample index, step, rank, slot)``; its random generator is
seeded from ``(seed, step, rank, slot)`` alone, so an item is the same whichever worker builds
it and a resumed run sees exactly the items the uninterrupted run would have seen.

Batches follow Pointcept: points of all samples concatenated, ``offsets`` (B+1,). The 2D side
stacks the views of all samples. Labels are stacked per *origin* (``pseudo``, ``pred2d``,
``pred3d``): ``own`` is the element's own-modality realisation, ``paired`` the realisation of
the element it pairs with (255 when unpaired); :mod:`train.losses.switching` draws targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from pipeline.vocab import IGNORE
from train.config import DataConfig, Net3DConfig
from train.data.augment import Crop, augment_points, grid_sample, sphere_crop
from train.data.pairs import random_first, random_pair_per_point
from train.data.sample import SampleSource

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 → (3, H, W) float32 normalised with ImageNet statistics (torchvision's)."""
    return ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def point_features(xyz: np.ndarray, rgb: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Per-point input channels (N, C) float32: rgb in [-1, 1], xyz in metres, ones."""
    parts = []
    for name in names:
        if name == "rgb":
            parts.append(rgb.astype(np.float32) / 127.5 - 1.0)
        elif name == "xyz":
            parts.append(xyz.astype(np.float32))
        elif name == "ones":
            parts.append(np.ones((xyz.shape[0], 1), np.float32))
        else:
            raise ValueError(f"unknown input feature {name!r}")
    return np.concatenate(parts, axis=1)


def item_rng(seed: int, step: int, rank: int, slot: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(step), int(rank), int(slot), 0x434E53])


@dataclass
class Item:
    """One sample's contribution to a batch (numpy)."""

    sample_id: str
    xyz: np.ndarray  # (N, 3) float32, augmented
    feats: np.ndarray  # (N, C) float32
    point_index: np.ndarray  # (N,) int64 original point indices
    own3d: np.ndarray  # (O, N) uint8
    paired3d: np.ndarray  # (O, N) uint8
    latent3d: np.ndarray  # (N,) int64 flat index into this item's (views, cells) table, -1 none
    images: np.ndarray  # (v, 3, h, w) float32
    own2d: np.ndarray  # (O, v, h, w) uint8
    paired2d: np.ndarray  # (O, v, h, w) uint8
    cells: np.ndarray  # (v, h, w) int64 flat index into this item's (views, cells) table, -1 pad
    features: np.ndarray  # (v, cells, D) float16
    segments: np.ndarray  # (v, h, w) int64 segment ids unique within the item, -1 none
    pix_row3d: np.ndarray  # (v, h, w) int64 row (in this item's points) of the paired point's voxel, -1
    row_pix2d: np.ndarray  # (N,) int64 flat crop pixel (v * h * w) a point pairs with, -1
    views: np.ndarray  # (v,) int64 view indices
    crops: list = field(default_factory=list)


class ItemBuilder:
    """Builds :class:`Item` s from a :class:`SampleSource` with the data options."""

    def __init__(
        self,
        source: SampleSource,
        data: DataConfig,
        net3d: Net3DConfig,
        seed: int,
        with_features: bool = True,
        with_online: bool = False,
    ) -> None:
        self.source = source
        self.data = data
        self.net3d = net3d
        self.seed = seed
        self.with_features = with_features
        self.with_online = with_online

    def __call__(self, key: tuple[int, int, int, int]) -> Item:
        index, step, rank, slot = key
        rng = item_rng(self.seed, step, rank, slot)
        s = self.source.sample(index)
        cfg = self.data
        origins = self.source.origins
        # ---- 3D: augment, one point per voxel, crop to the voxel budget -----------------------
        xyz = augment_points(s.xyz, rng, cfg.rotate, cfg.flip, cfg.scale, cfg.jitter)
        if cfg.grid_sample:
            chosen, voxel_of_point = grid_sample(xyz, self.net3d.voxel_size, rng)
        else:
            chosen = np.arange(s.n_points, dtype=np.int64)
            voxel_of_point = chosen.copy()
        keep = sphere_crop(xyz[chosen], cfg.max_voxels_per_sample, rng)
        row_of_voxel = np.full(chosen.size, -1, dtype=np.int64)
        row_of_voxel[keep] = np.arange(keep.size)
        chosen = chosen[keep]
        row_of_point = row_of_voxel[voxel_of_point]  # (P,) row of each original point's voxel, -1 cropped
        n = chosen.size
        own3d = np.stack([s.point_labels[o][chosen] for o in origins]) if origins else np.zeros((0, n), np.uint8)
        pair = random_pair_per_point(chosen, s.pair_order, s.point_pair_offsets, rng)
        paired3d = np.full((len(origins), n), IGNORE, np.uint8)
        has = pair >= 0
        for i, o in enumerate(origins):
            paired3d[i, has] = s.pair_labels[o][pair[has]]
        # ---- 2D: a few views, random crops --------------------------------------------------
        n_views = s.n_views
        vps = cfg.views_per_sample
        views = rng.choice(n_views, size=vps, replace=n_views < vps).astype(np.int64)
        wl, hl = s.label_size
        cw, ch = cfg.crop_size
        n_cells = s.sam_grid[0] * s.sam_grid[1]
        images = np.zeros((vps, 3, ch, cw), np.float32)
        own2d = np.full((len(origins), vps, ch, cw), IGNORE, np.uint8)
        paired2d = np.full((len(origins), vps, ch, cw), IGNORE, np.uint8)
        cells = np.full((vps, ch, cw), -1, np.int64)
        segments = np.full((vps, ch, cw), -1, np.int64)
        pix_row3d = np.full((vps, ch, cw), -1, np.int64)
        feat_dim = self.source.feature_dim() if self.with_features else 0
        features = np.zeros((vps, n_cells if self.with_features else 0, feat_dim), np.float16)
        lat_rows, lat_idx, on_rows, on_pix = [], [], [], []
        crops = []
        for j, v in enumerate(views):
            crop = Crop.random((wl, hl), (cw, ch), rng, cfg.flip)
            crops.append(crop)
            image = self.source.view_image(index, int(v))
            images[j] = normalise_image(crop.apply(image, 0)) * crop.apply(np.ones((hl, wl), np.float32), 0)[None]
            maps = self.source.view_maps(index, int(v))
            for i, o in enumerate(origins):
                own2d[i, j] = crop.apply(maps[o], IGNORE)
            sl = s.view_pairs(int(v))
            pix, pts = s.pair_pixel[sl], s.pair_point[sl]
            point_of_pixel = random_first(pix, pts, wl * hl, rng).reshape(hl, wl)
            pp = crop.apply(point_of_pixel, -1)
            has = pp >= 0
            for i, o in enumerate(origins):
                paired2d[i, j][has] = s.point_labels[o][pp[has]]
            cells[j] = np.where(crop.apply(np.ones((hl, wl), bool), False), crop.apply(s.cell_of_pixel.reshape(hl, wl), -1) + j * n_cells, -1)
            if self.with_features:
                features[j] = self.source.view_features(index, int(v)).reshape(n_cells, -1).astype(np.float16)
            # 3D latent: a random pair of each kept voxel among this step's views
            rows = row_of_point[pts]
            ok = rows >= 0
            lat_rows.append(rows[ok])
            lat_idx.append(s.cell_of_pixel[pix[ok]] + j * n_cells)
            if self.with_online:
                seg = self.source.view_segments(index, int(v)).astype(np.int64)
                seg = np.where(seg >= 0, seg + (j << 32), -1)
                segments[j] = crop.apply(seg, -1)
                pix_row3d[j] = np.where(has, row_of_point[np.maximum(pp, 0)], -1)
                flat = crop.to_crop(pix)
                ok2 = (flat >= 0) & (rows >= 0)
                on_rows.append(rows[ok2])
                on_pix.append(flat[ok2] + j * ch * cw)
        latent3d = _random_per_row(lat_rows, lat_idx, n, rng)
        row_pix2d = _random_per_row(on_rows, on_pix, n, rng) if self.with_online else np.full(n, -1, np.int64)
        return Item(
            sample_id=s.sample_id,
            xyz=xyz[chosen],
            feats=point_features(xyz[chosen], s.rgb[chosen], self.net3d.input_features),
            point_index=chosen,
            own3d=own3d,
            paired3d=paired3d,
            latent3d=latent3d,
            images=images,
            own2d=own2d,
            paired2d=paired2d,
            cells=cells,
            features=features,
            segments=segments,
            pix_row3d=pix_row3d,
            row_pix2d=row_pix2d,
            views=views,
            crops=crops,
        )


def _random_per_row(rows: list[np.ndarray], values: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    if not rows:
        return np.full(n, -1, np.int64)
    return random_first(np.concatenate(rows), np.concatenate(values), n, rng)


@dataclass
class Batch:
    """A training batch (torch tensors). N points, V views of size (h, w), O origins, F cells."""

    sample_ids: list[str]
    xyz: torch.Tensor  # (N, 3) float32
    feats: torch.Tensor  # (N, C) float32
    offsets: torch.Tensor  # (B+1,) int64
    point_index: torch.Tensor  # (N,) int64
    own3d: torch.Tensor  # (O, N) uint8
    paired3d: torch.Tensor  # (O, N) uint8
    latent3d: torch.Tensor  # (N,) int64 into features, -1
    images: torch.Tensor  # (V, 3, h, w) float32
    own2d: torch.Tensor  # (O, V, h, w) uint8
    paired2d: torch.Tensor  # (O, V, h, w) uint8
    cells: torch.Tensor  # (V, h, w) int64 into features, -1
    features: torch.Tensor  # (F, D) float16
    segments: torch.Tensor  # (V, h, w) int64, -1
    pix_row3d: torch.Tensor  # (V, h, w) int64 into points, -1
    row_pix2d: torch.Tensor  # (N,) int64 into flattened (V, h, w), -1
    view_sample: torch.Tensor  # (V,) int64 batch slot of each view

    def to(self, device: torch.device) -> "Batch":
        moved = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)


def collate(items: Sequence[Item]) -> Batch:
    """Concatenate items: points with offsets, views stacked, flat indices shifted."""
    counts = [it.xyz.shape[0] for it in items]
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    feat_rows = [it.features.shape[0] * it.features.shape[1] for it in items]
    feat_off = np.concatenate([[0], np.cumsum(feat_rows)])
    views = [it.images.shape[0] for it in items]
    view_off = np.concatenate([[0], np.cumsum(views)])
    pix_per_view = items[0].images.shape[2] * items[0].images.shape[3]
    shapes = {it.images.shape[1:] for it in items}
    dims = {it.features.shape[2] for it in items}
    if len(shapes) != 1 or len(dims) != 1:
        raise ValueError(f"items of one batch need one crop size and feature width, got {shapes} and {dims}")

    def shift(arr: np.ndarray, by: int) -> np.ndarray:
        return np.where(arr >= 0, arr + by, -1)

    seg_shift = [np.where(it.segments >= 0, it.segments + (b << 40), -1) for b, it in enumerate(items)]
    return Batch(
        sample_ids=[it.sample_id for it in items],
        xyz=torch.from_numpy(np.concatenate([it.xyz for it in items])),
        feats=torch.from_numpy(np.concatenate([it.feats for it in items])),
        offsets=torch.from_numpy(offsets),
        point_index=torch.from_numpy(np.concatenate([it.point_index for it in items])),
        own3d=torch.from_numpy(np.concatenate([it.own3d for it in items], axis=1)),
        paired3d=torch.from_numpy(np.concatenate([it.paired3d for it in items], axis=1)),
        latent3d=torch.from_numpy(np.concatenate([shift(it.latent3d, feat_off[b]) for b, it in enumerate(items)])),
        images=torch.from_numpy(np.concatenate([it.images for it in items])),
        own2d=torch.from_numpy(np.concatenate([it.own2d for it in items], axis=1)),
        paired2d=torch.from_numpy(np.concatenate([it.paired2d for it in items], axis=1)),
        cells=torch.from_numpy(np.concatenate([shift(it.cells, feat_off[b]) for b, it in enumerate(items)])),
        features=torch.from_numpy(np.concatenate([it.features.reshape(it.features.shape[0] * it.features.shape[1], it.features.shape[2]) for it in items])),
        segments=torch.from_numpy(np.concatenate(seg_shift)),
        pix_row3d=torch.from_numpy(np.concatenate([shift(it.pix_row3d, offsets[b]) for b, it in enumerate(items)])),
        row_pix2d=torch.from_numpy(np.concatenate([shift(it.row_pix2d, view_off[b] * pix_per_view) for b, it in enumerate(items)])),
        view_sample=torch.from_numpy(np.repeat(np.arange(len(items)), views)),
    )


class StepSampler:
    """Keys of the items of each step: ``[(sample, step, rank, slot)] * batch_size``.

    Global position ``g = (step * world + rank) * batch + slot`` walks through one random
    permutation of the samples per epoch (seeded by ``(seed, epoch)``), so every process sees
    different samples and a run resumed at ``start_step`` continues the same sequence.
    """

    def __init__(self, n_samples: int, batch_size: int, seed: int, start_step: int, steps: int, rank: int = 0, world: int = 1) -> None:
        if n_samples < 1:
            raise ValueError("no samples to train on")
        self.n = n_samples
        self.batch = batch_size
        self.seed = seed
        self.start = start_step
        self.steps = steps
        self.rank = rank
        self.world = world
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch, 0x5A4D]).permutation(self.n)}
        return self._perms[epoch]

    def keys(self, step: int) -> list[tuple[int, int, int, int]]:
        out = []
        for slot in range(self.batch):
            g = (step * self.world + self.rank) * self.batch + slot
            out.append((int(self._perm(g // self.n)[g % self.n]), step, self.rank, slot))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        for step in range(self.start, self.steps):
            yield self.keys(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


class ItemDataset(torch.utils.data.Dataset):
    """Map-style dataset over item keys (used with :class:`StepSampler` as batch sampler)."""

    def __init__(self, builder: ItemBuilder) -> None:
        self.builder = builder

    def __len__(self) -> int:
        return len(self.builder.source)

    def __getitem__(self, key: tuple[int, int, int, int]) -> Item:
        return self.builder(key)
