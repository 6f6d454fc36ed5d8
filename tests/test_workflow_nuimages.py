"""The nuImages path through the real `snakemake` command, on a tiny generated nuImages-format demo:
`all` runs without a project stage or a 3D network and ends in 2D metrics over the 11 scored
classes and PNG exports in nuImages fine indices; a second run does nothing; with the demo's
defects (a null mask, a missing image) the image's shard fails naming the file while the others
complete under --keep-going, and the null mask is counted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.membership import split_samples
from pipeline.shards import assign_shards
from pipeline.stores import StoreReader
from tests.workflow_helpers import snakemake_command, snakemake_env

pytestmark = pytest.mark.slow

TINY = {
    "results": "results",
    "dataset": {
        "name": "tiny_nuimages", "kind": "nuimages", "root": "results/data", "splits": ["train", "val"],
        "shards": {"train": 2, "val": 1}, "working_size": [160, 90],
        "demo": {"enabled": True, "num_scenes": 3, "num_val": 1, "seed": 0, "color_size": [160, 90], "samples_per_scene": 2,
                 "defects": False},
    },
    "vocabulary": {"benchmark": "nuimages11"},
    "clip": {"backend": "simulated"},
    "sam": {"backend": "simulated"},
    "train": {
        "device": "cpu", "threads": 2, "splits": ["train"], "net2d": {"backbone": "tiny"},
        "data": {"batch_size": 2, "views_per_sample": 1, "crop_size": [64, 32], "latent_pixels_per_view": 64, "workers": 0},
        "checkpoint_every": 50, "stage1": {"steps": 3}, "stage2": {"steps": 2, "sources": {"pseudo": 1, "self": 1, "cross": 0}},
    },
    "evaluate": {"splits": ["val"], "export_benchmark": False, "export_ply": False},
}


def snakemake(workdir: Path, config: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_command(workdir, config, *args), capture_output=True, text=True, env=snakemake_env(), timeout=1500)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_all_runs_2d_only_and_a_second_run_does_nothing(tmp_path):
    snakemake(tmp_path, TINY, "all")
    results = tmp_path / "results"
    assert not (results / "points").exists()  # no project stage
    assert "model3d" not in torch.load(results / "train" / "stage2" / "final.pt", weights_only=True)
    metrics = json.loads((results / "evaluate" / "stage2" / "metrics.json").read_text())
    assert metrics["benchmark"] == "nuimages11" and "3d" not in metrics["results"]
    assert len(metrics["results"]["2d"]["classes_scored"]) == 11
    pngs = sorted((results / "evaluate" / "stage2" / "nuimages" / "val").glob("*[0-9a-f].png"))
    assert len(pngs) == 2  # the val log's two images, named by sample_data token
    from PIL import Image

    fine = np.asarray(Image.open(pngs[0]))
    assert fine.shape == (90, 160) and set(np.unique(fine)) <= {0, *range(1, 24), 24}
    report = json.loads((results / "reports" / "pseudo_labels" / "val.json").read_text())
    assert report["coverage"]["points"] == 0 and len(report["classes_scored"]) == 11
    again = snakemake(tmp_path, TINY, "all", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # no points, so no 3D picture in the stage reports
    assert sorted(p.name for p in (results / "reports" / "stage2").iterdir()) == [
        "confusion.png", "curves.png", "metrics.html", "views.png"]


def test_defects_fail_the_shard_of_the_missing_image_only(tmp_path):
    config = json.loads(json.dumps(TINY))
    config["dataset"]["demo"]["defects"] = True
    snakemake(tmp_path, config, "results/data")
    defects = json.loads((tmp_path / "results" / "data" / "demo_defects.json").read_text())
    from pipeline.config import validate

    shards = assign_shards(split_samples(validate(config)["dataset"]), config["dataset"]["shards"])
    broken = next(name for name, ids in shards.items() if defects["missing_image"]["sample"] in ids)
    proc = snakemake(tmp_path, config, "prepare", "--keep-going", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "prepare" / f"{broken}.log").read_text()
    assert Path(defects["missing_image"]["filename"]).name in log and "Traceback" not in log
    prepared = tmp_path / "results" / "prepared"
    assert sorted(p.stem for p in prepared.glob("*.zarr")) == sorted(s for s in shards if s != broken)
    nulled = next(name for name, ids in shards.items() if defects["null_mask"]["sample"] in ids)
    if nulled != broken:
        reader = StoreReader(prepared / f"{nulled}.zarr", "prepared")
        assert reader.attrs["input_checks"].get("null_masks") == 1
