"""A damaged store through the real `snakemake`: the reading job fails with one line naming store,
sample and array, the store is moved aside, and the next run recomputes the producer, not only
the readers (docs/data-layout.md, "Integrity")."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pipeline.stores.integrity import DAMAGED_INFIX
from tests.workflow_helpers import snakemake_command, snakemake_env, tiny_demo_config

pytestmark = pytest.mark.slow

TINY = tiny_demo_config(num_scenes=3, views=4, clip={"backend": "simulated"}, sam={"backend": "simulated"}, report={"overlays": 1})
SHARD = "train-000"


def snakemake(workdir: Path, *args: str, ok: bool = True) -> str:
    proc = subprocess.run(snakemake_command(workdir, TINY, *args), capture_output=True, text=True, env=snakemake_env(), timeout=1200)
    if ok and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    if not ok and proc.returncode == 0:
        raise AssertionError(f"snakemake {' '.join(args)} should have failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def scheduled(dry_run: str) -> dict[str, set[str]]:
    """{rule: shards} of the jobs a dry run lists."""
    out: dict[str, set[str]] = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", dry_run, flags=re.M):
        shard = re.search(r"shard=([\w-]+)", body)
        out.setdefault(rule, set()).add(shard.group(1) if shard else "")
    return out


def test_deleted_chunk_moves_the_producer_output_aside_and_the_next_run_recomputes_it(tmp_path):
    snakemake(tmp_path, "pseudo_labels")
    prepared = tmp_path / "results" / "prepared" / f"{SHARD}.zarr"
    sample = sorted(p.name for p in prepared.iterdir() if p.is_dir())[0]
    for chunk in (prepared / sample / "points" / "xyz" / "c").rglob("*"):
        if chunk.is_file():
            chunk.unlink()

    snakemake(tmp_path, "pseudo_labels", "--forcerun", "project_shard", ok=False)  # project reads points/xyz
    log = (tmp_path / "results" / "logs" / "project" / f"{SHARD}.log").read_text()
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in log
    assert f"results/prepared/{SHARD}.zarr, " in errors[0] and f"sample {sample!r}" in errors[0] and "array 'points/xyz'" in errors[0]
    assert not prepared.exists() and list(prepared.parent.glob(f"{SHARD}.zarr{DAMAGED_INFIX}*"))

    jobs = scheduled(snakemake(tmp_path, "pseudo_labels", "-n"))
    assert SHARD in jobs.get("prepare_shard", set()), f"the producer is not rescheduled: {jobs}"
    assert SHARD in jobs.get("project_shard", set())
    snakemake(tmp_path, "pseudo_labels")
    assert "Nothing to be done" in snakemake(tmp_path, "pseudo_labels", "-n")
