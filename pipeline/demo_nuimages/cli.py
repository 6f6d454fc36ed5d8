"""``python -m pipeline demo-nuimages``: the procedural nuImages-format demo dataset."""

from __future__ import annotations

import argparse

from pipeline.demo_nuimages import spec


def _run(args: argparse.Namespace) -> int:
    from pipeline.demo_nuimages.generate import NuImagesDemoOptions, generate_dataset

    options = NuImagesDemoOptions(logs=args.logs, val=args.val, seed=args.seed, samples_per_log=args.samples_per_log,
                                  camera_size=tuple(args.camera_size), defects=args.defects, jpeg_quality=args.jpeg_quality)
    generate_dataset(args.out, options)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo-nuimages`` command."""
    p = subparsers.add_parser(
        "demo-nuimages",
        help="generate a procedural demo dataset in the nuImages v1.0 format (v1.0-train, v1.0-val)",
        description=(
            "Generate procedural streets (those of demo-nuscenes) and write single key camera images of them "
            "exactly as nuImages: samples/CAM_*/*.jpg, and per split the ten tables in v1.0-train/ and v1.0-val/ "
            "with object_ann (one per visible object of the 23 object classes) and surface_ann (driveable "
            "surface, ego vehicle) masks as base64 COCO RLE. Other classes stay unannotated, as in nuImages. "
            "Deterministic by --seed. OUT appears only when complete and is replaced as a whole."
        ),
    )
    p.add_argument("--out", required=True, help="dataset root to write (replaced if it exists)")
    p.add_argument("--logs", type=int, default=spec.DEFAULT_LOGS, help="number of logs (streets), train and val (default: %(default)s)")
    p.add_argument("--val", type=int, default=spec.DEFAULT_VAL, help="how many of them are val logs, the last ones (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: %(default)s)")
    p.add_argument("--samples-per-log", type=int, default=spec.DEFAULT_SAMPLES, help="images per log, 2 s apart (default: %(default)s)")
    p.add_argument("--camera-size", type=int, nargs=2, metavar=("W", "H"), default=list(spec.DEFAULT_CAMERA_SIZE),
                   help="image size (default: %(default)s)")
    p.add_argument("--defects", action="store_true",
                   help="inject defects: one object's mask null (skipped) and one image file missing (prepare fails on it, naming the file)")
    p.add_argument("--jpeg-quality", type=int, default=spec.DEFAULT_JPEG_QUALITY, help="JPEG quality 1-100 (default: %(default)s)")
    p.set_defaults(func=_run)
