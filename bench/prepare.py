"""Benchmark the prepare stage: time per scene, store bytes per view, image codec trade-off.

Generates demo scenes (ScanNet export format), prepares them once per image codec and reports,
per codec: prepare wall time per scene, store bytes per view (all arrays, and images alone),
and the time to read back one view's colour image (what the trainer pays per view).

    PYTHONPATH=. python bench/prepare.py [--scenes 4] [--views 12] [--working-size 320 240]

Real ScanNet sizes: --color-size 1296 968 --depth-size 640 480 --working-size 640 480.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def array_bytes(store: Path, sample: str, prefix: str) -> int:
    return sum(f.stat().st_size for f in (store / sample).rglob("*") if f.is_file() and prefix in str(f.relative_to(store / sample)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--color-size", type=int, nargs=2, default=(648, 484))
    parser.add_argument("--depth-size", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--working-size", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--codecs", nargs="+", default=["jpeg", "png", "raw"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from pipeline.config import validate
    from pipeline.images import read_view_images
    from pipeline.stores import StoreReader
    from pipeline.prepare import prepare_shard

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        scenes = [f"scene{i:04d}_00" for i in range(args.scenes)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        start = time.perf_counter()
        for scene in scenes:
            subprocess.run(
                [sys.executable, "-m", "pipeline", "demo-scene", "--out", str(root), "--scene", scene,
                 "--views", str(args.views), "--color-size", *map(str, args.color_size),
                 "--depth-size", *map(str, args.depth_size)],
                check=True, env=env, capture_output=True,
            )
        subprocess.run([sys.executable, "-m", "pipeline", "demo-meta", "--out", str(root), "--train", *scenes, "--val"],
                       check=True, env=env, capture_output=True)
        gen = (time.perf_counter() - start) / len(scenes)
        print(f"demo generation: {gen:.2f} s/scene ({args.views} views, colour {args.color_size}, depth {args.depth_size})")
        print()
        print("| codec | prepare s/scene | store KiB/view | images KiB/view | depth KiB/view | read image ms/view |")
        print("|---|---|---|---|---|---|")
        for codec in args.codecs:
            dataset = validate({"dataset": {"root": str(root), "frame_skip": 1, "working_size": list(args.working_size),
                                            "image_codec": codec}})["dataset"]
            out = Path(tmp) / f"prepared-{codec}.zarr"
            start = time.perf_counter()
            prepare_shard(dataset, "train-000", "train", scenes, out, threads=args.threads)
            per_scene = (time.perf_counter() - start) / len(scenes)
            reader = StoreReader(out, "prepared")
            n_views = sum(reader.sample_attrs(s)["sizes"]["view"] for s in reader.samples)
            total = dir_bytes(out)
            image = sum(array_bytes(out, s, "views/image") for s in reader.samples)
            depth = sum(array_bytes(out, s, "views/depth") for s in reader.samples)
            times = []
            for sample in reader.samples:
                for view in range(reader.sample_attrs(sample)["sizes"]["view"]):
                    t0 = time.perf_counter()
                    read_view_images(reader, sample, [view])
                    times.append(time.perf_counter() - t0)
            print(f"| {codec} | {per_scene:.2f} | {total / n_views / 1024:.1f} | {image / n_views / 1024:.1f} | "
                  f"{depth / n_views / 1024:.1f} | {1000 * statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
