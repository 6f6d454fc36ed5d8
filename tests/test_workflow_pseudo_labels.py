"""`snakemake pseudo_labels` through the real command: it finishes, a second run does nothing, and
after `kill -9` of the whole run mid-way `--rerun-incomplete` completes with arrays identical to an
uninterrupted run; no half-written output is ever taken as done. Also `snakemake --report`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from pipeline.stores import PSEUDO_LABEL_STORES
from tests.workflow_helpers import report_tables, snakemake_command, snakemake_env, store_arrays, tiny_demo_config

pytestmark = pytest.mark.slow

TINY = tiny_demo_config(num_scenes=3, views=5, clip={"backend": "simulated"}, sam={"backend": "simulated"}, report={"overlays": 1})
STAGES = ("prepared", *PSEUDO_LABEL_STORES)


def command(workdir: Path, *args: str) -> list[str]:
    return snakemake_command(workdir, TINY, *args)


def env() -> dict:
    return snakemake_env()


def snakemake(workdir: Path, *args: str) -> str:
    proc = subprocess.run(command(workdir, *args), capture_output=True, text=True, env=env(), timeout=1200)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc.stdout + proc.stderr


def arrays(workdir: Path) -> dict[str, np.ndarray]:
    """Every array of every stage store (no metadata), keyed by stage/shard/sample/array."""
    return store_arrays(workdir, STAGES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, "pseudo_labels")
    return workdir


def test_pseudo_labels_completes_and_second_run_does_nothing(reference):
    for stage in STAGES:
        assert len(list((reference / "results" / stage).glob("*.zarr"))) == 3, stage
    for split in ("train", "val"):
        for ext in ("json", "md", "png"):
            assert (reference / "results" / "reports" / "pseudo_labels" / f"{split}.{ext}").is_file()
    # the demo's injected -inf poses reach the report as counted inputs (docs/data-layout.md, Input checks)
    tables = report_tables(reference)
    assert sum(tables[f"{split}.json"]["input_checks"].get("invalid_pose_views", 0) for split in ("train", "val")) > 0
    assert "## Input checks" in (reference / "results" / "reports" / "pseudo_labels" / "train.md").read_text()
    out = snakemake(reference, "pseudo_labels", "-n")
    assert "Nothing to be done" in out


def test_snakemake_report(reference):
    snakemake(reference, "pseudo_labels", "--report", "report.html")
    html = (reference / "report.html").read_text(errors="replace")
    assert "train.png" in html and "overlays.png" in html


def _partial_or_store_count(workdir: Path) -> int:
    results = workdir / "results"
    return sum(1 for stage in ("sam", "refined", "points") for _ in (results / stage).glob("*.zarr")) if results.is_dir() else 0


def test_kill_9_mid_run_then_rerun_incomplete_gives_identical_arrays(reference, tmp_path):
    workdir = tmp_path / "killed"
    workdir.mkdir()
    proc = subprocess.Popen(command(workdir, "pseudo_labels"), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        # kill once the later stages have started: some stores of sam/refine/project exist, not all
        while time.monotonic() < deadline and proc.poll() is None and _partial_or_store_count(workdir) < 2:
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be killed; make the config bigger"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    # nothing incomplete is visible as a store: every store that exists opens as complete
    from pipeline.stores import StoreReader

    for stage in STAGES:
        for store in (workdir / "results" / stage).glob("*.zarr"):
            StoreReader(store)
    assert not (workdir / "results" / "points").is_dir() or len(list((workdir / "results" / "points").glob("*.zarr"))) < 3
    snakemake(workdir, "--unlock")
    snakemake(workdir, "pseudo_labels", "--rerun-incomplete")
    assert "Nothing to be done" in snakemake(workdir, "pseudo_labels", "-n")
    got, want = arrays(workdir), arrays(reference)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert not list((workdir / "results").rglob(".*.partial-*"))
    assert report_tables(workdir).keys() == report_tables(reference).keys()
    for name, data in report_tables(reference).items():
        assert report_tables(workdir)[name]["stages"] == data["stages"], name
