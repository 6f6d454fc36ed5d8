"""Measure the simulated CLIP backend on the demo dataset: label mIoU against ground truth.

Generates the demo scenes (as config.yaml: 648x484 colour, 320x240 working size), prepares
them, runs ``clip.backend: simulated`` with the default noise and with ``systematic_only``, and
reports mIoU / pixel accuracy over the benchmark classes (pixels with ground truth only), plus
the time per view. The default is tuned for mIoU ~20-25 (real MaskCLIP-level noise).

    PYTHONPATH=. python bench/clip_simulated.py [--scenes 4] [--views 12]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def scores(conf: np.ndarray) -> tuple[float, float]:
    """(mIoU over the classes present in ground truth, pixel accuracy), in percent, of a (K, K + 1) matrix."""
    from pipeline.metrics import accuracy, mean_iou

    return 100 * mean_iou(conf), 100 * accuracy(conf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--working-size", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5], help="noise seeds (clip.simulated.seed)")
    args = parser.parse_args()

    from pipeline.clip.stage import run_clip_stage, view_ground_truth_lut
    from pipeline.config import validate
    from pipeline.metrics import confusion
    from pipeline.stores import StoreReader
    from pipeline.prepare import prepare_shard
    from pipeline.vocab import apply_lut, benchmark

    bench = benchmark("scannet20")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        scenes = [f"scene{i:04d}_00" for i in range(args.scenes)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        for scene in scenes:
            subprocess.run([sys.executable, "-m", "pipeline", "demo-scene", "--out", str(root), "--scene", scene,
                            "--views", str(args.views)], check=True, env=env, capture_output=True)
        subprocess.run([sys.executable, "-m", "pipeline", "demo-meta", "--out", str(root), "--train", *scenes, "--val"],
                       check=True, env=env, capture_output=True)
        dataset = validate({"dataset": {"root": str(root), "frame_skip": 1, "working_size": list(args.working_size)}})["dataset"]
        prepared = Path(tmp) / "prepared.zarr"
        prepare_shard(dataset, "train-000", "train", scenes, prepared, threads=2)
        reader = StoreReader(prepared, "prepared")
        lut = view_ground_truth_lut(reader, bench)
        gt = {s: apply_lut(lut, reader.read(s, "views/label"), default=255).astype(np.uint8) for s in reader.samples}
        n_views = sum(len(v) for v in gt.values())
        print(f"demo: {args.scenes} scenes, {n_views} views at {args.working_size[0]}x{args.working_size[1]}, "
              f"{100 * np.mean([np.mean(v != 255) for v in gt.values()]):.1f}% of pixels with ground truth")
        print(f"\n| setting | label mIoU, mean over seeds {args.seeds} (min-max) | pixel accuracy (mean) | ms/view |")
        print("|---|---|---|---|")
        for name, sim in (("default", {}), ("systematic_only", {"systematic_only": True})):
            results, elapsed = [], 0.0
            for seed in args.seeds:
                out = Path(tmp) / f"clip-{name}.zarr"
                start = time.perf_counter()
                run_clip_stage(prepared, out, {"clip": {"backend": "simulated", "simulated": {**sim, "seed": seed}}})
                elapsed += time.perf_counter() - start
                store = StoreReader(out, "clip")
                conf = sum(confusion(gt[s], store.read(s, "views/label"), bench.n_classes) for s in store.samples)
                results.append(scores(conf))
            mious, accs = np.array(results).T
            print(f"| {name} | {mious.mean():.1f} ({mious.min():.1f}-{mious.max():.1f}) | {accs.mean():.1f} | "
                  f"{1000 * elapsed / n_views / len(args.seeds):.0f} |")
        size = sum(f.stat().st_size for f in (Path(tmp) / "clip-default.zarr").rglob("*") if f.is_file())
        print(f"\nclip store on disk (default, labels + confidence): {size / n_views / 1024:.1f} KiB/view")


if __name__ == "__main__":
    main()
