"""Benchmark the nuScenes prepare stage: time and store bytes per sample (one lidar key frame with
its cameras), on a format-true tree written by tests/nuscenes_fixture.py at full nuScenes size.

Images are synthetic (gradients, boxes and mild noise: they compress somewhat better or worse
than real street scenes), 6 cameras at 1600 x 900 by default, stored at the working size with the
chosen codec; the lidar cloud has nuScenes' ~34.7 k points per sweep. Prints one JSON object.

    PYTHONPATH=. python bench/prepare_nuscenes.py [--samples 8] [--threads 2] [--sweeps 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _bytes(path: Path, part: str = "") -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and part in str(f.relative_to(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="key frames (in 2 scenes)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(1600, 900))
    parser.add_argument("--working-size", type=int, nargs=2, default=(800, 450))
    parser.add_argument("--codec", default="jpeg", choices=("jpeg", "png", "raw"))
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument("--points", type=int, default=34720)
    parser.add_argument("--sweeps", type=int, default=0, help="dataset.nuscenes.sweeps (the tree has 9 sweeps between key frames)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from pipeline.config import validate
    from pipeline.images import read_view_images
    from pipeline.prepare import prepare_shard
    from pipeline.stores import StoreReader
    from tests.nuscenes_fixture import FixtureSpec, write_nuscenes

    per_scene = max(1, args.samples // 2)
    spec = FixtureSpec(samples_per_scene=per_scene, sweeps_between=9 if args.sweeps else 0, image_size=tuple(args.image_size),
                       n_points=args.points, jpeg_quality=95)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fx = write_nuscenes(Path(tmp) / "nuscenes", spec)
        generate = time.perf_counter() - start
        samples = [s for name in spec.scenes for s in fx.scene_samples[name]]
        source_jpeg = statistics.mean((fx.root / fx.filename[t]).stat().st_size for s in samples for t in fx.camera_token[s].values())
        dataset = validate({"dataset": {"kind": "nuscenes", "root": str(fx.root), "working_size": list(args.working_size),
                                        "image_codec": args.codec, "jpeg_quality": args.jpeg_quality,
                                        "nuscenes": {"version": spec.version, "sweeps": args.sweeps}}})["dataset"]
        out = Path(tmp) / "prepared" / "train-000.zarr"
        start = time.perf_counter()
        prepare_shard(dataset, "train-000", "train", samples, out, threads=args.threads)
        seconds = time.perf_counter() - start
        reader = StoreReader(out, "prepared")
        reads = []
        for sample in samples:
            t0 = time.perf_counter()
            read_view_images(reader, sample)
            reads.append(time.perf_counter() - t0)
        total = _bytes(out)
        print(json.dumps({
            "samples": len(samples),
            "cameras": 6,
            "image_size": list(args.image_size),
            "working_size": list(args.working_size),
            "codec": args.codec,
            "jpeg_quality": args.jpeg_quality,
            "points_per_sample": int(reader.sample_attrs(samples[0])["sizes"]["point"]),
            "sweeps": args.sweeps,
            "threads": args.threads,
            "prepare_s_per_sample": round(seconds / len(samples), 3),
            "store_kib_per_sample": round(total / len(samples) / 1024, 1),
            "images_kib_per_sample": round(_bytes(out, "views/image") / len(samples) / 1024, 1),
            "points_kib_per_sample": round(_bytes(out, "points/") / len(samples) / 1024, 1),
            "read_images_ms_per_sample": round(1000 * statistics.median(reads), 1),
            "source_jpeg_kib_per_image": round(source_jpeg / 1024, 1),
            "tree_generation_s": round(generate, 1),
        }, indent=1))


if __name__ == "__main__":
    main()
