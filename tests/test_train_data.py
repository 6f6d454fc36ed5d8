"""Data: augmentation keeps pairs and SAM cells consistent; voxel inverse; batching; sampler."""

import numpy as np
import pytest
import torch

from pipeline.vocab import IGNORE, benchmark
from pipeline.config import validate
from train.config import train_config
from train.data.augment import Crop, augment_points, grid_sample, sphere_crop
from train.data.batch import collate
from train.data.dataset import ItemBuilder, StepSampler
from train.data.sample import SampleSource
from train.data.stores import open_shards

BENCH = benchmark("scannet20")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tests.train_synthetic import make_stores

    return make_stores(tmp_path_factory.mktemp("stores"), samples_per_shard=(2, 1), n_points=300, n_views=3)


def _builder(synthetic, **data):
    shards = open_shards(synthetic["stores"], BENCH, ["prepared", "refined", "points", "sam"])
    source = SampleSource(shards, BENCH.n_classes, ["pseudo"], "sam", cache_size=8)
    cfg = train_config(validate({"train": {"data": {"batch_size": 2, "views_per_sample": 2, "crop_size": [20, 16], "workers": 0, **data},
                                           "net3d": {"size": "tiny", "voxel_size": 0.1}}}))
    return source, ItemBuilder(source, cfg.data, cfg.net3d, seed=3, with_features=True, with_online=True)


def test_point_augmentation_is_rigid_up_to_scale_and_keeps_order():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(100, 3)).astype(np.float32)
    out = augment_points(xyz, np.random.default_rng(1), rotate=True, flip=True, scale=(0.8, 1.2), jitter=0.0)
    d_in = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    d_out = np.linalg.norm(out[:, None] - out[None], axis=-1)
    ratio = d_out[d_in > 0] / d_in[d_in > 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-4)  # same points, same order: distances scale uniformly
    assert np.allclose(out[:, 2] - out[:, 2].mean(), ratio[0] * (xyz[:, 2] - xyz[:, 2].mean()), atol=1e-4)  # up axis kept


def test_grid_sample_one_point_per_voxel_and_inverse():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 1, (500, 3)).astype(np.float32)
    chosen, voxel_of_point = grid_sample(xyz, 0.25, rng)
    keys = np.floor(xyz / 0.25).astype(int)
    assert len({tuple(k) for k in keys[chosen]}) == chosen.size == len({tuple(k) for k in keys})
    assert (keys[chosen[voxel_of_point]] == keys).all()  # every point maps to the chosen point of its voxel


def test_voxelize_inverse_maps_back_to_points():
    from train.sparse import pool_features, voxelize

    rng = np.random.default_rng(1)
    xyz = torch.from_numpy(rng.uniform(0, 2, (400, 3)).astype(np.float32))
    offsets = torch.tensor([0, 150, 400])
    vox = voxelize(xyz, offsets, 0.5)
    vals = pool_features(xyz, vox, "mean")
    back = vox.to_points(vals)
    keys = torch.floor(xyz / 0.5)
    for i in range(0, 400, 37):
        same = (keys == keys[i]).all(1) & ((torch.arange(400) < 150) == (i < 150))
        assert torch.allclose(back[i], xyz[same].mean(0), atol=1e-5)


def test_sphere_crop_keeps_nearest():
    rng = np.random.default_rng(2)
    xyz = rng.normal(size=(1000, 3))
    keep = sphere_crop(xyz, 100, rng)
    assert keep.size == 100 and np.all(np.diff(keep) > 0)
    assert sphere_crop(xyz, 5000, rng).size == 1000


def test_crop_maps_pairs_and_pixels_consistently():
    rng = np.random.default_rng(3)
    for _ in range(20):
        crop = Crop.random((30, 20), (16, 24), rng, flip=True)  # crop taller than the image: padding
        image = np.arange(600).reshape(20, 30)
        out = crop.apply(image, -1)
        xs, ys, inside = crop.source_xy()
        assert (out[inside] == image[ys[inside], xs[inside]]).all() and (out[~inside] == -1).all()
        flat = np.arange(600)
        to = crop.to_crop(flat)
        ok = to >= 0
        assert (out.reshape(-1)[to[ok]] == flat[ok]).all()  # a pair's pixel lands where its value went
        assert ok.sum() == inside.sum()


