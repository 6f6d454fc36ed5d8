"""Voxelisation of point batches and coordinate keys."""

from __future__ import annotations

import pytest
import torch

from train.sparse import CoordinateSet, pack_keys, pool_features, unpack_keys, voxelize


def test_pack_unpack_round_trip_and_order() -> None:
    c = torch.tensor([[0, -5, 3, 7], [3, 100, -200, 0], [0, -5, 3, 8], [1, -126976, 126975, -1]], dtype=torch.int32)
    keys = pack_keys(c)
    assert torch.equal(unpack_keys(keys), c)
    # key order is (batch, x, y, z) lexicographic
    order = torch.argsort(keys)
    lex = sorted(range(4), key=lambda i: tuple(c[i].tolist()))
    assert order.tolist() == lex


def test_out_of_range_and_duplicates_are_errors() -> None:
    with pytest.raises(ValueError, match="voxel coordinates must lie"):
        pack_keys(torch.tensor([[0, 1 << 17, 0, 0]]))
    with pytest.raises(ValueError, match="batch indices"):
        pack_keys(torch.tensor([[-1, 0, 0, 0]]))
    with pytest.raises(ValueError, match="duplicate"):
        CoordinateSet(torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]], dtype=torch.int32))
    with pytest.raises(ValueError, match="multiples of 2"):
        CoordinateSet(torch.tensor([[0, 1, 2, 4]], dtype=torch.int32), stride=2)


def test_lookup_finds_rows_and_reports_absent_sites() -> None:
    c = torch.tensor([[0, 5, 5, 5], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.int32)
    cs = CoordinateSet(c)
    q = torch.tensor([[1, 0, 0, 0], [0, 5, 5, 5], [0, 1, 0, 0], [2, 0, 0, 0]], dtype=torch.int32)
    assert cs.lookup(q).tolist() == [2, 0, -1, -1]


def test_coarser_sets_floor_and_deduplicate() -> None:
    c = torch.tensor([[0, -1, 0, 0], [0, -2, 1, 1], [0, 3, 0, 0], [1, -1, 0, 0]], dtype=torch.int32)
    coarse = CoordinateSet(c).coarser(2)
    assert coarse.stride == 2
    assert coarse.coords.tolist() == [[0, -2, 0, 0], [0, 2, 0, 0], [1, -2, 0, 0]]
    assert coarse.finer is not None and coarse.coarser(1) is coarse
    assert CoordinateSet(c).coarser(2) is not coarse  # cached per set, not globally


def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(300, 3, generator=g) * 2.0 + 100.0  # far from the origin
    b = torch.rand(200, 3, generator=g) * 1.0 - 0.5
    return torch.cat([a, b]), torch.tensor([0, 300, 500])


def test_voxelize_inverse_maps_points_to_their_voxel() -> None:
    pts, offsets = make_batch()
    vs = 0.25
    vox = voxelize(pts, offsets, vs)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([300, 200]))
    grid = torch.floor(pts.double() / vs).long()
    c = vox.coords.long()
    assert torch.equal(c[vox.inverse, 0], batch)
    assert torch.equal(c[vox.inverse, 1:] + vox.origin[batch], grid)
    assert c[:, 1:].min() == 0  # shifted to each sample's origin
    # unique, sorted by (batch, x, y, z), with per-sample offsets
    keys = pack_keys(vox.coords)
    assert torch.equal(keys, torch.unique(keys))
    assert vox.offsets.tolist() == [0, int((c[:, 0] == 0).sum()), vox.num_voxels]
    assert torch.equal(torch.bincount(vox.inverse, minlength=vox.num_voxels), vox.counts)
    first = torch.tensor([int((vox.inverse == v).nonzero()[0]) for v in range(vox.num_voxels)])
    assert torch.equal(vox.first_point, first)


def test_voxelize_keeps_samples_apart_and_can_skip_the_shift() -> None:
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [-0.3, 0.0, 0.0]])
    vox = voxelize(pts, torch.tensor([0, 1, 3]), 0.2, shift_to_origin=False)
    assert vox.coords.tolist() == [[0, 0, 0, 0], [1, -2, 0, 0], [1, 0, 0, 0]]
    assert vox.inverse.tolist() == [0, 2, 1]


def test_pool_features_mean_and_first() -> None:
    pts, offsets = make_batch()
    vox = voxelize(pts, offsets, 0.5)
    feats = torch.randn(pts.shape[0], 4, dtype=torch.float64)
    mean = pool_features(feats, vox, "mean")
    ref = torch.zeros(vox.num_voxels, 4, dtype=torch.float64).index_add_(0, vox.inverse, feats) / vox.counts[:, None]
    torch.testing.assert_close(mean, ref)
    assert torch.equal(pool_features(feats, vox, "first"), feats[vox.first_point])
    assert torch.equal(vox.to_points(mean), mean[vox.inverse])
    with pytest.raises(ValueError, match="pooling mode"):
        pool_features(feats, vox, "max")  # type: ignore[arg-type]


def test_voxelize_rejects_bad_input() -> None:
    pts = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="offsets end"):
        voxelize(pts, torch.tensor([0, 3]), 0.1)
    with pytest.raises(ValueError, match="non-decreasing"):
        voxelize(pts, torch.tensor([0, 3, 2, 4]), 0.1)
    with pytest.raises(ValueError, match="positive"):
        voxelize(pts, torch.tensor([0, 4]), 0.0)
    bad = pts.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        voxelize(bad, torch.tensor([0, 4]), 0.1)


def test_voxel_keys_are_the_one_voxel_definition_and_check_their_range() -> None:
    import numpy as np

    from train.sparse.voxelize import point_voxel_keys, voxel_keys

    pts, offsets = make_batch()
    keys, origin = voxel_keys(pts, offsets, 0.25)
    vox = voxelize(pts, offsets, 0.25)
    assert torch.equal(origin, vox.origin) and torch.equal(torch.unique(keys, return_inverse=True)[1], vox.inverse)
    one = pts[:300].numpy()
    _, inv = np.unique(point_voxel_keys(one, 0.25), return_inverse=True)
    assert np.array_equal(inv.reshape(-1), vox.inverse[:300].numpy())  # numpy callers get the network's voxels
    with pytest.raises(ValueError, match=r"along y span \[0, 200000\] \(200001 voxels of 0\.01 m"):
        voxel_keys(torch.tensor([[0.0, 0.0, 0.0], [0.0, 2000.0, 0.0]]), torch.tensor([0, 2]), 0.01)
    with pytest.raises(ValueError, match="voxels of 0.01 m"):
        voxelize(torch.tensor([[0.0, 0.0, 0.0], [0.0, 2000.0, 0.0]]), torch.tensor([0, 2]), 0.01)
