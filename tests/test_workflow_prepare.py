"""The DAG through the real `snakemake` command: prepare on generated demo data.

One module-scoped run (a tiny demo in a temp working directory) serves the checks: stores and
manifests appear, a second run does nothing, `--forcerun prepare_shard` with one store as target
recomputes exactly that shard, bad config and bad input give clear errors and no partial store.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.workflow_helpers import snakemake_command, snakemake_env, tiny_demo_config

pytestmark = pytest.mark.slow

TINY = tiny_demo_config(num_scenes=4, views=4)


def snakemake(workdir: Path, *args: str, config: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = snakemake_command(workdir, config or TINY, *args)
    env = snakemake_env()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def shards_of(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "prepared").glob("*.zarr"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    snakemake(workdir, "prepare")
    return workdir


def test_prepare_makes_stores_and_manifests(run):
    import pyarrow.parquet as pq

    from pipeline.stores import StoreReader

    stores = shards_of(run)
    assert stores, "no prepared store"
    samples = []
    for store in stores:
        reader = StoreReader(store, "prepared")
        samples += reader.samples
        assert reader.attrs["label_spaces"] == {"points": "nyu40", "views": "scannet-raw"}
    assert sorted(samples) == [f"scene{i:04d}_00" for i in range(4)]
    table = pq.read_table(run / "results" / "manifest.parquet").to_pydict()
    assert sorted(table["id"]) == sorted(samples)
    assert set(table["split"]) == {"train", "val"}
    assert all(n > 0 for n in table["n_points"]) and all(n > 0 for n in table["n_views"])
    # the demo injects -inf poses: the adapter skips and counts them
    assert sum(table["n_views_skipped"]) > 0


def test_second_run_does_nothing(run):
    proc = snakemake(run, "prepare", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_forcerun_one_shard_recomputes_only_it(run):
    stores = shards_of(run)
    target, others = stores[0], stores[1:]
    before = {s: s.stat().st_mtime_ns for s in stores}
    manifest_before = (run / "results" / "manifest.parquet").stat().st_mtime_ns
    proc = snakemake(run, str(target.relative_to(run)), "--forcerun", "prepare_shard")
    out = proc.stdout + proc.stderr
    assert "prepare_shard" in out and out.count("rule prepare_shard:") == 1
    assert target.stat().st_mtime_ns != before[target]
    for other in others:
        assert other.stat().st_mtime_ns == before[other]
    assert (run / "results" / "manifest.parquet").stat().st_mtime_ns == manifest_before


def test_dry_run_of_all_on_fresh_dir(tmp_path):
    proc = snakemake(tmp_path, "-n", "all")
    assert "demo_scene" in proc.stdout and "prepare_shard" in proc.stdout


def test_bad_config_names_the_key(tmp_path):
    bad = {**TINY, "dataset": {**TINY["dataset"], "frame_skip": "often"}}
    proc = snakemake(tmp_path, "-n", config=bad, check=False)
    assert proc.returncode != 0
    assert "frame_skip" in proc.stdout + proc.stderr


def test_bad_input_fails_its_shard_only(run, tmp_path):
    from pipeline.stores import StoreReader

    workdir = tmp_path / "wf"
    shutil.copytree(run / "results" / "data", workdir / "results" / "data")
    # Snakemake would regenerate the demo: reuse the generated data by disabling the demo.
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["dataset"]["demo"]["enabled"] = False
    reader = StoreReader(shards_of(run)[0], "prepared")
    victim = reader.samples[0]
    jpg = sorted((workdir / "results/data/scans" / victim / "color").glob("*.jpg"))[1]
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 3])
    proc = snakemake(workdir, "prepare", "--keep-going", config=config, check=False)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (workdir / "results/logs/prepare").glob("*.log"))
    assert str(jpg.relative_to(workdir)) in logs and "cannot decode image" in logs
    bad_shard = reader.attrs["shard"]
    assert not (workdir / "results/prepared" / f"{bad_shard}.zarr").exists()
    assert not list((workdir / "results/prepared").glob(".*partial*"))
    good = [p.name for p in shards_of(workdir)]
    assert good and f"{bad_shard}.zarr" not in good
