"""The batch contract: one field table drives the collate; index fields shift by running totals."""

import numpy as np
import pytest
import torch

from train.data.batch import FIELDS, SPACES, Item, collate


def _item(rng: np.random.Generator, n: int, v: int, segment_count: int, h: int = 4, w: int = 5, cells: int = 6, dim: int = 3, origins: int = 2) -> Item:
    """A hand-made item of n points and v views; every index field has some -1."""
    sizes = {"points": n, "pixels": v * h * w, "cells": v * cells, "segments": segment_count, "samples": 1}
    dims = {"n": n, "v": v, "h": h, "w": w, "c": v * cells, "D": dim, "O": origins, "C": 4}
    values = {}
    for f in FIELDS:
        shape = tuple(dims[d] if isinstance(d, str) else d for d in f.shape)
        if f.index is not None:
            size = sizes[f.index]
            a = rng.integers(0, size, shape) if size else np.full(shape, -1)
            a = np.where(rng.random(shape) < 0.3, -1, a) if f.index != "samples" else np.zeros(shape)
            values[f.name] = a.astype(np.int64)
        else:
            values[f.name] = (rng.random(shape) * 200).astype(f.dtype)
    return Item(f"s{n}", values, segment_count, np.arange(v), [])


def test_every_field_has_a_known_space_and_a_valid_axis():
    assert len({f.name for f in FIELDS}) == len(FIELDS)
    for f in FIELDS:
        assert f.index is None or f.index in SPACES
        assert 0 <= f.axis < len(f.shape) and f.dtype and f.doc
        assert f.index is None or f.dtype == "int64"


def test_collate_shifts_index_fields_by_running_totals_and_keeps_minus_one():
    rng = np.random.default_rng(0)
    items = [_item(rng, 7, 2, 3), _item(rng, 0, 1, 0), _item(rng, 11, 3, 5)]
    batch = collate(items)
    assert batch.sample_ids == ["s7", "s0", "s11"]
    assert batch.point_offsets.tolist() == [0, 7, 7, 18]  # CSR (B+1,)
    starts = {"points": [0, 7, 7], "pixels": [0, 40, 60], "cells": [0, 12, 18], "segments": [0, 3, 3], "samples": [0, 1, 2]}
    for f in FIELDS:
        got = getattr(batch, f.name).numpy()
        pieces = np.split(got, np.cumsum([it.values[f.name].shape[f.axis] for it in items])[:-1], axis=f.axis)
        for b, (it, piece) in enumerate(zip(items, pieces)):
            want = it.values[f.name]
            if f.index is None:
                assert np.array_equal(piece, want), f.name
            else:
                assert np.array_equal(piece == -1, want == -1), f.name  # -1 stays -1
                assert np.array_equal(piece[want >= 0], want[want >= 0] + starts[f.index][b]), f.name
        assert got.dtype == np.dtype(f.dtype)
    # shifted indices stay inside the batch's spaces
    assert int(batch.latent3d.max()) < batch.features.shape[0] and int(batch.pix_row3d.max()) < batch.xyz.shape[0]
    assert int(batch.row_pix2d.max()) < batch.cells.numel() and batch.view_sample.tolist() == [0, 0, 1, 2, 2, 2]
    assert int(batch.segments.max()) < 8


def test_collate_refuses_items_that_disagree_on_a_fixed_dim():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="dim h"):
        collate([_item(rng, 3, 1, 1, h=4), _item(rng, 3, 1, 1, h=6)])
    bad = _item(rng, 3, 1, 1)
    bad.values["own3d"] = bad.values["own3d"][:, :2]
    with pytest.raises(ValueError, match="own3d"):
        collate([bad])


def test_batch_moves_to_a_device_and_items_pickle():
    import pickle

    item = _item(np.random.default_rng(2), 4, 2, 2)
    again = pickle.loads(pickle.dumps(item))
    assert again.sample_id == item.sample_id and np.array_equal(again.cells, item.cells)
    batch = collate([item]).to(torch.device("cpu"))
    assert batch.point_offsets.tolist() == [0, 4] and torch.equal(batch.xyz, torch.from_numpy(item.xyz))
    with pytest.raises(AttributeError):
        _ = batch.offsets
