"""Kill -9 at random moments, then the README's recovery, and compare with an uninterrupted run.

Pseudo-labels: runs `snakemake pseudo_labels` on a small demo once uninterrupted (the reference,
timed T), then in fresh directories until ``--kills`` runs were killed (a run that finishes
before its moment is recovered and compared too, but does not count), each killed (SIGKILL to the whole process
group: Snakemake and every job) at a uniformly random moment in (0.03 T, 0.97 T), T shrinking to
the duration of any run that finished before its moment (the machine got less loaded), then recovered
exactly as the README says (`snakemake --unlock`, then `snakemake pseudo_labels
--rerun-incomplete`); checks that a dry run then has nothing to do and that every array of every
store equals the reference's.

Training: from a copy of the reference with the pseudo-labels done, `snakemake train_stage1` is
killed after its first periodic checkpoint plus a random delay, recovered the same way, and its
``final.pt`` weights compared tensor by tensor with an uninterrupted run (CPU, deterministic).

    PYTHONPATH=. python bench/kill_resume.py [--kills 10] [--train-kills 2] [--seed 0] [--json out.json]

Exit status 1 if any recovered run differs from the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.workflow_helpers import snakemake_command, snakemake_env, store_arrays, tiny_demo_config  # noqa: E402

STAGES = ("prepared", "clip", "sam", "refined", "points")
TRAIN = {"threads": 1, "checkpoint_every": 4, "stage1": {"steps": 16}, "data": {"batch_size": 1}}
CONFIG = tiny_demo_config(num_scenes=3, views=5, clip={"backend": "simulated"}, sam={"backend": "simulated"},
                          report={"overlays": 1}, train=TRAIN)


def run(workdir: Path, *args: str) -> str:
    """One snakemake command to completion; raises with its output on failure."""
    proc = subprocess.run(snakemake_command(workdir, CONFIG, *args), capture_output=True, text=True,
                          env=snakemake_env(), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {workdir}:\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def killed_run(workdir: Path, target: str, until) -> dict:
    """Start ``snakemake <target>``, SIGKILL its process group once ``until(elapsed)`` is true
    (or report that it finished first); returns what was killed when."""
    proc = subprocess.Popen(snakemake_command(workdir, CONFIG, target), env=snakemake_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    start = time.monotonic()
    while proc.poll() is None and not until(time.monotonic() - start):
        time.sleep(0.05)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done = {s: len(list((workdir / "results" / s).glob("*.zarr"))) for s in STAGES} if (workdir / "results").is_dir() else {}
    return {"killed_at_s": round(time.monotonic() - start, 2), "finished_first": finished, "stores_done": done}


def recover(workdir: Path, target: str) -> float:
    """The README's recovery: unlock, then rerun with --rerun-incomplete; returns its seconds."""
    start = time.monotonic()
    run(workdir, "--unlock")
    run(workdir, target, "--rerun-incomplete")
    elapsed = time.monotonic() - start
    if "Nothing to be done" not in run(workdir, target, "-n"):
        raise RuntimeError(f"{workdir}: a dry run after recovery still has work to do")
    return elapsed


def same_arrays(a: dict, b: dict) -> bool:
    import numpy as np

    return sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def same_weights(a: Path, b: Path) -> bool:
    import torch

    sa, sb = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    return all(sa[net].keys() == sb[net].keys() and all(torch.equal(sa[net][k], sb[net][k]) for k in sa[net])
               for net in ("model2d", "model3d"))


def pseudo_label_kills(tmp: Path, kills: int, rng: random.Random) -> tuple[Path, list[dict]]:
    ref = tmp / "reference"
    ref.mkdir()
    start = time.monotonic()
    run(ref, "pseudo_labels")
    total = time.monotonic() - start
    want = store_arrays(ref, STAGES)
    rows: list[dict] = []
    for i in range(3 * kills):  # a run that finishes before its moment is not a kill: draw another
        if sum(not r["finished_first"] for r in rows) >= kills:
            break
        workdir = tmp / f"kill{i}"
        workdir.mkdir()
        moment = rng.uniform(0.03, 0.97) * total
        row = {"target": "pseudo_labels", "reference_s": round(total, 1), **killed_run(workdir, "pseudo_labels", lambda t: t >= moment)}
        if row["finished_first"]:  # the machine got faster than the reference (less load): draw within this run
            total = min(total, row["killed_at_s"])
        row["recovery_s"] = round(recover(workdir, "pseudo_labels"), 1)
        row["identical"] = same_arrays(store_arrays(workdir, STAGES), want)
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(workdir)
    return ref, rows


def training_kills(tmp: Path, ref: Path, kills: int, rng: random.Random) -> list[dict]:
    base = tmp / "train_reference"
    shutil.copytree(ref, base, symlinks=True)
    run(base, "train_stage1")
    want = base / "results" / "train" / "stage1" / "final.pt"
    rows = []
    for i in range(kills):
        workdir = tmp / f"train_kill{i}"
        shutil.copytree(ref, workdir, symlinks=True)
        folder = workdir / "results" / "train" / "stage1" / "checkpoints"
        delay, seen = rng.uniform(0.0, 3.0), []

        def after_checkpoint(_elapsed: float) -> bool:
            if not seen and folder.is_dir() and any(folder.glob("step_*.pt")):
                seen.append(time.monotonic())
            return bool(seen) and time.monotonic() - seen[0] >= delay

        row = {"target": "train_stage1", **killed_run(workdir, "train_stage1", after_checkpoint)}
        row["checkpoints_at_kill"] = sorted(p.name for p in folder.glob("step_*.pt")) if folder.is_dir() else []
        row["recovery_s"] = round(recover(workdir, "train_stage1"), 1)
        row["identical"] = same_weights(workdir / "results" / "train" / "stage1" / "final.pt", want)
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(workdir)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10, help="random kill moments of pseudo_labels")
    parser.add_argument("--train-kills", type=int, default=2, help="kills of train_stage1 after a periodic checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        ref, rows = pseudo_label_kills(Path(tmp), args.kills, rng)
        rows += training_kills(Path(tmp), ref, args.train_kills, rng)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    killed = [r for r in rows if not r["finished_first"]]
    same = sum(r["identical"] for r in rows)
    print(f"{len(rows)} runs ({len(killed)} killed before they finished): {same} identical to the uninterrupted run")
    return 0 if same == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