def test_items_keep_pairs_labels_and_cells_consistent(synthetic):
    source, builder = _builder(synthetic)
    for key in [(0, 0, 0, 0), (2, 5, 0, 1)]:
        item = builder(key)
        s = source.sample(key[0])
        # 3D paired realisation = the refined label at one of the point's pair pixels
        maps = np.stack([source.view_maps(key[0], v)["pseudo"] for v in range(s.n_views)]).reshape(s.n_views, -1)
        for row in range(0, item.xyz.shape[0], 7):
            q = item.point_index[row]
            assert item.own3d[0, row] == s.point_labels["pseudo"][q]
            pairs = np.flatnonzero(s.pair_point == q)
            options = set(maps[s.pair_view[pairs], s.pair_pixel[pairs]].tolist())
            assert (item.paired3d[0, row] == IGNORE) == (not options) or item.paired3d[0, row] in options
        # 2D: every crop pixel's cell is its original pixel's cell; paired label = a paired point's label
        for j, v in enumerate(item.views):
            crop = item.crops[j]
            xs, ys, inside = crop.source_xy()
            flat = ys * s.label_size[0] + xs
            n_cells = s.sam_grid[0] * s.sam_grid[1]
            assert (item.cells[j][inside] == s.cell_of_pixel[flat[inside]] + j * n_cells).all()
            assert (item.cells[j][~inside] == -1).all()
            sl = s.view_pairs(int(v))
            for yy, xx in zip(*np.nonzero(item.paired2d[0, j] != IGNORE)):
                pts = s.pair_point[sl][s.pair_pixel[sl] == flat[yy, xx]]
                assert item.paired2d[0, j, yy, xx] in set(s.point_labels["pseudo"][pts].tolist())
        # 3D latent rows point at a SAM cell of a pixel the point's voxel pairs with, in a loaded view
        rows = np.flatnonzero(item.latent3d >= 0)
        assert rows.size > 0
        for row in rows[:20]:
            j, cell = divmod(int(item.latent3d[row]), n_cells)
            v = item.views[j]
            sl = s.view_pairs(int(v))
            assert cell in set(s.cell_of_pixel[s.pair_pixel[sl]].tolist())


def test_items_are_reproducible_and_batches_concatenate(synthetic):
    _, builder = _builder(synthetic)
    a, b = builder((1, 3, 0, 0)), builder((1, 3, 0, 0))
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.own2d, b.own2d) and np.array_equal(a.latent3d, b.latent3d)
    items = [builder((0, 1, 0, 0)), builder((2, 1, 0, 1))]
    batch = collate(items)
    n0 = items[0].xyz.shape[0]
    assert batch.point_offsets.tolist() == [0, n0, n0 + items[1].xyz.shape[0]]  # CSR (B+1,), not Pointcept's ends
    cells0 = items[0].features.shape[0]
    lat = batch.latent3d[n0:]
    assert torch.equal(lat[lat >= 0] - cells0, torch.from_numpy(items[1].latent3d[items[1].latent3d >= 0]))
    assert batch.images.shape[0] == 4 and batch.own2d.shape[1] == 4
    assert batch.features.shape[0] == 2 * cells0


def test_memory_bound_limits_voxels(synthetic):
    _, builder = _builder(synthetic, max_voxels_per_batch=100, batch_size=2)
    assert builder((0, 0, 0, 0)).xyz.shape[0] <= 50


def test_step_sampler_partitions_ranks_and_resumes():
    full = StepSampler(5, 2, seed=0, start_step=0, steps=6, rank=0, world=2)
    other = StepSampler(5, 2, seed=0, start_step=0, steps=6, rank=1, world=2)
    resumed = StepSampler(5, 2, seed=0, start_step=3, steps=6, rank=0, world=2)
    assert list(resumed) == list(full)[3:]
    first_epoch = [k[0] for k in full.keys(0) + other.keys(0) + full.keys(1)[:1]]
    assert sorted(first_epoch) == [0, 1, 2, 3, 4]  # one permutation per epoch, split across ranks


def test_grid_sample_keeps_voxel_key_order_and_checks_the_range():
    rng = np.random.default_rng(4)
    xyz = rng.uniform(-3, 3, (800, 3)).astype(np.float32)
    chosen, _ = grid_sample(xyz, 0.5, rng)
    grid = np.floor(xyz[chosen].astype(np.float64) / 0.5).astype(np.int64)
    assert [tuple(g) for g in grid] == sorted(tuple(g) for g in grid)  # rows in (x, y, z) voxel order
    far = np.array([[0, 0, 0], [7000.0, 0, 0]], np.float32)  # 140001 voxels of 5 cm: beyond a key's range
    with pytest.raises(ValueError, match=r"along x .*0\.05 m"):
        grid_sample(far, 0.05, rng)


def test_segment_ids_are_unique_per_view_and_item(synthetic):
    source, builder = _builder(synthetic)
    items = [builder((0, 2, 0, 0)), builder((0, 4, 0, 1))]  # the same sample twice: same store segment ids
    batch = collate(items)
    seg = batch.segments.numpy()
    owner = {}
    for it_i, it in enumerate(items):
        for j, v in enumerate(it.views):
            store = source.view_segments(0, int(v)).astype(np.int64)
            xs, ys, inside = it.crops[j].source_xy()
            ids = seg[2 * it_i + j]
            assert (ids[~inside] == -1).all()
            for sid in np.unique(ids[ids >= 0]):
                where = ids == sid
                assert len(np.unique(store[ys[where], xs[where]])) == 1  # one store segment ...
                assert owner.setdefault(int(sid), (it_i, j)) == (it_i, j)  # ... of one view of one item
    assert 0 <= seg.max() < sum(it.segment_count for it in items)
