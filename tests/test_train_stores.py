"""Bad stores give a clear error naming the store before any training step."""

import shutil

import numpy as np
import pytest

from pipeline.stores import StoreError, required_trainer_stores
from pipeline.vocab import benchmark
from train.data.sample import SampleSource
from tests.factory import copy_store
from train.data.stores import open_shards

BENCH = benchmark("scannet20")
ROLES = required_trainer_stores("stage1")


@pytest.fixture()
def synthetic(tmp_path):
    from tests.train_synthetic import make_stores

    return make_stores(tmp_path / "stores", samples_per_shard=(1,), n_points=100, n_views=2)


def _rewrite(path, edit, root_attrs=None):
    """Replace a store by a copy with ``edit(sample, arrays) -> arrays`` applied (root attrs updated)."""
    copy_store(path, str(path) + ".new", edit, root_attrs)
    shutil.rmtree(path)
    shutil.move(str(path) + ".new", path)


def test_good_stores_open(synthetic):
    shards = open_shards(synthetic["stores"], BENCH, ROLES)
    assert shards[0].samples == ["scene0000_00"]


def test_other_vocabulary_is_refused(synthetic):
    path = synthetic["stores"]["refined"][0]
    _rewrite(path, lambda s, a: a, root_attrs={"vocabulary": {"benchmark": "nuscenes16", "class_names": ["car"]}})
    with pytest.raises(StoreError, match=r"refined.*vocabulary 'nuscenes16'"):
        open_shards(synthetic["stores"], BENCH, ROLES)


def test_other_class_names_are_refused(synthetic):
    path = synthetic["stores"]["clip"][0]
    names = list(BENCH.class_names)
    names[0], names[1] = names[1], names[0]
    _rewrite(path, lambda s, a: a, root_attrs={"vocabulary": {"benchmark": "scannet20", "class_names": names}})
    with pytest.raises(StoreError, match="class names"):
        open_shards(synthetic["stores"], BENCH, ROLES)


def test_missing_required_array_is_named(synthetic):
    path = synthetic["stores"]["prepared"][0]
    _rewrite(path, lambda s, a: {k: v for k, v in a.items() if k != "points/xyz"},
             root_attrs={"label_spaces": {"points": "nyu40", "views": "nyu40"}})
    with pytest.raises(StoreError, match="points/xyz"):
        open_shards(synthetic["stores"], BENCH, ROLES)


def test_missing_store_role_and_shard(synthetic):
    stores = dict(synthetic["stores"])
    with pytest.raises(StoreError, match="no sam stores"):
        open_shards({k: v for k, v in stores.items() if k != "sam"}, BENCH, ROLES)
    with pytest.raises(StoreError, match="no points store for shard"):
        open_shards({**stores, "points": [p.replace("train-000", "train-009") for p in stores["points"]]}, BENCH, ROLES)


def test_mismatched_sizes_are_refused(synthetic):
    path = synthetic["stores"]["points"][0]

    def drop_point(sample, arrays):
        out = dict(arrays)
        for name in ("points/label", "points/label_clip", "points/votes", "points/agreement", "points/seen"):
            out[name] = arrays[name][:-1]
        keep = arrays["pairs/point"] < 99
        counts = [int(keep[a:b].sum()) for a, b in zip(arrays["views/pair_offsets"][:-1], arrays["views/pair_offsets"][1:])]
        out["pairs/point"], out["pairs/pixel"] = arrays["pairs/point"][keep], arrays["pairs/pixel"][keep]
        out["views/pair_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return out

    _rewrite(path, drop_point)
    with pytest.raises(StoreError, match="point=99 but the prepared store"):
        open_shards(synthetic["stores"], BENCH, ROLES)


def test_label_values_outside_the_vocabulary_are_refused(synthetic):
    path = synthetic["stores"]["refined"][0]
    _rewrite(path, lambda s, a: {"views/label": np.full_like(a["views/label"], 33)})
    shards = open_shards(synthetic["stores"], BENCH, ROLES)
    with pytest.raises(StoreError, match="label value 33"):
        SampleSource(shards, BENCH.n_classes, ["pseudo"], None, cache_size=1).sample(0)


def test_cli_prints_one_line_and_exits_2(synthetic, tmp_path, capsys):
    from train.__main__ import main

    s = synthetic["stores"]
    code = main(["stage1", "--out", str(tmp_path / "run"), "--prepared", *s["prepared"], "--refined", *s["refined"],
                 "--points", *s["points"], "--sam", str(tmp_path / "nowhere.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "nowhere.zarr" in err and len(err.strip().splitlines()) == 1


def test_one_image_per_step_is_a_config_error():
    """DeepLabV3's image-pooling batch norm needs 2+ images per step: say so before training."""
    import pytest

    from pipeline.config import validate
    from pipeline.errors import UserError
    from train.config import train_config

    with pytest.raises(UserError, match="train.data.batch_size x train.data.views_per_sample"):
        train_config(validate({"train": {"data": {"batch_size": 1, "views_per_sample": 1}}}))
    assert train_config(validate({"train": {"data": {"batch_size": 1, "views_per_sample": 2}}})).data.batch_size == 1
