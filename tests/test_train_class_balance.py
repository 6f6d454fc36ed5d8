"""Class-balanced cross-entropy: weights from pseudo-label counts, and their use by the trainer."""

import json

import numpy as np
import pytest
import torch

from pipeline.config import validate
from pipeline.vocab import IGNORE
from train.data.class_balance import MAX_RATIO, class_weights
from train.losses.cns import cross_entropy


def test_inverse_sqrt_weights_follow_the_shares_and_average_to_one():
    counts = np.array([9000, 900, 100, 0])
    w = class_weights(counts, "inverse_sqrt").numpy()
    share = counts / counts.sum()
    assert w[0] < w[1] < w[2]
    assert w[1] / w[0] == pytest.approx(np.sqrt(10), rel=1e-5)
    assert float((share * w).sum()) == pytest.approx(1.0, rel=1e-6)  # mean weight per labelled element
    assert w[3] == pytest.approx(w.max())  # a class without labels: the heaviest, never 0
    assert class_weights(counts, "none") is None
    assert class_weights(np.zeros(4), "inverse_sqrt") is None
    with pytest.raises(ValueError, match="unknown class_balance"):
        class_weights(counts, "inverse")


def test_weights_are_capped_relative_to_the_lightest():
    w = class_weights(np.array([10**8, 1]), "inverse_sqrt").numpy()
    assert w[1] / w[0] == pytest.approx(MAX_RATIO, rel=1e-5)


def test_weighted_cross_entropy_raises_the_rare_class_share_of_the_loss():
    logits = torch.zeros(4, 2)
    logits[:, 0] = 1.0  # every element predicts class 0
    target = torch.tensor([0, 0, 0, 1])
    plain = cross_entropy(logits, target)
    weighted = cross_entropy(logits, target, torch.tensor([1.0, 3.0]))
    per = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    assert float(plain) == pytest.approx(float(per.mean()))
    assert float(weighted) == pytest.approx(float((per[:3].sum() + 3 * per[3]) / 6))
    assert float(weighted) > float(plain)
    assert float(cross_entropy(logits, torch.full((4,), IGNORE), torch.tensor([1.0, 3.0]))) == 0.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tests.train_synthetic import make_stores

    return make_stores(tmp_path_factory.mktemp("stores"), samples_per_shard=(2, 1), n_points=200, n_views=3)


def test_trainer_counts_the_training_pseudo_labels_and_records_the_weights(synthetic, tmp_path):
    from train.data.class_balance import pseudo_label_counts
    from train.data.sample import SampleSource
    from train.data.stores import open_shards
    from train.engine.trainer import run_stage
    from pipeline.stores import StoreReader
    from pipeline.vocab import benchmark

    tiny = {"net2d": {"backbone": "tiny"}, "net3d": {"size": "tiny", "voxel_size": 0.1}, "threads": 1, "device": "cpu",
            "data": {"batch_size": 1, "views_per_sample": 2, "crop_size": [16, 16], "workers": 0, "latent_pixels_per_view": 32},
            "stage1": {"steps": 2}, "loss": {"class_balance": "inverse_sqrt"}}
    config = validate({"train": tiny})
    run_stage(config, "stage1", synthetic["stores"], tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    bench = benchmark(config["vocabulary"]["benchmark"])
    # the same counts by hand, from the stores the run read: every point label, the views chosen
    shards = open_shards(synthetic["stores"], bench, ["prepared", "refined", "points", "sam"])
    pixels, points = pseudo_label_counts(SampleSource(shards, bench.n_classes, ["pseudo"], None, 4), bench.n_classes)
    expected_points = np.zeros(bench.n_classes, np.int64)
    for path in synthetic["stores"]["points"]:
        reader = StoreReader(path, "points")
        for sid in reader.samples:
            labels = reader.read(sid, "points/label")
            expected_points += np.bincount(labels[labels != IGNORE], minlength=256)[: bench.n_classes]
    assert points.tolist() == expected_points.tolist() and points.sum() > 0 and pixels.sum() > 0
    assert meta["class_weights"]["3d"] == pytest.approx(class_weights(points, "inverse_sqrt").tolist(), abs=1e-4)
    assert meta["class_weights"]["2d"] == pytest.approx(class_weights(pixels, "inverse_sqrt").tolist(), abs=1e-4)
    # plain cross-entropy (the default) records no weights and is a different run
    plain = run_stage(validate({"train": {**tiny, "loss": {}}}), "stage1", synthetic["stores"], tmp_path / "plain", progress=False)
    assert "class_weights" not in json.loads((plain.parent / "run.json").read_text())
    assert json.loads((plain.parent / "run.json").read_text())["run_hash"] != meta["run_hash"]
