"""The trainer finds a run's stores under --results: short commands, and loud stale or missing shards."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.stores import StoreError
from pipeline.stores.discover import discover_stores

STORES = ("prepared", "clip", "sam", "refined", "points")
REQUIRED = ("prepared", "refined", "points", "sam")


@pytest.fixture()
def results(tmp_path):
    from tests.train_synthetic import make_stores

    data = make_stores(tmp_path / "results", samples_per_shard=(2, 1), n_points=200, n_views=3)
    return tmp_path / "results", data["stores"]


def test_discovery_finds_exactly_the_stores_the_pipeline_wrote(results):
    root, stores = results
    found = discover_stores(root, STORES, REQUIRED, ["train"])
    assert {k: sorted(v) for k, v in found.items()} == {k: sorted(v) for k, v in stores.items()}
    assert discover_stores(root, STORES, REQUIRED, ["train", "val"]) == found  # a split without shards adds none
    with pytest.raises(StoreError, match="no shards of split.*val"):
        discover_stores(root, STORES, REQUIRED, ["val"])


def test_stale_gapped_and_partial_shards_are_errors(results):
    root, _ = results
    # a stale shard of an earlier shard count: its samples are also in a current shard
    for name in STORES:
        shutil.copytree(root / name / "train-000.zarr", root / name / "train-002.zarr")
    with pytest.raises(StoreError, match=r"train-002.zarr: sample \S+ is also in train-000.zarr; stale shards"):
        discover_stores(root, STORES, REQUIRED, ["train"])
    for name in STORES:
        shutil.rmtree(root / name / "train-002.zarr")
    shutil.rmtree(root / "points" / "train-001.zarr")
    with pytest.raises(StoreError, match=r"points: shards \['train-001.zarr'\] missing"):
        discover_stores(root, STORES, REQUIRED, ["train"])
    shutil.rmtree(root / "clip")  # an optional store may be absent altogether
    assert "clip" not in discover_stores(root, ("prepared", "clip"), ("prepared",), ["train"])
    for name in ("prepared",):
        shutil.move(root / name / "train-001.zarr", root / name / "train-003.zarr")
    with pytest.raises(StoreError, match=r"split train has shards \[0, 3\]"):
        discover_stores(root, ("prepared",), ("prepared",), ["train"])


def test_a_stage1_command_for_two_shards_is_short_and_trains(results, tmp_path):
    root, _ = results
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps({"train": {
        "net2d": {"backbone": "tiny"}, "net3d": {"size": "tiny", "voxel_size": 0.1}, "threads": 1, "device": "cpu",
        "data": {"batch_size": 1, "views_per_sample": 2, "crop_size": [16, 16], "workers": 0, "latent_pixels_per_view": 32},
        "stage1": {"steps": 1}, "splits": ["train"]}}))
    args = ["stage1", "--results", str(root), "--config", str(cfg), "--no-progress"]
    shown = " ".join(["python -m train", *args]).replace(str(tmp_path), "results/../demo")
    assert len(shown) < 300, shown
    done = subprocess.run([sys.executable, "-m", "train", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((root / "train" / "stage1" / "run.json").read_text())
    assert (root / "train" / "stage1" / "final.pt").is_file()
    assert [Path(p).name for p in run["stores"]["points"]] == ["train-000.zarr", "train-001.zarr"]
    # without --results nor the store options: one line naming what is missing
    done = subprocess.run([sys.executable, "-m", "train", "stage1", "--out", str(tmp_path / "x"), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "--prepared --sam --refined required (or --results" in done.stderr
