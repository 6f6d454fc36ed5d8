"""Benchmark the nuImages prepare stage: time and store bytes per image, on the procedural
nuImages-format demo (pipeline/demo_nuimages) rendered at nuImages' full 1600 x 900.

The images are ray-cast demo streets (textured, JPEG 90), the annotations the demo's object and
surface RLE masks; prepare stores the image at the working size with the chosen codec plus the
get_segmentation ground truth (uint16 fine index and instance maps). Prints one JSON object.

    PYTHONPATH=. python bench/prepare_nuimages.py [--logs 2] [--per-log 4] [--threads 2]
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
    parser.add_argument("--logs", type=int, default=2, help="logs (streets), all in the train split")
    parser.add_argument("--per-log", type=int, default=4, help="images per log")
    parser.add_argument("--image-size", type=int, nargs=2, default=(1600, 900))
    parser.add_argument("--working-size", type=int, nargs=2, default=(800, 450))
    parser.add_argument("--codec", default="jpeg", choices=("jpeg", "png", "raw"))
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from pipeline.config import validate
    from pipeline.datasets.nuimages_tables import NuImagesTables
    from pipeline.demo_nuimages.generate import NuImagesDemoOptions, generate_dataset
    from pipeline.demo_nuimages.spec import samples as demo_samples
    from pipeline.images import read_view_images
    from pipeline.prepare import prepare_shard
    from pipeline.stores import StoreReader

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "nuimages"
        start = time.perf_counter()
        generate_dataset(root, NuImagesDemoOptions(logs=args.logs, val=0, samples_per_log=args.per_log,
                                                   camera_size=tuple(args.image_size)))
        generate = time.perf_counter() - start
        samples = demo_samples(0, args.logs, 0, args.per_log)["train"]
        start = time.perf_counter()
        tables = NuImagesTables(root, "v1.0-train", samples)
        index_s = time.perf_counter() - start
        source_jpeg = statistics.mean((root / c.filename).stat().st_size for c in tables.cameras.values())
        masks = sum(len(tables.objects[t]) + len(tables.surfaces[t]) for t in tables.cameras)
        dataset = validate({"dataset": {"kind": "nuimages", "root": str(root), "working_size": list(args.working_size),
                                        "image_codec": args.codec, "jpeg_quality": args.jpeg_quality}})["dataset"]
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
        n = len(samples)
        print(json.dumps({
            "images": n,
            "image_size": list(args.image_size),
            "working_size": list(args.working_size),
            "codec": args.codec,
            "jpeg_quality": args.jpeg_quality,
            "masks_per_image": round(masks / n, 1),
            "prepare_s_per_image": round(seconds / n, 3),
            "table_index_s": round(index_s, 3),
            "store_kib_per_image": round(_bytes(out) / n / 1024, 1),
            "images_kib_per_image": round(_bytes(out, "views/image") / n / 1024, 1),
            "labels_kib_per_image": round((_bytes(out, "views/label") + _bytes(out, "views/instance")) / n / 1024, 1),
            "read_images_ms_per_image": round(1000 * statistics.median(reads), 1),
            "source_jpeg_kib_per_image": round(source_jpeg / 1024, 1),
            "demo_generation_s": round(generate, 1),
        }, indent=1))


if __name__ == "__main__":
    main()
