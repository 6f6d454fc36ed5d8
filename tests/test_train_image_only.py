"""The 2D-only trainer path (nuImages): without points stores only the 2D network is built and
stepped, checkpoints hold no 3D weights, stage 2 self-trains on frozen 2D predictions, predict and
evaluate run without points; with points prepared stores, leaving out --points is an error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import validate
from pipeline.errors import UserError
from pipeline.stores import StoreError, StoreReader, store_path
from tests.factory import copy_store

TINY = {
    "net2d": {"backbone": "tiny"},
    "net3d": {"size": "tiny", "voxel_size": 0.1},
    "threads": 1,
    "device": "cpu",
    "data": {"batch_size": 2, "views_per_sample": 1, "crop_size": [16, 16], "workers": 0, "latent_pixels_per_view": 32},
    "checkpoint_every": 2,
    "stage1": {"steps": 4},
    "stage2": {"steps": 3, "sources": {"pseudo": 1, "self": 1, "cross": 0}},
}


def _config(**train) -> dict:
    return validate({"vocabulary": {"benchmark": "scannet20"}, "train": {**TINY, **train},
                     "evaluate": {"splits": ["train"], "export_benchmark": False, "export_ply": False}})


@pytest.fixture(scope="module")
def image_only(tmp_path_factory):
    """The synthetic stores with the prepared stores rewritten as image-only (kind nuimages, no points)."""
    from tests.train_synthetic import make_stores

    root = tmp_path_factory.mktemp("stores")
    made = make_stores(root, samples_per_shard=(2, 1), n_points=100, n_views=2)
    prepared = []
    for path in made["stores"]["prepared"]:
        out = Path(str(path).replace("/prepared/", "/prepared_2d/"))
        copy_store(path, out, lambda sample, arrays: {k: v for k, v in arrays.items() if not k.startswith(("points/", "mesh/"))},
                   root_attrs={"kind": "nuimages", "label_spaces": {"views": "nyu40"}})
        prepared.append(str(out))
    stores = {name: made["stores"][name] for name in ("clip", "sam", "refined")}
    return {"stores": {"prepared": prepared, **stores}, "with_points": made["stores"], "root": root}


def test_stage1_steps_the_2d_network_alone(image_only, tmp_path):
    from train.engine.trainer import run_stage

    cfg = _config()
    records = []
    final = run_stage(cfg, "stage1", image_only["stores"], tmp_path / "s1", progress=False, on_step=lambda s, r: records.append(r))
    state = torch.load(final, weights_only=True)
    meta = json.loads(state["meta"])
    assert meta["image_only"] is True and "model3d" not in state
    assert len(state["optimizer"]["param_groups"]) == 1  # the 2D network's group only
    assert len(records) == 4
    assert all("ce3d" not in r and "latent3d" not in r and "lr3d" not in r and "grad_norm_3d" not in r for r in records)
    assert all(r["ce2d"] > 0 and 0 < r["latent2d"] < 2 for r in records)


def test_stage2_predict_and_evaluate_without_points(image_only, tmp_path):
    from train.engine.trainer import run_stage
    from train.evaluate import evaluate
    from train.predict import predict_shard

    cfg = _config()
    s1 = run_stage(cfg, "stage1", image_only["stores"], tmp_path / "s1", progress=False)
    stores = image_only["stores"]
    preds = []
    for prepared, sam in zip(stores["prepared"], stores["sam"]):
        out = tmp_path / "predictions" / Path(prepared).name
        preds.append(str(predict_shard(s1, {"prepared": prepared, "sam": sam}, out, cfg)))
    reader = StoreReader(preds[0], "predictions", benchmark="scannet20")
    sample = reader.samples[0]
    assert reader.read(sample, "points/label").shape == (0,)
    assert (reader.read(sample, "views/label_3d") == 255).all()
    label = reader.read(sample, "views/label")
    assert label.shape[0] == 2 and (label < 20).all()
    s2 = run_stage(cfg, "stage2", {**stores, "predictions": preds}, tmp_path / "s2", init=s1, progress=False)
    assert "model3d" not in torch.load(s2, weights_only=True)
    metrics = evaluate(s2, {k: v for k, v in stores.items() if k != "clip"}, tmp_path / "eval", export_benchmark=False,
                       export_ply=False, device="cpu", threads=1)
    assert "2d" in metrics["results"] and "3d" not in metrics["results"]
    assert metrics["results"]["2d"]["elements"] > 0


def test_leaving_out_points_of_a_dataset_with_points_is_an_error(image_only, tmp_path):
    from train.engine.trainer import run_stage

    stores = {k: v for k, v in image_only["with_points"].items() if k != "points"}
    with pytest.raises(StoreError, match="no points stores given, but this .* store has points; pass --points"):
        run_stage(_config(), "stage1", stores, tmp_path / "s1", progress=False)


def test_cross_training_needs_a_3d_network(image_only, tmp_path):
    from train.engine.trainer import run_stage

    cfg = _config(stage1={"steps": 2, "sources": {"pseudo": 1, "cross": 1}})
    with pytest.raises(UserError, match="train.stage1.sources.cross: image-only data has no 3D network"):
        run_stage(cfg, "stage1", image_only["stores"], tmp_path / "s1", progress=False)
