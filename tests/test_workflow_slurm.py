"""The SLURM profile (workflow/profiles/slurm) against a real scheduler: a single-node Slurm 22.05
that .ci/start_slurm.sh starts (CI runs it first). `snakemake pseudo_labels` on a two-shard demo
submits every per-shard job with sbatch, and the stores equal a local run's array for array; one
shard's stage then reruns alone on the cluster, as README "SLURM" tells users.

Skipped only when no scheduler runs and none can be started here (not root, or the Slurm packages
absent). A scheduler this module started is stopped at its end; one that ran before is left."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.workflow_helpers import REPO, report_tables, snakemake_command, snakemake_env, store_arrays, tiny_demo_config

pytestmark = pytest.mark.slow

START = REPO / ".ci" / "start_slurm.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
TINY = tiny_demo_config(num_scenes=2, views=4, clip={"backend": "simulated"}, sam={"backend": "simulated"}, report={"overlays": 1})
TINY["dataset"]["shards"] = {"train": 1, "val": 1}
SHARDS = ("train-000", "val-000")
SHARD_RULES = ("prepare_shard", "clip_shard", "sam_shard", "refine_shard", "project_shard", "report_shard")
# One CPU per job, so the 2-core test node runs the two shards side by side (the local reference
# run gets the same threads: the executor is the only difference).
THREADS = ("--set-threads", *(f"{rule}=1" for rule in ("prepare_shard", "clip_shard", "sam_shard", "project_shard")))
JOB_PREFIX = f"cnstest{os.getpid()}"
SLURM = (
    "--workflow-profile", str(PROFILE),
    "--slurm-status-command", "squeue",  # the test cluster has no accounting database (sacct fails)
    "--slurm-init-seconds-before-status-checks", "5",
    "--slurm-jobname-prefix", JOB_PREFIX,
    "--latency-wait", "5",
    # the profile asks for cluster-sized jobs; the test node has 2 CPUs and a few GB
    "--default-resources", "runtime=10", "mem_mb=500",
    "--set-resources", *(f"{rule}:mem_mb=500" for rule in SHARD_RULES),
)
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: .*/slurm_logs/rule_(\w+)/([^/]+)/\d+\.log\)")
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cluster():
    """A running single-node SLURM: the one already up, or one started here (and stopped after)."""
    if subprocess.run(["bash", str(START), "status"]).returncode == 0:
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM running, and starting one needs root: run `sudo .ci/start_slurm.sh` first")
    started = subprocess.run(["bash", str(START), "--no-install"], capture_output=True, text=True, timeout=300)
    if started.returncode == 3:  # packages absent
        pytest.skip(f"cannot start SLURM here: {started.stderr.strip().splitlines()[-1]}")
    assert started.returncode == 0, f".ci/start_slurm.sh failed:\n{started.stderr[-3000:]}"
    try:
        yield
    finally:
        subprocess.run(["bash", str(START), "stop"], check=True, timeout=120)


def run(workdir: Path, *args: str) -> str:
    """Run `snakemake` in ``workdir`` (its own process group); its output. Fails after TIMEOUT_S,
    killing it and cancelling its SLURM jobs (the plugin can wait forever on a status it cannot get)."""
    workdir.mkdir(exist_ok=True)
    log = workdir / f"snakemake.{len(list(workdir.glob('snakemake.*.out')))}.out"
    with log.open("w") as out:
        proc = subprocess.Popen(snakemake_command(workdir, TINY, *args), env=snakemake_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake's SLURM executor ignores SIGTERM
            proc.wait()
            cancel_test_jobs()
            rc = None
    text = log.read_text()
    if rc != 0:
        why = f"timed out after {TIMEOUT_S} s" if rc is None else f"exit {rc}"
        raise AssertionError(f"snakemake {' '.join(args[:1])} ({why}):\n{text[-6000:]}")
    return text


def cancel_test_jobs() -> None:
    """scancel every job this test module submitted (job names start with JOB_PREFIX)."""
    queue = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout.split("\n")
    ids = [line.split()[0] for line in queue if line.strip() and line.split()[1].startswith(JOB_PREFIX)]
    if ids:
        subprocess.run(["scancel", *ids])


def submitted(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job the output says went to SLURM."""
    return [(rule, wildcards) for _, rule, wildcards in SUBMITTED.findall(output)]


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """Work folders of the same config run locally and through the SLURM profile; the SLURM run's output."""
    local, slurm = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    run(local, "pseudo_labels", *THREADS)
    return local, slurm, run(slurm, "pseudo_labels", *SLURM, *THREADS)


def test_pseudo_labels_on_slurm_equal_the_local_run(runs):
    local, slurm, output = runs
    jobs = submitted(output)
    assert sorted(jobs) == sorted(set(jobs)), "a job was submitted twice"
    per_shard = {(rule, shard) for rule in SHARD_RULES for shard in SHARDS}
    assert per_shard <= set(jobs), f"per-shard jobs not submitted to SLURM: {sorted(per_shard - set(jobs))}"
    assert {rule for rule, _ in jobs} == {*SHARD_RULES, "demo_scene"}, "only the demo's scenes and per-shard jobs go to SLURM"
    got, want = store_arrays(slurm), store_arrays(local)
    assert len(want) > 50 and sorted(got) == sorted(want)
    for key, data in want.items():
        np.testing.assert_array_equal(got[key], data, err_msg=key)
    assert report_tables(slurm).keys() == report_tables(local).keys() == {"train.json", "val.json"}
    for name, table in report_tables(local).items():
        assert report_tables(slurm)[name]["stages"] == table["stages"], name


def test_one_shard_reruns_alone_on_slurm(runs):
    local, slurm, _ = runs
    sam = slurm / "results" / "sam" / "val-000.zarr"
    before = sam.stat().st_mtime_ns
    output = run(slurm, "results/sam/val-000.zarr", "--forcerun", "sam_shard", *SLURM, *THREADS)
    assert submitted(output) == [("sam_shard", "val-000")]
    assert sam.stat().st_mtime_ns != before, "the store was not rewritten"
    got, want = store_arrays(slurm, ("sam",)), store_arrays(local, ("sam",))
    assert sorted(got) == sorted(want)
    for key, data in want.items():
        np.testing.assert_array_equal(got[key], data, err_msg=key)
