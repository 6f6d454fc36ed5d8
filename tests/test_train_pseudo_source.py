"""train.data.pseudo_labels: the ablation's unrefined row trains on the raw CLIP labels.

The synthetic stores' raw CLIP labels are the refined ones moved by one class, so every test
below can tell which of the two a run read.
"""

import json

import numpy as np
import pytest

from pipeline.config import ConfigError, validate
from pipeline.stores import StoreError, StoreReader, required_trainer_stores
from pipeline.vocab import IGNORE, benchmark
from train.data.class_balance import pseudo_label_counts
from train.data.sample import SampleSource
from train.data.stores import open_shards

BENCH = benchmark("scannet20")
STORES = ["prepared", "refined", "points", "sam", "clip"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tests.train_synthetic import make_stores

    return make_stores(tmp_path_factory.mktemp("stores"), samples_per_shard=(2, 1), n_points=300, n_views=3, clip_shift=1)


def _read_all(paths, store, sid, array, view=None):
    for path in paths:
        reader = StoreReader(path, store)
        if sid in reader.samples:
            return reader.read(sid, array, view) if view is not None else reader.read(sid, array)
    raise KeyError(sid)


@pytest.mark.parametrize("mode", ["refined", "clip"])
def test_pseudo_origin_reads_the_configured_labels(synthetic, mode):
    shards = open_shards(synthetic["stores"], BENCH, STORES)
    source = SampleSource(shards, BENCH.n_classes, ["pseudo"], None, cache_size=4, pseudo_labels=mode)
    paths = synthetic["stores"]
    for index, (_, sid) in enumerate(source.index):
        data = source.sample(index)
        points = _read_all(paths["points"], "points", sid, "points/label" if mode == "refined" else "points/label_clip")
        np.testing.assert_array_equal(data.point_labels["pseudo"], points)
        store = "refined" if mode == "refined" else "clip"
        expected = _read_all(paths[store], store, sid, "views/label", 1)
        np.testing.assert_array_equal(source.view_maps(index, 1)["pseudo"], expected)
        # the two sources really differ on labelled elements, so the assertions above can fail
        refined = _read_all(paths["refined"], "refined", sid, "views/label", 1)
        labelled = refined != IGNORE
        assert labelled.any() and ((expected[labelled] == refined[labelled]) == (mode == "refined")).all()


def test_class_balance_counts_the_configured_labels(synthetic):
    shards = open_shards(synthetic["stores"], BENCH, STORES)
    refined = pseudo_label_counts(SampleSource(shards, BENCH.n_classes, ["pseudo"], None, 4), BENCH.n_classes)
    clip = pseudo_label_counts(SampleSource(shards, BENCH.n_classes, ["pseudo"], None, 4, pseudo_labels="clip"), BENCH.n_classes)
    for a, b in zip(refined, clip):  # moved by one class: same totals, counts rolled by one
        assert a.sum() == b.sum() > 0
        np.testing.assert_array_equal(np.roll(a, 1), b)


def test_clip_targets_need_the_clip_stores(synthetic, tmp_path):
    from train.engine.trainer import run_stage

    train = {"net2d": {"backbone": "slim"}, "net3d": {"size": "tiny", "voxel_size": 0.1}, "threads": 1, "device": "cpu",
             "data": {"batch_size": 1, "views_per_sample": 2, "crop_size": [16, 16], "workers": 0, "latent_pixels_per_view": 16,
                      "pseudo_labels": "clip"},
             "stage1": {"steps": 1, "switching": False}}
    config = validate({"train": train})
    assert "clip" in required_trainer_stores("stage1", config["train"])
    assert "clip" not in required_trainer_stores("stage1", validate({})["train"])
    without = {k: v for k, v in synthetic["stores"].items() if k != "clip"}
    with pytest.raises(StoreError, match="clip"):
        run_stage(config, "stage1", without, tmp_path / "no_clip", progress=False)
    run_stage(config, "stage1", synthetic["stores"], tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    refined = run_stage(validate({"train": {**train, "data": {**train["data"], "pseudo_labels": "refined"}}}), "stage1",
                        synthetic["stores"], tmp_path / "refined", progress=False)
    assert json.loads((refined.parent / "run.json").read_text())["run_hash"] != meta["run_hash"]


def test_unknown_pseudo_labels_is_a_config_error():
    with pytest.raises(ConfigError, match="pseudo_labels"):
        validate({"train": {"data": {"pseudo_labels": "sam"}}})
