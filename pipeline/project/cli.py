"""``python -m pipeline project``: carry refined and raw CLIP labels to points, keep the pairs."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import stage_config
    from pipeline.project.stage import project_shard

    config = stage_config(args.options)
    project_shard(args.prepared, args.clip, args.refined, args.out, config["project"], threads=args.threads, ignore=config["refine"]["ignore"],
                  benchmark=config["vocabulary"]["benchmark"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "project",
        help="project points into every view: per-point majority labels and pixel<->point pairs",
        description=(
            "For every sample of a prepared store, find which points each view sees (frustum, and for "
            "RGB-D views the occlusion test on the depth image with the depth intrinsics; for lidar "
            "samples the nuScenes devkit's rule in the native image, and optionally a depth buffer "
            "splatted from the points) and at which pixel of the label maps (colour intrinsics scaled "
            "to their resolution). Writes one points "
            "store: per point the multi-view majority of the SAM-refined labels and of the raw CLIP "
            "labels, vote count, agreement and a seen flag (unseen points are kept, label 255); per view "
            "the pixel<->point pairs. See docs/method.md. The store appears only when complete."
        ),
    )
    parser.add_argument("--prepared", required=True, help="prepared store of the shard (<results>/prepared/<shard>.zarr)")
    parser.add_argument("--clip", required=True, help="CLIP store of the shard (raw labels, <results>/clip/<shard>.zarr)")
    parser.add_argument("--refined", required=True, help="refine store of the shard (<results>/refined/<shard>.zarr)")
    parser.add_argument("--out", required=True, help="output points store (<results>/points/<shard>.zarr)")
    parser.add_argument(
        "--options",
        default="{}",
        help='{"project": {...}, "refine": {"ignore": ...}, "vocabulary": {"benchmark": ...}} as JSON (the keys the points store depends on); '
        "omitted keys take the schema defaults. project: occlusion "
        "{mode: absolute|relative, threshold: 0.01 (m, or fraction of the depth), footprint: bilinear|nearest, "
        "border: 8 depth pixels}, min_depth: 1.0 m (views without depth: z > min_depth, 1 < u < W - 1 in the "
        "native image), lidar_occlusion {enabled: false, scale: 0.5, sides: 4, splat: {radius: 0.25 m, "
        "min_pixels: 0, max_pixels: 16}, margin: {absolute: 0.3 m, relative: 0.1}}, device: auto|cpu|cuda[:N], "
        "chunk_pairs: null (pairs per chunk; bounds memory), block_size: 128 (points per culling block), tie_break: "
        "nearest|lowest; refine.ignore: abstain|compete (how ignore labels vote); vocabulary.benchmark: the benchmark the "
        "CLIP and refine stores must have been labelled for (default scannet20)",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU worker threads running chunks of the projection (default 1)")
    parser.set_defaults(func=_run)
