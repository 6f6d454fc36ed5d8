"""Training throughput: steps/s and the share of each step spent waiting for data.

Runs stage-1 steps of the real trainer (``train.engine.trainer.run_stage``) on synthetic,
contract-true stores (``tests/train_synthetic.py``) for the tiny settings (tests), the slim 2D
network with the tiny 3D one (the demos' default since slim exists) and the
full-size networks (ResNet-50 DeepLabV3, MinkUNet34C), each with data loading in the main
process (``workers 0``, the baseline) and in 2 worker processes. The first step (warm-up) is
excluded. Usage::

    PYTHONPATH=. python bench/train_step.py [--threads 2] [--steps 4] [--settings tiny full] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pipeline, train and the tests' store factory from this checkout

SETTINGS = {
    "tiny": {
        "net2d": {"backbone": "tiny"},
        "net3d": {"size": "tiny", "voxel_size": 0.1},
        "data": {"batch_size": 2, "views_per_sample": 2, "crop_size": [64, 48], "latent_pixels_per_view": 512},
    },
    "slim": {
        "net2d": {"backbone": "slim"},
        "net3d": {"size": "tiny", "voxel_size": 0.1},
        "data": {"batch_size": 2, "views_per_sample": 2, "crop_size": [64, 48], "latent_pixels_per_view": 512},
    },
    "full": {
        "net2d": {"backbone": "resnet50"},
        "net3d": {"size": "full", "voxel_size": 0.05},
        "data": {"batch_size": 2, "views_per_sample": 2, "crop_size": [320, 240], "latent_pixels_per_view": 4096},
    },
}


def run(setting: str, workers: int, steps: int, threads: int, device: str, stores: dict, root: Path) -> dict:
    from pipeline.config import validate
    from train.engine.trainer import run_stage

    cfg = json.loads(json.dumps(SETTINGS[setting]))
    cfg["data"]["workers"] = workers
    cfg.update(threads=threads, device=device, checkpoint_every=10**6, stage1={"steps": steps + 1})
    records = []
    start = time.perf_counter()
    run_stage(validate({"train": cfg}), "stage1", stores, root / f"{setting}-w{workers}", progress=False,
              on_step=lambda step, rec: records.append(rec))
    wall = time.perf_counter() - start
    timed = records[1:]
    step_s = sum(r["step_s"] for r in timed) / len(timed)
    wait_s = sum(r["data_wait_s"] for r in timed) / len(timed)
    return {"setting": setting, "workers": workers, "steps_timed": len(timed), "s_per_step": step_s,
            "steps_per_s": 1 / step_s, "data_wait_share": wait_s / step_s, "wall_s_incl_setup": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration (after 1 warm-up step)")
    parser.add_argument("--settings", nargs="+", default=["tiny", "full"], choices=sorted(SETTINGS))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2], help="data-loader workers to compare (first = baseline)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--points", type=int, default=40000, help="points per synthetic sample")
    args = parser.parse_args()

    import torch

    from tests.train_synthetic import make_stores

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        stores = make_stores(root / "stores", samples_per_shard=(4,), n_points=args.points, n_views=6, size=(320, 240))["stores"]
        print(f"synthetic stores: 4 samples x {args.points} points x 6 views of 320x240 in {time.perf_counter() - t0:.1f} s")
        rows = []
        for setting in args.settings:
            base = None
            for workers in args.workers:
                row = run(setting, workers, args.steps, args.threads, args.device, stores, root)
                base = base or row
                row["speedup_vs_workers0"] = base["s_per_step"] / row["s_per_step"]
                rows.append(row)
                print(json.dumps(row))
    print(f"\nmachine: {platform.processor() or platform.machine()}, torch threads {args.threads}, device {args.device}")
    print("| setting | workers | s/step | steps/s | data-wait share | speed-up vs workers 0 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['workers']} | {r['s_per_step']:.2f} | {r['steps_per_s']:.3f} | {100 * r['data_wait_share']:.0f}% | {r['speedup_vs_workers0']:.2f}x |")


if __name__ == "__main__":
    main()
