"""Training items and the order they are drawn in.

An item is built from a key ``(sample index, step, rank, slot)`` by the steps of
:mod:`train.data.steps` (points → labels → views → pairs); its random generator is seeded from
``(seed, step, rank, slot)`` alone, so an item is the same whichever worker builds it and a
resumed run sees exactly the items the uninterrupted run would have seen. Items become batches
by :func:`train.data.batch.collate` (fields declared once in :data:`train.data.batch.FIELDS`;
points concatenated with CSR ``point_offsets`` (B+1,)). Labels are stacked per *origin*
(``pseudo``, ``pred2d``, ``pred3d``): ``own`` is the element's own-modality realisation,
``paired`` the realisation of the element it pairs with (255 when unpaired);
:mod:`train.losses.switching` draws targets.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from train.config import DataConfig, Net3DConfig
from train.data.batch import Item
from train.data.sample import SampleSource
from train.data.steps import choose_views, crop_view, label_points, pair_indices, point_features, select_points


def item_rng(seed: int, step: int, rank: int, slot: int) -> np.random.Generator:
    """The generator of one item, a function of ``(seed, step, rank, slot)`` only."""
    return np.random.default_rng([int(seed), int(step), int(rank), int(slot), 0x434E53])


class ItemBuilder:
    """Builds :class:`train.data.batch.Item` s from a :class:`SampleSource` with the data options.

    ``with_features``: load SAM features (the latent losses are on); ``with_online``: segments
    and pixel↔point rows for online stage-2 predictions.
    """

    def __init__(self, source: SampleSource, data: DataConfig, net3d: Net3DConfig, seed: int,
                 with_features: bool, with_online: bool) -> None:
        self.source = source
        self.data = data
        self.net3d = net3d
        self.seed = seed
        self.with_features = with_features
        self.with_online = with_online

    def __call__(self, key: tuple[int, int, int, int]) -> Item:
        """The item of ``key`` = (sample index, step, rank, slot)."""
        index, step, rank, slot = key
        rng = item_rng(self.seed, step, rank, slot)
        s = self.source.sample(index)
        rows = select_points(s, self.data, self.net3d.voxel_size, rng)
        own3d, paired3d = label_points(s, self.source.origins, rows.chosen, rng)
        views = choose_views(s.n_views, self.data.views_per_sample, rng)
        crops, segment_base = [], 0
        for j, v in enumerate(views):
            crops.append(crop_view(self.source, s, int(v), j, rows, self.data, self.with_features, self.with_online, segment_base, rng))
            segment_base += crops[-1].segment_count
        latent3d, row_pix2d = pair_indices(crops, rows.chosen.size, self.with_online, rng)
        xyz = rows.xyz[rows.chosen]
        values = {
            "xyz": xyz,
            "feats": point_features(xyz, s.rgb[rows.chosen], self.net3d.input_features,
                                    None if s.intensity is None else s.intensity[rows.chosen]),
            "point_index": rows.chosen,
            "own3d": own3d,
            "paired3d": paired3d,
            "latent3d": latent3d,
            "images": np.stack([c.image for c in crops]),
            "own2d": np.stack([c.own for c in crops], axis=1),
            "paired2d": np.stack([c.paired for c in crops], axis=1),
            "cells": np.stack([c.cells for c in crops]),
            "features": np.concatenate([c.features for c in crops]),
            "segments": np.stack([c.segments for c in crops]),
            "pix_row3d": np.stack([c.pix_row3d for c in crops]),
            "row_pix2d": row_pix2d,
            "view_sample": np.zeros(len(crops), np.int64),
        }
        return Item(s.sample_id, values, segment_base, views, [c.crop for c in crops])


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
        """The item keys of ``step`` on this rank."""
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
