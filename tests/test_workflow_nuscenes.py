"""The nuScenes path through the real `snakemake` command, on a tiny generated nuScenes-format demo:
the whole DAG ends in an official lidarseg submission, a second run does nothing, and a broken
input fails its shard only (one line naming the file) while the others complete under
--keep-going, leaving no half-written store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.membership import split_samples
from pipeline.shards import assign_shards
from tests.workflow_helpers import snakemake_command, snakemake_env

pytestmark = pytest.mark.slow

TINY = {
    "results": "results",
    "dataset": {
        "name": "tiny_nuscenes", "kind": "nuscenes", "root": "results/data", "nuscenes": {"version": "v1.0-mini"},
        "splits": ["mini_train", "mini_val"], "shards": {"mini_train": 2, "mini_val": 1}, "working_size": [160, 90],
        "demo": {"enabled": True, "num_scenes": 3, "num_val": 1, "seed": 0, "color_size": [160, 90], "samples_per_scene": 2,
                 "lidar_beams": 16, "lidar_azimuths": 256, "defects": True},
    },
    "vocabulary": {"benchmark": "nuscenes16"},
    "clip": {"backend": "simulated"},
    "sam": {"backend": "simulated"},
    "train": {
        "device": "cpu", "threads": 2, "splits": ["mini_train"], "net2d": {"backbone": "tiny"},
        "net3d": {"size": "tiny", "voxel_size": 0.4, "input_features": ["intensity"]},
        "data": {"batch_size": 2, "views_per_sample": 1, "crop_size": [64, 32], "latent_pixels_per_view": 64,
                 "max_voxels_per_batch": 4000, "workers": 0},
        "checkpoint_every": 50, "stage1": {"steps": 3}, "stage2": {"steps": 2},
    },
    "evaluate": {"splits": ["mini_val"], "export_benchmark": False, "export_ply": False},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_command(workdir, TINY, *args), capture_output=True, text=True, env=snakemake_env(), timeout=1500)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_all_ends_in_an_official_submission_and_a_second_run_does_nothing(tmp_path):
    snakemake(tmp_path, "all")
    out = tmp_path / "results" / "evaluate" / "stage2"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmark"] == "nuscenes16" and "miou_official" in metrics["results"]["3d"]
    meta = json.loads((out / "mini_val" / "submission.json").read_text())["meta"]
    assert set(meta) == {"use_camera", "use_lidar", "use_radar", "use_map", "use_external"}
    bins = sorted((out / "lidarseg" / "mini_val").glob("*_lidarseg.bin"))
    assert len(bins) == 2  # the one validation scene's two keyframes
    labels = np.concatenate([np.fromfile(b, dtype=np.uint8) for b in bins])
    assert labels.min() >= 1 and labels.max() <= 16
    again = snakemake(tmp_path, "all", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # the report holds the evaluation, curves, heatmaps and pictures of both stages, and no warnings
    proc = snakemake(tmp_path, "--report", "report.html")
    assert "Missing metadata" not in proc.stdout + proc.stderr
    added = {line.split()[1] for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Adding ")}
    assert {"metrics.html", "curves.png", "confusion.png", "views.png", "points.png", "mini_val.html"} <= added, added
    assert any(name.endswith(".overlays.png") for name in added)
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "what this run did" in html
    for stage in ("stage1", "stage2"):
        assert sorted(p.name for p in (tmp_path / "results" / "reports" / stage).iterdir()) == [
            "confusion.png", "curves.png", "metrics.html", "points.png", "views.png"]


def test_a_broken_input_fails_its_shard_only(tmp_path):
    snakemake(tmp_path, "results/data")  # the generated dataset
    shards = assign_shards(split_samples(_validated()["dataset"]), TINY["dataset"]["shards"])
    broken_shard, victims = next((name, ids) for name, ids in shards.items() if name.startswith("mini_train"))
    tables = tmp_path / "results" / "data" / "v1.0-mini"
    records = {r["token"]: r for r in json.loads((tables / "sample_data.json").read_text())}
    lidar = next(r for r in records.values() if r["sample_token"] == victims[0] and "LIDAR_TOP" in r["filename"])
    lidarseg = next(r for r in json.loads((tables / "lidarseg.json").read_text()) if r["sample_data_token"] == lidar["token"])
    path = tmp_path / "results" / "data" / lidarseg["filename"]
    path.write_bytes(path.read_bytes()[:-5])  # a lidarseg file shorter than its point cloud
    proc = snakemake(tmp_path, "prepare", "--keep-going", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "prepare" / f"{broken_shard}.log").read_text()
    assert str(path.name) in log and "Traceback" not in log
    prepared = tmp_path / "results" / "prepared"
    assert not (prepared / f"{broken_shard}.zarr").exists()
    assert not [p for p in prepared.iterdir() if ".partial-" in p.name]  # nothing half-written
    assert sorted(p.stem for p in prepared.glob("*.zarr")) == sorted(s for s in shards if s != broken_shard)


def _validated() -> dict:
    from pipeline.config import validate

    return validate(TINY)
